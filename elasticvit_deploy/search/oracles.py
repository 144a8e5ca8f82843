"""Latency oracles of the search: an installed predictor (table or learned), or live measurement on a device; and
the `--oracle` choices, which say which oracle the evolution asks and whether the best candidates are then measured.

`PredictorOracle` answers a whole population in one vectorised call. `LiveOracle` exports every candidate it is
asked about (the export cache keeps each subnet's file) and measures it through the farm harness; the results store
keeps every measurement, so a candidate is measured once per device however often the search asks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from supernet import encoding as enc
from supernet.space import SearchSpace

from ..latency.errors import PredictorError
from ..latency.exports import export_arch
from ..latency.model import ArchLatencyModel, UncoveredArchError
from ..latency.predictors import PredictorKind, load_predictor
from .measuring import MeasuringSetup
from .protocols import LatencyOracle

__all__ = ["ORACLES", "InstalledPredictors", "LiveOracle", "OracleChoice", "PredictorOracle", "content_digest"]


def content_digest(model: ArchLatencyModel) -> str:
    """A digest of everything `model` predicts from: its compiled latency tables (every block latency the space
    can ask, per part), its calibration and its space; the same wherever the predictor's files lie."""
    h = hashlib.sha256(json.dumps([model.space.fingerprint, model.predictor.convention, model.scale,
                                   model.offset_ms]).encode())
    for factor in model.factors:
        h.update(json.dumps([factor.part, factor.columns, factor.choices], default=int).encode())
        h.update(np.ascontiguousarray(factor.table, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


class PredictorOracle:
    """Predicted latency from an installed table or learned predictor (`kind` is the predictor's)."""

    expensive = False

    def __init__(self, model: ArchLatencyModel):
        self.model = model
        self.kind = model.predictor.kind

    def latency_ms(self, matrix: np.ndarray) -> np.ndarray:
        return self.model.predict_batch(np.atleast_2d(matrix))

    def predicted_ms(self, matrix: np.ndarray) -> list[float | None]:
        return [float(v) for v in self.latency_ms(matrix)]

    def measured_ms(self, latency: np.ndarray) -> list[float | None]:
        return [None] * len(latency)

    def identity(self) -> dict[str, Any]:
        """The predictor's content digest: changes when the predictor does (a rebuilt one, another table), not
        when its files move (tables imported into another user-data directory)."""
        return {"predictor": self.model.predictor.name, "content": content_digest(self.model)}

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.identity(), "scale": self.model.scale, "offset_ms": self.model.offset_ms}


class LiveOracle:
    """Measured latency: each candidate exported to TFLite and measured on a device (cached per device); the
    device's installed predictor, if any, gives the predictions reported beside the measurements."""

    kind = "live"
    expensive = True

    def __init__(self, space: SearchSpace, setup: MeasuringSetup, predictor: ArchLatencyModel | None = None):
        self.space, self.setup, self.predictor = space, setup, predictor
        self.measured: dict[bytes, float] = {}

    def latency_ms(self, matrix: np.ndarray) -> np.ndarray:
        out = []
        for row in np.atleast_2d(np.asarray(matrix, dtype=np.int64)):
            key = row.tobytes()
            if key not in self.measured:
                ms, _ = self.setup.measurer.latency_ms(export_arch(enc.decode(row, self.space), self.space))
                self.measured[key] = ms
            out.append(self.measured[key])
        return np.array(out, dtype=np.float64)

    def predicted_ms(self, matrix: np.ndarray) -> list[float | None]:
        if self.predictor is not None:
            try:
                return [float(v) for v in self.predictor.predict_batch(np.atleast_2d(matrix))]
            except UncoveredArchError:  # a predictor of these devices that does not cover these subnets
                pass
        return [None] * len(np.atleast_2d(matrix))

    def measured_ms(self, latency: np.ndarray) -> list[float | None]:
        return [float(v) for v in latency]

    def identity(self) -> dict[str, Any]:
        """The device (fingerprint), its runtime, the statistic read and the measurement settings."""
        return self.setup.identity()

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "measured_on": self.setup.describe(),
                "settings": self.setup.identity()["settings"]}


class InstalledPredictors:
    """The installed predictor of each (device, kind) in one space, loaded once (PredictorError when none)."""

    def __init__(self, space: SearchSpace):
        self.space = space
        self._models: dict[tuple[str, PredictorKind], ArchLatencyModel] = {}

    def __call__(self, device: str, kind: PredictorKind) -> ArchLatencyModel:
        if (device, kind) not in self._models:
            self._models[device, kind] = load_predictor(device, self.space, kind)
        return self._models[device, kind]


@dataclass(frozen=True)
class OracleChoice:
    """One `--oracle` value: what answers latency during the evolution (`predictor`: the installed predictor kind,
    None: live measurement), and whether the best candidates are then measured and re-ranked (`rerank`)."""

    name: str
    predictor: PredictorKind | None
    rerank: bool = False

    @property
    def measures(self) -> bool:
        """Whether the search measures on the device (live or re-ranked)."""
        return self.predictor is None or self.rerank

    def search_budget(self, budget_ms: float, slack: float) -> float:
        """The budget the evolution searches under: relaxed by `slack` when measurements re-rank its best."""
        return budget_ms * (1 + slack) if self.rerank else budget_ms

    def build(self, space: SearchSpace, device: str, predictors: Callable[[str, PredictorKind], ArchLatencyModel],
              setup: Callable[[str], MeasuringSetup]) -> LatencyOracle:
        """The oracle answering for `device` (PredictorError when its predictor is not installed)."""
        if self.predictor is not None:
            return PredictorOracle(predictors(device, self.predictor))
        try:
            predictor: ArchLatencyModel | None = predictors(device, "auto")
        except PredictorError:  # live needs no predictor: the result then has no predictions
            predictor = None
        return LiveOracle(space, setup(device), predictor)


ORACLES: dict[str, OracleChoice] = {c.name: c for c in (
    OracleChoice("auto", "auto"),        # the best installed predictor (the table if there is one)
    OracleChoice("table", "table"),
    OracleChoice("learned", "learned"),
    OracleChoice("live", None),          # every candidate measured on the device
    OracleChoice("hybrid", "auto", rerank=True),  # predict under a relaxed budget, then measure the best
)}
