"""Supernet training: the paper's subnet sampling strategies and the numerical parts of its recipe.

- `levels`: the adjacent-step walk over complexity levels (official `process.py`, `get_bank_id`);
- `hss`, `subspace`: hierarchical smallest subnets and the sub-space dominating one (official `models/model.py`,
  `util/subnet.py`);
- `bank`, `preference`: memory banks and the path-preference rule (official `models/model.py`);
- `config`: every sampler knob, paper values by default; `samplers` (one module per strategy), `registry`: the
  strategies, chosen by name;
- `train_config` (with the shipped `configs/*.toml`), `trainer`: the training run;
- `losses` (official `process.py`, `util/loss_ops.py`), `optim`, `ema` (official `train_eval_supernet.py`),
  `recalibrate` (official `process.py`, `bn_cal`): the numerical parts of training;
- `evaluate`: the subnet accuracy oracle; `conflict`: gradient cosines (the paper's Table 4).
"""

from .bank import BankEntry, MemoryBank
from .config import SamplerConfig, check_config, default_config, sampler_config
from .ema import EMA_DECAY, create_ema
from .hss import ELASTICVIT_HSS, TINY_HSS, parse_hss, select_hss
from .levels import next_level_index, walk_moves
from .losses import alpha_divergence_loss, distillation_loss, ensemble_targets, label_loss
from .optim import (
                    adaptive_clip_grad_,
                    build_optimizer,
                    build_scheduler,
                    no_weight_decay_names,
                    param_groups,
                    scale_lr,
                    warmup_cosine_lr,
)
from .plan import PlannedSubnet, StepPlan
from .preference import pick_preferred, preference_diffs
from .recalibrate import RECALIBRATION_BATCHES, recalibrate_bn, recalibrate_subnet
from .registry import SAMPLERS, get_sampler, register_sampler, sampler_names
from .samplers import ComplexitySampler, ElasticViTSampler, SamplerStateError, SandwichSampler, Scorer, SubnetSampler
from .subspace import dominating_subspace, sample_dominating

__all__ = [
    "BankEntry", "MemoryBank", "SamplerConfig", "check_config", "default_config", "sampler_config", "ELASTICVIT_HSS",
    "TINY_HSS", "parse_hss", "select_hss",
    "next_level_index", "walk_moves", "PlannedSubnet", "StepPlan", "pick_preferred", "preference_diffs", "SAMPLERS",
    "get_sampler", "register_sampler", "sampler_names", "ComplexitySampler", "ElasticViTSampler", "SamplerStateError",
    "SandwichSampler", "Scorer", "SubnetSampler", "dominating_subspace", "sample_dominating", "EMA_DECAY", "create_ema",
    "alpha_divergence_loss", "distillation_loss", "ensemble_targets", "label_loss", "adaptive_clip_grad_",
    "build_optimizer", "build_scheduler", "no_weight_decay_names", "param_groups", "scale_lr", "warmup_cosine_lr",
    "RECALIBRATION_BATCHES", "recalibrate_bn", "recalibrate_subnet",
]
