"""Numerical parts of supernet training: losses (official `process.py`, `util/loss_ops.py`), optimiser, AGC, LR
schedule, EMA (official `train_eval_supernet.py`), BN recalibration (official `process.py`, `bn_cal`)."""

import math
from itertools import pairwise

import pytest
import torch
import torch.nn as nn

from supernet.layers.norms import ElasticBatchNorm
from supernet.model import ElasticViTSupernet
from supernet.sampling import archs, sample_uniform
from supernet.space import get_space
from supernet.training import (
    EMA_DECAY,
    adaptive_clip_grad_,
    alpha_divergence_loss,
    build_optimizer,
    build_scheduler,
    create_ema,
    distillation_loss,
    ensemble_targets,
    label_loss,
    recalibrate_bn,
    recalibrate_subnet,
    scale_lr,
)

from .conftest import randomize_

torch.set_num_threads(1)


# ---------------------------------------------------------------- losses

def test_distillation_loss_is_soft_target_ce_and_minimal_at_the_target():
    g = torch.Generator().manual_seed(0)
    student = torch.randn(4, 10, generator=g, requires_grad=True)
    target = torch.randn(4, 10, generator=g).softmax(-1)
    manual = (-(target * torch.log_softmax(student, -1)).sum(-1)).mean()
    assert torch.allclose(distillation_loss(student, target), manual)

    matched = target.log().requires_grad_()
    best = distillation_loss(matched, target)
    assert torch.allclose(best, (-(target * target.log()).sum(-1)).mean())  # the entropy of p
    best.backward()
    assert matched.grad.abs().max() < 1e-6
    for _ in range(5):
        assert distillation_loss(target.log() + 0.3 * torch.randn(4, 10, generator=g), target) > best


def test_ensemble_targets_average_the_sharpened_teachers():
    g = torch.Generator().manual_seed(1)
    t1, t2 = torch.randn(3, 10, generator=g), torch.randn(3, 10, generator=g, requires_grad=True)
    targets = ensemble_targets([t1, t2])
    assert not targets.requires_grad
    expected = 0.5 * torch.softmax(t1 / 0.2, -1) + 0.5 * torch.softmax(t2.detach() / 0.2, -1)
    assert torch.allclose(targets, expected)
    assert torch.allclose(targets.sum(-1), torch.ones(3))
    single = ensemble_targets([t1])
    assert torch.allclose(single, torch.softmax(t1 / 0.2, -1))
    plain = torch.softmax(t1, -1)
    entropy = lambda p: -(p * p.log()).sum(-1)  # noqa: E731
    assert (single.max(-1).values > plain.max(-1).values).all() and (entropy(single) < entropy(plain)).all()
    assert torch.equal(single.argmax(-1), plain.argmax(-1))


def test_label_loss_smooths_hard_labels_and_takes_soft_targets_as_given():
    g = torch.Generator().manual_seed(2)
    logits, labels = torch.randn(5, 10, generator=g), torch.randint(0, 10, (5,), generator=g)
    logp = torch.log_softmax(logits, -1)
    manual = (0.9 * -logp[torch.arange(5), labels] + 0.1 * -logp.mean(-1)).mean()  # timm LabelSmoothingCrossEntropy
    assert torch.allclose(label_loss(logits, labels), manual)
    soft = torch.rand(5, 10, generator=g).softmax(-1)
    assert torch.allclose(label_loss(logits, soft), distillation_loss(logits, soft))


# Student q and target p per sample, with the branch that wins and whether the importance weight is clipped.
Q = torch.tensor([[0.8, 0.1, 0.1], [0.98, 0.01, 0.01], [0.9, 0.05, 0.05]], dtype=torch.float64)
P = torch.tensor([[0.2, 0.4, 0.4], [0.5, 0.25, 0.25], [0.15, 0.425, 0.425]], dtype=torch.float64)


