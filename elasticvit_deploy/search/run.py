"""One search run: the best subnet for every (target, budget) pair, the Pareto front per target, and optionally
the winners exported and measured (`verify`), with every figure labelled predicted or measured.

Oracles: a predictor (`table`, `learned`, or `auto`: the best installed one); `live` (every candidate measured on the
device); `hybrid` (search with the predictor under a slightly relaxed budget, then measure the best candidates on the
device, best first, and keep the first whose measured latency meets the budget).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from supernet import encoding as enc
from supernet.arch import Arch
from supernet.atomic import atomic_output, write_json_atomic
from supernet.checkpoint import SupernetWeights
from supernet.flops import batch_mflops
from supernet.space import SearchSpace

from ..export.subnet import export_subnet
from ..latency import builder
from ..latency.model import ArchLatencyModel
from .evolution import Evolution, EvolutionConfig, Objective, SearchState, rank
from .oracles import LiveOracle, PredictorOracle

ORACLES = ("auto", "table", "learned", "live", "hybrid")


@dataclass(frozen=True)
class SearchRequest:
    space: SearchSpace
    targets: tuple[str, ...]
    budgets: tuple[float, ...]
    out: Path
    config: EvolutionConfig = EvolutionConfig()
    oracle: str = "auto"
    hybrid_k: int = 5
    hybrid_slack: float = 0.05
    verify: bool = False
    verify_tries: int = 3


@dataclass
class Services:
    """What a run needs from outside: predictors and measuring devices by target name (created on demand)."""

    predictor: Callable[[str, str], ArchLatencyModel]     # (target, kind) -> model; raises if none installed
    measurer: Callable[[str], builder.Measurer]           # target -> measurer on its device
    weights: SupernetWeights | None = None                # exported winners carry these (else initial weights)
    progress: Callable[[str, int], None] = lambda _pair, _gen: None
    _measurers: dict[str, builder.Measurer] = field(default_factory=dict)

    def measurer_for(self, target: str) -> builder.Measurer:
        if target not in self._measurers:
            self._measurers[target] = self.measurer(target)
        return self._measurers[target]


def pareto_front(latency: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points (no other point is both faster and better), fastest first."""
    order = np.lexsort((-scores, latency))
    keep, best = [], -np.inf
    for i in order:
        if scores[i] > best:
            keep.append(i)
            best = scores[i]
    return np.array(keep, dtype=np.int64)


def _pair_name(target: str, budget: float) -> str:
    return f"{target}@{budget:g}ms"


def _measured_on(measurer: builder.Measurer) -> dict[str, Any]:
    info = measurer.target.device_info()
    out = {k: info.get(k) for k in ("kind", "serial", "alias", "model", "fingerprint") if k in info}
    return dict(out, runtime=measurer.target.runtime_version(), statistic=measurer.statistic)


def _no_choice(target: str, budget: float, notes: list[str]) -> dict[str, Any]:
    """The entry of a pair whose candidates all measured over the budget (the notes say which and by how much)."""
    return {"target": target, "budget_ms": budget, "arch": None, "mflops": None, "predicted_ms": None,
            "measured_ms": None, "measured_on": None, "model": None, "notes": notes}


