import numpy as np
import pytest

from supernet.arch import Arch
from supernet.encoding import encode_many
from supernet.flops import arch_flops_breakdown, arch_mflops, batch_mflops
from supernet.sampling import archs, max_arch, min_arch, sample_uniform
from supernet.space import ELASTICVIT, TINY

from .test_arch import MIN_OFFICIAL

HSS = {  # spec 4.2: the hierarchical smallest subnets and their official MFLOPs
    159.92: [176, [16, 24, 32, 48, 96, 176, 224], [1, 3, 3, 2, 2, 2, 2], [1] + [3] * 6, [3] * 7, [2, 2, 3, 3, 2, 2, 2, 2],
             [3, 3, 6, 6, 11, 11, 14, 14], [1] * 8, [1] * 8, [2] * 8],
    288.81: [224, [16, 24, 32, 64, 96, 192, 256], [1, 3, 3, 2, 2, 2, 2], [1] + [3] * 6, [3] * 7, [2] * 8,
             [4, 4, 6, 6, 12, 12, 16, 16], [1] * 8, [1] * 8, [2] * 8],
}


def test_anchors_min_and_max():
    assert arch_mflops(min_arch(ELASTICVIT), ELASTICVIT) == pytest.approx(37.365, abs=1e-3)
    assert arch_mflops(max_arch(ELASTICVIT), ELASTICVIT) == pytest.approx(3191.459, abs=1e-3)
    assert arch_mflops(Arch.from_official(MIN_OFFICIAL, ELASTICVIT), ELASTICVIT) == pytest.approx(37.365024)


def test_per_part_values_of_the_spec():
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
