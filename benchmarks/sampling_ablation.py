"""Sampling ablation (the paper's Table 3): sandwich vs complexity-aware vs ElasticViT (complexity + performance-aware)
sampling, on the tiny space and Fashion-MNIST, with the same budget per run (steps x batch).

For each sampler: train `--steps` steps (the shipped config tiny-fashion-mnist, label loss, no teacher), then
1. per-level best-found accuracy (the paper's Table 3 shape): `--per-level` subnets drawn uniformly in each
   level's window [C, C + window] among the subnets dominating the level's HSS min (the sub-space the official
   search explores; the same seeded subnets for every sampler), each evaluated with BN recalibration on the
   held-out split; the best and the mean top-1 per level;
2. gradient similarity (the paper's Table 4): cosine similarity of the shared weights' gradients between
   same-level subnets, over random pairs and over the top-10 by loss, at the lowest, middle and highest
   levels;
3. rank correlation: `--scratch` subnets spread over the FLOPs range are also trained from scratch alone
   (`--scratch-steps` steps, same data, optimiser and batch); Kendall tau between each supernet's inherited
   accuracy and the from-scratch accuracy.
Everything is cached under --out (checkpoints every 500 steps, evaluations in results.json), so an interrupted run
continues where it stopped. CPU only needs time: about 20 min per sampler for 2,000 steps on 2 cores. The budget
is the same number of steps and images per sampler; the compute is not quite equal (sandwich runs the largest
subnet every step, the others re-score bank entries), so the training seconds are printed too.

    .venv/bin/python benchmarks/sampling_ablation.py [--steps 2000] [--out runs/ablation] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau
from tqdm import tqdm

from supernet import encoding as enc
from supernet.arch import Arch
from supernet.atomic import write_json_atomic
from supernet.flops import arch_mflops
from supernet.model import ElasticViTSupernet
from supernet.sampling import sample_in_window
from supernet.space import TINY
from supernet.training.config import SamplerConfig, sampler_config
from supernet.training.conflict import draw_level, gradient_conflict
from supernet.training.data import epoch_indices, iterate_batches, open_split
from supernet.training.evaluate import SubnetEvaluator, load_supernet
from supernet.training.optim import build_optimizer, build_scheduler, scale_lr
from supernet.training.subspace import sample_dominating
from supernet.training.train_config import TrainConfig, read_config_file
from supernet.training.trainer import Trainer

CONFIG = "tiny-fashion-mnist"  # shipped in supernet/training/configs/
SAMPLERS = ("sandwich", "complexity", "elasticvit")


class Cache:
    """results.json under --out: every evaluation, keyed, written atomically after each."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}

    def get(self, key: str, compute: Any) -> Any:
        if key not in self.data:
            self.data[key] = compute()
            write_json_atomic(self.path, self.data)
        return self.data[key]

    def add(self, key: str, amount: float) -> None:
        self.data[key] = self.data.get(key, 0.0) + amount
        write_json_atomic(self.path, self.data)


def train_supernet(sampler: str, args: argparse.Namespace, cache: Cache) -> Path:
    """Train (or finish training) `sampler`'s supernet; its training seconds accumulate in the cache."""
    base = read_config_file(CONFIG)
    out = args.out / sampler
    base.update(sampler=sampler, steps=args.steps, output_dir=str(out), data=args.data, save_every=500,
                log_every=50)
    checkpoint = out / "checkpoint.pt"
    trainer = Trainer(TrainConfig.from_dict(base), resume=checkpoint if checkpoint.is_file() else None)
    if trainer.step < trainer.total_steps:
        print(f"training {sampler}: {trainer.step} -> {trainer.total_steps} steps", file=sys.stderr)
        start = time.perf_counter()
        trainer.fit(progress=True)
        cache.add(f"{sampler}/train_seconds", time.perf_counter() - start)
    return checkpoint


def bank_share_by_epoch(metrics: Path) -> list[float]:
    """Per epoch, the share of the logged steps' level ("uniform") subnets drawn from a memory bank."""
    drawn: dict[int, list[bool]] = {}
    for line in metrics.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        drawn.setdefault(row["epoch"], []).extend(s["bank"] for s in row["subnets"] if s["role"] == "uniform")
    return [float(np.mean(drawn[e])) for e in sorted(drawn)]


def evaluator(checkpoint: Path, args: argparse.Namespace) -> SubnetEvaluator:
    return SubnetEvaluator.from_checkpoint(checkpoint, calib_batches=args.calib_batches, batch_size=512)


def level_archs(config: SamplerConfig, n: int) -> dict[float, list[Arch]]:
    """`n` seeded subnets per level: uniform in [C, C + window] among the subnets dominating the level's HSS min
    (the sub-space the official search explores for that budget, `parse_supernet_configs`), the same for every
    sampler."""
    return {c: sample_dominating(TINY, config.hss_for(c, TINY), c, c + config.window, n,
                                 np.random.default_rng(100 + i))
            for i, c in enumerate(config.levels)}


def scratch_archs(n: int) -> list[Arch]:
    """`n` subnets spread over the FLOPs range (one per equal window), seeded."""
    cfg = sampler_config(TINY, {})
    lo, hi = cfg.levels[0], cfg.levels[-1] + cfg.window
    edges = np.linspace(lo, hi, n + 1)
    return [enc.decode(sample_in_window(TINY, a, b, 1, seed=200 + i)[0], TINY)
            for i, (a, b) in enumerate(pairwise(edges))]


