"""Samplers and variation operators over a search space.

Uniform sampling is uniform over the *legal* space (stem width = first-conv width, non-decreasing widths). The official
code instead draws each stage's width uniformly among those >= the previous stage's, which over-weights wide late
stages; we sample the legal space exactly uniformly and say so here.

`sample_in_window` draws exactly uniformly among the legal subnets whose official MFLOPs lie in ``[lo, hi]``, fast:
it proposes only (resolution, width vector) combinations whose FLOPs range can reach the window, draws the rest
uniformly, and keeps the hits (vectorised rejection). Every combination owns the same number of sub-configurations,
so the proposal is uniform over their union and the accepted draws are uniform over the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import product

import numpy as np

from . import encoding as enc
from .arch import Arch, CNNStageConfig, StemConfig, TransformerStageConfig
from .counting import legal_width_combos
from .errors import BadInput
from .flops import arch_mflops, batch_mflops, first_conv_macs, head_macs, stage_macs, stage_sides, stem_macs
from .space import SearchSpace

_BATCH = 8192


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _fill_micro(space: SearchSpace, m: np.ndarray, rng: np.random.Generator) -> None:
    """Draw depths, stem kernel and per-stage micro choices uniformly into an encoded batch, in place."""
    n = len(m)
    m[:, enc.STEM_DEPTH] = rng.choice(space.stem.depths, n)
    m[:, enc.STEM_KERNEL] = rng.choice(space.stem.kernels, n)
    for i, s in enumerate(space.stages):
        a, b = s.micro_choices()
        m[:, enc.stage_col(i, enc.DEPTH)] = rng.choice(s.depths, n)
        m[:, enc.stage_col(i, enc.MICRO_A)] = rng.choice(a, n)
        m[:, enc.stage_col(i, enc.MICRO_B)] = rng.choice(b, n)


def _set_widths(m: np.ndarray, widths: np.ndarray) -> None:
    m[:, enc.FIRST] = widths[:, 0]
    for i in range(widths.shape[1] - 1):
        m[:, enc.stage_col(i, enc.WIDTH)] = widths[:, i + 1]


def sample_uniform(space: SearchSpace, n: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
    """`n` archs drawn uniformly from the legal space, encoded (see `supernet.encoding`)."""
    rng = _rng(seed)
    combos = legal_width_combos(space)
    m = np.zeros((n, enc.n_columns(space)), dtype=np.int64)
    m[:, enc.RES] = rng.choice(space.resolutions, n)
    _set_widths(m, combos[rng.integers(0, len(combos), n)])
    _fill_micro(space, m, rng)
    return m


def _slot_options(space: SearchSpace) -> list[np.ndarray]:
    """Per slot (stem, then each stage) every combination of its non-width choices: (depth, kernel) for the stem,
    (depth, a, b) for a stage."""
    opts = [np.array(list(product(space.stem.depths, space.stem.kernels)), dtype=np.int64)]
    for s in space.stages:
        opts.append(np.array(list(product(s.depths, *s.micro_choices())), dtype=np.int64))
    return opts


def _slot_macs(space: SearchSpace, res: np.ndarray, widths: np.ndarray,
               options: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """MACs that do not depend on slot choices (first conv + head), and per slot a (combos x options) table."""
    sides = stage_sides(space, res)
    base = first_conv_macs(res, widths[:, 0]) + head_macs(space, widths[:, -1], sides[-1])
    col = lambda a: a[:, None]  # noqa: E731
    tables = [stem_macs(col(res), col(widths[:, 0]), options[0][:, 0], options[0][:, 1])]
    for i, opt in enumerate(options[1:]):
        tables.append(stage_macs(space, i, col(sides[i]), col(widths[:, i]), col(widths[:, i + 1]),
                                 opt[:, 0], opt[:, 1], opt[:, 2]))
    return base, tables


@lru_cache(maxsize=16)
def _combo_extremes(space: SearchSpace) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every (resolution, width vector) with the least and most MACs reachable from it. FLOPs grow with every
    depth, kernel, expansion, MLP ratio and V-scale, so the extremes sit at the smallest and largest options."""
    combos = legal_width_combos(space)
    res = np.repeat(np.asarray(space.resolutions, dtype=np.int64), len(combos))
    widths = np.tile(combos, (len(space.resolutions), 1))
    extremes = [np.stack([o.min(axis=0), o.max(axis=0)]) for o in _slot_options(space)]
    base, tables = _slot_macs(space, res, widths, extremes)
    return res, widths, base + sum(t[:, 0] for t in tables), base + sum(t[:, 1] for t in tables)