class SearchRun:
    """Runs a `SearchRequest` with an objective and services; `run()` returns the result document."""

    def __init__(self, request: SearchRequest, objective: Objective, services: Services):
        self.request, self.objective, self.services = request, objective, services
        self.space = request.space

    def _oracle(self, target: str) -> PredictorOracle | LiveOracle:
        kind = self.request.oracle
        if kind == "live":
            return LiveOracle(self.space, self.services.measurer_for(target))
        model = self.services.predictor(target, "auto" if kind == "hybrid" else kind)
        return PredictorOracle(model, getattr(model.predictor, "kind", kind))

    def _predicted(self, target: str, rows: np.ndarray, oracle: PredictorOracle | LiveOracle) -> list[float | None]:
        if isinstance(oracle, PredictorOracle):
            return [float(v) for v in oracle.latency_ms(rows)]
        try:
            return [float(v) for v in self.services.predictor(target, "auto").predict_batch(rows)]
        except ValueError:  # no predictor installed, or one that does not cover these subnets
            return [None] * len(rows)

    def _measure(self, target: str, row: np.ndarray) -> float:
        measurer = self.services.measurer_for(target)
        return measurer.latency_ms(builder.export_arch(enc.decode(row, self.space), self.space))[0]

    def _choice(self, target: str, budget: float, row: np.ndarray, score: float, predicted: float | None,
                measured: float | None, oracle_kind: str, notes: list[str]) -> dict[str, Any]:
        arch = enc.decode(row, self.space)
        out: dict[str, Any] = {"target": target, "budget_ms": budget, "arch": arch.to_dict(),
                               "mflops": round(float(batch_mflops(row[None], self.space)[0]), 3),
                               "predicted_ms": None if predicted is None else round(predicted, 4),
                               "measured_ms": None if measured is None else round(measured, 4),
                               "oracle": oracle_kind}
        if self.objective.name == "accuracy":
            real = getattr(self.objective, "is_real")(row)
            out.update(accuracy=round(float(score), 6), accuracy_source="supernet" if real else "predicted")
        else:
            out.update(proxy={"name": self.objective.name, "value": round(float(score), 3)})
        out.update(measured_on=None, model=None, notes=notes)
        return out

    def _pick(self, target: str, budget: float, rows: np.ndarray, scores: np.ndarray, lat: np.ndarray,
              oracle: PredictorOracle | LiveOracle) -> dict[str, Any]:
        """The winner among ranked final candidates, measured where the oracle or --verify asks."""
        predicted = self._predicted(target, rows, oracle)
        notes: list[str] = []
        measured: dict[int, float] = {}
        if isinstance(oracle, LiveOracle):
            measured = {i: float(lat[i]) for i in range(len(rows))}
        candidates = list(range(len(rows)))
        if self.request.oracle == "hybrid":
            tried = []
            for i in candidates[:self.request.hybrid_k]:
                measured[i] = self._measure(target, rows[i])
                tried.append(i)
                if measured[i] <= budget:
                    break
            fits = [i for i in tried if measured[i] <= budget]
            if not fits:
                notes.append(f"hybrid: none of the best {len(tried)} candidates measured within {budget:g} ms")
                return _no_choice(target, budget, notes)
            if fits[0] != 0:
                notes.append(f"hybrid: {fits[0]} better-ranked candidate(s) measured over the budget")
            candidates = candidates[fits[0]:]
        candidates = [i for i in candidates if i not in measured or measured[i] <= budget]
        if not candidates:
            return _no_choice(target, budget, notes + [f"no candidate measured within {budget:g} ms"])
        best = candidates[0]
        choice = self._choice(target, budget, rows[best], scores[best], predicted[best], measured.get(best),
                              oracle.kind, notes)
        if self.request.verify:
            choice = self._verify(target, budget, rows, scores, predicted, candidates, oracle.kind, notes)
        elif best in measured:
            choice["measured_on"] = _measured_on(self.services.measurer_for(target))
        return choice

    def _export(self, target: str, budget: float, arch: Arch) -> Path:
        """The winner as a verified fp32 TFLite file in `<out>/models/<target>@<budget>ms/`: exported with the
        checkpoint's weights, or (no checkpoint) copied from the export cache, where latency measurements put it."""
        out_dir = self.request.out / "models" / _pair_name(target, budget)
        name = f"{target}-{budget:g}ms-fp32.tflite"
        if self.services.weights is None:
            cached = builder.export_arch(arch, self.space)
            out_dir.mkdir(parents=True, exist_ok=True)
            for suffix in (".json", ""):  # manifest first: the model file appears last, complete
                source = cached.with_name(cached.name + suffix)
                with atomic_output(out_dir / (name + suffix)) as tmp:
                    shutil.copyfile(source, tmp)
            return out_dir / name
        exported = export_subnet(arch, self.space, out_dir, weights=self.services.weights,
                                 name=f"{target}-{budget:g}ms", formats=("tflite",), quantizations=("none",))
        return Path(exported[0].path)

    def _verify(self, target: str, budget: float, rows: np.ndarray, scores: np.ndarray, predicted: list,
                candidates: list[int], oracle_kind: str, notes: list[str]) -> dict[str, Any]:
        """Export candidates best first (trained weights when a checkpoint is given), measure each exported file,
        keep the first within the budget; each fallback is noted."""
        measurer = self.services.measurer_for(target)
        for tries, i in enumerate(candidates[:self.request.verify_tries]):
            path = self._export(target, budget, enc.decode(rows[i], self.space))
            ms, _ = measurer.latency_ms(path)
            if ms <= budget:
                choice = self._choice(target, budget, rows[i], scores[i], predicted[i], ms, oracle_kind, notes)
                choice.update(measured_on=_measured_on(measurer), model=str(path))
                return choice
            guess = "n/a" if predicted[i] is None else f"{predicted[i]:.2f} ms"
            notes.append(f"verify: candidate {tries + 1} measured {ms:.2f} ms > {budget:g} ms (predicted {guess}); "
                         f"falling back to the next")
        notes.append(f"verify: none of the best {min(len(candidates), self.request.verify_tries)} candidates "
                     f"measured within the budget")
        return _no_choice(target, budget, notes)

    def run(self) -> dict[str, Any]:
        req, t0 = self.request, time.perf_counter()
        choices, fronts, timings = [], {}, []
        for target in req.targets:
            oracle = self._oracle(target)
            seen_rows, seen_lat = [], []
            for budget in req.budgets:
                name = _pair_name(target, budget)
                search_budget = budget * (1 + req.hybrid_slack) if req.oracle == "hybrid" else budget
                evolution = Evolution(self.space, oracle, search_budget, self.objective, req.config)
                start = time.perf_counter()
                state: SearchState = evolution.run(req.out / "state" / f"{name}.npz",
                                                   lambda g, name=name: self.services.progress(name, g))
                scores = self.objective.finalize(state.population, state.scores)
                order = rank(scores, state.latency)
                rows, lat = state.population[order], state.latency[order]
                timings.append({"pair": name, "seconds": round(time.perf_counter() - start, 3),
                                "candidates": int(len(state.seen))})
                choices.append(self._pick(target, budget, rows, scores[order], lat, oracle))
                seen_rows.append(state.seen)
                seen_lat.append(state.seen_latency)
            rows, lat = np.concatenate(seen_rows), np.concatenate(seen_lat)
            rows, first = np.unique(rows, axis=0, return_index=True)
            lat = lat[first]
            scores = self.objective.score(rows)
            front = pareto_front(lat, scores)
            is_real = getattr(self.objective, "is_real", None)
            fronts[target] = [{"arch": enc.decode(rows[i], self.space).to_dict(),
                               "mflops": round(float(batch_mflops(rows[i][None], self.space)[0]), 3),
                               "latency_ms": round(float(lat[i]), 4), "latency_source": oracle.kind,
                               "score": round(float(scores[i]), 6),
                               "score_source": self.objective.name if is_real is None
                               else ("supernet" if is_real(rows[i]) else "predicted")} for i in front]
        return {"space": self.space.name, "objective": self.objective.describe(), "oracle": req.oracle,
                "config": asdict(req.config), "choices": choices, "pareto": fronts,
                "timing": {"total_s": round(time.perf_counter() - t0, 3), "pairs": timings}}

    def write(self, result: dict[str, Any]) -> Path:
        path = self.request.out / "result.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, result)
        return path
