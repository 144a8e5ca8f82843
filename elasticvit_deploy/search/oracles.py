"""Latency oracles of the search: an installed predictor (table or learned), or live measurement on a device.

`PredictorOracle` answers a whole population in one vectorised call. `LiveOracle` exports every candidate it is
asked about (the export cache keeps each subnet's file) and measures it through the farm harness; the results store
keeps every measurement, so a candidate is measured once per device however often the search asks.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from supernet import encoding as enc
from supernet.space import SearchSpace

from ..latency import builder
from ..latency.model import ArchLatencyModel


class PredictorOracle:
    """Predicted latency from an installed table or learned predictor (`kind` says which)."""

    expensive = False

    def __init__(self, model: ArchLatencyModel, kind: str):
        self.model, self.kind = model, kind

    def latency_ms(self, matrix: np.ndarray) -> np.ndarray:
        return self.model.predict_batch(np.atleast_2d(matrix))

    def identity(self) -> str:
        """Changes when the predictor does (a rebuilt or re-imported one), so a saved search is not reused."""
        blob = json.dumps([self.model.predictor.describe(), self.model.scale, self.model.offset_ms], sort_keys=True,
                          default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class LiveOracle:
    """Measured latency: each candidate exported to TFLite and measured on a device (cached per device)."""

    kind = "live"
    expensive = True

    def __init__(self, space: SearchSpace, measurer: builder.Measurer):
        self.space, self.measurer = space, measurer
        self.measured: dict[bytes, float] = {}

    def latency_ms(self, matrix: np.ndarray) -> np.ndarray:
        out = []
        for row in np.atleast_2d(np.asarray(matrix, dtype=np.int64)):
            key = row.tobytes()
            if key not in self.measured:
                ms, _ = self.measurer.latency_ms(builder.export_arch(enc.decode(row, self.space), self.space))
                self.measured[key] = ms
            out.append(self.measured[key])
        return np.array(out, dtype=np.float64)

    def identity(self) -> str:
        info = self.measurer.target.device_info()
        return f"{info.get('fingerprint')}|{self.measurer.target.runtime_version()}|{self.measurer.statistic}"