def _hand_divergences(q: list[float], p: list[float], clip: float = 5.0) -> tuple[float, float]:
    """(alpha = -1, alpha = +1) divergences: 1/2 sum q (min(q/p, clip) - 1) and sum p log(p/q)."""
    d_minus = 0.5 * sum(qk * (min(qk / pk, clip) - 1.0) for qk, pk in zip(q, p, strict=True))
    d_plus = sum(pk * math.log(pk / qk) for qk, pk in zip(q, p, strict=True))
    return d_minus, d_plus


def test_alpha_divergence_is_zero_at_the_target_and_positive_elsewhere():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 10, generator=g, requires_grad=True)
    loss = alpha_divergence_loss(logits, torch.softmax(logits, -1).detach())
    assert abs(loss.item()) < 1e-6
    loss.backward()
    assert logits.grad.abs().max() < 1e-6
    for _ in range(5):
        target = torch.randn(6, 10, generator=g).softmax(-1)
        assert alpha_divergence_loss(logits, target) > 0


def test_alpha_divergence_takes_the_larger_branch_per_sample_with_clipped_weights():
    hand = [_hand_divergences(q.tolist(), p.tolist()) for q, p in zip(Q, P, strict=True)]
    assert hand[0][0] > hand[0][1] and hand[1][1] > hand[1][0] and hand[2][0] > hand[2][1]  # -1, +1, -1 (clipped)
    assert (Q[2] / P[2]).max() > 5
    expected = sum(max(d) for d in hand) / 3
    logits = Q.log().requires_grad_()
    loss = alpha_divergence_loss(logits, P)
    assert loss.item() == pytest.approx(expected, rel=1e-9)

    loss.backward()
    assert torch.isfinite(logits.grad).all()
    # AlphaNet's gradient: -(q_i rho_i - q_i sum_j q_j rho_j) / B, rho = 1/2 - min(q/p, 5) (alpha -1) or p/q (+1).
    rho = torch.stack([0.5 - (Q[0] / P[0]).clamp(max=5), P[1] / Q[1], 0.5 - (Q[2] / P[2]).clamp(max=5)])
    expected_grad = -(Q * rho - Q * (Q * rho).sum(-1, keepdim=True)) / 3
    assert torch.allclose(logits.grad, expected_grad)
    assert torch.allclose(logits.grad[1], (Q[1] - P[1]) / 3)  # the KL(p || q) gradient


def test_alpha_divergence_stays_finite_for_far_targets_with_zeros():
    g = torch.Generator().manual_seed(4)
    logits = (20 * torch.randn(8, 10, generator=g)).requires_grad_()
    target = torch.softmax(-20 * torch.randn(8, 10, generator=g), -1)
    target[:, :3] = 0.0  # underflowed probabilities: p log(p / q) -> 0
    loss = alpha_divergence_loss(logits, target / target.sum(-1, keepdim=True))
    loss.backward()
    assert torch.isfinite(loss) and loss > 0 and torch.isfinite(logits.grad).all()


# ---------------------------------------------------------------- optimiser

def _expected_no_decay(name: str, p: torch.Tensor) -> bool:
    """Official `train_eval_supernet.py`: first_conv*, MobileBlocks (stem, C0, C1, transformer downsamplers), 1-D
    parameters and biases."""
    mobile = name.startswith(("conv_stem.", "feature_exactor.0.", "feature_exactor.1.")) or ".reduction." in name
    return name.startswith("first_conv") or mobile or p.ndim <= 1 or name.endswith(".bias")


def test_weight_decay_groups_on_the_tiny_supernet():
    model = ElasticViTSupernet(get_space("tiny"))
    groups = build_optimizer(model, lr=1e-3).param_groups
    assert [g["weight_decay"] for g in groups] == [0.0, 0.05]
    named = dict(model.named_parameters())
    grouped = [(name, decays) for g in groups for name in g["param_names"] for decays in [g["weight_decay"] > 0]]
    assert sorted(n for n, _ in grouped) == sorted(named)  # every parameter in exactly one group
    for g in groups:
        assert all(p is named[n] for n, p in zip(g["param_names"], g["params"], strict=True))
    for name, decays in grouped:
        assert decays == (not _expected_no_decay(name, named[name])), name
    decayed = {n for n, d in grouped if d}
    assert {"feature_exactor.2.layers.0.qkv.weight", "feature_exactor.2.layers.0.attention_bias",
            "feature_exactor.2.layers.0.dw_v_conv.weight", "feature_exactor.5.layers.1.fc1.weight",
            "pre_head_0.weight", "classifer.weight"} <= decayed
    assert not decayed & {"first_conv.weight", "conv_stem.layers.0.0.dw_conv.weight",
                          "feature_exactor.1.layers.0.0.se_conv1.weight",
                          "feature_exactor.3.layers.0.reduction.pw_conv.weight",
                          "feature_exactor.2.layers.0.norm1.weight", "pre_head_0.bias"}


