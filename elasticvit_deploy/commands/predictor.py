"""`elasticvit-deploy predictor ...`: install phone tables, fit/evaluate learned predictors, build one for a device
by measuring it, and validate a predictor against end-to-end measurements."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np
from tqdm import tqdm

from supernet import encoding as enc
from supernet.arch import parse_arch
from supernet.sampling import sample_uniform
from supernet.space import SearchSpace
from supernet.validation import check_arch

from ..archio import user_json
from ..cli_common import emit_json, resolve_space, space_option
from ..errors import CommandFailed, UserError
from ..export.pipeline import ExportError
from ..farm.adb import FarmError
from ..farm.measure import MeasureOptions
from ..farm.runner_protocol import RunnerSettings
from ..farm.store import ResultsStore
from ..latency import builder
from ..latency.blocks import FAMILIES, Block
from ..latency.learned import LearnedPredictor, read_training_set
from ..latency.measurements import MeasurementsError, read_measurements
from ..latency.model import ArchLatencyModel, UncoveredArchError
from ..latency.tables import TABLE_DEVICES, TableError, TablePredictor, fetch_tables, import_tables
from ..latency.targets import TargetError, check_device_name, installed_targets, learned_dir
from .farm import adb_option, single_target
from .latency import open_target


@click.group("predictor")
def predictor_group() -> None:
    """Latency predictors: phone tables, learned block regressors, building one for your device."""


@predictor_group.command("import-luts")
@click.argument("directory", type=click.Path(file_okay=False))
def import_luts(directory: str) -> None:
    """Install the nn-Meter phone tables (<device>_lut_ln_v3.json) found in DIRECTORY, after checking sha256."""
    try:
        installed = import_tables(directory)
    except TableError as e:
        raise UserError(str(e)) from None
    for device, path in installed.items():
        click.echo(f"installed {device}: {path}")


@predictor_group.command("fetch-luts")
@click.option("--device", "devices", multiple=True, type=click.Choice(TABLE_DEVICES),
              help="Only these tables (default: all four).")
def fetch_luts(devices: tuple[str, ...]) -> None:
    """Download the nn-Meter phone tables from the pinned commit, verify sha256 and install them."""
    try:
        installed = fetch_tables(devices or TABLE_DEVICES)
    except TableError as e:
        raise UserError(str(e)) from None
    for device, path in installed.items():
        click.echo(f"installed {device}: {path}")


@predictor_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_predictors(as_json: bool) -> None:
    """Installed predictors: tables and learned ones, per device and space."""
    rows = installed_targets()
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no predictor installed: 'predictor import-luts DIR' installs the phone tables, "
                   "'predictor build --device host' builds one for this machine")
    for r in rows:
        click.echo(f"{r['device']:<16} {r['space']:<12} {r['kind']:<8} {r['path']}")


def _measurements(path: str) -> tuple[list[Block], list[float], str]:
    try:
        return read_measurements(path)
    except MeasurementsError as e:
        raise UserError(str(e)) from None


def _block_errors(predicted: np.ndarray, measured: np.ndarray, families: list[str]) -> dict[str, Any]:
    out = {"all": builder.compare(predicted, measured)}
    for f in FAMILIES:
        idx = [i for i, fam in enumerate(families) if fam == f]
        if idx:
            out[f] = builder.compare(predicted[idx], measured[idx])
    return out


def _print_errors(title: str, errors: dict[str, Any]) -> None:
    click.echo(title)
    for name, e in errors.items():
        click.echo(f"  {name:<10} n={e['n']:<5} within 5%: {e['within_5pct']:6.1%}  within 10%: "
                   f"{e['within_10pct']:6.1%}  RMSE {e['rmse_pct']:5.2f}%  bias {e['bias_pct']:+6.2f}%  "
                   f"worst {e['worst_pct']:5.1f}%")


def _save_and_report(predictor: LearnedPredictor, out: Path, title: str, as_json: bool) -> None:
    predictor.save(out)
    info = predictor.describe()
    if as_json:
        emit_json(dict(info, path=str(out)))
        return
    click.echo(f"{title} to {out}")
    for f, d in info["families"].items():
        rmse = "n/a (too few blocks)" if d["cv_rmse"] is None else f"{d['cv_rmse'] * 100:5.2f}%"
        click.echo(f"  {f:<10} {d['regressor']:<18} {d['samples']:5d} blocks  cross-validated RMSE {rmse}")
    click.echo(f"  calibration: x{predictor.scale:.4f} {predictor.offset_ms:+.3f} ms")


@predictor_group.command("fit")
@click.option("--device", required=True, help="Name to save the predictor under (e.g. pixel4, host, an alias).")
@click.option("--from", "source", required=True, type=click.Path(dir_okay=False),
              help="Measured blocks: an nn-Meter table JSON or a blocks.jsonl (see README).")
@click.option("--base", default=None, metavar="TARGET",
              help="Transfer: learn how this device differs from TARGET's installed predictor.")
@space_option
@click.option("--json", "as_json", is_flag=True)
def fit(device: str, source: str, base: str | None, space_name: str, as_json: bool) -> None:
    """Fit per-family regressors from measured blocks and save them as DEVICE's predictor."""
    space = resolve_space(space_name)
    try:
        check_device_name(device)
    except TargetError as e:
        raise UserError(str(e)) from None
    blocks, ms, convention = _measurements(source)
    missing = [f for f in FAMILIES if not any(b.family == f for b in blocks)]
    if missing:
        raise UserError(f"{source}: no measured {', '.join(missing)} block; a predictor needs every family "
                        f"({', '.join(FAMILIES)})")
    base_predictor = open_target(base, space_name, "auto").predictor if base else None
    if base_predictor is not None and base_predictor.convention != convention:
        raise UserError(f"--base {base}: its blocks follow the {base_predictor.convention} convention, "
                        f"{source} the {convention} one")
    try:
        predictor = LearnedPredictor.fit(device, convention, blocks, ms, base=base_predictor, info={  # type: ignore
            "device": device, "space": space.name, "source": str(Path(source).resolve())})
    except ValueError as e:
        raise UserError(f"{source}: {e}") from None
    _save_and_report(predictor, learned_dir(device, space),
                     f"saved {device} predictor ({len(blocks)} blocks, {convention} convention)", as_json)


