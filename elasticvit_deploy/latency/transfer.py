"""Few-shot onboarding of a new device: a predictor fitted on a few whole subnets measured on it, as a
non-negative combination of known predictors (its bases, e.g. the four phone tables).

A block's latency is ``sum over bases b of w[b, family(block)] * base_b(block)``, and a model's is the sum of its
blocks plus an offset, so the model total is linear in the bases' per-family sums and `ArchLatencyModel`
(vectorised batches, breakdowns) works unchanged. The weights are fitted on the measured subnets with
`combination` (non-negative, on relative error), choosing by cross-validation among:
- ``single:<base>``: one base times a scale, plus an offset;
- ``combined``: a non-negative combination of all bases, plus an offset;
- once there are enough subnets (`PER_FAMILY_ROWS_PER_PARAMETER` per parameter), per-family weights on one base
  (``per-family:<base>``) or on the combined bases (``per-family:combined``), plus an offset.
The subnets to measure are chosen to cover the latency range (`covering_subnets`).

Saved as one JSON document, ``predictor.json`` (an ``elasticvit-deploy.transfer-predictor``): the bases by
description and content id (reopened with `predictors.resolve_base`, refused if one changed since the fit), the
weights, the choice with every candidate's cross-validated figures, and the measured subnets with their ms.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from supernet.arch import Arch, ArchError, parse_arch
from supernet.atomic import write_json_atomic
from supernet.documents import DocumentError, check_header, header
from supernet.space import ELASTICVIT, SearchSpace, get_space

from ..errors import BadInput, shorten
from ..export.errors import ExportError
from ..farm.adb import FarmError
from .blocks import FAMILIES, Block, Convention
from .builder import BuildStopped
from .combination import PER_FAMILY_ROWS_PER_PARAMETER, Candidate, Choice, LinearFit, choose, fit_nonnegative, fixed
from .learned import SUMMARY_KIND, SUMMARY_VERSION, FitError, PredictorFileError
from .measurer import Measurer, SubnetMeasurement, measure_archs
from .model import ArchLatencyModel, BlockPredictor
from .subnets import SubnetLog, covering_subnets, family_sums

__all__ = ["DOCUMENT_KIND", "FORMAT_VERSION", "MIN_SUBNETS", "TransferPredictor", "build_transfer",
           "check_bases", "covering_subnets", "fit_transfer"]

DOCUMENT_KIND = "transfer-predictor"  # predictor.json's format: elasticvit-deploy.transfer-predictor
FORMAT_VERSION = 1
MIN_SUBNETS = 3
TABLE_SPACE = ELASTICVIT.name  # the space the nn-Meter phone tables were measured in

Tick = Callable[[str], object]


def _space_of(base: BlockPredictor) -> str | None:
    return TABLE_SPACE if base.kind == "table" else base.describe().get("space")


def check_bases(space: SearchSpace, bases: Sequence[BlockPredictor], device: str | None = None) -> Convention:
    """The one block convention of `bases`, checked to be predictors of `space` with distinct names, none of
    them `device`'s own (saved) predictor; `BadInput` naming the first base that is not."""
    if not bases:
        raise BadInput("a transfer predictor needs at least one base predictor")
    seen: set[str] = set()
    for b in bases:
        if b.name in seen:
            raise BadInput(f"base {shorten(b.name)} is given twice")
        if b.name == device and b.kind != "table":
            raise BadInput(f"base {shorten(b.name)} is the predictor being built; name other bases")
        seen.add(b.name)
        own = _space_of(b)
        if own is None:
            raise BadInput(f"base {shorten(b.name)} records no search space; refit it with one")
        if own != space.name:
            raise BadInput(f"base {shorten(b.name)} is a predictor of space {shorten(own)}, not {shorten(space.name)}")
    first = bases[0]
    for b in bases[1:]:
        if b.convention != first.convention:
            raise BadInput(f"base {shorten(b.name)} follows the {b.convention} block convention and base "
                           f"{shorten(first.name)} the {first.convention} one: bases must share one convention")
    return first.convention


def _content_id(base: BlockPredictor) -> str:
    return str(base.content_id())  # type: ignore[attr-defined]


def _base_record(base: BlockPredictor, space: str) -> dict[str, Any]:
    """What reopens a base (`predictors.resolve_base`) and checks it is the one fitted on."""
    return {"name": base.name, "kind": base.kind, "convention": base.convention, "space": space,
            "content_id": _content_id(base)}


