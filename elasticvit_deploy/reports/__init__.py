"""Per-phone benchmark reports for CI: verdicts against budgets and baselines, JSON / Markdown / HTML."""