def _model_measurements(path: str, space: SearchSpace) -> tuple[np.ndarray, np.ndarray]:
    """Encoded archs and measured ms from JSON lines {"arch": ..., "ms": ...} (what validate writes)."""
    archs_, ms = [], []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({e.__class__.__name__})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        row = user_json(line, f"{path}:{n}")
        try:
            archs_.append(check_arch(parse_arch(row["arch"], space), space))
            ms.append(float(row["ms"]))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{path}:{n}: expected {{\"arch\": ..., \"ms\": ...}} of space {space.name} ({e})") \
                from None
    if not archs_:
        raise UserError(f"{path}: no measured models")
    return enc.encode_many(archs_), np.asarray(ms)


@predictor_group.command("eval")
@click.option("--device", required=True, help="The predictor to evaluate.")
@click.option("--from", "source", required=True, type=click.Path(dir_okay=False),
              help="Measured blocks (table or blocks.jsonl); blocks the predictor was fitted on are left out.")
@click.option("--models", "models_file", type=click.Path(dir_okay=False), default=None,
              help="Whole models measured end to end (JSON lines {\"arch\": ..., \"ms\": ...}, as validate writes).")
@click.option("--n", "n_models", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="Without --models and given a full table: random subnets compared with the table's sums.")
@click.option("--predictor", "kind", type=click.Choice(["auto", "table", "learned"]), default="learned",
              show_default=True)
@space_option
@click.option("--json", "as_json", is_flag=True)
def evaluate(device: str, source: str, models_file: str | None, n_models: int, kind: str, space_name: str,
             as_json: bool) -> None:
    """Accuracy of DEVICE's predictor: held-out blocks (within 5%/10%, RMSE, bias) and whole models."""
    model = open_target(device, space_name, kind)
    blocks, ms, convention = _measurements(source)
    if convention != model.predictor.convention:
        raise UserError(f"{source}: {convention} blocks, but the predictor uses the {model.predictor.convention} "
                        "convention")
    trained = read_training_set(learned_dir(device, model.space)) if model.predictor.kind == "learned" else set()
    held = [i for i, b in enumerate(blocks) if b not in trained]
    if not held:
        raise UserError(f"{source}: every block in it was used to fit the predictor; nothing is held out")
    measured = np.asarray(ms)[held]
    predicted = model.predictor.predict_blocks([blocks[i] for i in held])
    known = ~np.isnan(predicted)
    report: dict[str, Any] = {"device": device, "held_out_blocks": _block_errors(
        predicted[known], measured[known], [blocks[i].family for i in np.asarray(held)[known]])}
    if models_file:
        arch_rows, model_ms = _model_measurements(models_file, model.space)
        report["models"] = builder.compare(model.predict_batch(arch_rows), model_ms)
    elif convention == "nnmeter":
        reference = ArchLatencyModel(TablePredictor("reference", {b.lut_key: v for b, v in zip(blocks, ms)}),
                                     model.space)
        rows_ = sample_uniform(model.space, n_models, seed=0)
        try:
            truth = reference.predict_batch(rows_)
        except UncoveredArchError:
            raise UserError(f"{source}: not a full table of space {model.space.name}; give --models") from None
        try:
            report["models"] = builder.compare(model.predict_batch(rows_), truth)
        except UncoveredArchError as e:
            raise UserError(str(e)) from None
    if as_json:
        emit_json(report)
        return
    _print_errors(f"{device}: held-out blocks", report["held_out_blocks"])
    if "models" in report:
        _print_errors("whole models (sum of blocks)", {"models": report["models"]})


def _measurer(device: str, adb: str | None, warmup: int, runs: int, rounds: int, statistic: str) -> builder.Measurer:
    settings = RunnerSettings(warmup=warmup, runs=runs, threads=0, cores=None)
    options = MeasureOptions(rounds=rounds)
    if statistic == "auto":
        statistic = "best" if device == "host" else "median"
    return builder.Measurer(single_target(device, adb, settings, options), ResultsStore(), options, statistic)


def _measure_options(f: Any) -> Any:
    for option in reversed([
            click.option("--warmup", type=click.IntRange(0, 10_000), default=10, show_default=True),
            click.option("--runs", type=click.IntRange(1, 100_000), default=50, show_default=True),
            click.option("--rounds", type=click.IntRange(1, 100), default=3, show_default=True,
                         help="Rounds per model."),
            click.option("--statistic", type=click.Choice(["auto", *builder.STATISTICS]), default="auto",
                         show_default=True, help="A model's latency: median of the round means, or the best "
                         "(fastest) inference; auto is best on host (robust to a shared machine), median on phones."),
            adb_option]):
        f = option(f)
    return f


@predictor_group.command("build")
@click.option("--device", required=True, help="host, a farm alias or an adb serial.")
@click.option("--budget", type=click.IntRange(6, 100_000), default=300, show_default=True,
              help="Blocks to measure.")
@click.option("--calibrate", "calibration", type=click.IntRange(0, 1000), default=8, show_default=True,
              help="Whole subnets measured for the model-level calibration (0: none).")
@click.option("--seed", type=int, default=0, show_default=True)
@space_option
@_measure_options
@click.option("--json", "as_json", is_flag=True)
def build(device: str, budget: int, calibration: int, seed: int, space_name: str, warmup: int, runs: int,
          rounds: int, statistic: str, adb: str | None, as_json: bool) -> None:
    """Build DEVICE's predictor by measuring it: choose blocks (adaptive), export each as a tiny TFLite model,
    measure it through the farm harness, fit the regressors, calibrate on a few whole subnets, save.

    Resumable: an interrupted build measures only what is missing when run again.
    """
    space = resolve_space(space_name)
    try:
        out = learned_dir(device, space)
    except TargetError as e:
        raise UserError(str(e)) from None
    measurer = _measurer(device, adb, warmup, runs, rounds, statistic)
    bar = tqdm(desc=f"building {device}", unit="model", disable=as_json)
    try:
        predictor = builder.build(device, space, measurer, budget, out / "build", calibration_subnets=calibration,
                                  seed=seed, tick=lambda m: (bar.set_postfix_str(m, refresh=False), bar.update(1)),
                                  total=lambda n: setattr(bar, "total", n))
    except (FarmError, ExportError) as e:
        raise CommandFailed(f"build stopped (what was measured is kept; run again to resume): {e}") from None
    finally:
        bar.close()
    _save_and_report(predictor, out, f"saved {device} predictor for space {space.name}", as_json)


@predictor_group.command("validate")
@click.option("--device", required=True, help="The device to measure on (host, alias or serial).")
@click.option("--n", "n", type=click.IntRange(1, 10_000), default=50, show_default=True,
              help="Random subnets to export and measure.")
@click.option("--target", default=None, help="Predictor to check (default: the device's own).")
@click.option("--predictor", "kind", type=click.Choice(["auto", "table", "learned"]), default="auto",
              show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where to write validation.jsonl and validation.png (default: the predictor's directory).")
@space_option
@_measure_options
@click.option("--json", "as_json", is_flag=True)
def validate(device: str, n: int, target: str | None, kind: str, seed: int, out_dir: str | None,
             space_name: str, warmup: int, runs: int, rounds: int, statistic: str, adb: str | None,
             as_json: bool) -> None:
    """Export N random subnets, measure them end to end on DEVICE, and compare with the predictor (plot)."""
    model = open_target(target or device, space_name, kind)
    measurer = _measurer(device, adb, warmup, runs, rounds, statistic)
    arch_list = builder.validation_archs(model.space, n, seed)
    bar = tqdm(total=n, desc=f"validating on {device}", unit="subnet", disable=as_json)
    try:
        rows = builder.measure_archs(arch_list, model.space, measurer,
                                     lambda m: (bar.set_postfix_str(m, refresh=False), bar.update(1)))
    except (FarmError, ExportError) as e:
        raise CommandFailed(f"validation stopped (measurements are stored; run again to resume): {e}") from None
    finally:
        bar.close()
    predicted = model.predict_batch(enc.encode_many(arch_list))
    measured = np.array([r["ms"] for r in rows])
    out = Path(out_dir) if out_dir else learned_dir(target or device, model.space)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "validation.jsonl", "w", encoding="utf-8") as f:
        for r, p in zip(rows, predicted):
            f.write(json.dumps(dict(r, predicted_ms=round(float(p), 6))) + "\n")
    figures = builder.compare(predicted, measured)
    cvs = [r["cv"] for r in rows if r["cv"] is not None]
    figures["noise_median_cv_pct"] = float(np.median(cvs) * 100) if cvs else None
    plot = builder.plot_validation(predicted, measured, f"{target or device} predictor on {device}: "
                                   f"{figures['within_10pct']:.0%} within 10%", out / "validation.png")
    report = {"device": device, "predictor": model.predictor.describe()["name"], **figures,
              "files": {"measurements": str(out / "validation.jsonl"), "plot": str(plot)}}
    if as_json:
        emit_json(report)
        return
    _print_errors(f"{n} random subnets on {device}, predicted vs measured", {"models": figures})
    if figures["noise_median_cv_pct"] is not None:
        click.echo(f"  measurement noise: median CV of the rounds {figures['noise_median_cv_pct']:.2f}%")
    click.echo(f"  wrote {out / 'validation.jsonl'} and {plot}")



