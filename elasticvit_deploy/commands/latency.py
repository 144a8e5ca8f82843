"""`elasticvit-deploy latency --target T ARCH`: predicted latency with a per-block breakdown."""

from __future__ import annotations

import click

from ..archio import load_arch
from ..cli_common import emit_json, open_predictor, predictor_kind_option, space_option
from ..latency.prediction import predict_arch


@click.command("latency")
@click.argument("arch_file", metavar="ARCH")
@click.option("--target", "device", required=True, metavar="DEVICE",
              help="pixel1, pixel4, pixel6, xiaomi11 (nn-Meter tables), host, or any device with a built predictor.")
@predictor_kind_option("auto", "Which installed predictor answers (auto: the table if there is one).")
@space_option
@click.option("--json", "as_json", is_flag=True, help='Print {"ms": ..., "blocks": [...], ...}.')
def latency_command(arch_file: str, device: str, kind: str, space_name: str, as_json: bool) -> None:
    """Predicted latency (ms) of ARCH on a target device, with a per-block breakdown.

    ARCH is a JSON file, or - to read stdin. Install the phone tables with `predictor import-tables DIR`
    (or `predictor fetch-tables`); build a predictor for any other device with `predictor build`.
    """
    model = open_predictor(device, space_name, kind)
    prediction = predict_arch(model, load_arch(arch_file, model.space), device)
    if as_json:
        emit_json(prediction.to_dict())
        return
    click.echo(f"{prediction.ms:.3f} ms on {device} ({prediction.predictor['kind']} predictor, "
               f"{prediction.predictor['convention']} blocks)")
    for b in prediction.blocks:
        click.echo(f"  {b.part:<10} {b.block.table_key:<44} {b.ms:9.3f}")
    if (model.scale, model.offset_ms) != (1.0, 0.0):
        click.echo(f"  model-level calibration: x{model.scale:.4f} {model.offset_ms:+.3f} ms")
