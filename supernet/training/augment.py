"""The training augmentation settings: the official ElasticViT recipe (timm 0.9.8's ``create_transform`` and
``Mixup`` as ``train_eval_supernet.py`` / ``configs/final_3min_space.yaml`` use them) and "none", each field
overridable from the ``[augment_options]`` table.

The official recipe: RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3, bicubic), horizontal flip 0.5, RandAugment
``rand-n1-m1-mstd0.5-inc1``, ImageNet normalisation, RandomErasing (p 0.01, per-pixel noise, one box), then per batch
Mixup / CutMix (alphas 0.01, prob 1, switch prob 0.5) with label smoothing 0.1 in the mixed targets.

Colour jitter 0.4 is in the official config but has no effect there: timm's ``transforms_imagenet_train`` disables
colour jitter whenever an AutoAugment / RandAugment policy is set (RandAugment already draws colour, contrast and
brightness ops; only ``force_color_jitter`` or the "3a" policies keep it), and this module follows timm: the jitter
runs only when ``randaugment`` is empty.

Why kornia: torchvision (which timm needs) is not available with our torch pin, and the crop runs in the DataLoader
workers while everything after it runs batched on the training device; kornia is pure PyTorch with batched functional
ops that take per-image arguments on any device (`batch_augment.BatchAugment` runs the stages).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..arch import shorten
from .crop import INTERPOLATIONS, CropSpec
from .randaugment import parse_randaugment
from .train_config import ConfigError

ERASE_MODES = ("const", "rand", "pixel")


@dataclass(frozen=True)
class AugmentConfig:
    """Every augmentation setting (defaults: the official recipe). ``crop`` turns the RandomResizedCrop on;
    ``randaugment`` is a timm RandAugment string ("" for none); ``reprob`` / ``remode`` / ``recount`` are timm's
    RandomErasing probability, fill mode (const, rand, pixel) and maximum box count; ``mixup`` / ``cutmix`` are the
    Beta alphas (0: off), ``mixup_prob`` the chance a batch is mixed, ``mixup_switch_prob`` the chance of cutmix when
    both are on; ``smoothing`` is the label smoothing inside the mixed targets."""

    crop: bool = True
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    interpolation: str = "bicubic"
    hflip: float = 0.5
    randaugment: str = "rand-n1-m1-mstd0.5-inc1"
    color_jitter: float = 0.4
    reprob: float = 0.01
    remode: str = "pixel"
    recount: int = 1
    mixup: float = 0.01
    cutmix: float = 0.01
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    smoothing: float = 0.1

    def crop_spec(self) -> CropSpec | None:
        """The RandomResizedCrop the data path applies, None when ``crop`` is off."""
        if not self.crop:
            return None
        return CropSpec(scale=self.crop_scale, ratio=self.crop_ratio, interpolation=self.interpolation)

    @property
    def uses_color_jitter(self) -> bool:
        """Whether the colour jitter runs (timm: only without a RandAugment policy)."""
        return self.color_jitter > 0 and not self.randaugment

    @property
    def mixes(self) -> bool:
        """Whether batches go through Mixup / CutMix (then targets are soft)."""
        return self.mixup > 0 or self.cutmix > 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (lists for the pairs); `augment_config` accepts it back as options."""
        d = asdict(self)
        d["crop_scale"], d["crop_ratio"] = list(self.crop_scale), list(self.crop_ratio)
        return d


_OFFICIAL = AugmentConfig()
#: The named presets: "official" (the paper's recipe) and "none" (nothing but normalisation; label smoothing stays
#: for the label loss). Fields "none" does not switch off keep their official values, so an override such as
#: ``hflip = 0.5`` on "none" turns exactly that on.
AUGMENTS: dict[str, AugmentConfig] = {
    "official": _OFFICIAL,
    "none": replace(_OFFICIAL, crop=False, hflip=0.0, randaugment="", color_jitter=0.0, reprob=0.0, mixup=0.0,
                    cutmix=0.0),
}
_PROBABILITIES = ("hflip", "reprob", "mixup_prob", "mixup_switch_prob", "smoothing")


def augment_config(name: str, options: Mapping[str, Any]) -> AugmentConfig:
    """Preset `name` with `options` (field -> value) applied; `ConfigError` naming the key and value for an unknown
    preset or key, a wrong type or a value out of range."""
    if name not in AUGMENTS:
        raise ConfigError(f"augment {shorten(name)} is not known (known: {', '.join(sorted(AUGMENTS))})")
    known = {f.name: f for f in fields(AugmentConfig)}
    values: dict[str, Any] = {}
    for key, value in options.items():
        if key not in known:
            raise ConfigError(f"augment_options: unknown key {shorten(key)} (known: {', '.join(known)})")
        values[key] = _coerce(key, value, str(known[key].type))
    config = replace(AUGMENTS[name], **values)
    _check(config)
    return config


def _fail(key: str, what: str, value: Any) -> ConfigError:
    return ConfigError(f"augment_options: {key} must be {what}, got {shorten(value, 40)}")


def _number(key: str, value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)  # YAML 1.1 (PyYAML) reads 1e-3 as text
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(key, "a number", value)
    return float(value)


def _coerce(key: str, value: Any, annotation: str) -> Any:
    if annotation == "bool":
        if not isinstance(value, bool):
            raise _fail(key, "true or false", value)
        return value
    if annotation == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(key, "an integer", value)
        return value
    if annotation == "str":
        if not isinstance(value, str):
            raise _fail(key, "a string", value)
        return value
    if annotation == "float":
        return _number(key, value)
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise _fail(key, "a pair of numbers [low, high]", value)
    try:
        return (_number(key, value[0]), _number(key, value[1]))
    except ConfigError:
        raise _fail(key, "a pair of numbers [low, high]", value) from None


def _check(c: AugmentConfig) -> None:
    for key in _PROBABILITIES:
        if not 0.0 <= getattr(c, key) <= 1.0:
            raise _fail(key, "a probability in [0, 1]", getattr(c, key))
    for key in ("mixup", "cutmix", "color_jitter"):
        value = getattr(c, key)
        if not (value >= 0 and math.isfinite(value)):
            raise _fail(key, "a finite number >= 0", value)
    low, high = c.crop_scale
    if not 0 < low <= high <= 1:
        raise _fail("crop_scale", "[low, high] with 0 < low <= high <= 1", list(c.crop_scale))
    low, high = c.crop_ratio
    if not (0 < low <= high and math.isfinite(high)):
        raise _fail("crop_ratio", "[low, high] with 0 < low <= high", list(c.crop_ratio))
    if c.interpolation not in INTERPOLATIONS:
        raise _fail("interpolation", f"one of {', '.join(INTERPOLATIONS)}", c.interpolation)
    if c.remode not in ERASE_MODES:
        raise _fail("remode", f"one of {', '.join(ERASE_MODES)}", c.remode)
    if c.recount < 1:
        raise _fail("recount", "an integer >= 1", c.recount)
    if c.randaugment:
        parse_randaugment(c.randaugment)
