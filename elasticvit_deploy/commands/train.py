"""`elasticvit-deploy train` (supernet training with the paper's recipe) and `elasticvit-deploy evaluate` (the subnet
accuracy oracle: EMA weights, BN recalibration, top-1, as the official `process.py` `eval_one_subnet`)."""

from __future__ import annotations

from contextlib import ExitStack

import click
from tqdm import tqdm

from supernet.checkpoint import read_checkpoint
from supernet.documents import header
from supernet.training.data import SPLITS
from supernet.training.distributed import DistContext
from supernet.training.evaluate import CALIB_AUGMENTS, SubnetEvaluator
from supernet.training.optim import BATCH_PER_GPU
from supernet.training.recalibrate import RECALIBRATION_BATCHES
from supernet.training.sharding import ShardedEvaluator
from supernet.training.train_config import load_config, shipped_configs
from supernet.training.trainer import Trainer

from ..archio import load_archs
from ..cli_common import emit_json, resolve_space
from ..errors import UserError

EVALUATION_KIND, EVALUATION_VERSION = "evaluation", 1


@click.command("train")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None, metavar="FILE|NAME",
              help=f"Training configuration: a .toml, .yaml or .yml file, or a shipped one by name "
                   f"({', '.join(shipped_configs())}).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key (repeatable; dotted keys reach into tables: sampler_options.q0=0.5).")
@click.option("--resume", default=None, metavar="CKPT",
              help="Continue a run exactly from its checkpoint (its config is the base; only steps, output_dir, "
                   "save_every, log_every, tensorboard and workers may change).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of a progress bar.")
def train_command(config_file: str | None, overrides: tuple[str, ...], resume: str | None, as_json: bool) -> None:
    """Train a supernet with ElasticViT's sampling and distillation recipe.

    Runs alone, or on many processes/machines under torchrun (one process per GPU, or CPU processes on gloo).
    """
    if config_file is None and resume is None:
        raise UserError("give --config FILE (or --resume CKPT)")
    checkpoint = read_checkpoint(resume) if resume else None
    base = checkpoint.training_state()["config"] if checkpoint else None
    config = load_config(config_file, overrides, base=base)
    dist = DistContext.from_env(config.device)
    try:
        summary = Trainer(config, resume=checkpoint, dist=dist).fit(progress=not as_json)
    finally:
        dist.shutdown()
    if not dist.is_main:
        return
    if as_json:
        emit_json(summary.to_dict())
        return
    click.echo(f"trained {summary.steps} steps, last loss {summary.loss:.4f}" if summary.loss is not None
               else f"nothing to do: the run is complete at {summary.steps} steps")
    click.echo(f"checkpoint {summary.checkpoint}\nmetrics    {summary.metrics}")


@click.command("evaluate")
@click.option("--checkpoint", "checkpoint", required=True, type=click.Path(dir_okay=False), metavar="CKPT",
              help="Supernet checkpoint (ours, or an official one with --space).")
@click.option("--arch", "arch_sources", multiple=True, required=True, metavar="ARCH",
              help="Arch JSON file, JSON-lines file (one arch per line), - for stdin, min/max, or a published model "
                   "of the elasticvit space (elastic_T1 ... elastic_L3); repeatable.")
@click.option("--data", default=None, metavar="SOURCE",
              help="digits, fashion-mnist or a directory (default: the data the checkpoint was trained on).")
@click.option("--split", type=click.Choice(SPLITS), default="val", show_default=True)
@click.option("--space", "space_name", default=None, metavar="NAME",
              help="Search space (default: the one the checkpoint records).")
@click.option("--weights", type=click.Choice(["ema", "model"]), default="ema", show_default=True,
              help="Evaluate the EMA weights (the paper's choice) or the raw ones.")
@click.option("--calib-batches", type=click.IntRange(min=1), default=RECALIBRATION_BATCHES, show_default=True,
              help="Training batches for BN recalibration.")
@click.option("--calib-batch-size", type=click.IntRange(min=1), default=BATCH_PER_GPU, show_default=True)
@click.option("--calib-augment", type=click.Choice(CALIB_AUGMENTS), default="run", show_default=True,
              help="Augmentation of the BN calibration batches: the checkpoint's training augmentation (run; fixed "
                   "crops for an official file), the paper's recipe (official, as the official bn_cal) or none.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Data-loading processes (image folders and tar shards).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Under torchrun each process uses its own GPU (cuda:LOCAL_RANK).")
@click.option("--json", "as_json", is_flag=True, help='Print {"results": [{"arch", "mflops", "top1", ...}], ...}.')
def evaluate_command(checkpoint: str, arch_sources: tuple[str, ...], data: str | None, split: str,
                     space_name: str | None, weights: str, calib_batches: int, calib_batch_size: int,
                     calib_augment: str, batch_size: int, workers: int, device: str, as_json: bool) -> None:
    """Top-1 of each ARCH: BN recalibrated once per arch on training batches (cumulative average), then one batched
    pass over the split. The checkpoint is read once for all archs.

    Under torchrun the archs are shared out over the processes (each evaluates whole archs; the results are those of
    one process) and rank 0 prints them.
    """
    space = resolve_space(space_name) if space_name else None
    with ExitStack() as stack:
        dist = DistContext.from_env(device)
        stack.callback(dist.shutdown)
        local = SubnetEvaluator.from_checkpoint(
            checkpoint, data=data, split=split, space=space, prefer_ema=weights == "ema",
            calib_batches=calib_batches, calib_batch_size=calib_batch_size, calib_augment=calib_augment,
            batch_size=batch_size, workers=workers, device=dist.device)
        evaluator = ShardedEvaluator(local, dist)
        if not dist.is_main:  # under torchrun: rank 0 sends the archs and prints, the others evaluate
            evaluator.serve()
            return
        stack.callback(evaluator.close)
        archs = [a for src in arch_sources for a in load_archs(src, evaluator.space)]
        bar = tqdm(total=len(archs), desc="evaluating", unit="arch", disable=as_json, leave=False)
        stack.callback(bar.close)
        results = evaluator.evaluate_many(archs, progress=lambda _: bar.update(1))
    source = local.weights.to_dict() if local.weights else {}
    if as_json:
        emit_json({**header(EVALUATION_KIND, EVALUATION_VERSION), "checkpoint": source,
                   "space": evaluator.space.name, "split": split,
                   "calibration": {"batches": calib_batches, "batch_size": calib_batch_size,
                                   "augmented": local.augment is not None},
                   "results": [r.to_dict() for r in results]})
        return
    click.echo(f"{checkpoint} ({source.get('weights')} weights), split {split}, {results[0].total} images")
    for r in results:
        click.echo(f"  top-1 {r.top1:7.2%}  {r.mflops:9.3f} MFLOPs  {r.arch.to_json()}")
