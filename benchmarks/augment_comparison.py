"""The official augmentation recipe against none, at the same steps: two supernets trained alike on Fashion-MNIST
(the shipped config tiny-fashion-mnist, label loss, no teacher), one with ``augment = "official"`` (RandomResizedCrop,
flip, RandAugment, random erasing, mixup/cutmix, soft targets), one with ``augment = "none"`` (fixed crops), then the
same seeded subnets of the lowest, middle and highest levels and the min subnet evaluated on Fashion-MNIST's test
split (EMA weights, BN recalibration as each run trained: augmented and mixed batches for the official run, as the
official `bn_cal`, and also on fixed crops; top-1). Prints per-subnet top-1 of both, the mean
difference, the final training losses and the training seconds (augmentation costs time too).

Everything is cached under --out (checkpoints, each run's results.json), so an interrupted run continues. About 25
minutes on 2 CPU cores for the default 800 steps per run (the cosine schedule of one epoch, 843 steps).

    .venv/bin/python benchmarks/augment_comparison.py [--steps 800] [--out runs/augment] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from supernet.arch import Arch
from supernet.atomic import write_json_atomic
from supernet.flops import arch_mflops
from supernet.sampling import min_arch
from supernet.space import TINY
from supernet.training.config import sampler_config
from supernet.training.evaluate import SubnetEvaluator
from supernet.training.subspace import sample_dominating
from supernet.training.train_config import TrainConfig, read_config_file
from supernet.training.trainer import Trainer

CONFIG = "tiny-fashion-mnist"  # shipped in supernet/training/configs/
RECIPES = ("none", "official")


def train(recipe: str, args: argparse.Namespace, results: dict[str, Any], path: Path) -> Path:
    """Train (or finish training) the `recipe` supernet; its seconds and last logged loss go into `results`."""
    base = read_config_file(CONFIG)
    out = args.out / recipe
    base.update(augment=recipe, steps=args.steps, epochs=args.epochs, warmup_epochs=0, output_dir=str(out),
                data=args.data, save_every=250, log_every=50, workers=0)
    checkpoint = out / "checkpoint.pt"
    trainer = Trainer(TrainConfig.from_dict(base), resume=checkpoint if checkpoint.is_file() else None)
    if trainer.step < trainer.total_steps:
        print(f"training augment={recipe}: {trainer.step} -> {trainer.total_steps} steps", file=sys.stderr)
        start = time.perf_counter()
        trainer.fit(progress=not args.json)
        results[f"{recipe}/train_seconds"] = results.get(f"{recipe}/train_seconds", 0.0) + time.perf_counter() - start
        write_json_atomic(path, _own(results, recipe))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    results[f"{recipe}/last_loss"] = round(float(np.mean([r["loss"] for r in rows[-5:]])), 4)
    return checkpoint


def _own(results: dict[str, Any], recipe: str) -> dict[str, Any]:
    return {k: v for k, v in results.items() if k.startswith(f"{recipe}/")}


def subnets(n: int) -> list[tuple[str, Arch]]:
    """The min subnet and `n` seeded subnets of the lowest, middle and highest levels (same for both runs)."""
    cfg = sampler_config(TINY, {})
    picks = [("min", min_arch(TINY))]
    for i, level in enumerate((cfg.levels[0], cfg.levels[len(cfg.levels) // 2], cfg.levels[-1])):
        archs = sample_dominating(TINY, cfg.hss_for(level, TINY), level, level + cfg.window, n,
                                  np.random.default_rng(300 + i))
        picks += [(f"L{level:g}#{j}", a) for j, a in enumerate(archs)]
    return picks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--epochs", type=int, default=1, help="the cosine schedule's length (steps cut it short)")
    parser.add_argument("--recipes", default=",".join(RECIPES),
                        help="train/evaluate only these (run two processes at once, then once more to print)")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--per-level", type=int, default=2)
    parser.add_argument("--calib-batches", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("runs/augment"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    archs = subnets(args.per_level)
    top1: dict[str, list[float]] = {}
    results: dict[str, Any] = {}
    for recipe in RECIPES:
        path = args.out / recipe / "results.json"  # one file per run: two processes may train the two at once
        results.update(json.loads(path.read_text()) if path.is_file() else {})
        if recipe not in args.recipes.split(","):
            continue
        checkpoint = train(recipe, args, results, path)
        for calib, suffix in (("run", ""), ("none", "/fixed-calibration")):
            if recipe == "none" and calib == "none":
                continue  # the same evaluation: a run without augmentation calibrates on fixed crops
            evaluator = SubnetEvaluator.from_checkpoint(checkpoint, split="test", calib_batches=args.calib_batches,
                                                        batch_size=500, calib_augment=calib)
            for name, arch in archs:
                key = f"{recipe}{suffix}/{name}"
                if key not in results:
                    results[key] = evaluator.evaluate(arch).top1
                    write_json_atomic(path, _own(results, recipe))
        top1[recipe] = [results[f"{recipe}/{name}"] for name, _ in archs]
    fixed = [results[f"official/fixed-calibration/{name}"] for name, _ in archs] if "official" in top1 else []
    if len(top1) < len(RECIPES):
        return 0
    diffs = np.array(top1["official"]) - np.array(top1["none"])
    summary = {"steps": args.steps, "subnets": [{"name": n, "mflops": round(arch_mflops(a, TINY), 3),
                                                 **{r: top1[r][i] for r in RECIPES},
                                                 "official_fixed_calibration": fixed[i]}
                                                for i, (n, a) in enumerate(archs)],
               "mean_top1": {**{r: float(np.mean(top1[r])) for r in RECIPES},
                             "official_fixed_calibration": float(np.mean(fixed))},
               "mean_difference_points": float(100 * diffs.mean()), "official_wins": int((diffs > 0).sum()),
               "train_seconds": {r: results.get(f"{r}/train_seconds") for r in RECIPES},
               "last_loss": {r: results.get(f"{r}/last_loss") for r in RECIPES}}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"Fashion-MNIST test top-1 after {args.steps} steps each (tiny space, no teacher)")
    print(f"{'subnet':<10} {'MFLOPs':>7} {'none':>8} {'official':>9} {'official, fixed-crop BN':>24}")
    for row in summary["subnets"]:
        print(f"{row['name']:<10} {row['mflops']:7.2f} {row['none']:8.2%} {row['official']:9.2%} "
              f"{row['official_fixed_calibration']:24.2%}")
    print(f"mean: none {summary['mean_top1']['none']:.2%}, official {summary['mean_top1']['official']:.2%} "
          f"({summary['mean_difference_points']:+.2f} points; official better on {summary['official_wins']} of "
          f"{len(archs)})")
    print(f"official with BN calibrated on fixed crops instead of augmented batches: mean "
          f"{summary['mean_top1']['official_fixed_calibration']:.2%}")
    losses = summary["last_loss"]
    print(f"last logged losses (not comparable: soft mixed targets): none {losses['none']}, "
          f"official {losses['official']}")
    seconds = summary["train_seconds"]
    if all(seconds.values()):
        print(f"training seconds: none {seconds['none']:.0f}, official {seconds['official']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