@dataclass(frozen=True)
class _Boxes:
    """Proposal boxes for one FLOPs window: per row a (resolution, width vector) and, per slot, the options that
    can still be part of a subnet inside the window (feasible option indices first in `order`)."""

    res: np.ndarray
    widths: np.ndarray
    weights: np.ndarray
    counts: list[np.ndarray]
    order: list[np.ndarray]

    def propose(self, space: SearchSpace, n: int, rng: np.random.Generator) -> np.ndarray:
        pick = rng.choice(len(self.res), n, p=self.weights)
        m = np.zeros((n, enc.n_columns(space)), dtype=np.int64)
        m[:, enc.RES] = self.res[pick]
        _set_widths(m, self.widths[pick])
        slots = zip(_slot_options(space), self.counts, self.order, _slot_columns(space), strict=True)
        for opt, count, order, cols in slots:
            k = (rng.random(n) * count[pick]).astype(np.int64)
            m[:, cols] = opt[order[pick, k]]
        return m


def _slot_columns(space: SearchSpace) -> list[list[int]]:
    return [[enc.STEM_DEPTH, enc.STEM_KERNEL]] + [
        [enc.stage_col(i, enc.DEPTH), enc.stage_col(i, enc.MICRO_A), enc.stage_col(i, enc.MICRO_B)]
        for i in range(len(space.stages))]


def _prune(rows: tuple, lo: int, hi: int) -> tuple:
    """Drop options (and rows) that cannot reach [lo, hi] MACs given the other slots' extremes, to a fixed point."""
    res, widths, base, tables, masks = rows
    big = np.iinfo(np.int64).max // 4
    while len(res):
        mins = [np.where(m, t, big).min(axis=1) for m, t in zip(masks, tables, strict=True)]
        maxs = [np.where(m, t, -1).max(axis=1) for m, t in zip(masks, tables, strict=True)]
        tmin, tmax = base + sum(mins), base + sum(maxs)
        new = [m & (t + (tmin - mn)[:, None] <= hi) & (t + (tmax - mx)[:, None] >= lo)
               for m, t, mn, mx in zip(masks, tables, mins, maxs, strict=True)]
        alive = np.logical_and.reduce([m.any(axis=1) for m in new])
        changed = not alive.all() or any((a != b).any() for a, b in zip(new, masks, strict=True))
        res, widths, base = res[alive], widths[alive], base[alive]
        tables, masks = [t[alive] for t in tables], [m[alive] for m in new]
        if not changed:
            break
    return res, widths, base, tables, masks


def _split(rows: tuple) -> tuple:
    """Split every row on the slot whose feasible options spread widest, one row per feasible option."""
    res, widths, base, tables, masks = rows
    spread = [np.where(m, t, 0).max(axis=1) - np.where(m, t, np.iinfo(np.int64).max).min(axis=1)
              for m, t in zip(masks, tables, strict=True)]
    s = int(np.argmax([sp.mean() for sp in spread]))
    row, opt = np.nonzero(masks[s])
    one_hot = np.zeros((len(row), masks[s].shape[1]), dtype=bool)
    one_hot[np.arange(len(row)), opt] = True
    masks = [one_hot if i == s else m[row] for i, m in enumerate(masks)]
    return res[row], widths[row], base[row], [t[row] for t in tables], masks


@lru_cache(maxsize=8)
def _window_boxes(space: SearchSpace, lo: int, hi: int, refine: int) -> _Boxes | None:
    res, widths, fmin, fmax = _combo_extremes(space)
    keep = (fmin <= hi) & (fmax >= lo)
    res, widths = res[keep], widths[keep]
    base, tables = _slot_macs(space, res, widths, _slot_options(space))
    rows = _prune((res, widths, base, tables, [np.ones(t.shape, dtype=bool) for t in tables]), lo, hi)
    for _ in range(refine - 1):  # level 1 prunes; each further level splits and prunes again (while small)
        if len(rows[0]) * max(t.shape[1] for t in tables) > 300_000:
            break
        rows = _prune(_split(rows), lo, hi)
    res, widths, _, _, masks = rows
    if len(res) == 0:
        return None
    counts = [m.sum(axis=1) for m in masks]
    weights = np.prod(np.stack(counts).astype(np.float64), axis=0)
    order = [np.argsort(~m, axis=1, kind="stable").astype(np.int16) for m in masks]
    return _Boxes(res, widths, weights / weights.sum(), counts, order)


