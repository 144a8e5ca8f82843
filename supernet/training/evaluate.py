"""The subnet accuracy oracle (official `process.py`, `eval_one_subnet`): EMA weights, BN recalibration, top-1.

`SubnetEvaluator` reads a checkpoint once and then evaluates any number of archs: per arch, one BN recalibration
(running statistics reset, then a cumulative average over a fixed, seeded set of training batches: the official
129 batches of 96) and one batched pass over the evaluation split. The data, seed and validation fraction default to
the ones the checkpoint was trained with, so "val" is the same held-out set the training never saw. As in the
official `bn_cal`, the calibration batches get the run's training augmentation (crops, RandAugment, erasing and
mixup of `augment = "official"`, seeded, so every arch sees the same batches); a run without augmentation or an
official file calibrates on the fixed crops unless ``calib_augment="official"`` asks for the paper's recipe.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..arch import Arch
from ..checkpoint import Checkpoint, CheckpointError, SupernetWeights, read_checkpoint
from ..flops import arch_mflops
from ..model import ElasticViTSupernet
from ..space import SearchSpace
from .augment import AugmentConfig, augment_config
from .batch_augment import BatchAugment
from .data import Batch, DataError, ImageData, iterate_batches, iterate_pixels, open_split
from .optim import BATCH_PER_GPU
from .recalibrate import RECALIBRATION_BATCHES, recalibrate_subnet
from .rng import derive_seed

#: What the BN calibration batches look like (`LoadedSupernet.calibration_augment`).
CALIB_AUGMENTS = ("run", "official", "none")


@dataclass(frozen=True)
class EvalResult:
    """Top-1 of one arch on the evaluation split."""

    arch: Arch
    mflops: float
    correct: int
    total: int

    @property
    def top1(self) -> float:
        return self.correct / self.total

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "mflops": round(self.mflops, 3), "top1": self.top1,
                "correct": self.correct, "total": self.total}


def resolve_device(name: str) -> torch.device:
    """"auto" is CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass(frozen=True)
class LoadedSupernet:
    """A supernet with a checkpoint's weights, and the training run's configuration ({} for official files)."""

    supernet: ElasticViTSupernet
    weights: SupernetWeights
    run: dict[str, Any]

    @property
    def seed(self) -> int:
        return int(self.run.get("seed", 0))

    def calibration_augment(self, choice: str = "run") -> AugmentConfig | None:
        """The augmentation of the BN calibration batches: "run" (the run's training augmentation; none for an
        official file, which records no run), "official" (the paper's recipe) or "none" (fixed crops)."""
        if choice not in CALIB_AUGMENTS:
            raise ValueError(f"unknown calibration augmentation {choice!r} (known: {', '.join(CALIB_AUGMENTS)})")
        if choice == "run":
            config = augment_config(str(self.run.get("augment", "none")), dict(self.run.get("augment_options", {})))
        else:
            config = augment_config(choice, {})
        return None if config == augment_config("none", {}) else config

    def open_split(self, data: str | None, split: str) -> ImageData:
        """`split` of `data` (default: the run's data), made with the run's seed and val_fraction."""
        data = data or self.run.get("data")
        if data is None:
            raise CheckpointError(f"{self.weights.path}: the checkpoint names no training data, so give the data")
        return open_split(data, split, self.supernet.space.crop_size, self.seed,
                          float(self.run.get("val_fraction", 0.1)))


def load_supernet(checkpoint: str | Path | Checkpoint, space: SearchSpace | None = None,
                  prefer_ema: bool = True) -> LoadedSupernet:
    """A supernet with the weights of `checkpoint` (a path, read once, or a `Checkpoint` already read): ours, or an
    official one given its `space`; the EMA weights when present and `prefer_ema`, else the raw ones. Raises
    `CheckpointError`."""
    ck = checkpoint if isinstance(checkpoint, Checkpoint) else read_checkpoint(checkpoint)
    space = ck.space(space)
    weights = ck.weights(space, prefer_ema)
    net = ElasticViTSupernet(space)
    net.load_state_dict(weights.state_dict)
    return LoadedSupernet(net, weights, ck.run_config)


