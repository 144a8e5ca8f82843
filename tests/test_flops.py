import math

import numpy as np
import pytest
import torch

from elasticvit_deploy.latency.blocks import stage_input_sides
from supernet.arch import Arch
from supernet.encoding import encode_many
from supernet.flops import arch_flops_breakdown, arch_mflops, batch_mflops, stage_sides
from supernet.geometry import ROUNDINGS, feature_sides
from supernet.model import ElasticViTSupernet, graph_sides
from supernet.sampling import archs, max_arch, min_arch, sample_uniform
from supernet.space import ELASTICVIT, TINY

from .conftest import MICRO
from .test_arch import MIN_OFFICIAL

HSS = {  # official yaml `min_archs`: the hierarchical smallest subnets and their official MFLOPs
    159.92: [176, [16, 24, 32, 48, 96, 176, 224], [1, 3, 3, 2, 2, 2, 2], [1] + [3] * 6, [3] * 7,
             [2, 2, 3, 3, 2, 2, 2, 2],
             [3, 3, 6, 6, 11, 11, 14, 14], [1] * 8, [1] * 8, [2] * 8],
    288.81: [224, [16, 24, 32, 64, 96, 192, 256], [1, 3, 3, 2, 2, 2, 2], [1] + [3] * 6, [3] * 7, [2] * 8,
             [4, 4, 6, 6, 12, 12, 16, 16], [1] * 8, [1] * 8, [2] * 8],
}


def test_anchors_min_and_max():
    assert arch_mflops(min_arch(ELASTICVIT), ELASTICVIT) == pytest.approx(37.365, abs=1e-3)
    assert arch_mflops(max_arch(ELASTICVIT), ELASTICVIT) == pytest.approx(3191.459, abs=1e-3)
    assert arch_mflops(Arch.from_official(MIN_OFFICIAL, ELASTICVIT), ELASTICVIT) == pytest.approx(37.365024)


def test_per_part_values_of_the_official_counter():
    mn = arch_flops_breakdown(min_arch(ELASTICVIT), ELASTICVIT)
    mx = arch_flops_breakdown(max_arch(ELASTICVIT), ELASTICVIT)
    expect_min = {"C0": 6.65, "C1": 1.67, "T0": 2.83, "T1": 7.63, "T2": 7.07, "T3": 3.61, "head": 4.50}
    expect_max = {"C0": 373.36, "C1": 219.74, "T0": 417.57, "T1": 1145.00, "T2": 730.85, "T3": 240.17, "head": 15.62}
    for got, want in ((mn, expect_min), (mx, expect_max)):
        for k, v in want.items():
            assert got[k] == pytest.approx(v, abs=0.006), k
    assert mn["first_conv"] + mn["stem"] == pytest.approx(3.41, abs=0.006)
    assert mx["first_conv"] + mx["stem"] == pytest.approx(49.15, abs=0.006)


@pytest.mark.parametrize("mflops", sorted(HSS))
def test_hierarchical_smallest_subnets(mflops):
    assert arch_mflops(Arch.from_official(HSS[mflops], ELASTICVIT), ELASTICVIT) == pytest.approx(mflops, abs=0.005)


