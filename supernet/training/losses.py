"""Losses of supernet training (official `process.py`, `util/loss_ops.py`).

- Uniform subnets: soft-target cross-entropy (`distillation_loss`) against the teachers' T = 0.2 ensemble
  (`ensemble_targets`); no label term when teachers are used.
- Min subnet: AlphaNet's adaptive alpha-divergence (`alpha_divergence_loss`) against the mean softmax of the uniform
  subnets (`ensemble_targets(logits, temperature=1.0)`).
- No teacher: label cross-entropy (`label_loss`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

TEACHER_TEMPERATURE = 0.2  # official `process.py`: softmax(t / 0.2), NASViT's `temp = 5.` multiplier
ALPHA_MIN, ALPHA_MAX, IW_CLIP = -1.0, 1.0, 5.0  # official `util/loss_ops.py`: AdaptiveLossSoft(-1, 1, 5)
LABEL_SMOOTHING = 0.1  # official `util/config.py`


@torch.no_grad()
def ensemble_targets(logits: Sequence[torch.Tensor], temperature: float = TEACHER_TEMPERATURE) -> torch.Tensor:
    """Soft targets: the mean over `logits` of softmax(l / T) in float32, detached.

    Two teachers give 0.5 softmax(t1 / 0.2) + 0.5 softmax(t2 / 0.2), one teacher softmax(t / 0.2); the min subnet's
    target is the 3 uniform subnets' logits with T = 1.
    """
    return torch.stack([F.softmax(x / temperature, dim=-1, dtype=torch.float32) for x in logits]).mean(0)


def distillation_loss(student_logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Soft-target cross-entropy mean_b sum_k -p_bk log_softmax(s_b)_k (official SoftTargetCrossEntropyNoneSoftmax)."""
    return F.cross_entropy(student_logits, target_probs.detach())


def label_loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float = LABEL_SMOOTHING) -> torch.Tensor:
    """Label cross-entropy for training without teachers (official `train_eval_supernet.py`, `criterion`).

    Integer labels get label smoothing (timm LabelSmoothingCrossEntropy); float targets are mixup's soft targets,
    already smoothed, used as given (SoftTargetCrossEntropyNoneSoftmax).
    """
    if targets.is_floating_point():
        return F.cross_entropy(logits, targets)
    return F.cross_entropy(logits, targets, label_smoothing=smoothing)


def f_divergence(student_logits: torch.Tensor, target_probs: torch.Tensor, alpha: float,
                 iw_clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """AlphaNet's `f_divergence` per sample: (D_alpha(p || q), surrogate); see `alpha_divergence_loss`."""
    q = F.softmax(student_logits, dim=-1).detach()
    log_q = F.log_softmax(student_logits, dim=-1)
    w = target_probs.detach() / q
    if abs(alpha) < 1e-3:
        w = w.clamp(0, iw_clip)
        f, rho = -w.log(), w.log() - 1.0
    elif abs(alpha - 1.0) < 1e-3:
        f, rho = torch.xlogy(w, w), w
    else:
        w_alpha = w.pow(alpha).clamp(0, iw_clip)
        base = 1.0 / (alpha * (alpha - 1.0))
        f, rho = (w_alpha - 1.0) * base, w_alpha / alpha + base
    return (q * f).sum(-1), -(q * rho * log_q).sum(-1)


def alpha_divergence_loss(student_logits: torch.Tensor, target_probs: torch.Tensor, alpha_min: float = ALPHA_MIN,
                          alpha_max: float = ALPHA_MAX, iw_clip: float = IW_CLIP) -> torch.Tensor:
    """AlphaNet's adaptive alpha-divergence (AdaptiveLossSoft, as ElasticViT's loss_ops: target given as probabilities).

    With q = softmax(student) and p = target (both held constant in the weights), importance weights w = p / q and
    clip c = `iw_clip`, per sample:

    - alpha not in {0, 1}: D = sum_k q_k (min(w_k^alpha, c) - 1) / (alpha (alpha - 1)),
      rho_k = min(w_k^alpha, c) / alpha + 1 / (alpha (alpha - 1));
      alpha = -1: D = 1/2 sum_k q_k (min(q_k / p_k, c) - 1), rho_k = 1/2 - min(q_k / p_k, c);
    - alpha = 1: D = sum_k p_k log(p_k / q_k) = KL(p || q), rho_k = w_k (no clipping);
    - alpha = 0: D = -sum_k q_k log min(w_k, c), rho_k = log min(w_k, c) - 1.

    Per sample the branch with the larger D is taken (alpha_max on ties) and the batch mean returned. The gradient is
    AlphaNet's: that of the surrogate -sum_k q_k rho_k log q_k, q and rho constant. AlphaNet returns the surrogate's
    value; this returns the chosen D's value (zero iff q = p), with exactly the same gradient.
    """
    d_min, s_min = f_divergence(student_logits, target_probs, alpha_min, iw_clip)
    d_max, s_max = f_divergence(student_logits, target_probs, alpha_max, iw_clip)
    left = d_min > d_max
    divergence = torch.where(left, d_min, d_max)
    surrogate = torch.where(left, s_min, s_max)
    return (divergence + surrogate - surrogate.detach()).mean()