def test_agc_clips_only_gradients_large_relative_to_their_unit():
    linear = nn.Linear(4, 3)
    conv = nn.Conv2d(2, 2, 3, bias=False)
    frozen = nn.Parameter(torch.ones(2))
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 2.0, 2.0, 0.0], [0.0, 3.0, 4.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
        linear.bias.copy_(torch.tensor([3.0, 4.0, 0.0]))
        conv.weight.fill_(1.0)  # per output channel norm sqrt(18)
    linear.weight.grad = torch.tensor([[10.0, 0.0, 0.0, 0.0], [0.0, 0.03, 0.04, 0.0], [0.0, 1.0, 0.0, 0.0]])
    linear.bias.grad = torch.tensor([0.3, 0.0, 0.0])  # whole-vector unit: 0.3 < 0.1 * 5
    conv.weight.grad = torch.zeros(2, 2, 3, 3)
    conv.weight.grad[0] = 1.0  # norm sqrt(18) > 0.1 sqrt(18): scaled by 0.1
    conv.weight.grad[1, 0, 0, 0] = 0.01
    before = conv.weight.grad.clone()
    adaptive_clip_grad_([linear.weight, linear.bias, conv.weight, frozen])
    row_norms = torch.linalg.vector_norm(linear.weight.grad, dim=1)
    assert torch.allclose(linear.weight.grad[0], torch.tensor([0.3, 0.0, 0.0, 0.0]))  # 0.1 * ||(1, 2, 2, 0)|| = 0.3
    assert torch.equal(linear.weight.grad[1], torch.tensor([0.0, 0.03, 0.04, 0.0]))  # 0.05 < 0.1 * 5: untouched
    assert row_norms[2].item() == pytest.approx(0.1 * 1e-3)  # a zero row is bounded by eps
    assert torch.equal(linear.bias.grad, torch.tensor([0.3, 0.0, 0.0]))
    assert torch.allclose(conv.weight.grad[0], 0.1 * before[0]) and torch.equal(conv.weight.grad[1], before[1])
    assert frozen.grad is None


def test_lr_scaling_and_warmup_cosine_schedule():
    lr, warmup_lr, min_lr = (scale_lr(x, world_size=8) for x in (5e-4, 1e-6, 5e-6))
    assert lr == pytest.approx(5e-4 * 8 * 96 / 512) and scale_lr(1.0, 4, 128) == 1.0
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=lr)
    sched = build_scheduler(opt, lr, warmup_lr, min_lr)
    seen = [opt.param_groups[0]["lr"]]
    for _ in range(610):
        opt.step()
        sched.step()
        seen.append(opt.param_groups[0]["lr"])
    assert seen[0] == pytest.approx(warmup_lr)
    assert seen[1] == pytest.approx(warmup_lr + (lr - warmup_lr) / 5)
    assert seen[5] == pytest.approx(min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * 5 / 600)))  # unshifted
    assert seen[300] == pytest.approx((lr + min_lr) / 2)
    assert seen[599] > min_lr and seen[600] == pytest.approx(min_lr) and seen[609] == pytest.approx(min_lr)
    assert all(a < b for a, b in zip(seen[:5], seen[1:6], strict=True)) and all(a >= b for a, b in pairwise(seen[5:]))

    opt2 = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=lr)
    sched2 = build_scheduler(opt2, lr, warmup_lr, min_lr)
    sched2.load_state_dict(sched.state_dict())
    opt2.load_state_dict(opt.state_dict())
    sched.step()
    sched2.step()
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


