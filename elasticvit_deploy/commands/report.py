"""`elasticvit-deploy report`: per-phone benchmark reports with PASS/WARN/FAIL verdicts, usable as a CI gate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..cli_common import emit_json
from ..errors import UserError
from ..farm.store import ResultsStore, default_store_path
from ..reports.history import History, no_labels, read_history
from ..reports.inputs import ReportInputs, read_results
from ..reports.report import build_report
from ..reports.verdicts import parse_budgets


def _check_options(results: tuple[str, ...], from_store: bool, baseline: str | None, store: str | None,
                   labels: str | None, last: int | None, devices: tuple[str, ...]) -> None:
    """One-line UserError for options that contradict each other."""
    if from_store and results:
        raise UserError("give RESULTS files or --from-store, not both")
    if not from_store and not results:
        raise UserError("give RESULTS files to report, or --from-store to report the results store's labels")
    if labels is not None and last is not None:
        raise UserError("--labels and --last exclude each other: name the labels, or take the last K")
    if not from_store:
        given = [name for name, value in (("--labels", labels), ("--last", last), ("--device", devices or None),
                                          ("--store", store)) if value is not None]
        if given:
            raise UserError(f"{', '.join(given)} select(s) what to read from the results store: add --from-store")
    elif baseline is not None:
        raise UserError("--baseline and --from-store exclude each other: with --from-store the baseline is the "
                        "previous label")


def _label_list(labels: str | None) -> list[str] | None:
    """The names of --labels A,B,C (read_history refuses none)."""
    if labels is None:
        return None
    return [name.strip() for name in labels.split(",") if name.strip()]


def _open_store(store: str | None) -> ResultsStore:
    """The store to read; never creates one (a missing file is an empty store, or a wrong --store)."""
    path = Path(store) if store else default_store_path()
    if not path.is_file():
        if store:
            raise UserError(f"--store {path}: no such results store")
        raise no_labels(path)
    return ResultsStore(path)


@click.command("report")
@click.argument("results", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--from-store", "from_store", is_flag=True,
              help="Read the results store instead of RESULTS: the latest selected label (measure --label) is "
                   "judged, each model x phone against the nearest earlier selected label that has it; every "
                   "model x phone gets a trend of its median and 95% CI across the selected labels.")
@click.option("--store", default=None, type=click.Path(dir_okay=False), metavar="PATH",
              help="Results store to read with --from-store (default: the one measure writes).")
@click.option("--labels", default=None, metavar="A,B,C",
              help="With --from-store: the labels to report, oldest first (the last is judged). Default: all.")
@click.option("--last", type=int, default=None, metavar="K",
              help="With --from-store: the K newest labels (by when each was first tagged).")
@click.option("--device", "devices", multiple=True, metavar="NAME",
              help="With --from-store: only this device (alias, serial or fingerprint prefix); repeatable.")
@click.option("--baseline", default=None, type=click.Path(dir_okay=False), metavar="PREVIOUS",
              help="Results to compare RESULTS with: the last report's summary.json, or any RESULTS form.")
@click.option("--budget", "budgets", multiple=True, metavar="MODEL=MS",
              help="Latency budget of a model (file name or glob); repeatable. Search results bring their own.")
@click.option("--threshold", "threshold_pct", type=click.FloatRange(0, 1000), default=5.0, show_default=True,
              help="Slowdown vs the baseline (%) that fails when the rounds show it beyond the measurement noise.")
@click.option("--max-cv", "max_cv_pct", type=click.FloatRange(0, 1000), default=10.0, show_default=True,
              metavar="PCT",
              help="Noise limit (%): when the coefficient of variation of either side's rounds is over it, a "
                   "slowdown fails only if even its 95% CI lower bound is beyond the threshold and the medians' "
                   "distribution-free 95% CIs are apart by the threshold too; otherwise WARN 'too noisy to judge'.")
@click.option("--fail-on", "fail_on", type=click.Choice(["regression", "budget"]), multiple=True,
              help="Exit 1 when any model FAILs this check (repeatable): the CI gate.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for <phone>.json/.md/.html, summary.md, summary.json, junit.xml and index.html.")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json on stdout.")
def report_command(results: tuple[str, ...], from_store: bool, store: str | None, labels: str | None,
                   last: int | None, devices: tuple[str, ...], baseline: str | None, budgets: tuple[str, ...],
                   threshold_pct: float, max_cv_pct: float, fail_on: tuple[str, ...], out_dir: str,
                   as_json: bool) -> None:
    """Report RESULTS (measure --json output, results export, search result.json, or a report's summary.json), or
    the results store's labels with --from-store, per phone: latency distribution, predicted vs measured, Pareto
    fronts, device fingerprint and runtime, and a verdict per model against its budget and the baseline.

    With --from-store the latest selected label is judged (a single label gets no regression verdicts) and the
    output says which labels were compared.

    \b
    Regression verdicts use the raw rounds (each round's mean) when
    both sides have at least 5:
      - a significant slowdown: one-sided Mann-Whitney U p < 0.05 and
        the bootstrap 95% CI of the ratio of medians (current over
        baseline) wholly above 1;
      - FAIL: a significant slowdown with p < 0.01 whose ratio CI
        reaches 1 + threshold;
      - WARN: the same with 0.01 <= p < 0.05, a significant slowdown
        below the threshold, or
        "too noisy to judge" (a CV over --max-cv, or a change that is
        not significant but whose CI reaches beyond the threshold);
      - PASS: otherwise ("faster" when significantly faster).
    With fewer rounds the 95% CIs of the two medians are compared.
    """
    _check_options(results, from_store, baseline, store, labels, last, devices)
    budget_list = parse_budgets(budgets)
    history: History | None = None
    if from_store:
        current, base, history = read_history(_open_store(store), _label_list(labels), last, devices)
    else:
        current = read_results([Path(p) for p in results])
        base = read_results([Path(baseline)]).results if baseline else []
        _require_measured(current, results)
    summary = build_report(current, base, budget_list, threshold_pct, Path(out_dir), history=history,
                           max_cv=max_cv_pct / 100)
    if as_json:
        emit_json(summary)
    else:
        if summary["compared"]:
            click.echo(f"judged {summary['compared']}")
        for phone in summary["phones"]:
            s = phone["status"]
            click.echo(f"{phone['name']}: {s['PASS']} pass, {s['WARN']} warn, {s['FAIL']} fail -> "
                       f"{phone['files']['html']}")
        out = Path(out_dir)
        click.echo(f"summary: {out / 'summary.md'} (pull-request comment), {out / 'summary.json'} (next "
                   f"baseline), {out / 'junit.xml'} (CI test results), {out / 'index.html'} (all phones)")
    failed = [kind for kind in fail_on if summary["failed"][kind]]
    if failed:
        click.echo(f"failing: {' and '.join(failed)} check(s) failed", err=True)
        sys.exit(1)


def _require_measured(current: ReportInputs, results: tuple[str, ...]) -> None:
    if not current.results:
        raise UserError(f"no measured models in {', '.join(results)} (search results count only with --verify, "
                        f"live or hybrid)")
