"""One search run: the best subnet for every (device, budget) pair, the Pareto front per device, and optionally
the winners exported and measured (`verify`), with every figure labelled predicted or measured.

Oracles (`oracles.ORACLES`): a predictor (`table`, `learned`, or `auto`: the best installed one); `live` (every
candidate measured on the device); `hybrid` (search with the predictor under a slightly relaxed budget, then measure
the best candidates on the device, best first, and keep the first whose measured latency meets the budget).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from supernet import encoding as enc
from supernet.arch import Arch
from supernet.atomic import atomic_output
from supernet.checkpoint import SupernetWeights
from supernet.flops import batch_mflops
from supernet.space import SearchSpace

from ..export.subnet import export_subnet
from ..latency.exports import export_arch
from ..latency.model import ArchLatencyModel
from ..latency.predictors import PredictorKind
from .evolution import Evolution, EvolutionConfig, rank
from .measuring import MeasuringSetup
from .oracles import ORACLES, OracleChoice
from .protocols import LatencyOracle, Objective
from .result import Choice, FrontPoint, SearchResult

__all__ = ["SearchRequest", "SearchRun", "Services", "pair_name", "pareto_front"]


@dataclass(frozen=True)
class SearchRequest:
    """What to search: every device of `devices` within every budget of `budgets` (ms), results in `out`;
    `oracle` names an `ORACLES` choice; `fresh` discards saved states instead of resuming them."""

    space: SearchSpace
    devices: tuple[str, ...]
    budgets: tuple[float, ...]
    out: Path
    config: EvolutionConfig = EvolutionConfig()
    oracle: str = "auto"
    hybrid_k: int = 5
    hybrid_slack: float = 0.05
    verify: bool = False
    verify_tries: int = 3
    fresh: bool = False

    @property
    def oracle_choice(self) -> OracleChoice:
        return ORACLES[self.oracle]

    @property
    def measures(self) -> bool:
        """Whether the search measures on its devices (a live or hybrid oracle, or --verify)."""
        return self.verify or self.oracle_choice.measures


def _no_progress(_pair: str, _generation: int) -> None:
    pass


@dataclass
class Services:
    """What a run needs from outside: predictors and measuring setups by device name (created on demand)."""

    predictor: Callable[[str, PredictorKind], ArchLatencyModel]  # (device, kind) -> model; PredictorError if none
    measuring: Callable[[str], MeasuringSetup]                   # device -> a prepared measurer for it
    weights: SupernetWeights | None = None                       # exported winners carry these (else initial weights)
    progress: Callable[[str, int], None] = _no_progress           # (pair, generation) after each generation
    _setups: dict[str, MeasuringSetup] = field(default_factory=dict)

    def measuring_for(self, device: str) -> MeasuringSetup:
        if device not in self._setups:
            self._setups[device] = self.measuring(device)
        return self._setups[device]


def pareto_front(latency: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points (no other point is both faster and better), fastest first."""
    order = np.lexsort((-scores, latency))
    keep, best = [], -np.inf
    for i in order:
        if scores[i] > best:
            keep.append(i)
            best = scores[i]
    return np.array(keep, dtype=np.int64)


def pair_name(device: str, budget: float) -> str:
    """The name of a (device, budget) pair: its state file and its models' directory."""
    return f"{device}@{budget:g}ms"


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


