"""Latency prediction: archs as sums of blocks, the nn-Meter phone tables, learned block predictors, and a builder
that measures a new device. `load_predictor(device, space)` gives the installed predictor of a device as an
`ArchLatencyModel` (`predict(arch)`, `breakdown(arch)`, `predict_batch(encoded_archs)`)."""

from .model import ArchLatencyModel
from .predictors import load_predictor

__all__ = ["ArchLatencyModel", "load_predictor"]
