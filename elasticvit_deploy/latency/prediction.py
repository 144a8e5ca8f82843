"""One arch's predicted latency with its per-block breakdown: what `elasticvit-deploy latency` reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from supernet.arch import Arch
from supernet.documents import header

from .blocks import Block
from .model import ArchLatencyModel

__all__ = ["BlockLatency", "Prediction", "predict_arch"]

DOCUMENT_KIND = "latency-prediction"
DOCUMENT_VERSION = 1


@dataclass(frozen=True)
class BlockLatency:
    """One block of the arch (with the part it belongs to) and its predicted ms, before calibration."""

    part: str
    block: Block
    ms: float


@dataclass(frozen=True)
class Prediction:
    """The calibrated latency of an arch on a device (``scale * sum(blocks) + offset_ms``) and its blocks."""

    device: str
    space: str
    predictor: dict[str, Any]  # name, kind, convention
    ms: float
    scale: float
    offset_ms: float
    blocks: tuple[BlockLatency, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**header(DOCUMENT_KIND, DOCUMENT_VERSION), "ms": round(self.ms, 6), "target": self.device,
                "space": self.space, "predictor": self.predictor,
                "calibration": {"scale": self.scale, "offset_ms": self.offset_ms},
                "blocks": [{"part": b.part, "key": b.block.table_key, "block": b.block.to_dict(),
                            "ms": round(b.ms, 6)} for b in self.blocks]}


def predict_arch(model: ArchLatencyModel, arch: Arch, device: str) -> Prediction:
    """`arch`'s latency on `device` from `model`, block by block (`UncoveredArchError` on a block it lacks)."""
    parts = tuple(BlockLatency(part, block, ms) for part, block, ms in model.breakdown(arch))
    total = model.scale * sum(b.ms for b in parts) + model.offset_ms
    described = model.predictor.describe()
    return Prediction(device, model.space.name, {k: described[k] for k in ("name", "kind", "convention")},
                      total, model.scale, model.offset_ms, parts)
