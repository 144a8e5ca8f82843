"""`elasticvit-deploy latency --target T ARCH`: predicted latency with a per-block breakdown."""

from __future__ import annotations

import click

from ..archio import load_arch
from ..cli_common import emit_json, resolve_space, space_option
from ..errors import UserError
from ..latency.learned import PredictorFileError
from ..latency.model import ArchLatencyModel, UncoveredArchError
from ..latency.tables import TableError
from ..latency.targets import TargetError, load_target


def open_target(target: str, space_name: str, kind: str) -> ArchLatencyModel:
    """The latency model for a CLI target, every failure as a one-line UserError."""
    space = resolve_space(space_name)
    try:
        return load_target(target, space, kind)  # type: ignore[arg-type]
    except (TargetError, TableError, PredictorFileError) as e:
        raise UserError(f"--target {target}: {e}") from None


@click.command("latency")
@click.argument("arch_file", metavar="ARCH")
@click.option("--target", required=True, metavar="DEVICE",
              help="pixel1, pixel4, pixel6, xiaomi11 (nn-Meter tables), host, or any device with a built predictor.")
@click.option("--predictor", "kind", type=click.Choice(["auto", "table", "learned"]), default="auto",
              show_default=True, help="Which installed predictor answers (auto: the table if there is one).")
@space_option
@click.option("--json", "as_json", is_flag=True, help='Print {"ms": ..., "blocks": [...], ...}.')
def latency_command(arch_file: str, target: str, kind: str, space_name: str, as_json: bool) -> None:
    """Predicted latency (ms) of ARCH on a target device, with a per-block breakdown.

    ARCH is a JSON file, or - to read stdin. Install the phone tables with `predictor import-luts DIR`
    (or `predictor fetch-luts`); build a predictor for any other device with `predictor build`.
    """
    model = open_target(target, space_name, kind)
    arch = load_arch(arch_file, model.space)
    try:
        parts = model.breakdown(arch)
    except UncoveredArchError as e:
        raise UserError(str(e)) from None
    total = model.scale * sum(ms for _, _, ms in parts) + model.offset_ms
    predictor = model.predictor.describe()
    if as_json:
        emit_json({"ms": round(total, 6), "target": target, "space": model.space.name,
                   "predictor": {k: predictor[k] for k in ("name", "kind", "convention")},
                   "calibration": {"scale": model.scale, "offset_ms": model.offset_ms},
                   "blocks": [{"part": part, "key": b.lut_key, "block": b.to_dict(), "ms": round(ms, 6)}
                              for part, b, ms in parts]})
        return
    click.echo(f"{total:.3f} ms on {target} ({predictor['kind']} predictor, {predictor['convention']} blocks)")
    for part, b, ms in parts:
        click.echo(f"  {part:<10} {b.lut_key:<44} {ms:9.3f}")
    if (model.scale, model.offset_ms) != (1.0, 0.0):
        click.echo(f"  model-level calibration: x{model.scale:.4f} {model.offset_ms:+.3f} ms")
