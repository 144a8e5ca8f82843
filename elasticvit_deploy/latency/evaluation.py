"""How accurate a predictor is, as `predictor eval` reports it (figures of `accuracy.ErrorFigures`): on measured
blocks the predictor was not fitted on (held out), and on whole models, either measured end to end or, given a full
nn-Meter table, the table's own sums over random subnets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from supernet import encoding as enc
from supernet.arch import ArchError, parse_arch
from supernet.documents import header
from supernet.sampling import sample_uniform
from supernet.space import SearchSpace
from supernet.validation import check_arch

from ..errors import BadInput
from ..jsontext import load_json_text
from .accuracy import ErrorFigures, compare
from .blocks import FAMILIES, Block
from .learned import read_training_set
from .measurements import MeasurementsError, read_measurements
from .model import ArchLatencyModel, UncoveredArchError
from .predictors import learned_dir
from .tables import TablePredictor

__all__ = ["ErrorFigures", "Evaluation", "EvaluationError", "compare", "evaluate", "read_model_measurements"]

DOCUMENT_KIND = "predictor-evaluation"
DOCUMENT_VERSION = 1


class EvaluationError(BadInput):
    """Measurements a predictor cannot be evaluated on (other convention, nothing held out, not a full table)."""


@dataclass(frozen=True)
class Evaluation:
    """A predictor's errors on held-out blocks ("all", then per family) and, when there are any, whole models."""

    device: str
    held_out_blocks: dict[str, ErrorFigures]
    models: ErrorFigures | None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**header(DOCUMENT_KIND, DOCUMENT_VERSION), "device": self.device,
                               "held_out_blocks": {k: v.to_dict() for k, v in self.held_out_blocks.items()}}
        if self.models is not None:
            out["models"] = self.models.to_dict()
        return out


def _per_family(predicted: np.ndarray, measured: np.ndarray, families: Sequence[str]) -> dict[str, ErrorFigures]:
    out = {"all": compare(predicted, measured)}
    for f in FAMILIES:
        idx = [i for i, fam in enumerate(families) if fam == f]
        if idx:
            out[f] = compare(predicted[idx], measured[idx])
    return out


def read_model_measurements(path: str | Path, space: SearchSpace) -> tuple[np.ndarray, np.ndarray]:
    """Encoded archs and measured ms from JSON lines ``{"arch": ..., "ms": ...}`` (what validation writes)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise MeasurementsError(f"{path}: cannot read ({e.__class__.__name__})") from None
    archs, ms = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        row = load_json_text(line, f"{path}:{n}")
        expected = f"{path}:{n}: expected {{\"arch\": ..., \"ms\": ...}} of space {space.name}"
        value = row.get("ms") if isinstance(row, dict) else None
        if not isinstance(row, dict) or "arch" not in row or not isinstance(value, (int, float)) \
                or isinstance(value, bool):
            raise MeasurementsError(expected)
        try:
            archs.append(check_arch(parse_arch(row["arch"], space), space))
        except ArchError as e:
            raise MeasurementsError(f"{expected} ({e})") from None
        ms.append(float(value))
    if not archs:
        raise MeasurementsError(f"{path}: no measured models")
    return enc.encode_many(archs), np.asarray(ms)


def _trained_on(model: ArchLatencyModel, device: str) -> set[Block]:
    if model.predictor.kind != "learned":
        return set()
    return read_training_set(learned_dir(device, model.space))


def evaluate(model: ArchLatencyModel, device: str, source: str | Path, models_file: str | Path | None = None,
             n_models: int = 1000) -> Evaluation:
    """Errors of `device`'s predictor (`model`) on the measured blocks in `source` it was not fitted on, and on
    whole models: those in `models_file`, or else, when `source` is a full nn-Meter table, `n_models` random
    subnets whose latency is the table's sum."""
    blocks, ms, convention = read_measurements(source)
    if convention != model.predictor.convention:
        raise EvaluationError(f"{source}: {convention} blocks, but the predictor uses the "
                              f"{model.predictor.convention} convention")
    trained = _trained_on(model, device)
    held = [i for i, b in enumerate(blocks) if b not in trained]
    if not held:
        raise EvaluationError(f"{source}: every block in it was used to fit the predictor; nothing is held out")
    measured = np.asarray(ms)[held]
    predicted = model.predictor.predict_blocks([blocks[i] for i in held])
    known = ~np.isnan(predicted)
    held_out = _per_family(predicted[known], measured[known], [blocks[i].family for i in np.asarray(held)[known]])
    models = None
    if models_file:
        rows, model_ms = read_model_measurements(models_file, model.space)
        models = compare(model.predict_batch(rows), model_ms)
    elif convention == "nnmeter":
        reference = ArchLatencyModel(
            TablePredictor("reference", {b.table_key: v for b, v in zip(blocks, ms, strict=True)}), model.space)
        rows = sample_uniform(model.space, n_models, seed=0)
        try:
            truth = reference.predict_batch(rows)
        except UncoveredArchError:
            raise EvaluationError(f"{source}: not a full table of space {model.space.name}; give --models") \
                from None
        models = compare(model.predict_batch(rows), truth)
    return Evaluation(device, held_out, models)
