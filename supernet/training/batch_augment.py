"""The augmentation after the crop, batched on the device the pixels are on (CPU or CUDA), with timm's semantics:

uint8 -> float [0, 1] (grey repeated to 3 channels) -> horizontal flip (per image, probability ``hflip``) ->
RandAugment (`randaugment.RandAugment`) or, without one, colour jitter -> ImageNet normalisation -> RandomErasing ->
a clean copy -> Mixup / CutMix (`mixing.Mixup`).

Colour jitter is torchvision's ``ColorJitter(b, b, b, 0)`` as timm builds it: per image, brightness, contrast and
saturation factors uniform in [max(0, 1 - b), 1 + b], applied in an order drawn per image, with kornia's PIL-convention
functions (those ``kornia.augmentation.ColorJitter`` calls); ``kornia.augmentation.ColorJitter`` itself is not used
because it draws one order for the whole batch from the global RNG. Like PIL, each step's result is rounded to 8-bit
levels. RandomErasing is timm's (per image with probability ``reprob``, 1 to ``recount`` boxes, area uniform in
[0.02, 1/3] of the image / count, aspect log-uniform in [0.3, 1/0.3], 10 attempts per box; fill: per-pixel N(0, 1)
for "pixel", a per-channel N(0, 1) colour for "rand", zeros for "const"), applied to the normalised image.

Randomness: every stage draws from its own generator seeded with ``derive_seed(seed, stage)`` (parameters on the
CPU, erasing noise on the device), so a call is a pure function of (pixels, labels, seed), switching one stage on or
off leaves the others' draws alone, and the global RNG streams are never touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import kornia
import torch
from torch import Tensor

from .augment import AugmentConfig
from .data import IMAGENET_MEAN, IMAGENET_STD
from .mixing import Mixup
from .randaugment import RandAugment, parse_randaugment, to_8bit
from .rng import derive_seed

_HFLIP, _RANDAUGMENT, _JITTER, _ERASING, _ERASE_NOISE, _MIXING = range(6)
_ERASE_AREA = (0.02, 1 / 3)
_ERASE_ASPECT = (0.3, 1 / 0.3)
_ERASE_ATTEMPTS = 10
_JITTER_OPS: tuple[Callable[[Tensor, Tensor], Tensor], ...] = (
    kornia.enhance.adjust_brightness_accumulative,
    kornia.enhance.adjust_contrast_with_mean_subtraction,
    kornia.enhance.adjust_saturation_with_gray_subtraction,
)


@dataclass(frozen=True)
class AugmentedBatch:
    """One training batch after `BatchAugment` (all on the pixels' device)."""

    inputs: Tensor   # normalised float32 (B, 3, H, W), augmented and mixed: what the student and teachers see
    targets: Tensor  # int64 labels (no mixing configured) or float32 soft targets (B, num_classes)
    clean: Tensor    # normalised, augmented, NOT mixed (the same tensor as inputs when nothing was mixed)
    labels: Tensor   # the original int64 labels
    mixed: bool      # whether inputs differ from clean (mixup / cutmix applied with lam != 1)


def _generator(seed: int, stage: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(derive_seed(seed, stage))


def normalise(images: Tensor) -> Tensor:
    """float images in [0, 1] normalised with the ImageNet mean and std (as `data.normalize`, on their device)."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(3, 1, 1)
    return (images - mean) / std


def horizontal_flip(images: Tensor, prob: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(images with each one mirrored with probability `prob`, the CPU bool mask of the mirrored ones)."""
    flip = torch.rand(len(images), generator=generator) < prob
    mask = flip.to(images.device).view(-1, 1, 1, 1)
    return torch.where(mask, images.flip(-1), images), flip


def color_jitter(images: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    """torchvision ``ColorJitter(strength, strength, strength, 0)`` per image on float [0, 1] images (8-bit
    levels in and out)."""
    batch = len(images)
    low, high = max(0.0, 1.0 - strength), 1.0 + strength
    factors = low + (high - low) * torch.rand((3, batch), generator=generator, dtype=torch.float64)
    order = torch.rand((batch, 3), generator=generator).argsort(dim=1)
    out = images.clone()
    for position in range(3):
        for op, fn in enumerate(_JITTER_OPS):
            rows = torch.nonzero(order[:, position] == op).flatten()
            if len(rows):
                idx = rows.to(out.device)
                out[idx] = to_8bit(fn(out[idx], factors[op, rows].to(device=out.device, dtype=out.dtype)))
    return out


@dataclass(frozen=True)
class ErasingBoxes:
    """Per image and box slot (``(B, recount)`` int64 CPU tensors): the box, and whether it is erased."""

    top: Tensor
    left: Tensor
    height: Tensor
    width: Tensor
    active: Tensor


def erasing_boxes(batch: int, height: int, width: int, prob: float, max_count: int,
                  generator: torch.Generator) -> ErasingBoxes:
    """timm's RandomErasing boxes: an image is erased with probability `prob`, with a count uniform in [1,
    `max_count`]; each box tries 10 (area, aspect) draws and keeps the first that fits inside the image."""
    erase = torch.rand(batch, generator=generator, dtype=torch.float64) <= prob
    counts = torch.randint(1, max_count + 1, (batch,), generator=generator)
    shape = (batch, max_count, _ERASE_ATTEMPTS)
    area = _ERASE_AREA[0] + (_ERASE_AREA[1] - _ERASE_AREA[0]) * torch.rand(shape, generator=generator,
                                                                           dtype=torch.float64)
    target = area * (height * width) / counts.view(-1, 1, 1).to(torch.float64)
    log_low, log_high = math.log(_ERASE_ASPECT[0]), math.log(_ERASE_ASPECT[1])
    aspect = torch.exp(log_low + (log_high - log_low) * torch.rand(shape, generator=generator, dtype=torch.float64))
    h = torch.sqrt(target * aspect).round().long()
    w = torch.sqrt(target / aspect).round().long()
    fits = (w < width) & (h < height)
    first = fits.to(torch.int64).argmax(dim=-1, keepdim=True)
    h, w = h.gather(-1, first).squeeze(-1), w.gather(-1, first).squeeze(-1)
    place = torch.rand((2, batch, max_count), generator=generator, dtype=torch.float64)
    top = torch.floor(place[0] * (height - h + 1)).long()
    left = torch.floor(place[1] * (width - w + 1)).long()
    active = erase.view(-1, 1) & (torch.arange(max_count).view(1, -1) < counts.view(-1, 1)) & fits.any(dim=-1)
    return ErasingBoxes(top=top, left=left, height=h, width=w, active=active)


def erase(images: Tensor, boxes: ErasingBoxes, mode: str, generator: torch.Generator) -> Tensor:
    """`images` (normalised, ``(B, C, H, W)``) with `boxes` filled as `mode` says; noise from `generator` (on the
    images' device). Later boxes of an image overwrite earlier ones, as timm's loop does."""
    rows = torch.nonzero(boxes.active.any(dim=1)).flatten()
    if not len(rows):
        return images
    device = images.device
    height, width = images.shape[-2:]
    idx = rows.to(device)
    sub = images[idx]

    def box_mask(k: int) -> Tensor:  # (n, 1, H, W) bool on the device
        def span(start: Tensor, size: Tensor, n: int) -> Tensor:
            pos = torch.arange(n, device=device).view(1, -1)
            s, e = start[rows, k].to(device).view(-1, 1), (start + size)[rows, k].to(device).view(-1, 1)
            return (pos >= s) & (pos < e)
        ys, xs = span(boxes.top, boxes.height, height), span(boxes.left, boxes.width, width)
        on = boxes.active[rows, k].to(device).view(-1, 1, 1)
        return (ys.unsqueeze(2) & xs.unsqueeze(1) & on).unsqueeze(1)

    slots = range(boxes.active.shape[1])
    if mode == "pixel":
        union = torch.stack([box_mask(k) for k in slots]).any(dim=0)
        noise = torch.randn(sub.shape, generator=generator, device=device, dtype=sub.dtype)
        sub = torch.where(union, noise, sub)
    else:
        for k in slots:
            if mode == "rand":
                fill = torch.randn((len(rows), sub.shape[1], 1, 1), generator=generator, device=device,
                                   dtype=sub.dtype)
            else:
                fill = torch.zeros((), device=device, dtype=sub.dtype)
            sub = torch.where(box_mask(k), fill, sub)
    out = images.clone()
    out[idx] = sub
    return out


class BatchAugment:
    """The official (or any `AugmentConfig`) augmentation of uint8 batches, on their device, seeded per call."""

    def __init__(self, config: AugmentConfig, num_classes: int):
        self.config = config
        self.num_classes = num_classes
        self.randaugment = (RandAugment(parse_randaugment(config.randaugment), config.interpolation)
                            if config.randaugment else None)
        self.mixup = (Mixup(config.mixup, config.cutmix, config.mixup_prob, config.mixup_switch_prob,
                            config.smoothing, num_classes) if config.mixes else None)

    def __call__(self, pixels: Tensor, labels: Tensor, seed: int) -> AugmentedBatch:
        """uint8 ``(B, C, H, W)`` pixels (C 1 or 3, on the device) and their labels, augmented with draws from
        `seed` (an integer >= 0); labels and targets come back on the pixels' device."""
        if pixels.dtype != torch.uint8 or pixels.dim() != 4 or pixels.shape[1] not in (1, 3):
            raise ValueError(f"pixels must be uint8 (B, 1 or 3, H, W), got {pixels.dtype} {tuple(pixels.shape)}")
        if labels.shape != (len(pixels),):
            raise ValueError(f"labels must be ({len(pixels)},), got {tuple(labels.shape)}")
        c = self.config
        device = pixels.device
        labels = labels.to(device=device, dtype=torch.int64)
        x = pixels.float().div_(255.0)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if c.hflip > 0:
            x, _ = horizontal_flip(x, c.hflip, _generator(seed, _HFLIP))
        if self.randaugment is not None:
            x = self.randaugment(x.contiguous(), _generator(seed, _RANDAUGMENT))
        elif c.uses_color_jitter:
            x = color_jitter(x.contiguous(), c.color_jitter, _generator(seed, _JITTER))
        x = normalise(x)
        if c.reprob > 0:
            boxes = erasing_boxes(len(x), x.shape[-2], x.shape[-1], c.reprob, c.recount, _generator(seed, _ERASING))
            x = erase(x, boxes, c.remode, _generator(seed, _ERASE_NOISE, device))
        if self.mixup is None:
            return AugmentedBatch(inputs=x, targets=labels, clean=x, labels=labels, mixed=False)
        mixed = self.mixup(x, labels, derive_seed(seed, _MIXING))
        return AugmentedBatch(inputs=mixed.inputs, targets=mixed.targets, clean=x, labels=labels,
                              mixed=mixed.lam != 1.0)
