"""`elasticvit-deploy predictor ...`: install phone tables, fit/evaluate learned predictors, build one for a device
by measuring it (blocks, or a few whole subnets on top of known predictors), and validate a predictor against
end-to-end measurements."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from ..cli_common import (
    adb_option,
    emit_json,
    held_device,
    open_predictor,
    predictor_kind_option,
    resolve_space,
    space_option,
)
from ..errors import UserError
from ..farm.measure import MeasureOptions
from ..farm.runner_protocol import DEFAULT_ROUNDS, RunnerSettings
from ..farm.store import ResultsStore
from ..latency import builder
from ..latency.blocks import FAMILIES
from ..latency.evaluation import ErrorFigures, evaluate
from ..latency.fitting import fit_from_file
from ..latency.learned import LearnedPredictor
from ..latency.measurer import STATISTICS, Measurer, default_statistic
from ..latency.predictors import installed_predictors, learned_dir, listing_document, transfer_bases
from ..latency.tables import TABLE_DEVICES, fetch_tables, import_tables
from ..latency.transfer import MIN_SUBNETS, TransferPredictor, build_transfer
from ..latency.validation import validate

MEASURE_DEFAULTS = RunnerSettings()


@click.group("predictor")
def predictor_group() -> None:
    """Latency predictors: phone tables, learned block regressors, building one for your device."""


def _hidden_alias(command: click.Command, old_name: str) -> click.Command:
    """`command` under its earlier name, left out of the help, so scripts written for that name keep working."""
    return click.Command(old_name, callback=command.callback, params=command.params, help=command.help,
                         hidden=True)


def _print_installed(installed: dict[str, Path]) -> None:
    for device, path in installed.items():
        click.echo(f"installed {device}: {path}")


@predictor_group.command("import-tables")
@click.argument("directory", type=click.Path(file_okay=False))
def import_tables_command(directory: str) -> None:
    """Install the nn-Meter phone tables (<device>_lut_ln_v3.json) found in DIRECTORY, after checking sha256."""
    _print_installed(import_tables(directory))


@predictor_group.command("fetch-tables")
@click.option("--device", "devices", multiple=True, type=click.Choice(TABLE_DEVICES),
              help="Only these tables (default: all four).")
def fetch_tables_command(devices: tuple[str, ...]) -> None:
    """Download the nn-Meter phone tables from the pinned commit, verify sha256 and install them."""
    _print_installed(fetch_tables(devices or TABLE_DEVICES))


predictor_group.add_command(_hidden_alias(import_tables_command, "import-luts"))
predictor_group.add_command(_hidden_alias(fetch_tables_command, "fetch-luts"))


@predictor_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_predictors(as_json: bool) -> None:
    """Installed predictors: tables and learned ones, per device and space."""
    rows = installed_predictors()
    if as_json:
        emit_json(listing_document(rows))
        return
    if not rows:
        click.echo("no predictor installed: 'predictor import-tables DIR' installs the phone tables, "
                   "'predictor build --device host' builds one for this machine")
    for r in rows:
        click.echo(f"{r.device:<16} {r.space:<12} {r.kind:<8} {r.path}")


def _print_errors(title: str, errors: dict[str, ErrorFigures]) -> None:
    click.echo(title)
    for name, e in errors.items():
        click.echo(f"  {name:<10} n={e.n:<5} within 5%: {e.within_5pct:6.1%}  within 10%: "
                   f"{e.within_10pct:6.1%}  RMSE {e.rmse_pct:5.2f}%  bias {e.bias_pct:+6.2f}%  "
                   f"worst {e.worst_pct:5.1f}%")


def _save_and_report(predictor: LearnedPredictor, out: Path, title: str, as_json: bool) -> None:
    predictor.save(out)
    if as_json:
        emit_json(predictor.summary(out))
        return
    click.echo(f"{title} to {out}")
    for f, d in predictor.describe()["families"].items():
        rmse = "n/a (too few blocks)" if d["cv_rmse"] is None else f"{d['cv_rmse'] * 100:5.2f}%"
        click.echo(f"  {f:<10} {d['regressor']:<18} {d['samples']:5d} blocks  cross-validated RMSE {rmse}")
    cal = predictor.describe()["calibration"]
    scales = " ".join(f"{f} x{v:.4f}" for f, v in predictor.family_scales.items()) or f"x{predictor.scale:.4f}"
    chosen = f" ({_fit_figures(cal)})" if "choice" in cal else ""
    click.echo(f"  calibration: {scales} {predictor.offset_ms:+.3f} ms{chosen}")


def _fit_figures(fit: dict[str, Any]) -> str:
    """A fit chosen by cross-validation, in words."""
    return (f"{fit['choice']}, cross-validated on {fit['cv_splits']} splits: RMSE {fit['cv_rmse_pct']:.2f}%, "
            f"within 5% {fit['cv_within_5pct']:.0%}, within 10% {fit['cv_within_10pct']:.0%}")


def _report_transfer(predictor: TransferPredictor, out: Path, as_json: bool) -> None:
    predictor.save(out)
    if as_json:
        emit_json(predictor.summary(out))
        return
    bases = ", ".join(b.name for b in predictor.bases)
    click.echo(f"saved {predictor.name} predictor for space {predictor.space} (transfer from {bases}; "
               f"{len(predictor.measured_subnets)} subnets measured) to {out}")
    click.echo(f"  fit: {_fit_figures(predictor.describe()['fit'])}")
    for base, row in zip(predictor.bases, predictor.weights, strict=True):
        if len(set(row)) == 1:
            weights = f"x{row[0]:.4f} (every family)"
        else:
            weights = " ".join(f"{f} x{w:.4f}" for f, w in zip(FAMILIES, row, strict=True))
        if row.any():
            click.echo(f"  {base.name:<16} {weights}")
    click.echo(f"  offset: {predictor.offset_ms:+.3f} ms")


@predictor_group.command("fit")
@click.option("--device", required=True, help="Name to save the predictor under (e.g. pixel4, host, an alias).")
@click.option("--from", "source", required=True, type=click.Path(dir_okay=False),
              help="Measured blocks: an nn-Meter table JSON or a blocks.jsonl (see README).")
@click.option("--base", default=None, metavar="DEVICE",
              help="Transfer: learn how this device differs from DEVICE's installed predictor.")
@space_option
@click.option("--json", "as_json", is_flag=True)
def fit(device: str, source: str, base: str | None, space_name: str, as_json: bool) -> None:
    """Fit per-family regressors from measured blocks and save them as DEVICE's predictor."""
    space = resolve_space(space_name)
    out = learned_dir(device, space)
    base_predictor = open_predictor(base, space_name, "auto").predictor if base else None
    predictor = fit_from_file(device, source, space, base_predictor)
    measured = sum(m.n_samples for m in predictor.families.values())
    _save_and_report(predictor, out, f"saved {device} predictor ({measured} blocks, {predictor.convention} "
                     "convention)", as_json)