def train_from_scratch(arch: Arch, args: argparse.Namespace) -> float:
    """Train `arch` alone (a fresh supernet with only this subnet active, label loss) and return its top-1."""
    cfg = read_config_file(CONFIG)
    torch.manual_seed(0)
    net = ElasticViTSupernet(TINY)
    net.set_active(arch)
    train_set = open_split(args.data, "train", TINY.crop_size, 0)
    batch = int(cfg["batch_size"])
    lr = scale_lr(float(cfg["lr"]), 1, batch)
    optimizer = build_optimizer(net, lr)
    scheduler = build_scheduler(optimizer, lr, lr * 0.01, lr * 0.01, args.scratch_steps // 10, args.scratch_steps)
    net.train()
    step, epoch = 0, 0
    while step < args.scratch_steps:
        for x, y in iterate_batches(train_set, epoch_indices(train_set, epoch, 0), batch, drop_last=True):
            loss = torch.nn.functional.cross_entropy(net(x), y, label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step >= args.scratch_steps:
                break
        epoch += 1
    ev = SubnetEvaluator(net, train_set, open_split(args.data, "val", TINY.crop_size, 0),
                         calib_batches=args.calib_batches, batch_size=512)
    return ev.evaluate(arch).top1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--per-level", type=int, default=6)
    parser.add_argument("--calib-batches", type=int, default=32)
    parser.add_argument("--scratch", type=int, default=6)
    parser.add_argument("--scratch-steps", type=int, default=600)
    parser.add_argument("--conflict-n", type=int, default=24)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cache = Cache(args.out / "results.json")
    cfg = sampler_config(TINY, {})
    per_level = level_archs(cfg, args.per_level)
    scratch = scratch_archs(args.scratch)
    scratch_top1 = [cache.get(f"scratch/{i}", lambda a=a: train_from_scratch(a, args))
                    for i, a in enumerate(tqdm(scratch, desc="from scratch", file=sys.stderr))]
    figures: dict[str, Any] = {"steps": args.steps, "levels": list(cfg.levels), "window": cfg.window,
                               "scratch": [{"mflops": round(arch_mflops(a, TINY), 3), "top1": t}
                                           for a, t in zip(scratch, scratch_top1, strict=True)], "samplers": {}}
    conflict_levels = (cfg.levels[0], cfg.levels[len(cfg.levels) // 2], cfg.levels[-1])
    for sampler in SAMPLERS:
        checkpoint = train_supernet(sampler, args, cache)
        ev = evaluator(checkpoint, args)
        levels = {}
        for c, archs in per_level.items():
            top1 = [cache.get(f"{sampler}/level/{c}/{i}", lambda a=a, ev=ev: ev.evaluate(a).top1)
                    for i, a in enumerate(archs)]
            levels[str(c)] = {"best": max(top1), "mean": float(np.mean(top1))}
        inherited = [cache.get(f"{sampler}/scratch/{i}", lambda a=a, ev=ev: ev.evaluate(a).top1)
                     for i, a in enumerate(scratch)]

        def conflict(level: float, checkpoint: Path = checkpoint) -> dict[str, float]:
            loaded = load_supernet(checkpoint)
            archs, batch, window = draw_level(loaded, level, args.conflict_n)
            result = gradient_conflict(loaded.supernet, archs, batch, top=10, level=level, window=window)
            return {"random": result.random, "top10": result.top_k}

        figures["samplers"][sampler] = {
            "levels": levels,
            "conflict": {str(c): cache.get(f"{sampler}/conflict/{c}", lambda c=c: conflict(c))
                         for c in conflict_levels},
            "inherited": inherited, "kendall_tau": float(kendalltau(inherited, scratch_top1).statistic),
            "train_seconds": cache.data.get(f"{sampler}/train_seconds"),
            "bank_share_by_epoch": bank_share_by_epoch(checkpoint.parent / "metrics.jsonl")}
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"sampling ablation: tiny space, {args.data}, {args.steps} steps x batch 64 per sampler")
    print("training seconds: " + ", ".join(f"{s} {figures['samplers'][s]['train_seconds'] or 0:.0f}"
                                           for s in SAMPLERS))
    print("level subnets drawn from a memory bank, by epoch (logged steps): " + "; ".join(
        f"{s} " + ", ".join(f"{x:.0%}" for x in figures["samplers"][s]["bank_share_by_epoch"]) for s in SAMPLERS))
    print("per-level best (mean) top-1 of " f"{args.per_level} subnets per level:")
    print("  level MFLOPs " + "".join(f"{s:>22}" for s in SAMPLERS))
    for c in cfg.levels:
        cells = [figures["samplers"][s]["levels"][str(c)] for s in SAMPLERS]
        row = "".join(f"{cell['best']:>14.2%} ({cell['mean']:.2%})" for cell in cells)
        print(f"  {c:>12g} {row}")
    print(f"gradient cosine similarity of same-level subnets ({args.conflict_n} per level): random pairs / top-10 "
          "by loss")
    print("  level MFLOPs " + "".join(f"{s:>20}" for s in SAMPLERS))
    for c in conflict_levels:
        print(f"  {c:>12g} " + "".join(f"{figures['samplers'][s]['conflict'][str(c)]['random']:>11.4f} / "
                                        f"{figures['samplers'][s]['conflict'][str(c)]['top10']:.4f}"
                                        for s in SAMPLERS))
    print(f"Kendall tau, inherited vs from-scratch ({args.scratch} subnets, {args.scratch_steps} steps each; "
          f"from scratch: {', '.join(f'{t:.2%}' for t in scratch_top1)}):")
    for s in SAMPLERS:
        print(f"  {s:<11} tau {figures['samplers'][s]['kendall_tau']:+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