def _plain_boxes(space: SearchSpace, lo: int, hi: int) -> _Boxes | None:
    """Boxes with every option open, one per combination whose FLOPs range meets the window."""
    res, widths, fmin, fmax = _combo_extremes(space)
    keep = np.flatnonzero((fmin <= hi) & (fmax >= lo))
    if len(keep) == 0:
        return None
    full = [np.broadcast_to(np.arange(len(o), dtype=np.int16), (len(keep), len(o))) for o in _slot_options(space)]
    counts = [np.full(len(keep), len(o)) for o in _slot_options(space)]
    return _Boxes(res[keep], widths[keep], np.full(len(keep), 1.0 / len(keep)), counts, full)


def flops_range(space: SearchSpace) -> tuple[float, float]:
    """The least and most MFLOPs of any subnet in the space."""
    return arch_mflops(min_arch(space), space), arch_mflops(max_arch(space), space)


class EmptyWindowError(BadInput):
    """No legal subnet has FLOPs inside the requested window."""


def sample_in_window(space: SearchSpace, lo: float, hi: float, n: int,
                     seed: int | np.random.Generator | None = None, max_proposals: int = 5_000_000) -> np.ndarray:
    """`n` archs drawn exactly uniformly among legal subnets with ``lo <= MFLOPs <= hi`` (encoded rows).

    Proposals are uniform over a union of boxes (a box: one resolution and width vector, and per slot a set of
    options) that covers every subnet inside the window, and are kept when their FLOPs fall inside it. A box is
    chosen in proportion to its size, so the kept draws are exactly uniform. Where plain boxes (all options open)
    hit the window too rarely, each box's options are pruned to those that can still reach the window, and boxes
    are split on their widest slot and pruned again; pruning never drops a subnet inside the window.
    """
    if lo > hi:
        raise EmptyWindowError(f"empty FLOPs window [{lo}, {hi}]")
    rng = _rng(seed)
    lo_mac, hi_mac = int(np.floor(lo * 1e6)) - 1, int(np.ceil(hi * 1e6)) + 1  # a little wider: never loses a subnet
    boxes = _plain_boxes(space, lo_mac, hi_mac)
    refine = 0
    out: list[np.ndarray] = []
    found = proposed = 0
    while found < n:
        if boxes is None:
            smin, smax = flops_range(space)
            raise EmptyWindowError(f"no subnet of space {space.name!r} has {lo:g}-{hi:g} MFLOPs "
                                   f"(the space spans {smin:.3f}-{smax:.3f})")
        if proposed >= max_proposals:
            raise EmptyWindowError(f"found only {found} of {n} subnets with {lo:g}-{hi:g} MFLOPs after "
                                   f"{proposed} proposals")
        m = boxes.propose(space, _BATCH, rng)
        f = batch_mflops(m, space)
        hits = m[(f >= lo) & (f <= hi)]
        out.append(hits[: n - found])
        found += len(out[-1])
        proposed += _BATCH
        if len(hits) < _BATCH // 300 and found < n and refine < 3:
            refine += 1  # under 0.3% acceptance: tighten the boxes
            boxes = _window_boxes(space, lo_mac, hi_mac, refine)
    return np.concatenate(out)


def extreme_arch(space: SearchSpace, largest: bool) -> Arch:
    """The smallest (every choice at its minimum) or largest subnet of the space."""
    pick = max if largest else min
    first = pick(space.first_conv_widths)
    stem = StemConfig(first, pick(space.stem.depths), pick(space.stem.kernels))
    stages = []
    prev = first
    for s in space.stages:
        width = pick(w for w in s.widths if w >= prev)
        a, b = s.micro_choices()
        cls = TransformerStageConfig if s.is_transformer else CNNStageConfig
        stages.append(cls(width, pick(s.depths), pick(a), pick(b)))
        prev = width
    return Arch(pick(space.resolutions), first, stem, tuple(stages))


def min_arch(space: SearchSpace) -> Arch:
    return extreme_arch(space, largest=False)


def max_arch(space: SearchSpace) -> Arch:
    return extreme_arch(space, largest=True)


