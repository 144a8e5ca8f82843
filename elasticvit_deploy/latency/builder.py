"""Build a latency predictor for a device by measuring it: blocks exported through the export pipeline, measured
through the farm harness (a phone, or this host), regressors fitted, then a model-level calibration.

Everything measured is kept, so a build that is interrupted resumes where it stopped:
- exported block and subnet models are cached in ``<user data>/models/<space>/`` (see `exports`);
- each block's latency is appended (and flushed) to ``blocks.jsonl`` in the predictor's build directory as soon
  as it is measured, and the results store keeps every round, so nothing is measured twice.

Model-level calibration: a model is not exactly the sum of its blocks exported alone (each block file has its
own input/output handling, and the interpreter's per-invoke overhead counts once per model), so the builder
measures a few whole subnets chosen to cover the predicted latency range (`subnets.covering_subnets`, from a pool
seeded apart from validation's) and fits, by cross-validation (`combination`), the better of
``scale * sum(blocks)``, ``scale * sum(blocks) + offset`` and, given enough subnets, per-family scales
``sum over families f of s_f * sum(blocks of f) + offset``. The measured subnets are logged in ``models.jsonl``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from supernet.space import SearchSpace

from ..errors import OperationFailed
from ..export.errors import ExportError
from ..farm.adb import FarmError
from .blocks import FAMILIES, Block
from .combination import PER_FAMILY_ROWS_PER_PARAMETER, Candidate, Choice, choose, fixed
from .exports import export_block
from .learned import LearnedPredictor
from .measurements import measurement_line, read_measurements
from .measurer import Measurer, measure_archs
from .model import ArchLatencyModel, universe
from .selection import choose_and_measure
from .subnets import SubnetLog, covering_subnets, family_sums

__all__ = ["BlockLog", "BuildStopped", "build", "calibration_candidates", "fit_calibration", "measure_blocks"]

Tick = Callable[[str], object]
CALIBRATION_SEED = 1000


class BuildStopped(OperationFailed):
    """A build stopped by a device or export failure; what was measured is kept, so running it again resumes."""


class BlockLog:
    """``blocks.jsonl``: the measured blocks of a build, appended as they come (the build's resume point)."""

    def __init__(self, path: Path):
        self.path = path
        self.ms: dict[Block, float] = {}
        if path.is_file():
            blocks, values, _ = read_measurements(path)
            self.ms = dict(zip(blocks, values, strict=True))

    def add(self, block: Block, ms: float) -> None:
        ms = round(float(ms), 6)  # as written, so a resumed build fits on exactly the same numbers
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(measurement_line(block, ms, "graph") + "\n")
            f.flush()
        self.ms[block] = ms


def measure_blocks(blocks: Sequence[Block], space: SearchSpace, measurer: Measurer, log: BlockLog,
                   tick: Tick) -> list[float]:
    """The latency of every block: from the log, else exported, measured and logged."""
    out = []
    for b in blocks:
        if b not in log.ms:
            tick(f"{b.family} {b.hw}x{b.hw} {b.cin}->{b.cout}")
            ms, _ = measurer.latency_ms(export_block(b, space))
            log.add(b, ms)
        out.append(log.ms[b])
    return out


def calibration_candidates() -> list[Candidate]:
    """The calibrations compared over a predictor's per-family sums: one scale, one scale and an offset, and
    (given `PER_FAMILY_ROWS_PER_PARAMETER` subnets per parameter) a scale per family and an offset."""
    F = len(FAMILIES)
    one = np.ones((1, F))
    return [fixed("scale", one, offset=False), fixed("scale+offset", one),
            fixed("per-family+offset", np.eye(F), min_rows=PER_FAMILY_ROWS_PER_PARAMETER * (F + 1))]


def fit_calibration(sums: np.ndarray, measured: np.ndarray, *, folds: int = 5) -> Choice:
    """The calibration chosen by cross-validation (relative error) for subnets whose predicted per-family sums
    are the rows of `sums` (order of `FAMILIES`, see `subnets.family_sums`) and whose measured latencies are
    `measured`. The offset may be negative: every block measured alone pays the interpreter's per-invoke
    overhead, which a whole model pays once."""
    return choose(sums, measured, calibration_candidates(), folds=folds)


def build(device: str, space: SearchSpace, measurer: Measurer, budget: int, work_dir: Path, *,
          calibration_subnets: int = 10, seed: int = 0, tick: Tick = lambda _m: None,
          total: Callable[[int], object] = lambda _n: None) -> LearnedPredictor:
    """Measure up to `budget` blocks (chosen by the rule of `selection`), fit, calibrate on whole subnets;
    `BuildStopped` if the device or an export fails (run it again to resume)."""
    try:
        return _build(device, space, measurer, budget, work_dir, calibration_subnets, seed, tick, total)
    except (FarmError, ExportError) as e:
        raise BuildStopped(f"build stopped (what was measured is kept; run again to resume): {e}") from e


def _build(device: str, space: SearchSpace, measurer: Measurer, budget: int, work_dir: Path,
           calibration_subnets: int, seed: int, tick: Tick, total: Callable[[int], object]) -> LearnedPredictor:
    log = BlockLog(work_dir / "blocks.jsonl")
    total(budget + calibration_subnets)
    candidates = universe(space, "graph")
    blocks, ms = choose_and_measure(candidates, budget,
                                    lambda bs: measure_blocks(bs, space, measurer, log, tick), seed=seed)
    predictor = LearnedPredictor.fit(device, "graph", blocks, ms, info={
        "device": device, "space": space.name, "source": "predictor build",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "measured_on": measurer.device.device_info(), "runtime": measurer.device.runtime_version(),
        "flags": measurer.device.settings.flags(), "statistic": measurer.statistic})
    if calibration_subnets >= 2:
        cal_archs = covering_subnets(space, [ArchLatencyModel(predictor, space)], calibration_subnets,
                                     CALIBRATION_SEED + seed)
        measured = SubnetLog(work_dir / "models.jsonl", space)
        for arch in cal_archs:
            if arch not in measured:
                measured.add(measure_archs([arch], space, measurer, tick)[0])
        rows = [measured.rows[a] for a in cal_archs]
        fit = fit_calibration(family_sums(predictor, space, cal_archs), np.array([r.ms for r in rows]))
        predictor.calibrate(fit, rows)
    return predictor
