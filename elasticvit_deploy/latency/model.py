"""Arch-level latency from a block predictor: one arch with a per-block breakdown, or many archs vectorised.

For batches the predictor is asked once for every block the space can produce (a few thousand), and the answers
are laid out as small dense tables over the choices each block depends on (e.g. a C0 first layer over
resolution x input width x width x kernel x expansion). Predicting an encoded batch is then a handful of numpy
gathers, so table and learned predictors answer at the same speed (>= 100k archs/s).

A model's latency is ``scale * sum(blocks) + offset_ms``; (scale, offset) is the predictor's model-level
calibration (1, 0 for tables), which absorbs per-model costs that no block carries (graph boundaries,
interpreter overhead).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from supernet import encoding as enc
from supernet.arch import Arch
from supernet.space import SearchSpace

from .blocks import (
    Block,
    Convention,
    cnn_stage_blocks,
    decompose,
    first_conv_block,
    head_block,
    stage_input_sides,
    stem_blocks,
    transformer_stage_blocks,
)
from .errors import PredictorError


class BlockPredictor(Protocol):
    """Anything that predicts block latencies in ms (NaN where it cannot) under one block convention."""

    name: str
    kind: str
    convention: Convention

    def predict_blocks(self, blocks: Sequence[Block]) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


class UncoveredArchError(PredictorError):
    """The predictor has no latency for some block of an arch (e.g. a table queried outside its space)."""


@dataclass
class _Factor:
    """One term of the sum: a table of ms over some encoded columns' choices, times a count."""

    part: str
    columns: tuple[int, ...]
    choices: tuple[tuple[int, ...], ...]
    table: np.ndarray
    count: Callable[[np.ndarray], np.ndarray]


def _ones(m: np.ndarray) -> np.ndarray:
    return np.ones(len(m))


