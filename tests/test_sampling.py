import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supernet import encoding as enc
from supernet.arch import Arch
from supernet.flops import arch_mflops, batch_mflops
from supernet.sampling import (
    EmptyWindowError,
    _window_boxes,
    archs,
    crossover,
    flops_range,
    max_arch,
    min_arch,
    mutate,
    sample_in_window,
    sample_uniform,
)
from supernet.space import ELASTICVIT, TINY
from supernet.validation import validate

from .conftest import MICRO


def _all_subnets(space):
    """Every legal subnet of a small space, by brute force over the raw choices."""
    cols = [space.resolutions, space.first_conv_widths, space.stem.depths, space.stem.kernels]
    for s in space.stages:
        cols += [s.widths, s.depths, *s.micro_choices()]
    rows = np.array(list(itertools.product(*cols)), dtype=np.int64)
    widths = np.stack([rows[:, enc.FIRST]] + [rows[:, enc.stage_col(i, enc.WIDTH)]
                                              for i in range(len(space.stages))], axis=1)
    return rows[(widths[:, 1:] >= widths[:, :-1]).all(axis=1)]


def _assert_uniform(samples, population):
    """Chi-square test of `samples` against the uniform distribution over `population` rows."""
    keys = {tuple(r): i for i, r in enumerate(population)}
    counts = np.zeros(len(population))
    for r in samples:
        counts[keys[tuple(r)]] += 1  # KeyError: a sample outside the population
    expected = len(samples) / len(population)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    df = len(population) - 1
    assert chi2 < df + 6 * np.sqrt(2 * df), (chi2, df)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), space=st.sampled_from([ELASTICVIT, TINY]))
def test_uniform_samples_are_valid(seed, space):
    for a in archs(sample_uniform(space, 20, seed), space):
        assert validate(a, space) == []


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), level=st.sampled_from([40, 100, 200, 300, 500, 700, 1200, 2600, 3150]))
def test_window_samples_are_valid_and_inside(seed, level):
    rows = sample_in_window(ELASTICVIT, level, level + 20, 10, seed)
    assert len(rows) == 10
    for a in archs(rows, ELASTICVIT):
        assert validate(a, ELASTICVIT) == []
        assert level <= arch_mflops(a, ELASTICVIT) <= level + 20


@pytest.mark.slow  # about 40 s on 2 cores: a chi-square test over many draws
def test_uniform_sampling_is_uniform_over_the_legal_space():
    population = _all_subnets(MICRO)
    _assert_uniform(sample_uniform(MICRO, 40 * len(population), seed=0), population)


@pytest.mark.parametrize("quantiles", [(0.45, 0.55), (0.0, 0.02), (0.985, 1.0)])
def test_window_sampling_is_exactly_uniform(quantiles):
    population = _all_subnets(MICRO)
    f = batch_mflops(population, MICRO)
    lo, hi = np.quantile(f, quantiles)
    inside = population[(f >= lo) & (f <= hi)]
    _assert_uniform(sample_in_window(MICRO, lo, hi, 30 * len(inside), seed=1), inside)
    # the pruned and split boxes (used where plain proposals rarely hit) must stay uniform too
    rng = np.random.default_rng(2)
    for refine in (1, 2, 3):
        boxes = _window_boxes(MICRO, int(lo * 1e6) - 1, int(hi * 1e6) + 1, refine)
        props = boxes.propose(MICRO, 60 * len(inside), rng)
        pf = batch_mflops(props, MICRO)
        _assert_uniform(props[(pf >= lo) & (pf <= hi)], inside)


def test_window_determinism_and_errors():
    a = sample_in_window(ELASTICVIT, 300, 320, 5, seed=7)
    assert np.array_equal(a, sample_in_window(ELASTICVIT, 300, 320, 5, seed=7))
    assert np.array_equal(sample_uniform(TINY, 5, 3), sample_uniform(TINY, 5, 3))
    with pytest.raises(EmptyWindowError, match="spans 37.365-3191.459"):
        sample_in_window(ELASTICVIT, 5000, 5020, 1)
    with pytest.raises(EmptyWindowError):
        sample_in_window(ELASTICVIT, 10, 20, 1)
    with pytest.raises(EmptyWindowError, match="empty FLOPs window"):
        sample_in_window(ELASTICVIT, 30, 20, 1)


def test_extremes():
    lo, hi = flops_range(ELASTICVIT)
    assert (lo, hi) == (pytest.approx(37.365024), pytest.approx(3191.458816))
    mn, mx = min_arch(ELASTICVIT), max_arch(ELASTICVIT)
    assert mn.widths == (16, 16, 16, 48, 80, 144, 160) and mx.widths == (24, 32, 48, 96, 160, 288, 320)
    assert mx.depths == (2, 5, 6, 5, 6, 6, 6) and mx.resolution == 256


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_mutation_and_crossover_stay_valid(seed):
    rng = np.random.default_rng(seed)
    a, b = archs(sample_uniform(ELASTICVIT, 2, rng), ELASTICVIT)
    for child in (mutate(a, ELASTICVIT, rng, prob=0.5, depth_prob=0.5), crossover(a, b, ELASTICVIT, rng)):
        assert validate(child, ELASTICVIT) == []
    child = crossover(a, b, ELASTICVIT, rng)
    assert child.resolution in (a.resolution, b.resolution)
    assert child.widths in (a.widths, b.widths)
    assert child.depths in (a.depths, b.depths)


def test_mutation_reaches_every_choice():
    """Every value of every dimension (max depths and resolutions included) is reached by repeated mutation."""
    rng = np.random.default_rng(0)
    seen = [set() for _ in range(enc.n_columns(ELASTICVIT))]
    for start in (min_arch(ELASTICVIT), max_arch(ELASTICVIT)):
        arch = start
        for _ in range(3000):
            arch = mutate(arch, ELASTICVIT, rng)
            for col, v in enumerate(enc.encode(arch)):
                seen[col].add(int(v))
    want = [set(ELASTICVIT.resolutions), set(ELASTICVIT.first_conv_widths), set(ELASTICVIT.stem.depths),
            set(ELASTICVIT.stem.kernels)]
    for s in ELASTICVIT.stages:
        want += [set(s.widths), set(s.depths), *map(set, s.micro_choices())]
    assert seen == want


def test_mutation_without_probability_is_identity():
    a = archs(sample_uniform(ELASTICVIT, 1, 5), ELASTICVIT)[0]
    assert mutate(a, ELASTICVIT, 1, prob=0.0, depth_prob=0.0) == a
    assert isinstance(crossover(a, a, ELASTICVIT, 1), Arch) and crossover(a, a, ELASTICVIT, 1) == a
