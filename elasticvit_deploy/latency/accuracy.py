"""How close predictions are to measurements: the relative-error figures every accuracy report uses
(`ErrorFigures`: within 5% / 10%, RMSE, bias, worst), from `compare(predicted, measured)`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["ErrorFigures", "compare"]


@dataclass(frozen=True)
class ErrorFigures:
    """Relative errors of `n` predictions: shares within 5% and 10%, RMSE, mean (bias) and worst, in percent."""

    n: int
    within_5pct: float
    within_10pct: float
    rmse_pct: float
    bias_pct: float
    worst_pct: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> ErrorFigures:
        return cls(int(data["n"]), float(data["within_5pct"]), float(data["within_10pct"]), float(data["rmse_pct"]),
                   float(data["bias_pct"]), float(data["worst_pct"]))


def compare(predicted: np.ndarray, measured: np.ndarray) -> ErrorFigures:
    """The errors of `predicted` against `measured` (ms, same length, at least one)."""
    rel = np.asarray(predicted, dtype=np.float64) / np.asarray(measured, dtype=np.float64) - 1
    return ErrorFigures(n=int(len(rel)), within_5pct=float(np.mean(np.abs(rel) <= 0.05)),
                        within_10pct=float(np.mean(np.abs(rel) <= 0.10)),
                        rmse_pct=float(np.sqrt(np.mean(rel ** 2)) * 100), bias_pct=float(np.mean(rel) * 100),
                        worst_pct=float(np.max(np.abs(rel)) * 100))
