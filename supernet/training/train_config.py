"""The supernet training configuration (official `configs/final_3min_space.yaml`, `train_eval_supernet.py`): one
dataclass, paper values by default, read from TOML or YAML (a file, or one shipped in the package: `shipped_configs`)
and overridden with dotted ``key=value`` pairs.

Rates are given before linear scaling (the trainer applies lr x world_size x batch_size / 512, as the official code).
Epoch counts define the warm-up + cosine schedule (stepped every optimizer step, see `Trainer`); `steps` only stops
the run early. `sampler_options` overrides fields of the sampler's `SamplerConfig` (levels, window, bank sizes, q0,
...).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import BadInput
from .ema import EMA_DECAY
from .optim import AGC_CLIP_FACTOR, BATCH_PER_GPU, EPOCHS, LR, MIN_LR, WARMUP_EPOCHS, WARMUP_LR, WEIGHT_DECAY

#: The training configurations shipped in the package (package data: supernet/training/configs/*.toml).
_CONFIGS = files("supernet.training") / "configs"
#: Keys a resumed run may change: they decide when to stop and what to write, never the numbers of a step.
RESUME_MUTABLE = ("steps", "output_dir", "save_every", "log_every", "tensorboard", "workers")
#: Training precisions: float32, or autocast to bfloat16 / float16 (the latter with a gradient scaler).
PRECISIONS = ("fp32", "bf16", "fp16")


if TYPE_CHECKING:
    from .augment import AugmentConfig


class ConfigError(BadInput):
    """A configuration that cannot be used; the message names the key and what is wrong."""


@dataclass(frozen=True)
class TrainConfig:
    """Every option of `elasticvit-deploy train` (defaults are the paper's recipe).

    data: "digits", "fashion-mnist" or a directory (ImageFolder, or MNIST idx files). teachers: each
    {"path": supernet checkpoint, "arch": arch JSON file | "max" | "min"} (a bare path: its "max" subnet) or
    {"path": `torch.save`'d whole module, "trust_pickle": true} (unpickling runs code: opt in per file); none means
    the max/uniform subnets learn from the labels (label-smoothed CE). steps: stop after this many steps (default: the
    whole schedule, (epochs + cooldown_epochs) epochs). save_every / log_every: in steps (save_every 0: checkpoint
    only at the end). augment: "none" (fixed crops) or "official" (the paper's recipe: RandomResizedCrop, flip,
    RandAugment, random erasing, mixup/cutmix), each item overridable in `augment_options` (see
    `supernet.training.augment`). precision: "fp32", "bf16" (autocast) or "fp16" (autocast + gradient scaler);
    channels_last and compile (torch.compile) are off by default; all three are for CUDA but run on CPU too (compile
    recompiles per subnet, so it only pays off when few subnets train).
    """

    data: str
    space: str = "elasticvit"
    sampler: str = "elasticvit"
    sampler_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    val_fraction: float = 0.1
    epochs: int = EPOCHS
    warmup_epochs: int = WARMUP_EPOCHS
    cooldown_epochs: int = 0
    steps: int | None = None
    batch_size: int = BATCH_PER_GPU
    lr: float = LR
    warmup_lr: float = WARMUP_LR
    min_lr: float = MIN_LR
    weight_decay: float = WEIGHT_DECAY
    agc_clip: float = AGC_CLIP_FACTOR
    ema_decay: float = EMA_DECAY
    teachers: tuple[Any, ...] = ()
    output_dir: str = "runs/supernet"
    save_every: int = 1000
    log_every: int = 10
    tensorboard: bool = False
    workers: int = 0
    device: str = "auto"
    augment: str = "none"
    augment_options: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (stored in checkpoints)."""
        d = asdict(self)
        d["teachers"] = list(self.teachers)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Validate keys, types and ranges; `ConfigError` names the first problem."""
        known = {f.name: f for f in fields(cls)}
        for key in data:
            if key not in known:
                raise ConfigError(f"unknown config key {key!r} (known: {', '.join(sorted(known))})")
        values: dict[str, Any] = {}
        for name, f in known.items():
            if name in data:
                values[name] = _coerce(name, data[name], f.type)
            elif f.default is MISSING and f.default_factory is MISSING:
                raise ConfigError(f"config key {name!r} is required")
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        positive = ("epochs", "batch_size", "lr", "warmup_lr", "min_lr")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("warmup_epochs", "cooldown_epochs", "weight_decay", "agc_clip", "save_every", "workers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.log_every < 1:
            raise ConfigError(f"log_every must be >= 1, got {self.log_every}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.warmup_epochs >= self.epochs:
            raise ConfigError(f"warmup_epochs ({self.warmup_epochs}) must be < epochs ({self.epochs})")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        self.augmentation()
        for t in self.teachers:
            _check_teacher(t)

    def augmentation(self) -> AugmentConfig:
        """The augmentation this run trains with: the `augment` preset with `augment_options` applied."""
        from .augment import augment_config

        return augment_config(self.augment, self.augment_options)


TEACHER_KEYS = ("path", "arch", "trust_pickle")


def _check_teacher(t: Any) -> None:
    """A teacher entry: a path, {path, arch} or {path, trust_pickle} (see `supernet.training.teachers`)."""
    if isinstance(t, str):
        return
    if not (isinstance(t, dict) and isinstance(t.get("path"), str)):
        raise ConfigError(f"a teacher is a path, {{path = ..., arch = ...}} or {{path = ..., trust_pickle = true}}, "
                          f"got {t!r}")
    unknown = sorted(str(k) for k in set(t) - set(TEACHER_KEYS))
    if unknown:
        raise ConfigError(f"teacher {t['path']}: unknown key {unknown[0]!r} (known: {', '.join(TEACHER_KEYS)})")
    if "arch" in t and not isinstance(t["arch"], str):
        raise ConfigError(f"teacher {t['path']}: arch must be an arch JSON file, max or min, got {t['arch']!r}")
    if "trust_pickle" in t and not isinstance(t["trust_pickle"], bool):
        raise ConfigError(f"teacher {t['path']}: trust_pickle must be true or false, got {t['trust_pickle']!r}")
    if "arch" in t and t.get("trust_pickle"):
        raise ConfigError(f"teacher {t['path']}: arch names a subnet of a supernet checkpoint (read without "
                          "pickle); trust_pickle is for whole pickled modules: drop one of them")


_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "int": ((int,), "an integer"), "float": ((int, float), "a number"), "str": ((str,), "a string"),
    "bool": ((bool,), "true or false")}


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Check `value` against the field's annotation (a string under `from __future__ import annotations`)."""
    ann = str(annotation)
    if ann == "int | None":
        return None if value is None else _coerce(name, value, "int")
    if ann.startswith("dict"):
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a table/mapping, got {value!r}")
        return dict(value)
    if ann.startswith("tuple"):
        if isinstance(value, (str, dict)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list, got {value!r}")
        return tuple(value)
    ok, what = _TYPES[ann]
    if ann == "float" and isinstance(value, str):
        try:
            value = float(value)  # YAML 1.1 (PyYAML) reads 1e-3 as text
        except ValueError:
            pass
    if not isinstance(value, ok) or (isinstance(value, bool) and ann != "bool"):
        raise ConfigError(f"{name} must be {what}, got {value!r}")
    if ann == "float":
        assert isinstance(value, (int, float))  # checked against _TYPES["float"] just above
        return float(value)
    return value


def shipped_configs() -> list[str]:
    """The names of the training configurations shipped in the package (``--config NAME``)."""
    return sorted(f.name.removesuffix(".toml") for f in _CONFIGS.iterdir() if f.name.endswith(".toml"))


def shipped_config(name: str) -> str | None:
    """The text of the shipped configuration `name` (with or without ``.toml``), or None."""
    stem = name.removesuffix(".toml")
    return (_CONFIGS / f"{stem}.toml").read_text(encoding="utf-8") if stem in shipped_configs() else None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a .toml, .yaml or .yml file, or in the shipped configuration of that name
    (`shipped_configs`); `ConfigError` for a missing or malformed file."""
    path = Path(path)
    shipped = None if path.is_file() or len(path.parts) != 1 else shipped_config(path.name)
    if not path.is_file() and shipped is None:
        raise ConfigError(f"{path}: no such config file (shipped configs: {', '.join(shipped_configs())})")
    suffix = ".toml" if shipped is not None else path.suffix.lower()
    try:
        text = shipped if shipped is not None else path.read_text(encoding="utf-8")
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"{path}: config files end in .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{path}: malformed config ({first})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping of keys to values")
    return data


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of `data` with each ``key=value`` applied; dotted keys reach into tables (``sampler_options.q0=0.5``).
    Values are parsed as YAML scalars/lists (``8``, ``1e-3``, ``true``, ``[a.pt, b.pt]``); anything else stays text."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        *parents, leaf = key.strip().split(".")
        node = out
        for p in parents:
            child = node.get(p, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {p} is not a table")
            node[p] = dict(child)
            node = node[p]
        node[leaf] = value
    return out


def load_config(path: str | Path | None, overrides: Sequence[str] = (),
                base: Mapping[str, Any] | None = None) -> TrainConfig:
    """`base` (e.g. a checkpoint's config), then the file at `path`, then `overrides`, validated."""
    data = dict(base or {})
    if path is not None:
        data.update(read_config_file(path))
    return TrainConfig.from_dict(apply_overrides(data, overrides))
