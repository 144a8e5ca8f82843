"""Agreement between an exported model's outputs and the PyTorch reference on the same inputs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

FP32_ATOL = 1e-4  # an fp32 export whose outputs differ from PyTorch by more than this fails


@dataclass(frozen=True)
class Parity:
    samples: int
    max_abs_diff: float
    mean_abs_diff: float
    reference_max_abs: float   # scale of the outputs, to read the diffs against
    top1_agreement: float | None  # share of samples with the same arg-max (classifier outputs only)
    finite: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(reference: list[np.ndarray], outputs: list[np.ndarray]) -> Parity:
    """Per-sample outputs (same shapes) -> max/mean abs diff and top-1 agreement when outputs are (1, classes)."""
    if len(reference) != len(outputs) or not reference:
        raise ValueError("reference and outputs must be non-empty lists of the same length")
    ref = np.stack([np.asarray(r, dtype=np.float64).reshape(-1) for r in reference])
    out = np.stack([np.asarray(o, dtype=np.float64).reshape(-1) for o in outputs])
    finite = bool(np.isfinite(out).all())
    diff = np.abs(ref - out) if finite else np.full_like(ref, np.inf)
    classifier = all(np.asarray(r).ndim == 2 and np.asarray(r).shape[0] == 1 for r in reference)
    top1 = float(np.mean(ref.argmax(axis=1) == out.argmax(axis=1))) if classifier and finite else None
    return Parity(len(reference), float(diff.max()), float(diff.mean()), float(np.abs(ref).max()), top1, finite)