class SubnetEvaluator:
    """Evaluates archs of one supernet: BN recalibration on `train_set`, top-1 on `eval_set`."""

    def __init__(self, supernet: ElasticViTSupernet, train_set: ImageData, eval_set: ImageData, *,
                 calib_batches: int = RECALIBRATION_BATCHES, calib_batch_size: int = BATCH_PER_GPU,
                 batch_size: int = 256, seed: int = 0, workers: int = 0, device: torch.device | str = "cpu",
                 augment: AugmentConfig | None = None):
        if train_set.num_classes != supernet.space.num_classes or eval_set.num_classes != supernet.space.num_classes:
            raise DataError(f"the data has {eval_set.num_classes} classes, space {supernet.space.name} has "
                             f"{supernet.space.num_classes}")
        self.device = torch.device(device)
        self.supernet = supernet.to(self.device).eval()
        self.train_set, self.eval_set = train_set, eval_set
        order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed))
        self.calib_indices = order[:calib_batches * calib_batch_size].tolist()
        self.calib_batch_size, self.batch_size, self.workers = calib_batch_size, batch_size, workers
        self.augment, self.seed = augment, seed
        self.weights: SupernetWeights | None = None
        self.data_name = ""

    @property
    def space(self) -> SearchSpace:
        return self.supernet.space

    def source(self) -> str:
        """What its accuracies depend on: the weights, the data, the split sizes and the calibration set."""
        sha = self.weights.sha256[:16] if self.weights is not None else "unsaved"
        base = f"{sha}|{self.data_name}|{len(self.train_set)}|{len(self.eval_set)}|{len(self.calib_indices)}"
        if self.augment is None:
            return base
        recipe = hashlib.sha256(json.dumps(self.augment.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
        return f"{base}|augmented:{recipe}"

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, data: str | None = None, split: str = "val",
                        space: SearchSpace | None = None, prefer_ema: bool = True, calib_augment: str = "run",
                        **options: Any) -> SubnetEvaluator:
        """Read `path` once (our checkpoint, or an official one given its `space`) and open the data: `data`, or the
        training run's; the split is made with the run's seed and val_fraction; the BN calibration batches get the
        augmentation `calib_augment` names (`LoadedSupernet.calibration_augment`)."""
        loaded = load_supernet(path, space, prefer_ema)
        evaluator = cls(loaded.supernet, loaded.open_split(data, "train"), loaded.open_split(data, split),
                        seed=loaded.seed, augment=loaded.calibration_augment(calib_augment), **options)
        evaluator.weights = loaded.weights
        evaluator.data_name = str(data or loaded.run.get("data") or "")
        return evaluator

    def _calibration(self) -> Iterator[torch.Tensor]:
        if self.augment is None:
            for x, _ in iterate_batches(self.train_set, self.calib_indices, self.calib_batch_size, self.workers):
                yield x.to(self.device)
            return
        augment = BatchAugment(self.augment, self.space.num_classes)
        batches = iterate_pixels(self.train_set, self.calib_indices, self.calib_batch_size, workers=self.workers,
                                 crop=self.augment.crop_spec(), seed=self.seed)
        for i, (pixels, labels) in enumerate(batches):
            yield augment(pixels.to(self.device), labels.to(self.device), derive_seed(self.seed, i)).inputs

    def _eval_batches(self) -> Iterable[Batch]:
        return iterate_batches(self.eval_set, range(len(self.eval_set)), self.batch_size, self.workers)

    def evaluate(self, arch: Arch) -> EvalResult:
        """Recalibrate BN for `arch` once, then count its correct top-1 predictions over the evaluation split."""
        recalibrate_subnet(self.supernet, arch, self._calibration())
        correct = 0
        with torch.inference_mode():
            for x, y in self._eval_batches():
                pred = self.supernet(x.to(self.device)).argmax(dim=1)
                correct += int((pred.cpu() == y).sum())
        return EvalResult(arch, arch_mflops(arch, self.space), correct, len(self.eval_set))

    def evaluate_many(self, archs: Iterable[Arch],
                      progress: Callable[[EvalResult], None] | None = None) -> list[EvalResult]:
        """`evaluate` for each arch in order; `progress` is called after each."""
        results = []
        for arch in archs:
            results.append(self.evaluate(arch))
            if progress is not None:
                progress(results[-1])
        return results
