"""`predictor fit`: a learned predictor fitted from a file of measured blocks, optionally transferred from an
installed base predictor (see `learned`)."""

from __future__ import annotations

from pathlib import Path

from supernet.space import SearchSpace

from .blocks import FAMILIES
from .learned import FitError, LearnedPredictor
from .measurements import read_measurements
from .model import BlockPredictor

__all__ = ["fit_from_file"]


def fit_from_file(device: str, source: str | Path, space: SearchSpace,
                  base: BlockPredictor | None = None) -> LearnedPredictor:
    """`device`'s predictor for `space`, fitted on the blocks measured in `source` (a table or JSON lines, which
    must hold every block family); with `base`, learned as how the device differs from it."""
    blocks, ms, convention = read_measurements(source)
    missing = [f for f in FAMILIES if not any(b.family == f for b in blocks)]
    if missing:
        raise FitError(f"{source}: no measured {', '.join(missing)} block; a predictor needs every family "
                       f"({', '.join(FAMILIES)})")
    if base is not None and base.convention != convention:
        raise FitError(f"base predictor {base.name}: its blocks follow the {base.convention} convention, "
                       f"{source} the {convention} one")
    return LearnedPredictor.fit(device, convention, blocks, ms, base=base, info={
        "device": device, "space": space.name, "source": str(Path(source).resolve())})
