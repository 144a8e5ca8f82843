"""Subnet sampling strategies of supernet training (official `models/model.py`, `process.py`): windows, HSS, level
walk, banks, q, preference rule, sandwich, determinism and exact resume."""

import dataclasses
import hashlib
import itertools
import json
import random
from itertools import pairwise

import numpy as np
import pytest

from supernet import encoding as enc
from supernet.arch import Arch
from supernet.flops import arch_mflops, batch_mflops
from supernet.sampling import flops_range, max_arch, min_arch
from supernet.space import ELASTICVIT, TINY
from supernet.training import (
    ELASTICVIT_HSS,
    TINY_HSS,
    ElasticViTSampler,
    MemoryBank,
    PlannedSubnet,
    SamplerConfig,
    SamplerStateError,
    StepPlan,
    check_config,
    default_config,
    dominating_subspace,
    get_sampler,
    next_level_index,
    pick_preferred,
    sample_dominating,
    sampler_config,
    sampler_names,
    select_hss,
    walk_moves,
)
from supernet.training.samplers import complexity as complexity_mod
from supernet.training.train_config import ConfigError
from supernet.validation import validate

from .conftest import MICRO

PAPER = SamplerConfig()


def _dominates(arch: Arch, hss: Arch) -> bool:
    """Official `util/subnet.py`: res, stem, per-stage width/depth >= the min's; e and mlp >= the min's minima; v >= per
    stage."""
    min_e = min(s.expansion for s in hss.stages if not s.is_transformer)
    min_mlp = min(s.mlp_ratio for s in hss.stages if s.is_transformer)
    ok = arch.resolution >= hss.resolution and arch.first_conv >= hss.first_conv
    ok &= arch.stem.depth >= hss.stem.depth
    for a, h in zip(arch.stages, hss.stages, strict=True):
        ok &= a.width >= h.width and a.depth >= h.depth
        if a.is_transformer:
            ok &= a.mlp_ratio >= min_mlp and a.v_scale >= h.v_scale
        else:
            ok &= a.expansion >= min_e
    return bool(ok)


def _dominates_rows(rows: np.ndarray, hss: Arch, space) -> np.ndarray:
    """`_dominates` on encoded rows, vectorised."""
    h = enc.encode(hss)
    min_e = min(s.expansion for s in hss.stages if not s.is_transformer)
    min_mlp = min(s.mlp_ratio for s in hss.stages if s.is_transformer)
    ok = (rows[:, enc.RES] >= h[enc.RES]) & (rows[:, enc.FIRST] >= h[enc.FIRST])
    ok &= rows[:, enc.STEM_DEPTH] >= h[enc.STEM_DEPTH]
    for i, st in enumerate(space.stages):
        col = lambda f, i=i: enc.stage_col(i, f)  # noqa: E731
        ok &= (rows[:, col(enc.WIDTH)] >= h[col(enc.WIDTH)]) & (rows[:, col(enc.DEPTH)] >= h[col(enc.DEPTH)])
        if st.is_transformer:
            ok &= (rows[:, col(enc.MICRO_A)] >= min_mlp) & (rows[:, col(enc.MICRO_B)] >= h[col(enc.MICRO_B)])
        else:
            ok &= rows[:, col(enc.MICRO_B)] >= min_e
    return ok


def _ce(arch: Arch) -> float:
    """A synthetic, deterministic clean-batch CE in [1, 3)."""
    h = int(hashlib.sha256(arch.to_json().encode()).hexdigest()[:8], 16)
    return 1.0 + 2.0 * h / 2 ** 32


def _small(space, **kw) -> SamplerConfig:
    """The default config of `space` with small banks, so exploitation starts within a few steps."""
    return dataclasses.replace(default_config(space), **{"bank_size": 6, "big_bank_size": 4, **kw})