def _depth(col: int, minus: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda m: (m[:, col] - minus).astype(np.float64)


class ArchLatencyModel:
    """Latency of archs of `space` from a block predictor, with the predictor's model-level calibration."""

    def __init__(self, predictor: BlockPredictor, space: SearchSpace, scale: float = 1.0, offset_ms: float = 0.0):
        self.predictor = predictor
        self.space = space
        self.scale = scale
        self.offset_ms = offset_ms
        self._factors: list[_Factor] | None = None

    # ---- one arch -------------------------------------------------------------------------------------------
    def breakdown(self, arch: Arch) -> list[tuple[str, Block, float]]:
        """(part, block, ms) for every block of `arch`, uncalibrated; raises UncoveredArchError on a gap."""
        parts = decompose(arch, self.space, self.predictor.convention)
        ms = self.predictor.predict_blocks([b for _, b in parts])
        if np.isnan(ms).any():
            missing = sorted({b.table_key for (_, b), v in zip(parts, ms, strict=True) if np.isnan(v)})
            raise UncoveredArchError(f"predictor {self.predictor.name} has no latency for {len(missing)} block(s) "
                                     f"of this arch, e.g. {missing[0]}")
        return [(part, b, float(v)) for (part, b), v in zip(parts, ms, strict=True)]

    def predict(self, arch: Arch) -> float:
        return self.scale * sum(ms for _, _, ms in self.breakdown(arch)) + self.offset_ms

    # ---- many archs -----------------------------------------------------------------------------------------
    def predict_batch(self, matrix: np.ndarray) -> np.ndarray:
        """Latency (ms) of every row of an encoded batch (see `supernet.encoding`)."""
        m = np.asarray(matrix, dtype=np.int64)
        if m.ndim == 1:
            m = m[None, :]
        total = np.zeros(len(m))
        for f in self.factors:
            index = tuple(_choice_index(m[:, c], ch, self.space, c) for c, ch in zip(f.columns, f.choices, strict=True))
            total += f.table[index] * f.count(m)
        if np.isnan(total).any():
            row = int(np.flatnonzero(np.isnan(total))[0])
            raise UncoveredArchError(f"predictor {self.predictor.name} has no latency for some block of row {row} "
                                     f"({enc.decode(m[row], self.space).to_json()})")
        return self.scale * total + self.offset_ms

    @property
    def factors(self) -> list[_Factor]:
        if self._factors is None:
            self._factors = self._compile()
        return self._factors

    def _compile(self) -> list[_Factor]:
        sp, conv = self.space, self.predictor.convention
        R, F, SD, SK = enc.RES, enc.FIRST, enc.STEM_DEPTH, enc.STEM_KERNEL
        res, first = sp.resolutions, sp.first_conv_widths
        specs: list[tuple[str, tuple[int, ...], tuple[tuple[int, ...], ...], Callable[..., Block],
                          Callable[[np.ndarray], np.ndarray]]] = [
            ("first_conv", (R, F), (res, first), lambda r, c: first_conv_block(sp, r, c, conv), _ones),
            ("stem", (R, F, SK), (res, first, sp.stem.kernels),
             lambda r, c, k: stem_blocks(sp, r, c, 1, k, conv)[0], _ones),
            ("stem", (R, F, SK), (res, first, sp.stem.kernels),
             lambda r, c, k: stem_blocks(sp, r, c, 2, k, conv)[1], _depth(SD, 1)),
        ]
        prev_col, prev_choices = F, first
        for i, st in enumerate(sp.stages):
            w, d, a, b = (enc.stage_col(i, x) for x in (enc.WIDTH, enc.DEPTH, enc.MICRO_A, enc.MICRO_B))
            ca, cb = st.micro_choices()

            def side(r: int, i: int = i) -> int:
                return stage_input_sides(sp, r, conv)[i]

            if st.is_transformer:
                specs += [
                    (st.name, (R, prev_col, w), (res, prev_choices, st.widths),
                     lambda r, ci, cw, i=i: transformer_stage_blocks(sp, i, side(r, i), ci, cw, 1, 0, 0, conv)[0],
                     _ones),
                    (st.name, (R, w, b), (res, st.widths, cb),
                     lambda r, cw, v, i=i: transformer_stage_blocks(sp, i, side(r, i), cw, cw, 1, 0, v, conv)[1],
                     _depth(d, 0)),
                    (st.name, (R, w, a), (res, st.widths, ca),
                     lambda r, cw, mlp, i=i: transformer_stage_blocks(sp, i, side(r, i), cw, cw, 1, mlp, 0,
                                                                      conv)[2],
                     _depth(d, 0))]
            else:
                specs += [
                    (st.name, (R, prev_col, w, a, b), (res, prev_choices, st.widths, ca, cb),
                     lambda r, ci, cw, k, e, i=i: cnn_stage_blocks(sp, i, side(r, i), ci, cw, 1, k, e, conv)[0],
                     _ones),
                    (st.name, (R, w, a, b), (res, st.widths, ca, cb),
                     lambda r, cw, k, e, i=i: cnn_stage_blocks(sp, i, side(r, i), cw, cw, 2, k, e, conv)[1],
                     _depth(d, 1))]
            prev_col, prev_choices = w, st.widths
        last = len(sp.stages)
        specs.append(("head", (R, prev_col), (res, prev_choices),
                      lambda r, cw: head_block(sp, stage_input_sides(sp, r, conv)[last], cw, conv), _ones))

        # ask the predictor once for every distinct block, then fill the tables
        grids = [list(itertools.product(*choices)) for _, _, choices, _, _ in specs]
        blocks = [[make(*values) for values in grid] for (_, _, _, make, _), grid in zip(specs, grids, strict=True)]
        unique = list(dict.fromkeys(b for bs in blocks for b in bs))
        ms = dict(zip(unique, self.predictor.predict_blocks(unique), strict=True))
        return [_Factor(part, cols, choices, np.array([ms[b] for b in bs]).reshape([len(c) for c in choices]),
                        count)
                for (part, cols, choices, _, count), bs in zip(specs, blocks, strict=True)]


def universe(space: SearchSpace, convention: Convention) -> list[Block]:
    """Every distinct block a legal arch of `space` can contain, in a stable order (widths never decrease, so a
    block narrowing its input is left out)."""
    collector = _Collector(convention)
    ArchLatencyModel(collector, space).factors  # noqa: B018 - compiling enumerates every block
    return [b for b in dict.fromkeys(collector.seen) if b.family == "mbpool" or b.cin <= b.cout]


class _Collector:
    """A block 'predictor' that records what it is asked (to enumerate a space's blocks)."""

    name = "collector"
    kind = "collector"

    def __init__(self, convention: Convention):
        self.convention = convention
        self.seen: list[Block] = []

    def predict_blocks(self, blocks: Sequence[Block]) -> np.ndarray:
        self.seen += list(blocks)
        return np.zeros(len(blocks))

    def describe(self) -> dict[str, Any]:
        return {}


def _choice_index(values: np.ndarray, choices: tuple[int, ...], space: SearchSpace, column: int) -> np.ndarray:
    lookup = np.asarray(choices)
    index = np.searchsorted(lookup, values)
    index = np.clip(index, 0, len(lookup) - 1)
    bad = lookup[index] != values
    if bad.any():
        raise UncoveredArchError(f"value {int(values[bad][0])} in column {column} is not a choice of space "
                                 f"{space.name} ({list(choices)})")
    return index
