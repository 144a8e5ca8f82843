"""Latency prediction: archs as sums of blocks, the nn-Meter phone tables, learned block predictors, transfer
predictors (a new device from a few whole subnets, on known predictors), and builders that measure a new device.
`load_predictor(device, space)` gives the installed predictor of a device as an `ArchLatencyModel`
(`predict(arch)`, `breakdown(arch)`, `predict_batch(encoded_archs)`)."""

from .model import ArchLatencyModel
from .predictors import load_predictor

__all__ = ["ArchLatencyModel", "load_predictor"]
