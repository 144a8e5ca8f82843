"""Build a latency predictor for a device by measuring it: blocks exported through the export pipeline, measured
through the farm harness (a phone, or this host), regressors fitted, a model-level calibration, then validation.

Everything measured is kept, so a build that is interrupted resumes where it stopped:
- exported block and subnet models are cached in ``<user data>/models/<space>/`` (same block, same file);
- each block's latency is appended (and flushed) to ``blocks.jsonl`` in the predictor's build directory as soon
  as it is measured, and the results store keeps every round, so nothing is measured twice.

Model-level calibration: a model is not exactly the sum of its blocks exported alone (each block file has its
own input/output handling, and the interpreter's per-invoke overhead counts once per model), so the builder
measures a few whole subnets (seeded, distinct from validation) and fits ``scale * sum(blocks) + offset``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from supernet import encoding as enc
from supernet.arch import Arch
from supernet.sampling import archs, sample_uniform
from supernet.space import SearchSpace

from ..export.pipeline import export_module
from ..export.subnet import default_name, export_subnet
from ..farm.measure import LocalModel, MeasureOptions, Target, measure_model
from ..farm.store import ResultsStore
from ..paths import user_data_dir
from .block_modules import block_module
from .blocks import Block
from .learned import LearnedPredictor
from .measurements import measurement_line, read_measurements
from .model import ArchLatencyModel, universe
from .sampling import choose_and_measure

Tick = Callable[[str], None]
CALIBRATION_SEED = 1000
VALIDATION_SEED = 2000


def models_dir(space: SearchSpace) -> Path:
    return user_data_dir() / "models" / space.name


def block_digest(block: Block) -> str:
    return hashlib.sha256(json.dumps(block.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def export_block(block: Block, space: SearchSpace) -> Path:
    """The block's verified fp32 TFLite model (exported once, then reused)."""
    out = models_dir(space) / "blocks"
    name = f"{block.family}-{block_digest(block)}"
    path = out / f"{name}-fp32.tflite"
    if not path.is_file():
        module, shape = block_module(block)
        export_module(module, shape, out, name, metadata={"kind": "elasticvit-block", "block": block.to_dict()},
                      n_samples=1)
    return path


def export_arch(arch: Arch, space: SearchSpace) -> Path:
    """The subnet's verified fp32 TFLite model with initial weights (exported once, then reused)."""
    out = models_dir(space) / "subnets"
    name = default_name(arch, space)
    path = out / f"{name}-fp32.tflite"
    if not path.is_file():
        export_subnet(arch, space, out, name=name, n_samples=1)
    return path


STATISTICS = {"median": "median_ms", "best": "best_ms"}


@dataclass
class Measurer:
    """Measures models on one prepared target, reusing the results store.

    `statistic` is the figure a model's latency is read from: "median" (of the round means, as a phone reports)
    or "best" (the fastest single inference over all rounds). On a shared machine, other tenants slow whole
    rounds down for seconds at a time, which moves medians by more than the predictor's tolerance; the fastest
    inference is what the hardware does undisturbed, so builds and validations on such a host use "best"."""

    target: Target
    store: ResultsStore
    options: MeasureOptions
    statistic: str = "median"

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ValueError(f"statistic {self.statistic!r}: choose from {', '.join(STATISTICS)}")

    def latency_ms(self, path: Path) -> tuple[float, dict[str, Any]]:
        key = STATISTICS[self.statistic]
        result = measure_model(self.target, LocalModel.load(path), self.store, self.options)
        if result.summary.get(key) is None:  # stored before this figure existed: measure again
            result = measure_model(self.target, LocalModel.load(path), self.store, replace(self.options, fresh=True))
        return float(result.summary[key]), result.summary


class BlockLog:
    """``blocks.jsonl``: the measured blocks of a build, appended as they come (the build's resume point)."""

    def __init__(self, path: Path):
        self.path = path
        self.ms: dict[Block, float] = {}
        if path.is_file():
            blocks, values, _ = read_measurements(path)
            self.ms = dict(zip(blocks, values))

    def add(self, block: Block, ms: float) -> None:
        ms = round(float(ms), 6)  # as written, so a resumed build fits on exactly the same numbers
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(measurement_line(block, ms, "graph") + "\n")
            f.flush()
        self.ms[block] = ms


