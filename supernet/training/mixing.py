"""Mixup / CutMix with timm's ``Mixup`` semantics in its "batch" mode (one lambda per batch, image i mixed with image
B - 1 - i, i.e. the batch flipped), label smoothing inside the mixed targets.

Per batch: with probability ``prob`` a lambda is drawn from Beta(alpha, alpha) of mixup or of cutmix (when both alphas
are > 0, cutmix with probability ``switch_prob``); otherwise lambda is 1. Mixup blends ``lam * x + (1 - lam) *
x.flip(0)``; cutmix pastes a box of the flipped batch (timm's ``rand_bbox``: sides ``int(size * sqrt(1 - lam))``
around a uniform centre, clipped to the image) and corrects lambda to 1 - the box's area fraction. Targets are
``lam * smooth(y) + (1 - lam) * smooth(y.flip(0))`` with ``off = smoothing / K`` and ``on = 1 - smoothing + off``,
soft even when lambda is 1.

The draws come from a NumPy ``Generator`` seeded with the call's seed (never NumPy's or torch's global state). Not
torch: ``torch.distributions.Beta`` takes no generator and clamps its samples into [eps, 1 - eps], so lambda is never
exactly 1, whereas NumPy's Beta(0.01, 0.01) (what timm draws) returns exactly 1.0 about a third of the time, which
leaves that batch unmixed. Any batch size works (timm asserts an even one): with an odd size the middle image is
paired with itself, which leaves it as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


def smooth_one_hot(labels: Tensor, num_classes: int, smoothing: float) -> Tensor:
    """float32 ``(B, num_classes)``: ``1 - smoothing + smoothing / K`` at the label, ``smoothing / K`` elsewhere."""
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    out = torch.full((len(labels), num_classes), off, dtype=torch.float32, device=labels.device)
    return out.scatter_(1, labels.long().view(-1, 1), on)


def mix_targets(labels: Tensor, num_classes: int, lam: float, smoothing: float) -> Tensor:
    """timm's ``mixup_target``: ``lam * smooth(labels) + (1 - lam) * smooth(labels.flip(0))``."""
    y = smooth_one_hot(labels, num_classes, smoothing)
    return y * lam + y.flip(0) * (1.0 - lam)


@dataclass(frozen=True)
class Mixed:
    """One batch through `Mixup`: the (possibly) mixed inputs, the soft targets and what was drawn."""

    inputs: Tensor
    targets: Tensor
    lam: float                                  # after the cutmix area correction; 1.0: inputs left as they were
    cutmix: bool
    box: tuple[int, int, int, int] | None       # cutmix box (top, bottom, left, right), rows top:bottom pasted


@dataclass(frozen=True)
class Mixup:
    """timm ``Mixup(mode="batch", correct_lam=True)``; active when either alpha is > 0."""

    mixup_alpha: float
    cutmix_alpha: float
    prob: float
    switch_prob: float
    smoothing: float
    num_classes: int

    def __post_init__(self) -> None:
        if not (self.mixup_alpha >= 0 and self.cutmix_alpha >= 0 and 0 <= self.prob <= 1
                and 0 <= self.switch_prob <= 1 and 0 <= self.smoothing <= 1 and self.num_classes >= 1):
            raise ValueError(f"bad Mixup settings: {self}")

    @property
    def active(self) -> bool:
        """Whether batches go through mixing at all (then targets are always soft)."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def draw(self, rng: np.random.Generator) -> tuple[float, bool]:
        """(lambda before the cutmix correction, whether it is cutmix), timm's ``_params_per_batch``."""
        if not self.active or not rng.random() < self.prob:
            return 1.0, False
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            cutmix = bool(rng.random() < self.switch_prob)
        else:
            cutmix = self.cutmix_alpha > 0
        alpha = self.cutmix_alpha if cutmix else self.mixup_alpha
        return float(rng.beta(alpha, alpha)), cutmix

    def __call__(self, inputs: Tensor, labels: Tensor, seed: int) -> Mixed:
        """Mix float ``(B, C, H, W)`` `inputs` (not modified) and int `labels` with draws seeded by `seed`."""
        if not self.active:
            raise ValueError("Mixup with both alphas 0 mixes nothing: check `active` first")
        rng = np.random.Generator(np.random.PCG64(seed))
        lam, cutmix = self.draw(rng)
        out, box = inputs, None
        if lam != 1.0:
            if cutmix:
                box = cutmix_box(inputs.shape[-2], inputs.shape[-1], lam, rng)
                top, bottom, left, right = box
                lam = 1.0 - (bottom - top) * (right - left) / float(inputs.shape[-2] * inputs.shape[-1])
                if lam != 1.0:
                    out = inputs.clone()
                    out[:, :, top:bottom, left:right] = inputs.flip(0)[:, :, top:bottom, left:right]
            else:
                out = inputs * lam + inputs.flip(0) * (1.0 - lam)
        targets = mix_targets(labels, self.num_classes, lam, self.smoothing)
        return Mixed(inputs=out, targets=targets, lam=lam, cutmix=cutmix, box=box)


def cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """timm's ``rand_bbox`` (no margin): (top, bottom, left, right) of a box with sides ``int(size * sqrt(1 -
    lam))`` centred at a uniform pixel, clipped to the image."""
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy = int(rng.integers(0, height))
    cx = int(rng.integers(0, width))
    top, bottom = min(max(cy - cut_h // 2, 0), height), min(max(cy + cut_h // 2, 0), height)
    left, right = min(max(cx - cut_w // 2, 0), width), min(max(cx + cut_w // 2, 0), width)
    return top, bottom, left, right