def _run(sampler, steps, epoch_len=10):
    """Sample and observe `steps`, with synthetic CE and an end-of-epoch walk step; returns plans and states."""
    plans, states = [], []
    for step in steps:
        plan = sampler.sample(step, step // epoch_len)
        sampler.observe(plan, [_ce(s.arch) for s in plan.subnets])
        if (step + 1) % epoch_len == 0:
            sampler.end_epoch(step // epoch_len)
        plans.append(plan)
        states.append(json.dumps(sampler.state_dict()))
    return plans, states


# ----- configuration -------------------------------------------------------------------------------------------
def test_config_to_dict_holds_every_field():
    """Resume compares `to_dict`: every field must be in it, JSON-able, and differ when the field differs."""
    names = [f.name for f in dataclasses.fields(SamplerConfig)]
    for c in (PAPER, default_config(TINY)):
        d = c.to_dict()
        assert list(d) == names and json.loads(json.dumps(d)) == d
        assert d["hss"] == [[key, arch.to_dict()] for key, arch in c.hss]
        for name in (n for n in names if n != "hss"):
            value = getattr(c, name)
            assert d[name] == (list(value) if isinstance(value, tuple) else value)
    changed = {"levels": (1.0, 2.0), "window": 3.0, "hss": TINY_HSS, "bank_size": 7, "big_bank_size": 3,
               "big_bank_from": 1.0, "q0": 0.5, "q_inc": 0.1, "q_every": 3, "n_candidates": 2, "n_uniform": 1,
               "sandwich_uniform": 4}
    assert sorted(changed) == sorted(names)  # a new field must be added here too
    for name, value in changed.items():
        other = dataclasses.replace(PAPER, **{name: value}).to_dict()
        assert [n for n in names if other[n] != PAPER.to_dict()[n]] == [name]


def test_paper_defaults():
    c = default_config(ELASTICVIT)
    assert c == PAPER
    assert c.levels == (100, 200, 300, 400, 500, 700, 900, 1200) and c.window == 20
    assert [c.bank_capacity(x) for x in c.levels] == [150] * 4 + [50] * 4
    assert (c.n_candidates, c.n_uniform, c.sandwich_uniform) == (5, 3, 2)
    check_config(ELASTICVIT, c)


@pytest.mark.parametrize("epochs,q", [((0, 50, 98), 0.20), ((99, 150, 198), 0.35), ((199, 298), 0.50),
                                      ((299, 398), 0.65), ((399, 498), 0.80), ((499, 598), 0.95),
                                      ((599, 650, 698), 1.10)])
def test_q_schedule(epochs, q):
    for e in epochs:
        assert PAPER.q(e) == pytest.approx(q)


@pytest.mark.parametrize("level,mflops", [(100, 37.37), (200, 37.37), (300, 159.92), (400, 159.92),
                                          (500, 288.81), (700, 288.81), (900, 288.81), (1200, 288.81)])
def test_hss_per_level(level, mflops):
    hss = PAPER.hss_for(level, ELASTICVIT)
    assert not validate(hss, ELASTICVIT)
    assert round(arch_mflops(hss, ELASTICVIT), 2) == mflops


def test_hss_set_and_edge_levels():
    assert [round(arch_mflops(a, ELASTICVIT), 2) for _, a in ELASTICVIT_HSS] == [37.37, 159.92, 288.81]
    assert min_arch(ELASTICVIT) == ELASTICVIT_HSS[0][1]
    assert select_hss(420, ELASTICVIT_HSS, 20) is ELASTICVIT_HSS[1][1]
    assert select_hss(421, ELASTICVIT_HSS, 20) is ELASTICVIT_HSS[2][1]
    assert select_hss(20, ELASTICVIT_HSS, 20) is None  # official: no key; falls back to the global min
    assert PAPER.hss_for(20, ELASTICVIT) == min_arch(ELASTICVIT)


def test_tiny_default_config():
    c = default_config(TINY)
    lo, hi = flops_range(TINY)
    assert len(c.levels) == 8 and all(lo < a < b < hi for a, b in pairwise(c.levels))
    assert 0 < c.window < c.levels[1] - c.levels[0]
    # The tiny space's own HSS set, mapped to levels as in the paper: 2 levels -> min1, 2 -> min2, the rest -> min3.
    assert c.hss == TINY_HSS and TINY_HSS[0][1] == min_arch(TINY)
    mins = [TINY_HSS[i][1] for i in (0, 0, 1, 1, 2, 2, 2, 2)]
    assert [c.hss_for(x, TINY) for x in c.levels] == mins
    assert [round(arch_mflops(a, TINY), 2) for _, a in TINY_HSS] == [2.4, 3.33, 4.59]
    assert all(_dominates(b, a) for (_, a), (_, b) in pairwise(TINY_HSS))  # a hierarchy
    assert dominating_subspace(TINY, min_arch(TINY)).stages == TINY.stages  # the whole space
    check_config(TINY, c)
    s = get_sampler("elasticvit", TINY, seed=3)
    plans, _ = _run(s, range(60))
    assert {p.level for p in plans} >= set(c.levels[:5])
    for p in plans:
        hss = c.hss_for(p.level, TINY)
        for sub in p.subnets[:-1]:
            assert p.level <= arch_mflops(sub.arch, TINY) <= p.level + c.window
            assert _dominates(sub.arch, hss)
        assert p.subnets[-1].arch == hss


def test_empty_windows_are_rejected():
    _, hi = flops_range(TINY)
    with pytest.raises(ConfigError, match="no subnet"):
        check_config(TINY, dataclasses.replace(default_config(TINY), levels=(hi + 1,)))
    # Non-empty in the whole space, empty in the sub-space that dominates the (max) HSS.
    only_max = dataclasses.replace(default_config(TINY), hss=((1.0, max_arch(TINY)),))
    with pytest.raises(ConfigError, match="level 2.9"):
        check_config(TINY, only_max)
    with pytest.raises(ConfigError, match="ascending"):
        check_config(TINY, dataclasses.replace(default_config(TINY), levels=(5.0, 4.0)))


# ----- level subnets: windows, HSS sub-space ---------------------------------------------------------------------
def test_level_subnets_in_window_and_dominating_hss():
    s = get_sampler("complexity", ELASTICVIT, seed=0)
    for i, level in enumerate(PAPER.levels):
        s.level_index = i
        plan = s.sample(i, 0)
        assert plan.level == level and plan.roles == ("uniform",) * 3 + ("min",)
        hss = PAPER.hss_for(level, ELASTICVIT)
        assert plan.subnets[-1].arch == hss
        for sub in plan.subnets[:3]:
            assert not validate(sub.arch, ELASTICVIT)
            assert level <= arch_mflops(sub.arch, ELASTICVIT) <= level + 20
            assert sub.mflops == arch_mflops(sub.arch, ELASTICVIT)
            assert _dominates(sub.arch, hss), (level, sub.arch)
        more = sample_dominating(ELASTICVIT, hss, level, level + 20, 20, np.random.default_rng(i))
        assert all(_dominates(a, hss) and level <= arch_mflops(a, ELASTICVIT) <= level + 20 for a in more)
    # min2's MLP ratios are 2,3,2,2: like the official code, every stage keeps MLP >= their minimum (2).
    sub = dominating_subspace(ELASTICVIT, ELASTICVIT_HSS[1][1])
    assert all(sub.stages[i].mlp_ratios == (2, 3, 4, 5) for i in range(2, 6))
    sub = dominating_subspace(ELASTICVIT, ELASTICVIT_HSS[2][1])
    assert sub.resolutions == (224, 256) and sub.stages[2].widths == (64, 80, 96)
    assert sub.stages[3].depths == (2, 3, 4, 5, 6) and sub.stages[3].mlp_ratios == (2, 3, 4, 5)
    assert sub.stages[1].expansions == (3, 4, 5, 6) and sub.stages[0].kernels == (3, 5)


def test_dominating_window_sampling_is_uniform():
    """Chi-square against brute force on a space small enough to enumerate."""
    hss = Arch.from_dict({**min_arch(MICRO).to_dict(), "resolution": 48})
    hss = dataclasses.replace(hss, stages=(dataclasses.replace(hss.stages[0], depth=2),) + hss.stages[1:])
    cols = [MICRO.resolutions, MICRO.first_conv_widths, MICRO.stem.depths, MICRO.stem.kernels]
    for st in MICRO.stages:
        cols += [st.widths, st.depths, *st.micro_choices()]
    rows = np.array(list(itertools.product(*cols)), dtype=np.int64)
    widths = np.stack([rows[:, enc.FIRST]] + [rows[:, enc.stage_col(i, enc.WIDTH)] for i in range(6)], axis=1)
    rows = rows[(widths[:, 1:] >= widths[:, :-1]).all(axis=1)]
    dom = _dominates_rows(rows, hss, MICRO)
    f = batch_mflops(rows, MICRO)
    lo = float(np.quantile(f[dom], 0.4))
    hi = lo + 0.05
    population = rows[dom & (f >= lo) & (f <= hi)]
    assert 30 < len(population) < 1000 and (~dom & (f >= lo) & (f <= hi)).any()
    drawn = sample_dominating(MICRO, hss, lo, hi, 20 * len(population), np.random.default_rng(0))
    keys = {tuple(r): i for i, r in enumerate(population)}
    counts = np.bincount([keys[tuple(enc.encode(a))] for a in drawn], minlength=len(population))
    expected = len(drawn) / len(population)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    df = len(population) - 1
    assert chi2 < df + 6 * np.sqrt(2 * df), (chi2, df)


# ----- level walk -----------------------------------------------------------------------------------------------
def test_walk_moves():
    assert walk_moves(0, 8) == (0, 0, 1) and walk_moves(7, 8) == (-1, 0, 0) and walk_moves(3, 8) == (-1, 0, 1)
    assert walk_moves(0, 1) == (0, 0, 0)


def test_walk_transition_frequencies():
    rng = np.random.default_rng(0)
    n = 4000
    for start, expect in [(0, {0: 2 / 3, 1: 1 / 3}), (7, {-1: 1 / 3, 0: 2 / 3}),
                          (3, {-1: 1 / 3, 0: 1 / 3, 1: 1 / 3})]:
        moves = np.array([next_level_index(start, 8, rng) - start for _ in range(n)])
        assert set(np.unique(moves)) == set(expect)
        for m, p in expect.items():
            assert abs((moves == m).mean() - p) < 0.04, (start, m)


def test_end_of_epoch_walk_step():
    s = get_sampler("complexity", TINY, seed=5)
    seen = []
    for epoch in range(40):
        before = s.level_index
        s.end_epoch(epoch)
        assert s.level_index - before in walk_moves(before, 8)
        seen.append(s.level_index)
    assert len(set(seen)) > 2
    again = get_sampler("complexity", TINY, seed=5)
    for epoch in range(40):
        again.end_epoch(epoch)
    assert again.level_index == seen[-1]


def test_sampler_level_walk():
    s = get_sampler("complexity", TINY, seed=5)
    levels = [s.sample(step, 0).level_index for step in range(150)]
    assert levels[0] == 0
    assert all(abs(b - a) <= 1 for a, b in pairwise(levels))
    assert max(levels) >= 2  # it does move
    stays = [b == a for a, b in pairwise(levels) if a == 0]
    assert 0.4 < np.mean(stays) < 0.9


# ----- memory bank ----------------------------------------------------------------------------------------------
def test_bank_capacity_and_worst_replacement():
    a = [dataclasses.replace(min_arch(TINY), resolution=r) for r in (32, 40, 48)]
    b = MemoryBank(3)
    assert b.half_full == 1
    for arch, score in zip(a, (-3.0, -1.0, -2.0), strict=True):
        assert b.insert(arch, score)
    assert len(b) == 3
    assert not b.insert(a[0], -5.0) and [e.score for e in b.entries] == [-3.0, -1.0, -2.0]
    assert not b.insert(a[0], -3.0)  # ties do not replace
    assert b.insert(a[1], -1.5)
    assert [e.score for e in b.entries] == [-1.5, -1.0, -2.0] and len(b) == 3
    assert b.best().score == -1.0 and b.entries[b.worst_index()].score == -2.0
    s = ElasticViTSampler(ELASTICVIT)
    assert [bank.capacity for bank in s.banks] == [150] * 4 + [50] * 4


def test_bank_softmax_draw():
    archs = [dataclasses.replace(min_arch(TINY), resolution=r) for r in (32, 40, 48)]
    b = MemoryBank(5)
    for arch, score in zip(archs, (0.0, -1.0, -2.0), strict=True):
        b.insert(arch, score)
    p = np.exp([0.0, -1.0, -2.0])
    p /= p.sum()
    assert np.allclose(b.probabilities(), p)
    rng = np.random.default_rng(0)
    draws = [archs.index(b.draw(rng)) for _ in range(4000)]
    assert np.allclose(np.bincount(draws, minlength=3) / 4000, p, atol=0.03)


def _one_level(q0, bank_size=4, **kw):
    return _small(TINY, levels=(5.3,), q0=q0, q_inc=0.0, bank_size=bank_size, **kw)


def _fill_arch(sampler, level_index, k=0):
    c = sampler.config.levels[level_index]
    return sample_dominating(TINY, min_arch(TINY), c, c + sampler.config.window, 1, np.random.default_rng(100 + k))[0]


def _fill(sampler, level_index, n, start=0.0):
    for k in range(n):
        sampler.banks[level_index].insert(_fill_arch(sampler, level_index, k), start - k)


def test_exploitation_only_above_half_capacity():
    s = ElasticViTSampler(TINY, _one_level(q0=1.0), seed=0)  # capacity 4, half 2, q = 1
    _fill(s, 0, 2)
    plan = s.sample(0, 0)
    assert not any(x.from_bank for x in plan.subnets) and plan.feedback == (0, 1, 2)
    _fill(s, 0, 1, start=-5.0)
    plan = s.sample(1, 0)
    assert all(x.from_bank for x in plan.subnets[:3]) and plan.feedback == ()
    assert all(x.arch in s.bank_archs(0) for x in plan.subnets[:3])
    assert plan.subnets[3].role == "min" and not plan.subnets[3].from_bank
    s0 = ElasticViTSampler(TINY, _one_level(q0=0.0), seed=0)
    _fill(s0, 0, 4)
    assert not any(x.from_bank for x in s0.sample(0, 0).subnets)


def test_exploitation_rate_follows_q():
    s = ElasticViTSampler(TINY, _one_level(q0=0.35), seed=1)
    _fill(s, 0, 4)
    flags = [x.from_bank for step in range(100) for x in s.sample(step, 0).subnets[:3]]
    assert abs(np.mean(flags) - 0.35) < 0.09


def test_observe_inserts_only_explored():
    s = ElasticViTSampler(TINY, _one_level(q0=0.5, bank_size=100), seed=2)
    _fill(s, 0, 60)
    inserted = 0
    for step in range(10):
        plan = s.sample(step, 0)
        before = len(s.banks[0])
        s.observe(plan, [None if i not in plan.feedback else 2.0 for i in range(len(plan.subnets))])
        assert len(s.banks[0]) - before == len(plan.feedback)
        assert set(plan.feedback) == {i for i, x in enumerate(plan.subnets) if x.role == "uniform" and
                                      not x.from_bank}
        inserted += len(plan.feedback)
    assert 0 < inserted < 30
    with pytest.raises(ValueError, match="CE values"):
        s.observe(plan, [1.0])
    bad = s.sample(10, 0)
    if bad.feedback:
        with pytest.raises(ValueError, match="finite"):
            s.observe(bad, [float("nan")] * len(bad.subnets))


def test_observe_skips_bank_draws_and_out_of_window_subnets():
    s = ElasticViTSampler(TINY, _one_level(q0=0.0), seed=0)
    level, arch = s.config.levels[0], _fill_arch(s, 0)
    big = max_arch(TINY)
    subnets = (PlannedSubnet(big, "uniform", arch_mflops(big, TINY)), PlannedSubnet(arch, "uniform", level, True),
               PlannedSubnet(arch, "min", level), PlannedSubnet(arch, "uniform", level))
    s.observe(StepPlan(0, 0, 0, level, subnets, (0, 1, 2, 3)), [1.0, 2.0, 3.0, 4.0])
    assert [(e.arch, e.score) for e in s.banks[0].entries] == [(arch, -4.0)]


def test_rescore_replaces_scores_and_drops_out_of_window():
    s = ElasticViTSampler(TINY, _one_level(q0=0.0), seed=0)
    _fill(s, 0, 2)
    s.banks[0].insert(max_arch(TINY), -0.5)
    archs = s.bank_archs(0)
    s.rescore(0, [0.25, 0.5, 0.1])
    assert s.bank_archs(0) == archs[:2] and [e.score for e in s.banks[0].entries] == [-0.25, -0.5]
    with pytest.raises(ValueError):
        s.rescore(0, [1.0])


# ----- preference rule ------------------------------------------------------------------------------------------
def _brute_diff(cand: Arch, anchor: Arch, space) -> float:
    swap_w = tuple(dataclasses.replace(c, width=a.width) if c.is_transformer else c
                   for c, a in zip(cand.stages, anchor.stages, strict=True))
    swap_d = tuple(dataclasses.replace(c, depth=a.depth) if c.is_transformer else c
                   for c, a in zip(cand.stages, anchor.stages, strict=True))
    return (arch_mflops(dataclasses.replace(cand, stages=swap_w), space)
            - arch_mflops(dataclasses.replace(cand, stages=swap_d), space))


def test_pick_preferred_matches_brute_force():
    rng = np.random.default_rng(0)
    anchor = PAPER.hss_for(300, ELASTICVIT)
    for level in (300, 700):
        for _ in range(5):
            cands = sample_dominating(ELASTICVIT, PAPER.hss_for(level, ELASTICVIT), level, level + 20, 5, rng)
            diffs = [_brute_diff(c, anchor, ELASTICVIT) for c in cands]
            assert pick_preferred(cands, anchor, ELASTICVIT) == int(np.argmin(diffs))


def test_sampler_applies_preference_rule(monkeypatch):
    c = default_config(TINY)
    cfg = _small(TINY, levels=c.levels[:2], q0=0.0, q_inc=0.0, bank_size=4)
    s = ElasticViTSampler(TINY, cfg, seed=4)
    drawn = []

    def spy(*args, **kw):
        out = sample_dominating(*args, **kw)
        drawn.append(out)
        return out

    monkeypatch.setattr(complexity_mod, "sample_dominating", spy)
    # Level 0 with a small bank: the first candidate, one candidate per subnet.
    plan = s.sample(0, 0)
    assert len(drawn[-1]) == 3 and list(plan.archs[:3]) == drawn[-1]
    # Level 1, its bank at half capacity: 5 candidates each, min diff against the best arch of bank 0.
    _fill(s, 0, 3)
    best = s.banks[0].best().arch
    s.banks[0].insert(s.banks[0].entries[-1].arch, 10.0)  # a new best, last in the bank
    assert s.anchor(1) != best and s.anchor(1) == s.banks[0].entries[-1].arch
    s.banks[1] = MemoryBank(4)
    lvl1 = sample_dominating(TINY, min_arch(TINY), cfg.levels[1], cfg.levels[1] + cfg.window, 2,
                             np.random.default_rng(7))
    for k, arch in enumerate(lvl1):
        s.banks[1].insert(arch, -float(k))
    s.level_index = 1
    picks = 0
    for step in range(1, 6):
        s.level_index = 1
        plan = s.sample(step, 0)
        groups = [drawn[-1][i * 5:(i + 1) * 5] for i in range(3)]
        assert len(drawn[-1]) == 15
        for g, sub in zip(groups, plan.subnets[:3], strict=True):
            diffs = [_brute_diff(x, s.anchor(1), TINY) for x in g]
            assert sub.arch == g[int(np.argmin(diffs))]
            picks += int(np.argmin(diffs)) != 0
    assert picks > 0  # the rule really chose, not just the first candidate
    assert s.anchor(0) == min_arch(TINY)
    s.banks[0] = MemoryBank(4)
    assert s.anchor(1) == min_arch(TINY)


# ----- sandwich, registry ---------------------------------------------------------------------------------------
def test_sandwich_composition():
    s = get_sampler("sandwich", ELASTICVIT, seed=0)
    plans = [s.sample(step, 0) for step in range(5)]
    for p in plans:
        assert p.roles == ("max", "uniform", "uniform", "min") and p.level is None and p.feedback == ()
        assert p.archs[0] == max_arch(ELASTICVIT) and p.archs[-1] == min_arch(ELASTICVIT)
        assert all(not validate(a, ELASTICVIT) for a in p.archs)
    assert len({a for p in plans for a in p.archs[1:3]}) == 10


def test_registry():
    assert sampler_names() == ["complexity", "elasticvit", "sandwich"]
    assert type(get_sampler("complexity", TINY)).__name__ == "ComplexitySampler"
    with pytest.raises(KeyError, match="known"):
        get_sampler("nope", TINY)


# ----- determinism and resume -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sandwich", "complexity", "elasticvit"])
def test_determinism_ignores_global_rng(name):
    cfg = _small(TINY, q0=0.5)
    a, b = get_sampler(name, TINY, cfg, seed=11), get_sampler(name, TINY, cfg, seed=11)
    pa, _ = _run(a, range(15))
    pb = []
    for step in range(15):
        np.random.seed(step + 99)
        random.seed(step)
        plan = b.sample(step, step // 10)
        b.observe(plan, [_ce(x.arch) for x in plan.subnets])
        if (step + 1) % 10 == 0:
            b.end_epoch(step // 10)
        pb.append(plan)
    assert pa == pb
    other, _ = _run(get_sampler(name, TINY, cfg, seed=12), range(15))
    assert [p.archs for p in other] != [p.archs for p in pa]


@pytest.mark.parametrize("name", ["complexity", "elasticvit"])
def test_exact_resume(name):
    cfg = _small(TINY, q0=0.5)
    n, k = 40, 23
    full = get_sampler(name, TINY, cfg, seed=7)
    plans, states = _run(full, range(n))
    if name == "elasticvit":
        assert any(x.from_bank for p in plans for x in p.subnets)  # the banks were really used
        assert any(len(b) for b in full.banks[1:])
    resumed = get_sampler(name, TINY, cfg, seed=7)
    resumed.load_state_dict(json.loads(states[k]))
    rest, rest_states = _run(resumed, range(k + 1, n))
    assert rest == plans[k + 1:]
    assert rest_states == states[k + 1:]
    with pytest.raises(ValueError, match="does not follow"):
        resumed.sample(n - 1, 3)


def test_resume_rejects_other_samplers():
    state = get_sampler("elasticvit", TINY, seed=1).state_dict()
    with pytest.raises(SamplerStateError, match="seed"):
        get_sampler("elasticvit", TINY, seed=2).load_state_dict(state)
    with pytest.raises(SamplerStateError, match="strategy"):
        get_sampler("complexity", TINY, seed=1).load_state_dict(state)
    with pytest.raises(SamplerStateError, match="config"):
        get_sampler("elasticvit", TINY, _small(TINY), seed=1).load_state_dict(state)


def test_sampler_options_set_the_hss_and_reject_bad_values(tmp_path):
    (tmp_path / "min2.json").write_text(TINY_HSS[1][1].to_json())
    c = sampler_config(TINY, {"hss": [{"key": 8.51, "arch": TINY_HSS[2][1].to_dict()}, [3.7, "min"],
                                      [5.3, str(tmp_path / "min2.json")]], "levels": [3, 5, 7], "q_every": 1})
    assert c.hss == TINY_HSS and c.levels == (3.0, 5.0, 7.0) and c.q(0) == pytest.approx(0.35)
    for options, message in [({"bank_size": "x"}, "bank_size must be an integer"),
                             ({"bank_size": 2.5}, "bank_size must be an integer"),
                             ({"q0": True}, "q0 must be a number"),
                             ({"levels": 5}, "levels must be a list of numbers"),
                             ({"hss": []}, "non-empty list"),
                             ({"hss": [[1, "min"], [1, "min"]]}, "distinct"),
                             ({"hss": [[0, "min"]]}, "positive number"),
                             ({"hss": [[1, "min", 2]]}, "an hss entry is"),
                             ({"hss": [[1, str(tmp_path / "nope.json")]]}, "nope.json"),
                             ({"hss": [[1, min_arch(ELASTICVIT).to_dict()]]}, "hss arch entry"),
                             ({"q": 1}, "unknown sampler_options key 'q'")]:
        with pytest.raises(ConfigError, match=message):
            sampler_config(TINY, options)
    with pytest.raises(ConfigError, match="q0 must be in"):
        get_sampler("elasticvit", TINY, sampler_config(TINY, {"q0": 1.5}))
    with pytest.raises(ConfigError, match="sandwich_uniform must be >= 0"):
        get_sampler("sandwich", TINY, sampler_config(TINY, {"sandwich_uniform": -1}))


def test_rescore_banks_scores_every_bank_arch_in_one_call():
    s = ElasticViTSampler(TINY, _one_level(q0=0.0), seed=0)
    _fill(s, 0, 3)
    calls = []

    def score(archs):
        calls.append(list(archs))
        return [float(k) for k in range(len(archs))]

    s.rescore_banks([0], score)
    assert calls == [s.bank_archs(0)] and [e.score for e in s.banks[0].entries] == [-0.0, -1.0, -2.0]
    s.banks[0] = MemoryBank(4)
    s.rescore_banks([0], score)
    assert len(calls) == 1  # an empty bank asks for nothing