@predictor_group.command("eval")
@click.option("--device", required=True, help="The predictor to evaluate.")
@click.option("--from", "source", required=True, type=click.Path(dir_okay=False),
              help="Measured blocks (table or blocks.jsonl); blocks the predictor was fitted on are left out.")
@click.option("--models", "models_file", type=click.Path(dir_okay=False), default=None,
              help="Whole models measured end to end (JSON lines {\"arch\": ..., \"ms\": ...}, as validate writes).")
@click.option("--n", "n_models", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="Without --models and given a full table: random subnets compared with the table's sums.")
@predictor_kind_option("learned")
@space_option
@click.option("--json", "as_json", is_flag=True)
def evaluate_command(device: str, source: str, models_file: str | None, n_models: int, kind: str, space_name: str,
                     as_json: bool) -> None:
    """Accuracy of DEVICE's predictor: held-out blocks (within 5%/10%, RMSE, bias) and whole models."""
    report = evaluate(open_predictor(device, space_name, kind), device, source, models_file, n_models)
    if as_json:
        emit_json(report.to_dict())
        return
    _print_errors(f"{device}: held-out blocks", report.held_out_blocks)
    if report.models is not None:
        _print_errors("whole models (sum of blocks)", {"models": report.models})


def _measurer(device: str, adb: str | None, warmup: int, runs: int, rounds: int, statistic: str) -> Measurer:
    settings = RunnerSettings(warmup=warmup, runs=runs)
    options = MeasureOptions(rounds=rounds)
    chosen = default_statistic(device) if statistic == "auto" else statistic
    return Measurer(held_device(device, adb, settings, options), ResultsStore(), options, chosen)


def _measure_options(f: Any) -> Any:
    for option in reversed([
            click.option("--warmup", type=click.IntRange(0, 10_000), default=MEASURE_DEFAULTS.warmup,
                         show_default=True),
            click.option("--runs", type=click.IntRange(1, 100_000), default=MEASURE_DEFAULTS.runs,
                         show_default=True),
            click.option("--rounds", type=click.IntRange(1, 100), default=DEFAULT_ROUNDS, show_default=True,
                         help="Rounds per model."),
            click.option("--statistic", type=click.Choice(["auto", *STATISTICS]), default="auto",
                         show_default=True, help="A model's latency: median of the round means, or the best "
                         "(fastest) inference; auto is best on host (robust to a shared machine), median on phones."),
            adb_option]):
        f = option(f)
    return f


def _progress(bar: tqdm) -> Any:
    """A tick(message) that advances `bar` by one and shows the message."""
    return lambda message: (bar.set_postfix_str(message, refresh=False), bar.update(1))