# ---------------------------------------------------------------- EMA

class _Scalar(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(value, dtype=torch.float64))
        self.register_buffer("stat", torch.tensor(value, dtype=torch.float64))
        self.register_buffer("index", torch.tensor(3))  # 3 * 0.9 + 3 * 0.1 truncates to 2


def test_ema_closed_form_integer_buffers_and_exact_resume():
    model = _Scalar(1.0)
    ema = create_ema(model, decay=0.9)
    values = [2.0, -1.0, 4.0, 0.5]
    for v in values:
        with torch.no_grad():
            model.w.fill_(v)
            model.stat.fill_(v)
        ema.update_parameters(model)
    k = len(values)
    closed = 0.9 ** k * 1.0 + sum(0.1 * 0.9 ** (k - i) * v for i, v in enumerate(values, start=1))
    assert ema.module.w.item() == pytest.approx(closed, rel=1e-12)
    assert ema.module.stat.item() == pytest.approx(closed, rel=1e-12)  # buffers are averaged too
    assert ema.module.index.item() == 3  # integer buffers are copied, never averaged

    resumed = create_ema(_Scalar(-5.0), decay=0.9)
    resumed.load_state_dict(ema.state_dict())
    with torch.no_grad():
        model.w.fill_(3.0)
    ema.update_parameters(model)
    resumed.update_parameters(model)
    assert torch.equal(resumed.module.w, ema.module.w) and torch.equal(resumed.n_averaged, ema.n_averaged)

    default = create_ema(_Scalar(0.0))
    with torch.no_grad():
        model.w.fill_(1.0)
    default.update_parameters(model)
    assert default.module.w.item() == pytest.approx(1 - EMA_DECAY)


# ---------------------------------------------------------------- BN recalibration

def test_recalibration_gives_cumulative_batch_statistics():
    space = get_space("tiny")
    net = ElasticViTSupernet(space)
    randomize_(net, seed=5)
    arch = archs(sample_uniform(space, 1, seed=11), space)[0]
    g = torch.Generator().manual_seed(6)
    batches = [torch.randn(4, 3, 32, 32, generator=g) for _ in range(3)]

    net.set_active(arch)
    before = net.eval()(batches[0]).detach()
    static = net.extract(arch)  # plain nn.BatchNorm modules: torch's own cumulative average as the reference

    seen: dict[ElasticBatchNorm, list[torch.Tensor]] = {}
    norms = [m for m in net.modules() if isinstance(m, ElasticBatchNorm)]
    hooks = [m.register_forward_pre_hook(lambda m, args: seen.setdefault(m, []).append(args[0])) for m in norms]
    recalibrate_subnet(net, arch, iter(batches * 2), num_batches=3)
    for h in hooks:
        h.remove()

    assert not net.training and all(m.momentum == 0.1 for m in norms)
    assert len(seen) > 10
    for m in norms:
        if m not in seen:  # not in this subnet: left reset
            assert m.num_batches_tracked.item() == 0 and not m.running_mean.any()
            continue
        xs = seen[m]
        assert len(xs) == 3 and m.num_batches_tracked.item() == 3
        dims = [d for d in range(xs[0].dim()) if d != 1]
        c = xs[0].shape[1]
        mean = torch.stack([x.mean(dims) for x in xs]).mean(0)
        var = torch.stack([x.var(dims, unbiased=True) for x in xs]).mean(0)
        assert torch.allclose(m.running_mean[:c], mean, atol=1e-5, rtol=1e-4)
        assert torch.allclose(m.running_var[:c], var, atol=1e-5, rtol=1e-4)
        assert not m.running_mean[c:].any() and torch.all(m.running_var[c:] == 1)

    after = net(batches[0])
    recalibrate_bn(static, batches)
    assert not torch.allclose(after, before, atol=1e-3)
    assert torch.allclose(after, static(batches[0]), atol=1e-4, rtol=1e-4)
