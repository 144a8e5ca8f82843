"""The `elasticvit-deploy` command line (click command group).

Every command that reads user input reports bad input as one line ``error: ...`` and exits with status 2.
"""

from __future__ import annotations

import json
from typing import Any

import click
import torch

from supernet.counting import legal_count, table1_count
from supernet.documents import header
from supernet.flops import arch_flops_breakdown, arch_mflops
from supernet.model import ElasticViTSupernet, count_parameters
from supernet.sampling import archs, max_arch, min_arch, sample_in_window, sample_uniform
from supernet.space import TransformerStageSpace, space_names

from . import __version__
from .archio import load_arch
from .cli_common import OneLineErrors, emit_json, resolve_space, space_option
from .commands.analyze import analyze_group
from .commands.demo import demo_command
from .commands.export import export_command, inspect_command
from .commands.farm import farm_group, measure_command, results_group
from .commands.latency import latency_command
from .commands.predictor import predictor_group
from .commands.report import report_command
from .commands.search import search_command
from .commands.train import evaluate_command, train_command
from .paths import user_data_dir


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="elasticvit-deploy")
def main() -> None:
    """elasticvit-deploy: ElasticViT search space, FLOPs, supernet and deployment tools.

    Archs are JSON files (or - for stdin) holding either the canonical object
    {"resolution", "first_conv", "stem", "stages"} or the official 10-element list.
    """


@main.command()
@space_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def space(space_name: str, as_json: bool) -> None:
    """Show a search space: choices, smallest and largest subnets, exact subnet counts."""
    sp = resolve_space(space_name)
    extremes: dict[str, dict[str, Any]] = {}
    with torch.device("meta"):  # parameter counts only: no memory, no initialisation
        net = ElasticViTSupernet(sp)
        for key, arch in (("min", min_arch(sp)), ("max", max_arch(sp))):
            extremes[key] = {"arch": arch.to_dict(), "mflops": round(arch_mflops(arch, sp), 6),
                             "params": count_parameters(net.extract(arch))}
    info = {**header("space", 1), "space": sp.to_dict(), "fingerprint": sp.fingerprint,
            "table1_count": table1_count(sp), "legal_count": legal_count(sp), **extremes}
    if as_json:
        emit_json(info)
        return
    click.echo(f"space {sp.name}: {sp.description}")
    click.echo(f"  resolutions      {list(sp.resolutions)}   (input crops {sp.crop_size}, resized in the model)")
    click.echo(f"  first conv       widths {list(sp.first_conv_widths)}, 3x3 stride {sp.first_conv_stride}")
    click.echo(f"  stem (MBv2 e=1)  width = first conv, depths {list(sp.stem.depths)}, kernels {list(sp.stem.kernels)}")
    for s in sp.stages:
        if isinstance(s, TransformerStageSpace):
            detail = f"mlp {list(s.mlp_ratios)}, v-scale {list(s.v_scales)}"
            kind = "transformer"
        else:
            detail = f"kernels {list(s.kernels)}, expansions {list(s.expansions)}"
            kind = s.kind + (" + SE" if s.se else "")
        click.echo(f"  {s.name:<3} {kind:<12} stride {s.stride}  widths {list(s.widths)}  depths {list(s.depths)}  "
                   f"{detail}")
    click.echo(f"  head             MBPool x{sp.head_expansion} -> {sp.head_width} -> {sp.num_classes} classes")
    for key in ("min", "max"):
        e = extremes[key]
        click.echo(f"  {key} subnet       {e['mflops']:.3f} MFLOPs, {e['params'] / 1e6:.3f} M params")
    click.echo(f"  table1_count     {info['table1_count']:,} (Table 1 product, paper's count)")
    click.echo(f"  legal_count      {info['legal_count']:,} (tied stem width, non-decreasing widths)")


@main.command()
@click.argument("arch_file", metavar="ARCH")
@space_option
@click.option("--json", "as_json", is_flag=True, help='Print {"mflops": ..., "breakdown": {...}}.')
def flops(arch_file: str, space_name: str, as_json: bool) -> None:
    """MFLOPs of ARCH as the official ElasticViT counter gives them, with a per-stage breakdown.

    ARCH is a JSON file, or - to read stdin.
    """
    sp = resolve_space(space_name)
    arch = load_arch(arch_file, sp)
    breakdown = arch_flops_breakdown(arch, sp)
    total = arch_mflops(arch, sp)
    if as_json:
        emit_json({**header("flops", 1), "mflops": round(total, 6),
                   "breakdown": {k: round(v, 6) for k, v in breakdown.items()}, "space": sp.name})
        return
    click.echo(f"{total:.3f} MFLOPs")
    for name, v in breakdown.items():
        click.echo(f"  {name:<10} {v:10.3f}")


@main.command()
@click.option("--n", "n", type=click.IntRange(min=1), default=1, show_default=True, help="How many archs.")
@click.option("--level", type=float, default=None, metavar="C",
              help="Only archs with C <= MFLOPs <= C + WINDOW (uniform within that window).")
@click.option("--window", type=click.FloatRange(min=0), default=20.0, show_default=True,
              help="Width of the FLOPs window above --level, in MFLOPs.")
@click.option("--seed", type=int, default=None, help="Random seed (same seed, same archs).")
@click.option("--official", is_flag=True, help="Print the official 10-element encoding instead.")
@space_option
def sample(n: int, level: float | None, window: float, seed: int | None, official: bool, space_name: str) -> None:
    """Print N valid archs as JSON lines, drawn uniformly from the legal space (or from a FLOPs window)."""
    sp = resolve_space(space_name)
    rows = sample_uniform(sp, n, seed) if level is None else sample_in_window(sp, level, level + window, n, seed)
    for arch in archs(rows, sp):
        click.echo(json.dumps(arch.to_official(sp), separators=(",", ":")) if official else arch.to_json())


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(as_json: bool) -> None:
    """Version, user-data directory (set ELASTICVIT_DEPLOY_HOME to move it) and known spaces."""
    data = {"version": __version__, "data_dir": str(user_data_dir()), "spaces": space_names(),
            "torch": torch.__version__}
    if as_json:
        emit_json({**header("info", 1), **data})
        return
    for k, v in data.items():
        click.echo(f"{k:<9} {v}")


main.add_command(export_command)
main.add_command(inspect_command)
main.add_command(measure_command)
main.add_command(farm_group)
main.add_command(results_group)
main.add_command(latency_command)
main.add_command(predictor_group)
main.add_command(train_command)
main.add_command(evaluate_command)
main.add_command(analyze_group)
main.add_command(search_command)
main.add_command(report_command)
main.add_command(demo_command)