class SearchRun:
    """Runs a `SearchRequest` with an objective and services; `run()` returns the result document."""

    def __init__(self, request: SearchRequest, objective: Objective, services: Services):
        self.request, self.objective, self.services = request, objective, services
        self.space = request.space
        self._oracles: dict[str, LatencyOracle] = {}

    def oracle(self, device: str) -> LatencyOracle:
        """The latency oracle of `device` (built once; PredictorError when its predictor is not installed)."""
        if device not in self._oracles:
            self._oracles[device] = self.request.oracle_choice.build(self.space, device, self.services.predictor,
                                                              self.services.measuring_for)
        return self._oracles[device]

    def prepare(self) -> None:
        """Every device's oracle, and its measuring setup where the search measures, before any work: a missing
        predictor or an unusable device stops the run before anything is searched."""
        for device in self.request.devices:
            self.oracle(device)
        if self.request.measures:
            for device in self.request.devices:
                self.services.measuring_for(device)

    def _measure(self, device: str, row: np.ndarray) -> float:
        measurer = self.services.measuring_for(device).measurer
        return measurer.latency_ms(export_arch(enc.decode(row, self.space), self.space))[0]

    def _choice(self, device: str, budget: float, row: np.ndarray, score: float, predicted: float | None,
                measured: float | None, notes: list[str]) -> Choice:
        return Choice(device, budget, enc.decode(row, self.space).to_dict(),
                      round(float(batch_mflops(row[None], self.space)[0]), 3), _rounded(predicted),
                      _rounded(measured), self.oracle(device).kind, self.objective.score_fields(row, score),
                      notes=notes)

    def _no_choice(self, device: str, budget: float, notes: list[str]) -> Choice:
        """The entry of a pair whose candidates all measured over the budget (the notes say which, by how much)."""
        return Choice(device, budget, oracle=self.oracle(device).kind, notes=notes)

    def _pick(self, device: str, budget: float, rows: np.ndarray, scores: np.ndarray, lat: np.ndarray) -> Choice:
        """The winner among ranked final candidates, measured where the oracle or --verify asks."""
        oracle = self.oracle(device)
        predicted = oracle.predicted_ms(rows)
        measured = {i: ms for i, ms in enumerate(oracle.measured_ms(lat)) if ms is not None}
        notes: list[str] = []
        candidates = list(range(len(rows)))
        if self.request.oracle_choice.rerank:
            tried = []
            for i in candidates[:self.request.hybrid_k]:
                measured[i] = self._measure(device, rows[i])
                tried.append(i)
                if measured[i] <= budget:
                    break
            fits = [i for i in tried if measured[i] <= budget]
            if not fits:
                notes.append(f"hybrid: none of the best {len(tried)} candidates measured within {budget:g} ms")
                return self._no_choice(device, budget, notes)
            if fits[0] != 0:
                notes.append(f"hybrid: {fits[0]} better-ranked candidate(s) measured over the budget")
            candidates = candidates[fits[0]:]
        candidates = [i for i in candidates if i not in measured or measured[i] <= budget]
        if not candidates:
            return self._no_choice(device, budget, notes + [f"no candidate measured within {budget:g} ms"])
        if self.request.verify:
            return self._verify(device, budget, rows, scores, predicted, candidates, notes)
        best = candidates[0]
        choice = self._choice(device, budget, rows[best], scores[best], predicted[best], measured.get(best), notes)
        if best in measured:
            choice.measured_on = self.services.measuring_for(device).describe()
        return choice

    def _export(self, device: str, budget: float, arch: Arch) -> Path:
        """The winner as a verified fp32 TFLite file in `<out>/models/<device>@<budget>ms/`: exported with the
        checkpoint's weights, or (no checkpoint) copied from the export cache, where latency measurements put it."""
        out_dir = self.request.out / "models" / pair_name(device, budget)
        name = f"{device}-{budget:g}ms-fp32.tflite"
        if self.services.weights is None:
            cached = export_arch(arch, self.space)
            out_dir.mkdir(parents=True, exist_ok=True)
            for suffix in (".json", ""):  # manifest first: the model file appears last, complete
                source = cached.with_name(cached.name + suffix)
                with atomic_output(out_dir / (name + suffix)) as tmp:
                    shutil.copyfile(source, tmp)
            return out_dir / name
        exported = export_subnet(arch, self.space, out_dir, weights=self.services.weights,
                                 name=f"{device}-{budget:g}ms", formats=("tflite",), quantizations=("none",))
        return Path(exported.models[0].path)

    def _verify(self, device: str, budget: float, rows: np.ndarray, scores: np.ndarray,
                predicted: list[float | None], candidates: list[int], notes: list[str]) -> Choice:
        """Export candidates best first (trained weights when a checkpoint is given), measure each exported file,
        keep the first within the budget; each fallback is noted."""
        setup = self.services.measuring_for(device)
        for tries, i in enumerate(candidates[:self.request.verify_tries]):
            path = self._export(device, budget, enc.decode(rows[i], self.space))
            ms, _ = setup.measurer.latency_ms(path)
            if ms <= budget:
                choice = self._choice(device, budget, rows[i], scores[i], predicted[i], ms, notes)
                choice.measured_on, choice.model = setup.describe(), str(path)
                return choice
            guess = "n/a" if predicted[i] is None else f"{predicted[i]:.2f} ms"
            notes.append(f"verify: candidate {tries + 1} measured {ms:.2f} ms > {budget:g} ms (predicted {guess}); "
                         f"falling back to the next")
        notes.append(f"verify: none of the best {min(len(candidates), self.request.verify_tries)} candidates "
                     f"measured within the budget")
        return self._no_choice(device, budget, notes)

    def _front(self, device: str, rows: np.ndarray, lat: np.ndarray) -> list[FrontPoint]:
        """The Pareto front of every distinct candidate the device's searches scored."""
        rows, first = np.unique(rows, axis=0, return_index=True)
        lat = lat[first]
        scores = self.objective.score(rows)
        kind = self.oracle(device).kind
        return [FrontPoint(enc.decode(rows[i], self.space).to_dict(),
                           round(float(batch_mflops(rows[i][None], self.space)[0]), 3), round(float(lat[i]), 4),
                           kind, round(float(scores[i]), 6), self.objective.score_source(rows[i]))
                for i in pareto_front(lat, scores)]

    def _progress(self, pair: str) -> Callable[[int], None]:
        return lambda generation: self.services.progress(pair, generation)

    def run(self) -> SearchResult:
        """Search every pair (resuming saved states unless the request is `fresh`) and pick each winner."""
        req, t0 = self.request, time.perf_counter()
        self.prepare()
        choices, fronts, timings = [], {}, []
        for device in req.devices:
            oracle = self.oracle(device)
            seen_rows, seen_lat = [], []
            for budget in req.budgets:
                name = pair_name(device, budget)
                evolution = Evolution(self.space, oracle, req.oracle_choice.search_budget(budget, req.hybrid_slack),
                                      self.objective, req.config)
                start = time.perf_counter()
                state = evolution.run(req.out / "state" / f"{name}.npz", self._progress(name), fresh=req.fresh)
                scores = self.objective.finalize(state.population, state.scores)
                order = rank(scores, state.latency)
                timings.append({"pair": name, "seconds": round(time.perf_counter() - start, 3),
                                "candidates": int(len(state.seen))})
                choices.append(self._pick(device, budget, state.population[order], scores[order],
                                          state.latency[order]))
                seen_rows.append(state.seen)
                seen_lat.append(state.seen_latency)
            fronts[device] = self._front(device, np.concatenate(seen_rows), np.concatenate(seen_lat))
        return SearchResult(self.space.name, self.objective.describe(), req.oracle,
                            {d: self.oracle(d).describe() for d in req.devices}, asdict(req.config), choices, fronts,
                            {"total_s": round(time.perf_counter() - t0, 3), "pairs": timings},
                            self.objective.warning)

    def write(self, result: SearchResult) -> Path:
        """Write `result` as `<out>/result.json`."""
        return result.write(self.request.out / "result.json")
