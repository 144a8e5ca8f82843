"""`predictor validate`: random subnets (seeded, none of those the predictor was fitted or calibrated on) exported
and measured end to end on a device, compared with a predictor; the measurements are written as JSON lines
(``validation.jsonl``, one ``{"arch", "ms", "cv", "predicted_ms"}`` a line, which `predictor eval --models` reads)
beside a predicted-vs-measured plot (``validation.png``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from supernet import encoding as enc
from supernet.arch import Arch
from supernet.atomic import atomic_output
from supernet.documents import header
from supernet.sampling import archs, sample_uniform
from supernet.space import SearchSpace

from ..errors import OperationFailed
from ..export.errors import ExportError
from ..farm.adb import FarmError
from .accuracy import ErrorFigures, compare
from .measurer import Measurer, measure_archs
from .model import ArchLatencyModel

__all__ = ["Validation", "ValidationStopped", "plot_validation", "validate", "validation_archs"]

VALIDATION_SEED = 2000
DOCUMENT_KIND = "predictor-validation"
DOCUMENT_VERSION = 1


class ValidationStopped(OperationFailed):
    """A validation stopped by a device or export failure; measurements are stored, so running it again resumes."""


@dataclass(frozen=True)
class Validation:
    """A predictor against subnets measured on a device: the errors, the measurement noise (median CV of a
    measurement's rounds, in percent) and the files written."""

    device: str
    predictor: str
    figures: ErrorFigures
    noise_median_cv_pct: float | None
    measurements: Path
    plot: Path

    def to_dict(self) -> dict[str, Any]:
        return {**header(DOCUMENT_KIND, DOCUMENT_VERSION), "device": self.device, "predictor": self.predictor,
                **self.figures.to_dict(), "noise_median_cv_pct": self.noise_median_cv_pct,
                "files": {"measurements": str(self.measurements), "plot": str(self.plot)}}


def validation_archs(space: SearchSpace, n: int, seed: int = 0, exclude: Collection[Arch] = ()) -> list[Arch]:
    """The `n` subnets a validation of seed `seed` measures: uniform at random, each of `exclude` drawn there
    replaced by a draw from a further seeded stream (so they are unchanged when none is excluded)."""
    out = archs(sample_uniform(space, n, seed=VALIDATION_SEED + seed), space)
    banned = set(exclude)
    spare: list[Arch] = []
    refills = 0
    for i, arch in enumerate(out):
        while arch in banned:
            if not spare:
                stream = np.random.default_rng((VALIDATION_SEED, seed, refills))
                spare, refills = archs(sample_uniform(space, 16, seed=stream), space)[::-1], refills + 1
            arch = spare.pop()
        out[i] = arch
    return out


def validate(model: ArchLatencyModel, measurer: Measurer, device: str, n: int, out_dir: Path, *, seed: int = 0,
             label: str = "predictor", tick: Callable[[str], object] = lambda _m: None) -> Validation:
    """Measure `n` validation subnets on `device` with `measurer`, compare with `model`, write
    ``validation.jsonl`` and ``validation.png`` (titled with `label`) into `out_dir`; `ValidationStopped` if the
    device or an export fails."""
    fitted_on = getattr(model.predictor, "measured_subnets", [])  # learned and transfer predictors record theirs
    arch_list = validation_archs(model.space, n, seed, [r.arch for r in fitted_on])
    try:
        rows = measure_archs(arch_list, model.space, measurer, tick)
    except (FarmError, ExportError) as e:
        raise ValidationStopped(f"validation stopped (measurements are stored; run again to resume): {e}") from e
    predicted = model.predict_batch(enc.encode_many(arch_list))
    measured = np.array([r.ms for r in rows])
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = out_dir / "validation.jsonl"
    with atomic_output(lines) as tmp:
        tmp.write_text("".join(json.dumps(dict(r.to_dict(), predicted_ms=round(float(p), 6))) + "\n"
                               for r, p in zip(rows, predicted, strict=True)), encoding="utf-8")
    figures = compare(predicted, measured)
    cvs = [r.cv for r in rows if r.cv is not None]
    plot = plot_validation(predicted, measured, f"{label}: {figures.within_10pct:.0%} within 10%",
                           out_dir / "validation.png")
    return Validation(device, model.predictor.name, figures,
                      float(np.median(cvs) * 100) if cvs else None, lines, plot)


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