def _column_choices(space: SearchSpace) -> list[tuple[int, ...]]:
    """The legal values of every encoded column, in column order."""
    out: list[tuple[int, ...]] = [space.resolutions, space.first_conv_widths, space.stem.depths, space.stem.kernels]
    for s in space.stages:
        out += [s.widths, s.depths, *s.micro_choices()]
    return [tuple(sorted(c)) for c in out]


def _draw_between(rng: np.random.Generator, choices: tuple[int, ...], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per row, a uniform draw among `choices` within [lo, hi] (never empty: the current value lies there)."""
    c = np.asarray(choices)
    first = np.searchsorted(c, lo, side="left")
    count = np.searchsorted(c, hi, side="right") - first
    return c[first + (rng.random(len(lo)) * count).astype(np.int64)]


def _width_columns(space: SearchSpace) -> list[int]:
    return [enc.FIRST] + [enc.stage_col(i, enc.WIDTH) for i in range(len(space.stages))]


def _depth_columns(space: SearchSpace) -> list[int]:
    return [enc.STEM_DEPTH] + [enc.stage_col(i, enc.DEPTH) for i in range(len(space.stages))]


def mutate_many(matrix: np.ndarray, space: SearchSpace, seed: int | np.random.Generator | None = None,
                prob: float = 0.2, depth_prob: float = 0.4) -> np.ndarray:
    """Mutated copies of an encoded batch: each dimension is redrawn with probability `prob` (depths with
    `depth_prob`), uniformly among its legal choices.

    The official search's bugs are fixed: every depth up to the maximum is reachable, widths move over the
    space's own choices, and a mutated resolution is really applied. The official draw keeps the minimum choice
    with probability 0.55; ours is uniform, so mutation does not drift to small subnets. Widths are redrawn among
    the choices that keep the width vector non-decreasing, so every child is legal.
    """
    rng = _rng(seed)
    m = np.array(matrix, dtype=np.int64, copy=True).reshape(-1, enc.n_columns(space))
    n = len(m)
    choices = _column_choices(space)
    widths, depths = _width_columns(space), set(_depth_columns(space))
    for col, options in enumerate(choices):
        hit = rng.random(n) < (depth_prob if col in depths else prob)
        if col in widths:
            k = widths.index(col)
            lo = m[:, widths[k - 1]] if k > 0 else np.full(n, options[0])
            hi = m[:, widths[k + 1]] if k + 1 < len(widths) else np.full(n, options[-1])
            drawn = _draw_between(rng, options, lo, hi)
        else:
            drawn = np.asarray(options)[rng.integers(0, len(options), n)]
        m[:, col] = np.where(hit, drawn, m[:, col])
    return m


def crossover_many(a: np.ndarray, b: np.ndarray, space: SearchSpace,
                   seed: int | np.random.Generator | None = None) -> np.ndarray:
    """Children of encoded parent pairs (row i of `a` with row i of `b`): each takes its resolution, whole width
    vector and whole depth vector each from a random parent, and its stem kernel and each stage's micro-settings
    (kernel/expansion or MLP/V) from a random parent. Always legal when both parents are."""
    rng = _rng(seed)
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    child = a.copy()
    groups = [[enc.RES], _width_columns(space), _depth_columns(space), [enc.STEM_KERNEL]]
    groups += [[enc.stage_col(i, enc.MICRO_A), enc.stage_col(i, enc.MICRO_B)] for i in range(len(space.stages))]
    for cols in groups:
        take_b = rng.random(len(a)) < 0.5
        rows_cols = np.ix_(take_b, np.asarray(cols))
        child[rows_cols] = b[rows_cols]
    return child


def mutate(arch: Arch, space: SearchSpace, seed: int | np.random.Generator | None = None,
           prob: float = 0.2, depth_prob: float = 0.4) -> Arch:
    """`mutate_many` for one arch."""
    return enc.decode(mutate_many(enc.encode(arch)[None], space, seed, prob, depth_prob)[0], space)


def crossover(a: Arch, b: Arch, space: SearchSpace, seed: int | np.random.Generator | None = None) -> Arch:
    """`crossover_many` for one pair of archs."""
    return enc.decode(crossover_many(enc.encode(a)[None], enc.encode(b)[None], space, seed)[0], space)


def archs(matrix: np.ndarray, space: SearchSpace) -> list[Arch]:
    """Decode an encoded batch into `Arch` objects."""
    return enc.decode_many(matrix, space)