def _names(value: str | None) -> list[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


@predictor_group.command("build")
@click.option("--device", required=True, help="host, a farm alias or an adb serial.")
@click.option("--method", type=click.Choice(["blocks", "transfer"]), default="blocks", show_default=True,
              help="blocks: measure single blocks (--budget), fit per-family regressors, calibrate on --models "
              "whole subnets (hours on a phone). transfer: measure only --models whole subnets and fit them as a "
              "non-negative combination of --base predictors (minutes; for a new phone, on the phone tables).")
@click.option("--models", type=click.IntRange(0, 1000), default=10, show_default=True,
              help=f"Whole subnets measured end to end, chosen to cover the latency range: the onboarding set of "
              f"--method transfer (at least {MIN_SUBNETS}), the calibration subnets of --method blocks (0: none).")
@click.option("--calibrate", "calibrate", type=click.IntRange(0, 1000), default=None, hidden=True)
@click.option("--budget", type=click.IntRange(6, 100_000), default=300, show_default=True,
              help="--method blocks: blocks to measure.")
@click.option("--base", "base", default=None, metavar="DEVICE,...",
              help="--method transfer: the installed predictors to combine, e.g. pixel1,pixel4,pixel6 (default: "
              "every installed phone table of the space but DEVICE's own; in another space, learned predictors "
              "of it).")
@click.option("--seed", type=int, default=0, show_default=True)
@space_option
@_measure_options
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def build(ctx: click.Context, device: str, method: str, models: int, calibrate: int | None, budget: int,
          base: str | None, seed: int, space_name: str, warmup: int, runs: int, rounds: int, statistic: str,
          adb: str | None, as_json: bool) -> None:
    """Build DEVICE's predictor by measuring it. --method blocks: choose blocks (adaptive), export each as a tiny
    TFLite model, measure it through the farm harness, fit the regressors, calibrate on a few whole subnets.
    --method transfer: measure a few whole subnets and fit them from known predictors (--base). Saved as DEVICE's
    predictor for the space (what `latency`, `search` and `predictor validate` then use).

    Resumable: an interrupted build measures only what is missing when run again.
    """
    models = models if calibrate is None else calibrate
    given = {p for p in ("budget", "base") if ctx.get_parameter_source(p) is not click.core.ParameterSource.DEFAULT}
    if method == "transfer" and "budget" in given:
        raise UserError("--budget counts blocks, which --method transfer does not measure; use --models")
    if method == "blocks" and "base" in given:
        raise UserError("--base names the predictors of --method transfer")
    if method == "transfer" and models < MIN_SUBNETS:
        raise UserError(f"--models {models}: --method transfer measures at least {MIN_SUBNETS} subnets")
    space = resolve_space(space_name)
    out = learned_dir(device, space)
    bases = transfer_bases(_names(base), space, device) if method == "transfer" else []
    measurer = _measurer(device, adb, warmup, runs, rounds, statistic)
    unit = "subnet" if method == "transfer" else "model"
    with tqdm(desc=f"building {device}", unit=unit, disable=as_json) as bar:
        tick, total = _progress(bar), lambda n: setattr(bar, "total", n)
        if method == "transfer":
            transfer = build_transfer(device, space, measurer, bases, models, out / "build", seed=seed, tick=tick,
                                      total=total)
        else:
            predictor = builder.build(device, space, measurer, budget, out / "build", calibration_subnets=models,
                                      seed=seed, tick=tick, total=total)
    if method == "transfer":
        _report_transfer(transfer, out, as_json)
    else:
        _save_and_report(predictor, out, f"saved {device} predictor for space {space.name}", as_json)


@predictor_group.command("validate")
@click.option("--device", required=True, help="The device to measure on (host, alias or serial).")
@click.option("--n", "n", type=click.IntRange(1, 10_000), default=50, show_default=True,
              help="Random subnets to export and measure.")
@click.option("--target", "predictor_of", default=None, metavar="DEVICE",
              help="Whose predictor to check (default: the measured device's own).")
@predictor_kind_option("auto")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where to write validation.jsonl and validation.png (default: the predictor's directory).")
@space_option
@_measure_options
@click.option("--json", "as_json", is_flag=True)
def validate_command(device: str, n: int, predictor_of: str | None, kind: str, seed: int, out_dir: str | None,
                     space_name: str, warmup: int, runs: int, rounds: int, statistic: str, adb: str | None,
                     as_json: bool) -> None:
    """Export N random subnets, measure them end to end on DEVICE, and compare with the predictor (plot)."""
    predicted_for = predictor_of or device
    model = open_predictor(predicted_for, space_name, kind)
    measurer = _measurer(device, adb, warmup, runs, rounds, statistic)
    out = Path(out_dir) if out_dir else learned_dir(predicted_for, model.space)
    with tqdm(total=n, desc=f"validating on {device}", unit="subnet", disable=as_json) as bar:
        report = validate(model, measurer, device, n, out, seed=seed, label=f"{predicted_for} predictor on {device}",
                          tick=_progress(bar))
    if as_json:
        emit_json(report.to_dict())
        return
    _print_errors(f"{n} random subnets on {device}, predicted vs measured", {"models": report.figures})
    if report.noise_median_cv_pct is not None:
        click.echo(f"  measurement noise: median CV of the rounds {report.noise_median_cv_pct:.2f}%")
    click.echo(f"  wrote {report.measurements} and {report.plot}")
