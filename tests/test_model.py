import pytest
import torch

from supernet.arch import ArchError
from supernet.layers.norms import JointLayerNorm
from supernet.model import ElasticViTSupernet, StaticSubnet
from supernet.sampling import archs, max_arch, min_arch, sample_uniform
from supernet.space import ELASTICVIT, TINY

from .conftest import randomize_


@pytest.fixture(scope="module")
def big():
    torch.manual_seed(0)
    net = ElasticViTSupernet(ELASTICVIT)
    randomize_(net)
    return net.eval()


def _within_float_rounding(diff: float, scale: float) -> bool:
    """Sliced and contiguous weights may take different fp32 kernels (CPU-dependent summation order): allow a few
    ulps of the output's magnitude, nothing more."""
    return diff <= 1e-5 + 1e-6 * scale


def _equal(net, arch, space, batch=1):
    x = torch.randn(batch, 3, space.crop_size, space.crop_size)
    net.set_active(arch)
    with torch.no_grad():
        ref = net(x)
        got = net.extract(arch)(x)
    return (ref - got).abs().max().item(), ref.abs().max().item()


def test_extracted_equals_supernet_min_max_and_20_random(big):
    rows = sample_uniform(ELASTICVIT, 20, seed=11)
    test_archs = [min_arch(ELASTICVIT), max_arch(ELASTICVIT)] + archs(rows, ELASTICVIT)
    assert len({a.resolution for a in test_archs}) >= 5
    for arch in test_archs:
        diff, scale = _equal(big, arch, ELASTICVIT)
        assert scale > 1e-3  # a real signal went through
        assert _within_float_rounding(diff, scale), arch.to_json()


def test_extracted_equals_supernet_tiny_space_batched():
    net = ElasticViTSupernet(TINY)
    randomize_(net, seed=3)
    net.eval()
    for arch in [min_arch(TINY), max_arch(TINY)] + archs(sample_uniform(TINY, 10, seed=2), TINY):
        diff, scale = _equal(net, arch, TINY, batch=3)
        assert _within_float_rounding(diff, scale)


def test_extracted_module_is_static_and_exportable():
    net = ElasticViTSupernet(TINY)
    randomize_(net, seed=5)
    arch = archs(sample_uniform(TINY, 1, seed=9), TINY)[0]
    sub = net.extract(arch)
    assert isinstance(sub, StaticSubnet) and sub.arch == arch and not sub.training
    kinds = {type(m).__name__ for m in sub.modules()}
    assert not kinds & {"MobileBlock", "SuperAttention", "SuperFFN", "ElasticBatchNorm"}
    x = torch.randn(1, 3, arch.resolution, arch.resolution)
    ep = torch.export.export(sub, (x,))
    assert not any("interpolate" in str(n.target) or "upsample" in str(n.target) for n in ep.graph.nodes)
    torch.testing.assert_close(ep.module()(x), sub(x))
    # the in-model resize runs for other input sizes
    assert sub(torch.randn(1, 3, 64, 64)).shape == (1, TINY.num_classes)


def test_official_module_names_and_shapes():
    sd = ElasticViTSupernet(ELASTICVIT).state_dict()
    assert sd["first_conv.weight"].shape == (24, 3, 3, 3)
    assert sd["conv_stem.layers.1.0.dw_conv.weight"].shape == (24, 1, 5, 5)
    assert sd["feature_exactor.1.layers.0.0.se_conv1.weight"].shape == (288 // 4, 288, 1, 1)
    t0 = "feature_exactor.2.layers.0."
    assert sd[t0 + "reduction.pw_conv.weight"].shape == (96 * 6, 96, 1, 1)
    assert sd[t0 + "reduction.dw_conv.weight"].shape == (576, 1, 3, 3)
    assert sd[t0 + "qkv.weight"].shape == (2 * 96 + 4 * 96, 96)
    assert sd[t0 + "attention_bias"].shape == ((2 * 16 - 1) ** 2, 6)
    assert sd[t0 + "relative_position_index"].shape == (256, 256)
    assert sd["feature_exactor.5.layers.0.attention_bias"].shape == ((2 * 4 - 1) ** 2, 20)
    assert sd["feature_exactor.2.layers.1.fc1.weight"].shape == (5 * 96, 96)
    assert sd["pre_head_0.weight"].shape == (1920, 320) and sd["classifer.weight"].shape == (1000, 1984)
    assert "feature_exactor.2.layers.2.reduction.pw_conv.weight" not in sd  # only layer 0 downsamples
    net = ElasticViTSupernet(ELASTICVIT)
    assert float(net.feature_exactor[0].layers[1][0].pwl_bn.weight.detach().abs().sum()) == 0  # stride-1: gamma 0
    assert float(net.feature_exactor[0].layers[0][0].pwl_bn.weight.detach().min()) == 1  # stride-2: gamma 1


def test_weight_sharing_slices(big):
    arch = min_arch(ELASTICVIT)  # kernel 3 everywhere, T0 width 48 of 96, v 2
    sub = big.extract(arch)
    dw_super = big.feature_exactor[0].layers[0][0].dw_conv.weight
    dw_sub = sub.cnn[1].dw_conv.weight  # cnn[0] is the stem layer
    assert torch.equal(dw_sub, dw_super[: dw_sub.shape[0], :, 1:4, 1:4])  # kernel 3 = centre of 5x5
    attn = [m for m in sub.transformer if type(m).__name__ == "StaticAttention"][0]
    w = big.feature_exactor[2].layers[0].qkv.weight
    c, cmax, v = 48, 96, 2 * 16 * 3
    assert torch.equal(attn.qkv.weight, torch.cat([w[:c, :c], w[cmax:cmax + c, :c], w[2 * cmax:2 * cmax + v, :c]]))


def test_joint_layer_norm_normalises_tokens_times_channels():
    ln = JointLayerNorm(8)
    x = torch.randn(2, 5, 6) * 3 + 1
    y = ln(x)
    flat = y.reshape(2, -1)
    torch.testing.assert_close(flat.mean(1), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.var(1, unbiased=False), torch.ones(2), atol=1e-3, rtol=0)
    assert not torch.allclose(y.mean(-1), torch.zeros(2, 5), atol=1e-3)  # not per-token


def test_training_step_and_cumulative_bn():
    net = ElasticViTSupernet(TINY).train()
    arch = max_arch(TINY)
    net.set_active(arch)
    net(torch.randn(4, 3, 32, 32)).logsumexp(1).mean().backward()
    assert net.first_conv.weight.grad is not None and net.classifer.weight.grad.abs().sum() > 0
    bn = net.first_conv_bn
    bn.reset_running_stats()
    bn.momentum = None
    batches = [torch.randn(4, 16, 8, 8) * (i + 1) + i for i in range(3)]
    for b in batches:
        bn(b)
    means = torch.stack([b.mean((0, 2, 3)) for b in batches]).mean(0)
    torch.testing.assert_close(bn.running_mean[:16], means, atol=1e-5, rtol=1e-5)


def test_set_active_rejects_invalid_arch():
    net = ElasticViTSupernet(TINY)
    bad = max_arch(ELASTICVIT)
    with pytest.raises(ArchError, match="resolution"):
        net.set_active(bad)
    with pytest.raises(RuntimeError, match="set_active"):
        net(torch.randn(1, 3, 32, 32))
