"""`elasticvit-deploy export` and `elasticvit-deploy inspect`."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from supernet.documents import header

from ..archio import load_arch
from ..cli_common import emit_json, resolve_space, space_option
from ..errors import UserError
from ..export import (
    default_name,
    format_names,
    get_format,
    load_image_samples,
    load_weights,
    quantization_names,
    stage_subnet,
)
from ..export.describe import describe_model
from ..export.pipeline import DEFAULT_SAMPLES, ExportResult, Progress, check_request

EXPORT_RESULT_KIND = "export-result"
EXPORT_RESULT_VERSION = 1


def parse_quantizations(value: str, formats: list[str]) -> list[str]:
    """`none`, `all` (every quantization all of `formats` support) or a comma list of quantization names, order
    kept, duplicates dropped."""
    names = quantization_names()
    items = [v.strip() for v in value.split(",") if v.strip()]
    if items == ["all"]:
        return [q for q in names if all(q in get_format(f).quantizations for f in formats)]
    bad = [v for v in items if v not in names]
    if bad or not items:
        raise UserError(f"--quantize: {', '.join(bad) or 'nothing'} is not one of {', '.join(names)} "
                        f"(or a comma list of them, or all)")
    return list(dict.fromkeys(items))


def _progress(quiet: bool) -> Progress:
    start = time.perf_counter()

    def say(message: str) -> None:
        if not quiet:
            click.echo(f"[{time.perf_counter() - start:6.1f}s] {message}", err=True)

    return say


def _summary_line(path: Path, manifest: dict[str, Any]) -> str:
    parity = manifest["verification"]["parity"]
    top1 = "" if parity["top1_agreement"] is None else f", top-1 agreement {parity['top1_agreement']:.0%}"
    xnn = manifest.get("xnnpack")
    xnn_text = "" if xnn is None else f", XNNPACK {xnn['partitions']} partition(s)" if xnn["applied"] else \
        ", XNNPACK not applied"
    return (f"{path}  {manifest['size_bytes'] / 1e6:.2f} MB, {manifest['graph']['op_count']} ops, max abs diff "
            f"{parity['max_abs_diff']:.2e} vs PyTorch{top1}{xnn_text}")


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM (a CI job cancelled) stops the export as Ctrl-C does: staged files removed, exit 130. Restored
    at the end unless the commit point took over."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is signal.default_int_handler:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _commit_point() -> None:
    """From here the export is published and the command exits 0: a SIGINT/SIGTERM that arrived before raises
    KeyboardInterrupt now (``signal.signal`` runs pending handlers first), later ones are ignored for the rest of
    the process, the interpreter's shutdown included (seconds with torch loaded)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


@click.command("export")
@click.argument("arch_file", metavar="ARCH")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Supernet checkpoint to take the weights from (default: the seeded initial weights).")
@click.option("--weights", type=click.Choice(["ema", "model"]), default="ema", show_default=True,
              help="Checkpoint weights to use: EMA (when the checkpoint has them, as evaluation does) or raw.")
@click.option("--format", "fmt", type=click.Choice([*format_names(), "all"]), default=format_names()[0],
              show_default=True)
@click.option("--quantize", "quantize", default="none", show_default=True, metavar="MODE[,MODE]",
              help=f"{', '.join(quantization_names())} (none: fp32; int8: full integer, calibrated), a comma "
                   f"list, or all.")
@click.option("--nhwc", is_flag=True, help="Take NHWC input (1 x res x res x 3), as mobile pipelines prefer.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="exported", show_default=True,
              help="Output directory (created if needed).")
@click.option("--name", default=None, help="File name stem (default: SPACE-rRES-MFLOPSmf-ARCHHASH).")
@click.option("--data", type=click.Path(dir_okay=False), default=None,
              help="Images (.npy/.npz, float, normalised, NCHW or NHWC) to calibrate int8 and verify with; "
                   "first half calibrates, second half verifies. Default: the synthetic set (see README).")
@click.option("--samples", type=click.IntRange(1, 10_000), default=DEFAULT_SAMPLES, show_default=True,
              help="Inputs used for verification (and as many for int8 calibration).")