def measure_blocks(blocks: Sequence[Block], space: SearchSpace, measurer: Measurer, log: BlockLog,
                   tick: Tick) -> list[float]:
    out = []
    for b in blocks:
        if b not in log.ms:
            tick(f"{b.family} {b.hw}x{b.hw} {b.cin}->{b.cout}")
            ms, _ = measurer.latency_ms(export_block(b, space))
            log.add(b, ms)
        out.append(log.ms[b])
    return out


def measure_archs(arch_list: Sequence[Arch], space: SearchSpace, measurer: Measurer, tick: Tick
                  ) -> list[dict[str, Any]]:
    """Export and measure whole subnets end to end: arch, measured median and CV per subnet."""
    rows = []
    for arch in arch_list:
        tick(f"subnet r{arch.resolution}")
        ms, summary = measurer.latency_ms(export_arch(arch, space))
        rows.append({"arch": arch.to_dict(), "ms": ms, "cv": summary.get("cv")})
    return rows


def fit_calibration(predicted_sums: np.ndarray, measured: np.ndarray) -> tuple[float, float]:
    """Least squares on relative error: measured ~ scale * predicted + offset.

    The offset may be negative: every block measured alone pays the interpreter's per-invoke overhead, which a
    whole model pays once. If the fit would predict less than half of the smallest calibration subnet's sum
    (too few or too noisy subnets), the scale alone is fitted."""
    A = np.column_stack([predicted_sums, np.ones(len(predicted_sums))]) / measured[:, None]
    (scale, offset), *_ = np.linalg.lstsq(A, np.ones(len(measured)), rcond=None)
    if scale <= 0 or scale * predicted_sums.min() + offset < 0.5 * predicted_sums.min():
        ratio = measured / predicted_sums
        scale, offset = float(np.sum(ratio) / len(ratio)), 0.0
    return float(scale), float(offset)


def build(device: str, space: SearchSpace, measurer: Measurer, budget: int, work_dir: Path, *,
          calibration_subnets: int = 8, seed: int = 0, tick: Tick = lambda _m: None,
          total: Callable[[int], None] = lambda _n: None) -> LearnedPredictor:
    """Measure up to `budget` blocks (chosen by the builder's rule), fit, calibrate on whole subnets."""
    log = BlockLog(work_dir / "blocks.jsonl")
    total(budget + calibration_subnets)
    candidates = universe(space, "graph")
    blocks, ms = choose_and_measure(candidates, budget,
                                    lambda bs: measure_blocks(bs, space, measurer, log, tick), seed=seed)
    predictor = LearnedPredictor.fit(device, "graph", blocks, ms, info={
        "device": device, "space": space.name, "source": "predictor build",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "measured_on": measurer.target.device_info(), "runtime": measurer.target.runtime_version(),
        "flags": measurer.target.settings.flags(), "statistic": measurer.statistic})
    if calibration_subnets >= 2:
        cal_archs = archs(sample_uniform(space, calibration_subnets, seed=CALIBRATION_SEED + seed), space)
        rows = measure_archs(cal_archs, space, measurer, tick)
        sums = ArchLatencyModel(predictor, space).predict_batch(enc.encode_many(cal_archs))
        predictor.scale, predictor.offset_ms = fit_calibration(sums, np.array([r["ms"] for r in rows]))
        predictor.info["calibration_subnets"] = rows
    return predictor


def validation_archs(space: SearchSpace, n: int, seed: int = 0) -> list[Arch]:
    return archs(sample_uniform(space, n, seed=VALIDATION_SEED + seed), space)


def compare(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    rel = predicted / measured - 1
    return {"n": int(len(rel)), "within_5pct": float(np.mean(np.abs(rel) <= 0.05)),
            "within_10pct": float(np.mean(np.abs(rel) <= 0.10)),
            "rmse_pct": float(np.sqrt(np.mean(rel ** 2)) * 100), "bias_pct": float(np.mean(rel) * 100),
            "worst_pct": float(np.max(np.abs(rel)) * 100)}


def plot_validation(predicted: np.ndarray, measured: np.ndarray, title: str, path: Path) -> Path:
    """Predicted vs measured scatter with the +-10% band, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    hi = float(max(predicted.max(), measured.max())) * 1.05
    xs = np.array([0, hi])
    ax.plot(xs, xs, color="black", lw=1, label="predicted = measured")
    ax.fill_between(xs, xs * 0.9, xs * 1.1, color="tab:green", alpha=0.15, label="+-10%")
    ax.scatter(measured, predicted, s=14, color="tab:blue")
    ax.set(xlim=(0, hi), ylim=(0, hi), xlabel="measured median (ms)", ylabel="predicted (ms)", title=title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