class TransferPredictor:
    """Block latencies as per-family non-negative combinations of base predictors (see the module docstring)."""

    kind = "transfer"
    scale = 1.0  # the model-level scale ArchLatencyModel applies; the weights carry it

    def __init__(self, name: str, space: str, convention: Convention, bases: Sequence[BlockPredictor],
                 weights: np.ndarray, offset_ms: float, selection: Choice,
                 measured_subnets: Sequence[SubnetMeasurement] = (), info: dict[str, Any] | None = None):
        self.name = name
        self.space = space
        self.convention = convention
        self.bases = list(bases)
        self.weights = np.asarray(weights, dtype=np.float64).reshape(len(self.bases), len(FAMILIES))
        self.offset_ms = float(offset_ms)
        self.selection = selection
        self.measured_subnets = list(measured_subnets)
        self.info = dict(info or {})

    @property
    def choice(self) -> str:
        """The name of the fit kept by cross-validation (e.g. ``combined``)."""
        return self.selection.name

    def predict_blocks(self, blocks: Sequence[Block]) -> np.ndarray:
        family = np.array([FAMILIES.index(b.family) for b in blocks], dtype=np.int64)
        out = np.zeros(len(blocks))
        for base, row in zip(self.bases, self.weights, strict=True):
            w = row[family]
            if (w > 0).any():
                out += np.where(w > 0, w * base.predict_blocks(blocks), 0.0)  # a zero weight ignores a NaN
        return out

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "convention": self.convention, "space": self.space,
                "bases": [_base_record(b, self.space) for b in self.bases],
                "choice": self.choice, "offset_ms": self.offset_ms,
                "weights": {b.name: dict(zip(FAMILIES, map(float, row), strict=True))
                            for b, row in zip(self.bases, self.weights, strict=True)},
                "fit": self.selection.to_dict(), **self.info,
                "subnets": [r.to_dict() for r in self.measured_subnets]}

    def content_id(self) -> str:
        """sha256 of what its predictions depend on: the convention, the weights, the offset and the bases'
        content ids (not where its file lies, nor when it was made)."""
        determining = {"convention": self.convention, "space": self.space, "offset_ms": self.offset_ms,
                       "weights": self.weights.tolist(), "bases": [_content_id(b) for b in self.bases]}
        return hashlib.sha256(json.dumps(determining, sort_keys=True).encode()).hexdigest()

    def summary(self, directory: str | Path) -> dict[str, Any]:
        """The description of this predictor saved in `directory`, as a document of its own."""
        return {**header(SUMMARY_KIND, SUMMARY_VERSION), **self.describe(), "path": str(directory)}

    # ---- persistence ----------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``predictor.json`` into `directory` (atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_json_atomic(directory / "predictor.json", {**header(DOCUMENT_KIND, FORMAT_VERSION), **self.describe()})
        return directory

    @classmethod
    def load(cls, directory: str | Path, resolve_base: Callable[[dict[str, Any]], BlockPredictor] | None = None
             ) -> TransferPredictor:
        """Read a saved predictor; `resolve_base(description)` reopens each base, which must be the one it was
        fitted on (same content id)."""
        path = Path(directory) / "predictor.json"
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            check_header(meta, DOCUMENT_KIND, FORMAT_VERSION, str(path))
        except (OSError, json.JSONDecodeError) as e:
            raise PredictorFileError(f"{directory}: no readable predictor.json ({e.__class__.__name__})") from None
        except DocumentError as e:
            raise PredictorFileError(f"{e}; rebuild the predictor") from None
        try:
            records = meta["bases"]
            space = str(meta["space"])
            weights = np.array([[float(meta["weights"][r["name"]][f]) for f in FAMILIES] for r in records])
            offset = float(meta["offset_ms"])
            selection = Choice.from_dict(meta["fit"], LinearFit(tuple(weights.ravel()), offset))
            subnets = [SubnetMeasurement(parse_arch(r["arch"], get_space(space)), float(r["ms"]), r.get("cv"))
                       for r in meta.get("subnets", [])]
        except (KeyError, TypeError, ValueError, AttributeError, ArchError) as e:
            raise PredictorFileError(f"{path}: not a complete transfer predictor ({e.__class__.__name__}: "
                                     f"{shorten(str(e))}); rebuild the predictor") from None
        if resolve_base is None:
            raise PredictorFileError(f"{directory}: needs its bases ({', '.join(r['name'] for r in records)})")
        bases = []
        for record in records:
            base = resolve_base(record)
            if _content_id(base) != record.get("content_id"):
                raise PredictorFileError(f"{directory}: its base {shorten(record['name'])} changed since it was "
                                         "fitted; rebuild it (predictor build --method transfer)")
            bases.append(base)
        info = {k: meta[k] for k in ("device", "created", "source", "measured_on", "runtime", "flags", "statistic")
                if k in meta}
        return cls(str(meta["name"]), space, meta["convention"], bases, weights, offset, selection, subnets, info)