@click.option("--allow-flex", is_flag=True, help="Accept Flex (SELECT_TF_OPS) or custom TFLite ops.")
@space_option
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifests of the written models as JSON.")
def export_command(arch_file: str, checkpoint: str | None, weights: str, fmt: str, quantize: str, nhwc: bool,
                   out_dir: str, name: str | None, data: str | None, samples: int, allow_flex: bool, space_name: str,
                   quiet: bool, as_json: bool) -> None:
    """Export the subnet ARCH to TFLite and/or ONNX at its own resolution, verified against PyTorch.

    The model takes a fixed 1 x 3 x res x res input (NCHW; NHWC with --nhwc) at the subnet's resolution:
    resize images before feeding it (the supernet's in-model resize is not in the graph). Every file is run
    on the host (LiteRT interpreter / onnxruntime) before it is published: fp32 must match PyTorch to 1e-4,
    quantized models report their agreement. A manifest JSON is written beside each file and the arch is
    embedded in the model's metadata. Exit status 2 on bad input, 1 if verification fails (nothing written).
    """
    space = resolve_space(space_name)
    arch = load_arch(arch_file, space)
    formats = list(format_names()) if fmt == "all" else [fmt]
    quantizations = parse_quantizations(quantize, formats)
    name = name or default_name(arch, space)
    shape = (1, space.in_channels, arch.resolution, arch.resolution)
    check_request(name, shape, formats, quantizations, nhwc)
    loaded = load_weights(checkpoint, space, prefer_ema=weights == "ema") if checkpoint else None
    sample_set = load_image_samples(data, shape, samples) if data else None
    with _sigterm_as_interrupt():
        staged = stage_subnet(arch, space, Path(out_dir), weights=loaded, prefer_ema=weights == "ema", name=name,
                              samples=sample_set, formats=formats, quantizations=quantizations, channels_last=nhwc,
                              n_samples=samples, allow_flex=allow_flex, progress=_progress(quiet or as_json))
        try:
            _commit_point()
            result = staged.publish()
        except BaseException:
            staged.discard()
            raise
    _report(result, as_json)


def _report(result: ExportResult, as_json: bool) -> None:
    """The warnings on stderr, then the manifests as an ``elasticvit-deploy.export-result`` document (--json) or
    one summary line per model."""
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    if as_json:
        emit_json({**header(EXPORT_RESULT_KIND, EXPORT_RESULT_VERSION),
                   "models": [{"path": str(m.path), "manifest_path": str(m.manifest_path), "manifest": m.manifest}
                              for m in result.models], "warnings": result.warnings})
        return
    for m in result.models:
        click.echo(_summary_line(m.path, m.manifest))


@click.command("inspect")
@click.argument("model_file", metavar="MODEL")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def inspect_command(model_file: str, as_json: bool) -> None:
    """Show what a .tflite/.onnx model says about itself: embedded arch and export settings, op histogram,
    sha256, and whether the manifest beside it matches the file."""
    info = describe_model(model_file)
    if as_json:
        emit_json(info.to_dict())
        return
    meta = info.metadata
    click.echo(f"{info.path}: {info.format}, {info.size_bytes:,} bytes, sha256 {info.sha256[:16]}...")
    if meta is None:
        click.echo("  no elasticvit-deploy metadata (not exported by this tool)")
    else:
        for key in ("kind", "space", "resolution", "mflops", "params", "quantization", "input_layout", "input_shape",
                    "tool"):
            if key in meta:
                click.echo(f"  {key:<13} {meta[key]}")
        if "arch" in meta:
            click.echo(f"  {'arch':<13} {meta['arch']}")
    ops = ", ".join(f"{k} {v}" for k, v in list(info.graph["ops"].items())[:8])
    click.echo(f"  {'ops':<13} {info.graph['op_count']} ({ops}{', ...' if len(info.graph['ops']) > 8 else ''})")
    state = ("none beside the file" if info.manifest_path is None
             else "matches" if info.manifest_matches else "DOES NOT MATCH the file")
    click.echo(f"  {'manifest':<13} {state}")
