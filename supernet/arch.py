"""`Arch`: one subnet, stage-wise, with its canonical JSON form and the official 10-element tuple encoding.

Canonical JSON (schema documented in README.md)::

    {"resolution": 224, "first_conv": 16,
     "stem": {"width": 16, "depth": 1, "kernel": 3},
     "stages": [{"width": 24, "depth": 3, "kernel": 3, "expansion": 3},          # CNN stage
                {"width": 64, "depth": 2, "mlp_ratio": 2, "v_scale": 2}, ...]}  # transformer stage

The official encoding (ElasticViT code) is
``[res, channels[7], depths[7], conv_ratio per CNN layer, kernel per CNN layer, mlp per T layer, heads per T layer,
window per T layer, qk per T layer, v per T layer]`` where channels/depths list the stem, then every stage.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from .errors import BadInput
from .space import SearchSpace

MISSING = object()
MAX_LISTED = 5  # violations spelled out in an ArchError's message; the rest are counted
_BOUNDED = reprlib.Repr()  # a repr bounded in size and depth, however a value nests
_BOUNDED.maxlevel, _BOUNDED.maxdict, _BOUNDED.maxstring, _BOUNDED.maxother = 3, 4, 40, 40


def shorten(value: Any, limit: int = 80) -> str:
    """`repr(value)` for a message, cut to about `limit` characters (strings and bytes with their full length), so
    a huge or deeply nested user value cannot flood an error line."""
    if isinstance(value, (str, bytes)):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... ({len(value):,} {'chars' if isinstance(value, str) else 'bytes'})"
    text = _BOUNDED.repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


@dataclass(frozen=True)
class Violation:
    """One problem with an arch: the field path, the offending value, and what is wrong (with the allowed choices)."""

    field: str
    value: Any
    problem: str

    def __str__(self) -> str:
        if not self.field:
            return self.problem
        if self.value is MISSING:
            return f"{self.field} {self.problem}"
        return f"{self.field}: {shorten(self.value)} {self.problem}"


class ArchError(BadInput):
    """An arch that cannot be parsed or does not belong to a space. Carries every violation found."""

    def __init__(self, violations: Sequence[Violation] | str):
        if isinstance(violations, str):
            violations = [Violation("", MISSING, violations)]
        self.violations = list(violations)
        listed = [str(v) for v in self.violations[:MAX_LISTED]]
        if len(self.violations) > MAX_LISTED:
            listed.append(f"and {len(self.violations) - MAX_LISTED:,} more")
        super().__init__("; ".join(listed))


@dataclass(frozen=True)
class StemConfig:
    width: int
    depth: int
    kernel: int


@dataclass(frozen=True)
class CNNStageConfig:
    width: int
    depth: int
    kernel: int
    expansion: int

    @property
    def is_transformer(self) -> bool:
        return False

    @property
    def micro(self) -> tuple[int, int]:
        return self.kernel, self.expansion


@dataclass(frozen=True)
class TransformerStageConfig:
    width: int
    depth: int
    mlp_ratio: int
    v_scale: int

    @property
    def is_transformer(self) -> bool:
        return True

    @property
    def micro(self) -> tuple[int, int]:
        return self.mlp_ratio, self.v_scale


StageConfig = CNNStageConfig | TransformerStageConfig

_STEM_KEYS = ("width", "depth", "kernel")
_CNN_KEYS = ("width", "depth", "kernel", "expansion")
_T_KEYS = ("width", "depth", "mlp_ratio", "v_scale")
_TOP_KEYS = ("resolution", "first_conv", "stem", "stages")


@dataclass(frozen=True)
class Arch:
    """One subnet. Immutable and hashable, so it can key caches, banks and result stores."""

    resolution: int
    first_conv: int
    stem: StemConfig
    stages: tuple[StageConfig, ...]

    @property
    def widths(self) -> tuple[int, ...]:
        """Stem width, then each stage's width (the official `channels` vector)."""
        return (self.stem.width,) + tuple(s.width for s in self.stages)

    @property
    def depths(self) -> tuple[int, ...]:
        return (self.stem.depth,) + tuple(s.depth for s in self.stages)

    # ----- canonical JSON -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        stages = []
        for s in self.stages:
            keys = _T_KEYS if s.is_transformer else _CNN_KEYS
            stages.append({k: getattr(s, k) for k in keys})
        return {
            "resolution": self.resolution,
            "first_conv": self.first_conv,
            "stem": {k: getattr(self.stem, k) for k in _STEM_KEYS},
            "stages": stages,
        }

    def to_json(self) -> str:
        """Canonical one-line JSON (stable key order, no spaces), suitable for hashing and JSON lines."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any) -> Arch:
        """Parse the canonical object; every structural problem is reported with its field path."""
        errors: list[Violation] = []
        if not isinstance(data, dict):
            raise ArchError([Violation("arch", type(data).__name__, "is not a JSON object")])
        _unknown_keys(data, _TOP_KEYS, "", errors)
        res = _int_field(data, "resolution", "resolution", errors)
        first = _int_field(data, "first_conv", "first_conv", errors)
        stem_d = data.get("stem", MISSING)
        stem = None
        if stem_d is MISSING:
            errors.append(Violation("stem", MISSING, "is missing"))
        elif not isinstance(stem_d, dict):
            errors.append(Violation("stem", stem_d, "must be an object with keys width, depth, kernel"))
        else:
            _unknown_keys(stem_d, _STEM_KEYS, "stem.", errors)
            vals = [_int_field(stem_d, k, f"stem.{k}", errors) for k in _STEM_KEYS]
            stem = StemConfig(*vals) if _all_present(vals) else None
        stages_d = data.get("stages", MISSING)
        stages: list[StageConfig] = []
        if stages_d is MISSING:
            errors.append(Violation("stages", MISSING, "is missing"))
        elif not isinstance(stages_d, list):
            errors.append(Violation("stages", stages_d, "must be a list of stage objects"))
        else:
            for i, sd in enumerate(stages_d):
                st = _parse_stage(sd, f"stages[{i}]", errors)
                if st is not None:
                    stages.append(st)
        if errors:
            raise ArchError(errors)
        # every missing field above appended a violation, so without errors all of them are present
        assert res is not None and first is not None and stem is not None
        return cls(res, first, stem, tuple(stages))

    @classmethod
    def from_json(cls, text: str) -> Arch:
        """Parse either the canonical object or the official tuple (needs no space for the object form)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ArchError(f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
        return cls.from_dict(data)

    # ----- official tuple encoding ----------------------------------------------------------------------------
    def to_official(self, space: SearchSpace) -> list[Any]:
        """The official 10-element encoding (per-layer lists expanded from the stage-wise choices)."""
        conv_ratio = [1] * self.stem.depth
        kernels = [self.stem.kernel] * self.stem.depth
        mlp, heads, window, qk, v = [], [], [], [], []
        for s in self.stages:
            if isinstance(s, TransformerStageConfig):
                mlp += [s.mlp_ratio] * s.depth
                heads += [s.width // space.head_dim] * s.depth
                window += [1] * s.depth
                qk += [1] * s.depth
                v += [s.v_scale] * s.depth
            else:
                conv_ratio += [s.expansion] * s.depth
                kernels += [s.kernel] * s.depth
        return [self.resolution, list(self.widths), list(self.depths), conv_ratio, kernels, mlp, heads, window, qk, v]

    @classmethod
    def from_official(cls, seq: Any, space: SearchSpace) -> Arch:
        """Load the official tuple, checking that its per-layer lists agree with the depths and are stage-uniform."""
        errors: list[Violation] = []
        if not isinstance(seq, (list, tuple)) or len(seq) != 10:
            raise ArchError("the official encoding is a list of 10 elements: [res, channels, depths, conv_ratio, "
                            "kernel, mlp, heads, window, qk, v]")
        res, channels, depths, conv_ratio, kernels, mlp, heads, window, qk, v = seq
        n = 1 + len(space.stages)
        names = ("res", "channels", "depths", "conv_ratio", "kernel", "mlp", "heads", "window", "qk", "v")
        if not _is_int(res):
            errors.append(Violation("res", res, "must be an integer"))
        for name, lst in zip(names[1:], seq[1:], strict=True):
            if not isinstance(lst, (list, tuple)) or not all(_is_int(x) for x in lst):
                errors.append(Violation(name, lst, "must be a list of integers"))
        if errors:
            raise ArchError(errors)
        for name, lst in (("channels", channels), ("depths", depths)):
            if len(lst) != n:
                errors.append(Violation(name, list(lst), f"must have {n} entries (stem + {len(space.stages)} stages)"))
        if errors:
            raise ArchError(errors)
        cnn_depths = [depths[0]] + [d for d, s in zip(depths[1:], space.stages, strict=True) if not s.is_transformer]
        t_depths = [d for d, s in zip(depths[1:], space.stages, strict=True) if s.is_transformer]
        cnn_labels = ["stem"] + [s.name for s in space.cnn_stages]
        t_labels = [s.name for s in space.transformer_stages]
        per_layer: dict[str, list[int]] = {}
        for name, lst, ds, lbls in (("conv_ratio", conv_ratio, cnn_depths, cnn_labels),
                                    ("kernel", kernels, cnn_depths, cnn_labels),
                                    ("mlp", mlp, t_depths, t_labels), ("heads", heads, t_depths, t_labels),
                                    ("window", window, t_depths, t_labels), ("qk", qk, t_depths, t_labels),
                                    ("v", v, t_depths, t_labels)):
            if len(lst) != sum(ds):
                errors.append(Violation(name, list(lst), f"has {len(lst)} entries but the depths {list(ds)} of "
                                        f"{'/'.join(lbls)} need {sum(ds)}"))
                continue
            per_layer[name] = _stage_values(name, list(lst), ds, lbls, errors)
        if errors:
            raise ArchError(errors)
        if per_layer["conv_ratio"][0] != 1:
            errors.append(Violation("conv_ratio[stem]", per_layer["conv_ratio"][0], "must be 1 (the stem is MBv2 e=1)"))
        t_widths = [channels[1 + j] for j, s in enumerate(space.stages) if s.is_transformer]
        for i, (h, c) in enumerate(zip(per_layer["heads"], t_widths, strict=True)):
            if h != c // space.head_dim:
                errors.append(Violation(f"heads[{t_labels[i]}]", h, f"must be width/{space.head_dim} = "
                                        f"{c // space.head_dim}"))
        for name in ("window", "qk"):
            for i, val in enumerate(per_layer[name]):
                if val != 1:
                    errors.append(Violation(f"{name}[{t_labels[i]}]", val, "must be 1 (global attention, qk_scale 1)"))
        if errors:
            raise ArchError(errors)
        stem = StemConfig(channels[0], depths[0], per_layer["kernel"][0])
        stages: list[StageConfig] = []
        ci = ti = 0
        for j, s in enumerate(space.stages):
            if s.is_transformer:
                stages.append(TransformerStageConfig(channels[1 + j], depths[1 + j], per_layer["mlp"][ti],
                                                     per_layer["v"][ti]))
                ti += 1
            else:
                ci += 1
                stages.append(CNNStageConfig(channels[1 + j], depths[1 + j], per_layer["kernel"][ci],
                                             per_layer["conv_ratio"][ci]))
        return cls(res, channels[0], stem, tuple(stages))


def parse_arch(data: Any, space: SearchSpace) -> Arch:
    """Accept the canonical object or the official list encoding (as loaded from JSON)."""
    if isinstance(data, list):
        return Arch.from_official(data, space)
    return Arch.from_dict(data)


def _stage_values(name: str, lst: list[int], depths: Sequence[int], labels: Sequence[str],
                  errors: list[Violation]) -> list[int]:
    """Collapse a per-layer list to one value per stage; mixed values inside a stage are a violation."""
    out, pos = [], 0
    for d, label in zip(depths, labels, strict=True):
        chunk = lst[pos:pos + d]
        pos += d
        if len(set(chunk)) > 1:
            errors.append(Violation(f"{name}[{label}]", chunk, "mixes values inside one stage; this space is "
                                    "sampled stage-wise (one value per stage)"))
        out.append(chunk[0] if chunk else 0)
    return out


def _parse_stage(sd: Any, path: str, errors: list[Violation]) -> StageConfig | None:
    if not isinstance(sd, dict):
        errors.append(Violation(path, sd, "must be an object"))
        return None
    is_t = "mlp_ratio" in sd or "v_scale" in sd
    is_c = "kernel" in sd or "expansion" in sd
    if is_t and is_c:
        errors.append(Violation(path, sorted(sd), "mixes CNN keys (kernel, expansion) with transformer keys "
                                "(mlp_ratio, v_scale)"))
        return None
    keys = _T_KEYS if is_t else _CNN_KEYS
    _unknown_keys(sd, keys, f"{path}.", errors)
    vals = [_int_field(sd, k, f"{path}.{k}", errors) for k in keys]
    if not _all_present(vals):
        return None
    return TransformerStageConfig(*vals) if is_t else CNNStageConfig(*vals)


def _unknown_keys(d: dict, allowed: Sequence[str], prefix: str, errors: list[Violation]) -> None:
    for k in d:
        if k not in allowed:
            name = k if len(k) <= 40 else shorten(k, 40)
            errors.append(Violation(f"{prefix}{name}", d[k], f"is an unknown field (allowed: {', '.join(allowed)})"))


def _all_present(vals: list[int | None]) -> TypeGuard[list[int]]:
    """Whether every parsed field is present (a missing or invalid one is None and already a violation)."""
    return None not in vals


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _int_field(d: dict, key: str, path: str, errors: list[Violation]) -> int | None:
    if key not in d:
        errors.append(Violation(path, MISSING, "is missing"))
        return None
    v = d[key]
    if not _is_int(v):
        errors.append(Violation(path, v, "must be an integer"))
        return None
    return v