def test_quirks():
    base = min_arch(ELASTICVIT)
    # DW-V counted once per element: raising v_scale of T3 from 2 to 3 adds exactly the formula's terms.
    t3 = base.stages[5]
    more_v = Arch(base.resolution, base.first_conv, base.stem,
                  base.stages[:5] + (type(t3)(t3.width, t3.depth, t3.mlp_ratio, 3),))
    n, h, c = 2 * 2, 10, 160  # res 128: T3 side 2
    dv = 16 * h  # extra V width
    expected = h * n * n * 16 + c * n * dv + n * dv * c + n * dv  # AV + qkv rows + proj + DW-V (x1, not x9)
    assert (arch_mflops(more_v, ELASTICVIT) - arch_mflops(base, ELASTICVIT)) * 1e6 == pytest.approx(expected)
    # Stride-2 MobileBlocks count a shortcut conv even with equal widths (C1: 16 -> 16 at res 128, side 16).
    c1 = arch_flops_breakdown(base, ELASTICVIT)["C1"] * 1e6
    side, cin, e = 16, 16, 3
    inner = cin * e
    layer0 = cin * inner * (2 * side) ** 2 + inner * 9 * side ** 2 + inner * 16 * side ** 2 + inner * (inner // 4) * 2
    rest = 16 * inner * side ** 2 + inner * 9 * side ** 2 + inner * 16 * side ** 2 + inner * (inner // 4) * 2
    assert c1 == layer0 + cin * 16 * side ** 2 + rest


def test_batch_equals_scalar_and_is_monotone():
    for space in (ELASTICVIT, TINY):
        rows = sample_uniform(space, 500, seed=3)
        batch = batch_mflops(rows, space)
        scalar = np.array([arch_mflops(a, space) for a in archs(rows, space)])
        assert np.array_equal(batch, scalar)
        assert batch.min() >= arch_mflops(min_arch(space), space)
        assert batch.max() <= arch_mflops(max_arch(space), space)
    one = min_arch(ELASTICVIT)
    assert batch_mflops(encode_many([one])[0], ELASTICVIT)[0] == arch_mflops(one, ELASTICVIT)


# ----- spatial sides: one rule, three roundings -------------------------------------------------------------------
def _sides_by_hand(space, res: int, rounding: str) -> list[int]:
    """The sides recomputed from first principles: a 3x3 (or 5x5) conv with padding k // 2 and stride s gives
    (side + 2 (k // 2) - k) // s + 1; the official counter writes ``res // 2``, ``side // 2`` for CNN stages and
    ``math.ceil(side / 2)`` for transformer stages; nn-Meter's tables write ``side // stride`` everywhere."""
    conv = lambda side, s: (side + 2 * 1 - 3) // s + 1  # noqa: E731
    if rounding == "graph":
        sides = [conv(res, space.first_conv_stride)]
        for sp in space.stages:
            sides.append(conv(sides[-1], sp.stride))
    elif rounding == "flops":
        sides = [res // space.first_conv_stride]
        for sp in space.stages:
            sides.append(math.ceil(sides[-1] / sp.stride) if sp.is_transformer else sides[-1] // sp.stride)
    else:
        sides = [res // space.first_conv_stride]
        for sp in space.stages:
            sides.append(sides[-1] // sp.stride)
    return sides


def test_feature_sides_match_first_principles_and_every_caller():
    for space in (ELASTICVIT, TINY, MICRO):
        resolutions = {a.resolution for a in archs(sample_uniform(space, 300, seed=8), space)}
        assert resolutions == set(space.resolutions)
        for res in sorted(resolutions):
            for rounding in ROUNDINGS:
                assert feature_sides(space, res, rounding) == _sides_by_hand(space, res, rounding), (res, rounding)
            assert graph_sides(space, res) == _sides_by_hand(space, res, "graph")[1:]
            assert stage_sides(space, res) == _sides_by_hand(space, res, "flops")[1:]
            for convention in ("graph", "nnmeter"):
                assert stage_input_sides(space, res, convention) == _sides_by_hand(space, res, convention)
        column = np.asarray(space.resolutions, dtype=np.int64)
        batch = feature_sides(space, column, "flops")
        by_hand = [_sides_by_hand(space, r, "flops") for r in column]
        assert [list(map(int, s)) for s in zip(*batch, strict=True)] == by_hand
    # The official counter's stage sides (C0, C1, T0..T3) at every resolution of the paper's space.
    official = {128: [32, 16, 8, 8, 4, 2], 160: [40, 20, 10, 10, 5, 3], 176: [44, 22, 11, 11, 6, 3],
                192: [48, 24, 12, 12, 6, 3], 224: [56, 28, 14, 14, 7, 4], 256: [64, 32, 16, 16, 8, 4]}
    assert {r: stage_sides(ELASTICVIT, r) for r in official} == official
    assert graph_sides(ELASTICVIT, 160)[-1] == 3 and feature_sides(ELASTICVIT, 160, "nnmeter")[-1] == 2


def test_graph_sides_are_the_sides_the_network_computes():
    net = ElasticViTSupernet(TINY).eval()
    seen: list[int] = []
    net.conv_stem.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[-1]))
    for stage in net.feature_exactor:
        stage.register_forward_hook(lambda _m, _a, out: seen.append(
            out.shape[-1] if out.dim() == 4 else math.isqrt(out.shape[1])))
    for arch in archs(sample_uniform(TINY, 6, seed=4), TINY) + [min_arch(TINY), max_arch(TINY)]:
        seen.clear()
        net.set_active(arch)
        with torch.no_grad():
            net(torch.zeros(1, 3, TINY.crop_size, TINY.crop_size))
        assert seen[1:] == graph_sides(TINY, arch.resolution) and seen[0] == -(-arch.resolution // 2)
