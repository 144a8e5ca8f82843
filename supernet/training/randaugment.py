"""RandAugment as timm defines it (``rand-n1-m1-mstd0.5-inc1`` strings), batched on the images' device with kornia.

timm's semantics, per image: ``n`` ops drawn uniformly with replacement from the op set, each applied with
probability ``p`` (default 0.5) at a magnitude drawn from N(m, mstd) (uniform in [0, m] when mstd > 100) and clipped
to [0, mmax or 10]; symmetric ops (rotate, shear, translate, the "Increasing" enhancements) take a random sign.
``inc1`` selects the op set whose severity increases with the magnitude. Geometric ops fill with the ImageNet mean
(x 255, rounded: timm's ``img_mean``) and use the configured interpolation (bicubic in the official recipe).

Why not ``kornia.augmentation.auto.RandAugment``: it draws one policy for the whole batch (every image gets the same
ops) and has no magnitude noise. Here every image draws its own ops, magnitudes and signs (`draw`), and `apply` runs
each (layer, op) group of images through one batched kornia functional call with per-image arguments
(``kornia.enhance.equalize / invert / posterize / solarize / sharpness / adjust_*``, one
``kornia.geometry.transform.warp_affine`` for all the geometric ops of a layer).

timm's ops are PIL ops on 8-bit images, so every op's output is rounded to 8-bit levels (values k / 255) before the
next one. Where kornia's definition is not PIL's, this module says what it uses instead:

- AutoContrast: kornia has no PIL-style per-channel min/max stretch (with PIL's truncation), written in torch;
- SolarizeAdd: kornia's ``solarize(additions=...)`` adds to every pixel before thresholding, PIL adds only to the
  pixels below 128; written in torch;
- Brightness / Contrast / Color: ``adjust_brightness_accumulative`` (kornia's ``adjust_brightness`` adds, PIL
  multiplies), ``adjust_contrast_with_mean_subtraction`` and ``adjust_saturation_with_gray_subtraction`` (kornia's
  ``adjust_saturation`` works in HSV); PIL rounds its grey image (and the grey mean) to 8 bits, kornia keeps them in
  float, so a pixel may differ from PIL by one level;
- geometric ops: PIL's affine matrices are written in PIL's coordinates (pixel edges) and converted to kornia's
  pixel centres; kornia's bicubic kernel (grid_sample, a = -0.75) is not PIL's (a = -0.5), so bicubic results differ
  slightly from PIL's (bilinear ones agree away from the borders).

A malformed string raises `ConfigError` naming the ``randaugment`` key. One deliberate deviation from timm's parser:
``inc0`` selects the plain op set (timm reads ``bool("0")``, i.e. True), and sections without a value or with
an unknown key are errors (timm skips the first and asserts on the second).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import kornia
import torch
from torch import Tensor

from ..arch import shorten
from .data import IMAGENET_MEAN
from .train_config import ConfigError

#: Magnitudes are given out of this (timm's ``_LEVEL_DENOM``); it is also the default upper clip.
LEVEL_DENOM = 10.0
#: timm's ``_RAND_TRANSFORMS`` (``inc0``) and ``_RAND_INCREASING_TRANSFORMS`` (``inc1``).
PLAIN_OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
             "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
INCREASING_OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing",
                  "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing",
                  "SharpnessIncreasing", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
GEOMETRIC_OPS = frozenset({"Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"})
#: Fill of the geometric ops: timm's ``img_mean``, the ImageNet mean x 255 rounded, as a fraction.
FILL = tuple(min(255, round(255 * m)) / 255 for m in IMAGENET_MEAN)
_MODES = ("bicubic", "bilinear", "nearest")
_UNIFORM_ABOVE = 100.0  # timm: an mstd above this means "uniform in [0, m]"
_SECTIONS: dict[str, Callable[[str], float | int]] = {"n": int, "m": int, "p": float, "mstd": float, "mmax": int,
                                                      "inc": int}


@dataclass(frozen=True)
class RandAugmentSpec:
    """A parsed RandAugment string (timm's defaults: 2 ops, magnitude 10, p 0.5, no noise, plain op set)."""

    num_ops: int = 2
    magnitude: int = 10
    prob: float = 0.5
    magnitude_std: float = 0.0
    magnitude_max: int | None = None
    increasing: bool = False

    @property
    def ops(self) -> tuple[str, ...]:
        """The op set the ops are drawn from."""
        return INCREASING_OPS if self.increasing else PLAIN_OPS

    @property
    def upper_bound(self) -> float:
        """Magnitudes are clipped to [0, this] (timm: ``magnitude_max or 10``)."""
        return float(self.magnitude_max or LEVEL_DENOM)


def parse_randaugment(text: str) -> RandAugmentSpec:
    """The spec of a timm RandAugment string such as ``rand-n1-m1-mstd0.5-inc1`` (sections in any order: ``n`` ops,
    ``m`` magnitude, ``p`` probability, ``mstd`` magnitude noise, ``mmax`` upper clip, ``inc`` op set);
    `ConfigError` naming the ``randaugment`` key for anything else."""
    def bad(reason: str) -> ConfigError:
        return ConfigError(f"augment_options: randaugment {shorten(text)}: {reason} "
                           "(expected e.g. 'rand-n2-m9-mstd0.5-inc1')")

    if not isinstance(text, str):
        raise bad("must be a string")
    sections = text.split("-")
    if sections[0] != "rand":
        raise bad("must start with 'rand'")
    values: dict[str, float | int] = {}
    for section in sections[1:]:
        match = re.fullmatch(r"([a-z]+)(\d.*)", section)
        if match is None:
            raise bad(f"section {shorten(section, 20)} is not a key followed by a number")
        key, raw = match.groups()
        if key in values:
            raise bad(f"section {key!r} given twice")
        if key not in _SECTIONS:
            raise bad(f"unknown section {key!r} (known: {', '.join(_SECTIONS)})")
        try:
            values[key] = _SECTIONS[key](raw)
        except ValueError:
            raise bad(f"section {key!r} has a malformed value {shorten(raw, 20)}") from None
    prob = float(values.get("p", 0.5))
    if not 0.0 <= prob <= 1.0:
        raise bad(f"p must be in [0, 1], got {prob}")
    std = float(values.get("mstd", 0.0))
    if math.isnan(std):
        raise bad("mstd must be a number >= 0")
    return RandAugmentSpec(
        num_ops=int(values.get("n", 2)), magnitude=int(values.get("m", 10)), prob=prob,
        magnitude_std=math.inf if std > _UNIFORM_ABOVE else std,
        magnitude_max=int(values["mmax"]) if "mmax" in values else None,
        increasing=bool(values.get("inc", 0)))


@dataclass(frozen=True)
class RandAugmentDraw:
    """What each image of a batch drew, layer by layer: all ``(num_ops, batch)`` tensors on the CPU."""

    ops: Tensor      # int64 index into the spec's op set
    applied: Tensor  # bool: the op passed its probability
    levels: Tensor   # float64 magnitude after noise and clipping
    signs: Tensor    # float64 +1 / -1 (used by the symmetric ops)


def draw(spec: RandAugmentSpec, batch: int, generator: torch.Generator) -> RandAugmentDraw:
    """Per-image draws of `spec` for `batch` images from `generator` (a CPU generator)."""
    shape = (spec.num_ops, batch)
    ops = torch.randint(0, len(spec.ops), shape, generator=generator)
    applied = torch.rand(shape, generator=generator, dtype=torch.float64) <= spec.prob
    if math.isinf(spec.magnitude_std):
        levels = torch.rand(shape, generator=generator, dtype=torch.float64) * spec.magnitude
    elif spec.magnitude_std > 0:
        levels = spec.magnitude + spec.magnitude_std * torch.randn(shape, generator=generator, dtype=torch.float64)
    else:
        levels = torch.full(shape, float(spec.magnitude), dtype=torch.float64)
    flip = torch.rand(shape, generator=generator, dtype=torch.float64) > 0.5
    signs = 1.0 - 2.0 * flip.to(torch.float64)
    return RandAugmentDraw(ops=ops, applied=applied, levels=levels.clamp(0.0, spec.upper_bound), signs=signs)


def op_argument(name: str, levels: Tensor, signs: Tensor) -> Tensor:
    """timm's ``level_to_arg`` of op `name` per image (float64): degrees, shear factor, translate fraction of the
    size, bits kept, solarize threshold or addition (8-bit levels), or enhancement factor; zeros for the ops without
    an argument."""
    f = levels.to(torch.float64) / LEVEL_DENOM
    s = signs.to(torch.float64)
    if name == "Rotate":
        return s * f * 30.0
    if name in ("ShearX", "ShearY"):
        return s * f * 0.3
    if name in ("TranslateXRel", "TranslateYRel"):
        return s * f * 0.45
    if name == "Posterize":
        return torch.floor(f * 4).clamp(0, 8)
    if name == "PosterizeIncreasing":
        return (4 - torch.floor(f * 4)).clamp(0, 8)
    if name == "Solarize":
        return torch.floor(f * 256).clamp(max=256)
    if name == "SolarizeIncreasing":
        return 256 - torch.floor(f * 256).clamp(max=256)
    if name == "SolarizeAdd":
        return torch.floor(f * 110).clamp(max=128)
    if name in ("Color", "Contrast", "Brightness", "Sharpness"):
        return f * 1.8 + 0.1
    if name.endswith("Increasing"):
        return (1.0 + s * f * 0.9).clamp(min=0.1)
    return torch.zeros_like(f)


def to_8bit(images: Tensor) -> Tensor:
    """`images` in [0, 1] rounded to 8-bit levels (k / 255), as a PIL op returns them."""
    return images.clamp(0.0, 1.0).mul(255.0).round_().div_(255.0)


def _autocontrast(x: Tensor, _: Tensor) -> Tensor:
    # PIL ImageOps.autocontrast (cutoff 0): per channel, lut[v] = int(v * scale + offset) with scale = 255 / (hi - lo),
    # offset = -lo * scale, clipped to [0, 255]; a channel with hi <= lo is left alone. float64 as PIL's Python.
    v = x.to(torch.float64).mul(255.0).round_()
    lo = v.amin(dim=(-2, -1), keepdim=True)
    hi = v.amax(dim=(-2, -1), keepdim=True)
    stretch = hi > lo
    scale = 255.0 / torch.where(stretch, hi - lo, torch.ones_like(hi))
    out = torch.trunc(v * scale + (-lo * scale)).clamp_(0.0, 255.0)
    return torch.where(stretch, out, v).div_(255.0).to(x.dtype)


def _solarize_add(x: Tensor, add: Tensor) -> Tensor:
    # PIL lut of timm's solarize_add: v < 128 -> min(255, v + add), else v.
    v = x.mul(255.0).round_()
    added = (v + add.view(-1, 1, 1, 1)).clamp_(max=255.0)
    return torch.where(v < 128, added, v).div_(255.0)


_PIXEL_OPS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "AutoContrast": _autocontrast,
    "Equalize": lambda x, _: kornia.enhance.equalize(x),
    "Invert": lambda x, _: kornia.enhance.invert(x),
    "Posterize": lambda x, bits: kornia.enhance.posterize(x, bits.long()),
    "Solarize": lambda x, t: kornia.enhance.solarize(x, thresholds=t / 255.0),
    "SolarizeAdd": _solarize_add,
    "Color": kornia.enhance.adjust_saturation_with_gray_subtraction,
    "Contrast": kornia.enhance.adjust_contrast_with_mean_subtraction,
    "Brightness": kornia.enhance.adjust_brightness_accumulative,
    "Sharpness": kornia.enhance.sharpness,
}


