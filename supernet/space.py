"""Search spaces as data: the ElasticViT space of the paper's Table 1 and smaller spaces of the same structure.

A space is a frozen dataclass, so it is hashable and can key caches. Every structural fact the supernet, the FLOPs
counter and the samplers need (stage kinds, strides, choices, head sizes) lives here; nothing is special-cased by name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

CNNKind = Literal["mbv2", "mbv3"]


@dataclass(frozen=True)
class StemSpace:
    """The stride-1 MBv2 stem (expansion 1, no SE). Its width always equals the first-conv width."""

    depths: tuple[int, ...]
    kernels: tuple[int, ...]


@dataclass(frozen=True)
class CNNStageSpace:
    """A stage of MobileNet blocks: MBv2 (no SE) or MBv3 (with SE). One kernel and expansion per stage."""

    name: str
    kind: CNNKind
    stride: int
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expansions: tuple[int, ...]

    @property
    def se(self) -> bool:
        return self.kind == "mbv3"

    @property
    def is_transformer(self) -> bool:
        return False

    def micro_choices(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The two per-stage micro dimensions (kernel, expansion)."""
        return self.kernels, self.expansions


@dataclass(frozen=True)
class TransformerStageSpace:
    """A transformer stage: an MBv3 downsampling block, then `depth` x (attention + FFN)."""

    name: str
    stride: int
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    mlp_ratios: tuple[int, ...]
    v_scales: tuple[int, ...]

    @property
    def is_transformer(self) -> bool:
        return True

    def micro_choices(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The two per-stage micro dimensions (MLP ratio, V-scale)."""
        return self.mlp_ratios, self.v_scales


StageSpace = CNNStageSpace | TransformerStageSpace


@dataclass(frozen=True)
class SearchSpace:
    """One elastic search space.

    Stage order is fixed: first conv, stem, then `stages` (CNN stages first, then transformer stages).
    Constraints (from the official code): the stem width equals the first-conv width, and widths never decrease
    from the stem through the last stage. The head (MBPool: per-token expansion x `head_expansion`, mean over tokens,
    an FC of `head_width`, the classifier of `num_classes`) is sized here, per space: 1984 and 1000 in the paper's
    (official yaml `classifer_head_dim`).
    """

    name: str
    resolutions: tuple[int, ...]
    first_conv_widths: tuple[int, ...]
    stem: StemSpace
    stages: tuple[StageSpace, ...]
    num_classes: int
    crop_size: int
    head_width: int
    head_expansion: int = 6
    downsampler_expansion: int = 6
    head_dim: int = 16
    first_conv_stride: int = 2
    in_channels: int = 3
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        kinds = [s.is_transformer for s in self.stages]
        if kinds != sorted(kinds):
            raise ValueError(f"space {self.name}: CNN stages must precede transformer stages")
        for s in self.stages:
            if s.is_transformer and any(w % self.head_dim for w in s.widths):
                raise ValueError(f"space {self.name}: {s.name} widths must be multiples of head_dim {self.head_dim}")

    @property
    def cnn_stages(self) -> tuple[CNNStageSpace, ...]:
        return tuple(s for s in self.stages if not s.is_transformer)  # type: ignore[misc]

    @property
    def transformer_stages(self) -> tuple[TransformerStageSpace, ...]:
        return tuple(s for s in self.stages if s.is_transformer)  # type: ignore[misc]

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description; `fingerprint` hashes it so checkpoints can name the space they belong to."""
        d = asdict(self)
        d.pop("description")
        d["stages"] = [dict(asdict(s), transformer=s.is_transformer) for s in self.stages]
        return d

    @property
    def fingerprint(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _span(lo: int, hi: int, step: int = 1) -> tuple[int, ...]:
    return tuple(range(lo, hi + 1, step))


ELASTICVIT = SearchSpace(
    name="elasticvit",
    description="The ElasticViT search space (paper Table 1, official code's constraints), ImageNet head.",
    resolutions=(128, 160, 176, 192, 224, 256),
    first_conv_widths=(16, 24),
    stem=StemSpace(depths=(1, 2), kernels=(3, 5)),
    stages=(
        CNNStageSpace("C0", "mbv2", 2, _span(16, 32, 8), _span(2, 5), (3, 5), (3, 4, 5, 6)),
        CNNStageSpace("C1", "mbv3", 2, _span(16, 48, 8), _span(2, 6), (3, 5), (3, 4, 5, 6)),
        TransformerStageSpace("T0", 2, _span(48, 96, 16), _span(1, 5), (2, 3, 4, 5), (2, 3, 4)),
        TransformerStageSpace("T1", 1, _span(80, 160, 16), _span(1, 6), (2, 3, 4, 5), (2, 3, 4)),
        TransformerStageSpace("T2", 2, _span(144, 288, 16), _span(1, 6), (2, 3, 4, 5), (2, 3, 4)),
        TransformerStageSpace("T3", 2, _span(160, 320, 16), _span(1, 6), (2, 3, 4, 5), (2, 3, 4)),
    ),
    num_classes=1000,
    crop_size=224,
    head_width=1984,
)

TINY = SearchSpace(
    name="tiny",
    description="A small space of the same structure for CPU demos and fast tests (32-48 px inputs, 10 classes).",
    resolutions=(32, 40, 48),
    first_conv_widths=(8, 16),
    stem=StemSpace(depths=(1, 2), kernels=(3, 5)),
    stages=(
        CNNStageSpace("C0", "mbv2", 2, (16, 24), (1, 2), (3, 5), (3, 4, 6)),
        CNNStageSpace("C1", "mbv3", 1, (16, 24, 32), (1, 2, 3), (3, 5), (3, 4, 6)),
        TransformerStageSpace("T0", 2, (32, 48), (1, 2), (2, 3), (2, 3)),
        TransformerStageSpace("T1", 1, (48, 64), (1, 2), (2, 3), (2, 3)),
        TransformerStageSpace("T2", 2, (64, 80), (1, 2), (2, 3), (2, 3)),
        TransformerStageSpace("T3", 1, (64, 80, 96), (1, 2), (2, 3), (2, 3)),
    ),
    num_classes=10,
    crop_size=32,
    head_width=256,
)

_REGISTRY: dict[str, SearchSpace] = {}


def register_space(space: SearchSpace) -> SearchSpace:
    """Make a space available by name to the CLI and to `get_space`."""
    _REGISTRY[space.name] = space
    return space


def get_space(name: str) -> SearchSpace:
    """Look a space up by name; raises KeyError naming the known spaces."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown search space {name!r} (known: {', '.join(sorted(_REGISTRY))})") from None


def space_names() -> list[str]:
    return sorted(_REGISTRY)


register_space(ELASTICVIT)
register_space(TINY)
