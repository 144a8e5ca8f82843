"""`elasticvit-deploy report`: per-phone benchmark reports with PASS/WARN/FAIL verdicts, usable as a CI gate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..cli_common import emit_json
from ..errors import UserError
from ..reports.inputs import read_results
from ..reports.report import build_report
from ..reports.verdicts import parse_budgets


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--baseline", default=None, type=click.Path(dir_okay=False), metavar="PREVIOUS",
              help="Results to compare with: the last report's summary.json, or any RESULTS form.")
@click.option("--budget", "budgets", multiple=True, metavar="MODEL=MS",
              help="Latency budget of a model (file name or glob); repeatable. Search results bring their own.")
@click.option("--threshold", "threshold_pct", type=click.FloatRange(0, 1000), default=5.0, show_default=True,
              help="Slowdown vs the baseline (%) that fails when it is beyond the measurement noise.")
@click.option("--fail-on", "fail_on", type=click.Choice(["regression", "budget"]), multiple=True,
              help="Exit 1 when any model FAILs this check (repeatable): the CI gate.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for <phone>.json/.md/.html, summary.md and summary.json.")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json on stdout.")
def report_command(results: tuple[str, ...], baseline: str | None, budgets: tuple[str, ...], threshold_pct: float,
                   fail_on: tuple[str, ...], out_dir: str, as_json: bool) -> None:
    """Report RESULTS (measure --json output, results export, search result.json, or a report's summary.json) per
    phone: latency distribution, predicted vs measured, Pareto fronts, device fingerprint and runtime, and a verdict
    per model against its budget and the baseline (significance from the 95% CIs of the medians)."""
    budget_list = parse_budgets(budgets)
    current = read_results([Path(p) for p in results])
    base = read_results([Path(baseline)]).results if baseline else []
    if not current.results:
        raise UserError(f"no measured models in {', '.join(results)} (search results count only with --verify, "
                        f"live or hybrid)")
    summary = build_report(current, base, budget_list, threshold_pct, Path(out_dir))
    if as_json:
        emit_json(summary)
    else:
        for phone in summary["phones"]:
            s = phone["status"]
            click.echo(f"{phone['name']}: {s['PASS']} pass, {s['WARN']} warn, {s['FAIL']} fail -> "
                       f"{phone['files']['html']}")
        click.echo(f"summary: {Path(out_dir) / 'summary.md'} (pull-request comment), "
                   f"{Path(out_dir) / 'summary.json'} (next baseline)")
    failed = [kind for kind in fail_on if summary["failed"][kind]]
    if failed:
        click.echo(f"failing: {' and '.join(failed)} check(s) failed", err=True)
        sys.exit(1)