# ---- fitting ----------------------------------------------------------------------------------------------------
def _candidates(names: Sequence[str]) -> list[Candidate]:
    """The designs compared (see the module docstring), as column maps over the (base x family) sums."""
    B, F = len(names), len(FAMILIES)
    eye_b, eye_f, ones_f = np.eye(B), np.eye(F), np.ones((1, F))
    per_family_rows = PER_FAMILY_ROWS_PER_PARAMETER * (F + 1)
    out = [fixed(f"single:{name}", np.kron(eye_b[i:i + 1], ones_f)) for i, name in enumerate(names)]
    if B > 1:
        combined = np.kron(eye_b, ones_f)
        out.append(fixed("combined", combined))
    out += [fixed(f"per-family:{name}", np.kron(eye_b[i:i + 1], eye_f), min_rows=per_family_rows)
            for i, name in enumerate(names)]
    if B > 1:
        def on_combined(features: np.ndarray, y: np.ndarray) -> np.ndarray:
            w = fit_nonnegative(features @ combined.T, y).weights  # the combination, fitted on the same rows
            return np.kron(np.asarray(w)[None, :], eye_f)

        out.append(Candidate("per-family:combined", on_combined, F, min_rows=per_family_rows, map_parameters=B + 1))
    return out


def fit_transfer(device: str, space: SearchSpace, bases: Sequence[BlockPredictor], archs: Sequence[Arch],
                 ms: Sequence[float], *, folds: int = 5, info: dict[str, Any] | None = None) -> TransferPredictor:
    """`device`'s transfer predictor from the subnets `archs` measured on it (`ms`), on `bases` (predictors of
    `space` sharing one block convention); the fit is chosen by cross-validation (see the module docstring)."""
    convention = check_bases(space, bases, device)
    y = np.asarray(ms, dtype=np.float64)
    if len(archs) != len(y):
        raise FitError(f"{len(archs)} subnets but {len(y)} latencies")
    if len(y) < MIN_SUBNETS:
        raise FitError(f"a transfer predictor needs at least {MIN_SUBNETS} measured subnets, got {len(y)}")
    if not (np.isfinite(y).all() and (y > 0).all()):
        raise FitError("measured latencies must be positive and finite")
    sums = []
    for b in bases:
        s = family_sums(b, space, archs)
        if np.isnan(s).any():
            row = int(np.flatnonzero(np.isnan(s).any(axis=1))[0])
            raise FitError(f"base {shorten(b.name)} has no latency for some block of subnet "
                           f"{shorten(archs[row].to_json())}")
        sums.append(s)
    features = np.concatenate(sums, axis=1)  # column b * F + f: base b's sum over family f
    selection = choose(features, y, _candidates([b.name for b in bases]), folds=folds)
    rows = [SubnetMeasurement(a, float(v), None) for a, v in zip(archs, y, strict=True)]
    return TransferPredictor(device, space.name, convention, bases, np.asarray(selection.fit.weights),
                             selection.fit.offset_ms, selection, rows,
                             {"device": device, "source": "fit_transfer", **(info or {})})


def build_transfer(device: str, space: SearchSpace, measurer: Measurer, bases: Sequence[BlockPredictor], n: int,
                   work_dir: Path, *, seed: int = 0, tick: Tick = lambda _m: None,
                   total: Callable[[int], object] = lambda _n: None) -> TransferPredictor:
    """Measure `n` covering subnets on the measurer's device end to end and fit `device`'s transfer predictor on
    `bases`. Each measured subnet is appended to ``<work_dir>/models.jsonl`` as it completes, so a rerun measures
    only what is missing; `BuildStopped` if the device or an export fails."""
    check_bases(space, bases, device)
    if n < MIN_SUBNETS:
        raise BadInput(f"a transfer predictor needs at least {MIN_SUBNETS} measured subnets, got {n}")
    arch_list = covering_subnets(space, [ArchLatencyModel(b, space) for b in bases], n, seed)
    log = SubnetLog(work_dir / "models.jsonl", space)
    missing = [a for a in arch_list if a not in log]
    total(len(missing))
    try:
        for arch in missing:
            log.add(measure_archs([arch], space, measurer, tick)[0])
    except (FarmError, ExportError) as e:
        raise BuildStopped(f"build stopped (what was measured is kept; run again to resume): {e}") from e
    rows = [log.rows[a] for a in arch_list]
    predictor = fit_transfer(device, space, bases, arch_list, [r.ms for r in rows], info={
        "source": "predictor build --method transfer", "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "measured_on": measurer.device.device_info(), "runtime": measurer.device.runtime_version(),
        "flags": measurer.device.settings.flags(), "statistic": measurer.statistic})
    predictor.measured_subnets = rows
    return predictor
