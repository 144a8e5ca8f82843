"""`elasticvit-deploy analyze`: diagnostics of a trained supernet (`conflict`: the paper's Table 4)."""

from __future__ import annotations

import click
from tqdm import tqdm

from supernet.documents import header
from supernet.training.conflict import draw_level, gradient_conflict
from supernet.training.evaluate import load_supernet, resolve_device
from supernet.training.optim import BATCH_PER_GPU

from ..cli_common import emit_json, resolve_space
from ..errors import UserError

CONFLICT_KIND, CONFLICT_VERSION = "gradient-conflict", 1


@click.group("analyze")
def analyze_group() -> None:
    """Diagnostics of a trained supernet."""


@analyze_group.command("conflict")
@click.option("--checkpoint", "checkpoint", required=True, type=click.Path(dir_okay=False), metavar="CKPT",
              help="Supernet checkpoint (ours, or an official one with --space).")
@click.option("--level", type=float, required=True, metavar="C",
              help="Complexity level: subnets with C <= MFLOPs <= C + the sampler's window.")
@click.option("--n", "n", type=click.IntRange(min=2), default=50, show_default=True, help="Random subnets drawn.")
@click.option("--top", type=click.IntRange(min=2), default=10, show_default=True,
              help="Subnets with the lowest loss compared among themselves.")
@click.option("--data", default=None, metavar="SOURCE",
              help="digits, fashion-mnist or a directory (default: the data the checkpoint was trained on).")
@click.option("--batch-size", type=click.IntRange(min=2), default=BATCH_PER_GPU, show_default=True,
              help="Images in the one fixed training batch.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the subnets and the batch.")
@click.option("--space", "space_name", default=None, metavar="NAME",
              help="Search space (default: the one the checkpoint records).")
@click.option("--weights", type=click.Choice(["ema", "model"]), default="ema", show_default=True,
              help="The EMA weights (as evaluate) or the raw ones.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help='Print {"random", "top_K", "losses", "similarity", ...}.')
def conflict_command(checkpoint: str, level: float, n: int, top: int, data: str | None, batch_size: int, seed: int,
                     space_name: str | None, weights: str, device: str, as_json: bool) -> None:
    """Gradient cosine similarity between subnets of one FLOPs level (the paper's Table 4).

    Draws N subnets uniformly in [C, C + window] MFLOPs; on one fixed training batch takes each one's label
    cross-entropy (no smoothing) and its gradient of the supernet weights; reports the mean pairwise cosine, over
    the weight entries both subnets of a pair use, of all N ("random") and of the TOP with the lowest loss.
    """
    if top > n:
        raise UserError(f"--top {top} exceeds --n {n}")
    space = resolve_space(space_name) if space_name else None
    loaded = load_supernet(checkpoint, space, prefer_ema=weights == "ema")
    archs, batch, window = draw_level(loaded, level, n, data, batch_size, seed)
    loaded.supernet.to(resolve_device(device))
    bar = tqdm(total=n, desc="gradients", unit="subnet", disable=as_json, leave=False)
    try:
        result = gradient_conflict(loaded.supernet, archs, batch, top, level, window, lambda _: bar.update(1))
    finally:
        bar.close()
    summary = {**header(CONFLICT_KIND, CONFLICT_VERSION), "checkpoint": loaded.weights.to_dict(),
               "space": loaded.supernet.space.name, "seed": seed, **result.to_dict()}
    if as_json:
        emit_json(summary)
        return
    click.echo(f"{checkpoint} ({loaded.weights.source} weights), {n} subnets with {level:g}-{level + result.window:g} "
               f"MFLOPs, one batch of {result.batch_size}, label cross-entropy")
    click.echo(f"  gradient cosine  random {result.random:.3f}   top-{top} (lowest loss) {result.top_k:.3f}")
