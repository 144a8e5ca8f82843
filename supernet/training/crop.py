"""RandomResizedCrop with explicit seeds: torchvision's box algorithm (what timm's
``RandomResizedCropAndInterpolation`` uses) drawn from a seeded `torch.Generator`, applied to decoded PIL images
(image folders and tar shards, in DataLoader workers) or batched to uint8 tensors (in-memory images).

Both paths crop the box first and then resize the crop alone, as torchvision's ``resized_crop`` does for timm:
pixels outside the box never reach the filter. The tensor path resizes with ``F.interpolate(antialias=True)``,
whose bilinear and bicubic kernels are PIL's (the antialiased bicubic uses PIL's a = -0.5, widened by the scale when
shrinking), one axis at a time, width first, rounding to uint8 in between, as Pillow's resampler does: it agrees
with Pillow to +-1 level (a single 2-D pass differs by up to 20 levels where bicubic overshoots on sharp edges,
which Pillow clamps after its first pass). Kornia's ``crop_and_resize`` was not used: it samples with
``grid_sample``, which does not antialias, so a crop shrunk 4x aliases where PIL does not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from PIL import Image

INTERPOLATIONS = ("bicubic", "bilinear", "nearest")
_ATTEMPTS = 10  # torchvision / timm


@dataclass(frozen=True)
class CropSpec:
    """RandomResizedCrop settings (torchvision/timm semantics)."""

    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    interpolation: str = "bicubic"  # "bicubic" | "bilinear" | "nearest"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {self.interpolation!r} (known: {', '.join(INTERPOLATIONS)})")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"crop scale must satisfy 0 < low <= high, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"crop ratio must satisfy 0 < low <= high, got {self.ratio}")


def crop_box(height: int, width: int, spec: CropSpec, seed: int) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop of a ``height x width`` image: up to 10 draws of an area uniform in
    ``scale`` x the image area and an aspect ratio log-uniform in ``ratio``; the first box that fits is placed
    uniformly; if none fits, the central crop of the whole image clamped to the ratio range."""
    gen = torch.Generator().manual_seed(seed)
    area = height * width
    log_lo, log_hi = math.log(spec.ratio[0]), math.log(spec.ratio[1])
    for _ in range(_ATTEMPTS):
        target_area = area * torch.empty(1).uniform_(spec.scale[0], spec.scale[1], generator=gen).item()
        aspect = math.exp(torch.empty(1).uniform_(log_lo, log_hi, generator=gen).item())
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=gen).item())
            left = int(torch.randint(0, width - w + 1, (1,), generator=gen).item())
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < spec.ratio[0]:
        w, h = width, int(round(width / spec.ratio[0]))
    elif in_ratio > spec.ratio[1]:
        h, w = height, int(round(height * spec.ratio[1]))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def _resize(crop: torch.Tensor, size: int, interpolation: str) -> torch.Tensor:
    """float ``(1, C, h, w)`` of uint8 values to ``(1, C, size, size)`` of uint8 values with PIL's filters and
    PIL's two passes (see the module docstring)."""
    if interpolation == "nearest":  # "nearest-exact" samples pixel centres as PIL does; "nearest" is shifted
        return F.interpolate(crop, size=(size, size), mode="nearest-exact")
    x = crop
    for out_h, out_w in ((crop.shape[-2], size), (size, size)):
        if x.shape[-2:] != (out_h, out_w):
            x = F.interpolate(x, size=(out_h, out_w), mode=interpolation, align_corners=False, antialias=True)
            x = x.round_().clamp_(0, 255)
    return x


def random_resized_crop(pixels: torch.Tensor, size: int, spec: CropSpec, seeds: Sequence[int]) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` to uint8 ``(N, C, size, size)``: item n cropped to ``crop_box(H, W, spec, seeds[n])``
    and resized with the spec's interpolation (rounded and clamped), on the device the pixels are on."""
    if pixels.dtype != torch.uint8 or pixels.dim() != 4:
        raise ValueError(f"expected uint8 (N, C, H, W) pixels, got {pixels.dtype} {tuple(pixels.shape)}")
    if len(seeds) != len(pixels):
        raise ValueError(f"{len(pixels)} images but {len(seeds)} seeds")
    n, c, height, width = pixels.shape
    out = torch.empty((n, c, size, size), dtype=torch.uint8, device=pixels.device)
    for k, seed in enumerate(seeds):
        top, left, h, w = crop_box(height, width, spec, seed)
        crop = pixels[k:k + 1, :, top:top + h, left:left + w].float()
        out[k] = _resize(crop, size, spec.interpolation)[0].to(torch.uint8)
    return out


def crop_pil(image: Image.Image, size: int, spec: CropSpec, seed: int) -> Image.Image:
    """A decoded PIL image cropped to ``crop_box(height, width, spec, seed)`` and resized to ``size x size`` with
    the spec's interpolation (torchvision's ``resized_crop`` on PIL images: crop, then resize the crop)."""
    from PIL import Image

    resample = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
                "nearest": Image.Resampling.NEAREST}[spec.interpolation]
    width, height = image.size
    top, left, h, w = crop_box(height, width, spec, seed)
    return image.crop((left, top, left + w, top + h)).resize((size, size), resample)