def _pixel_op(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    return _PIXEL_OPS[name.removesuffix("Increasing")]


def _edge_matrix(name: str, arg: float, height: int, width: int) -> list[list[float]]:
    """PIL's affine data (output -> input, in PIL's pixel-edge coordinates) of timm's geometric op."""
    if name == "Rotate":  # PIL Image.rotate(expand=False): about (w / 2, h / 2), counter-clockwise
        a = -math.radians(arg)
        c, s = round(math.cos(a), 15), round(math.sin(a), 15)
        cx, cy = width / 2.0, height / 2.0
        return [[c, s, c * -cx + s * -cy + cx], [-s, c, -s * -cx + c * -cy + cy]]
    if name == "ShearX":
        return [[1.0, arg, 0.0], [0.0, 1.0, 0.0]]
    if name == "ShearY":
        return [[1.0, 0.0, 0.0], [arg, 1.0, 0.0]]
    if name == "TranslateXRel":
        return [[1.0, 0.0, arg * width], [0.0, 1.0, 0.0]]
    if name == "TranslateYRel":
        return [[1.0, 0.0, 0.0], [0.0, 1.0, arg * height]]
    raise ValueError(f"{name} is not a geometric op")


def geometric_matrices(names: list[str], args: Tensor, height: int, width: int) -> Tensor:
    """kornia ``warp_affine`` matrices (source -> destination, pixel centres; float64 ``(G, 2, 3)``) of the PIL
    transforms timm applies: image ``g`` gets op ``names[g]`` with argument ``args[g]``."""
    edge = torch.tensor([_edge_matrix(n, float(a), height, width) + [[0.0, 0.0, 1.0]]
                         for n, a in zip(names, args.tolist(), strict=True)], dtype=torch.float64)
    to_edge = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
    to_centre = torch.linalg.inv(to_edge)
    dst_to_src = to_centre @ edge @ to_edge  # centre coordinates, output -> input (what PIL's data describes)
    return torch.linalg.inv(dst_to_src)[:, :2, :]


def apply_op(name: str, images: Tensor, args: Tensor, interpolation: str = "bicubic",
             fill: tuple[float, ...] = FILL) -> Tensor:
    """Op `name` on float ``(G, 3, H, W)`` images in [0, 1] with one argument per image (`op_argument`); the result
    is rounded to 8-bit levels."""
    if name in GEOMETRIC_OPS:
        return _warp(images, [name] * len(images), args, interpolation, fill)
    fn = _pixel_op(name)
    return to_8bit(fn(images, args.to(device=images.device, dtype=images.dtype)))


def _warp(images: Tensor, names: list[str], args: Tensor, interpolation: str, fill: tuple[float, ...]) -> Tensor:
    height, width = images.shape[-2:]
    matrices = geometric_matrices(names, args, height, width).to(device=images.device, dtype=images.dtype)
    fill_value = torch.tensor(fill, device=images.device, dtype=images.dtype)
    out = kornia.geometry.transform.warp_affine(images, matrices, (height, width), mode=interpolation,
                                                padding_mode="fill", align_corners=True, fill_value=fill_value)
    return to_8bit(out)


class RandAugment:
    """timm's RandAugment with per-image draws, applied batched (see the module docstring)."""

    def __init__(self, spec: RandAugmentSpec, interpolation: str = "bicubic", fill: tuple[float, ...] = FILL):
        if interpolation not in _MODES:
            raise ValueError(f"interpolation must be one of {', '.join(_MODES)}, got {interpolation!r}")
        self.spec = spec
        self.interpolation = interpolation
        self.fill = fill

    def draw(self, batch: int, generator: torch.Generator) -> RandAugmentDraw:
        """The per-image draws for `batch` images (CPU `generator`)."""
        return draw(self.spec, batch, generator)

    def apply(self, images: Tensor, drawn: RandAugmentDraw) -> Tensor:
        """float ``(B, 3, H, W)`` images in [0, 1] (8-bit levels) augmented as `drawn` says, on their device."""
        out = images.clone()
        names = self.spec.ops
        for layer in range(self.spec.num_ops):
            ops, applied = drawn.ops[layer], drawn.applied[layer]
            geometric = torch.tensor([names[int(k)] in GEOMETRIC_OPS for k in ops.tolist()], dtype=torch.bool)
            args = torch.zeros(len(ops), dtype=torch.float64)
            for k in ops[applied].unique().tolist():
                rows = applied & (ops == k)
                args[rows] = op_argument(names[k], drawn.levels[layer][rows], drawn.signs[layer][rows])
            warp_rows = torch.nonzero(applied & geometric).flatten()
            if len(warp_rows):
                idx = warp_rows.to(out.device)
                out[idx] = _warp(out[idx], [names[int(k)] for k in ops[warp_rows].tolist()], args[warp_rows],
                                 self.interpolation, self.fill)
            for k in ops[applied & ~geometric].unique().tolist():
                rows = torch.nonzero(applied & (ops == k)).flatten()
                idx = rows.to(out.device)
                out[idx] = apply_op(names[k], out[idx], args[rows])
        return out

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """`apply` of fresh draws from `generator`."""
        return self.apply(images, self.draw(len(images), generator))
