"""Supernet training support: the paper's subnet sampling strategies.

- `levels`: the adjacent-step walk over complexity levels (4.1);
- `hss`, `subspace`: hierarchical smallest subnets and the sub-space dominating one (4.1, 4.2);
- `bank`, `preference`: memory banks and the path-preference rule (4.3);
- `config`: every knob, paper values by default; `samplers`, `registry`: the strategies, chosen by name;
- `losses` (4.4), `optim` (4.5), `ema` (4.5), `recalibrate` (4.7): the numerical parts of training;
- `evaluate` (4.7): checkpoint loading and the subnet accuracy oracle; `conflict`: gradient cosines (Table 4).
"""

from .bank import BankEntry, MemoryBank
from .config import SamplerConfig, check_config, default_config
from .ema import EMA_DECAY, create_ema
from .hss import ELASTICVIT_HSS, TINY_HSS, parse_hss, select_hss
from .levels import next_level_index, walk_moves
from .losses import alpha_divergence_loss, distillation_loss, ensemble_targets, label_loss
from .optim import (adaptive_clip_grad_, build_optimizer, build_scheduler, no_weight_decay_names, param_groups,
                    scale_lr, warmup_cosine_lr)
from .plan import PlannedSubnet, StepPlan
from .preference import pick_preferred, preference_diffs
from .recalibrate import RECALIBRATION_BATCHES, recalibrate_bn, recalibrate_subnet
from .registry import SAMPLERS, get_sampler, register_sampler, sampler_names
from .samplers import ComplexitySampler, ElasticViTSampler, SandwichSampler, SubnetSampler
from .subspace import dominating_subspace, sample_dominating

__all__ = [
    "BankEntry", "MemoryBank", "SamplerConfig", "check_config", "default_config", "ELASTICVIT_HSS", "TINY_HSS",
    "parse_hss", "select_hss",
    "next_level_index", "walk_moves", "PlannedSubnet", "StepPlan", "pick_preferred", "preference_diffs", "SAMPLERS",
    "get_sampler", "register_sampler", "sampler_names", "ComplexitySampler", "ElasticViTSampler", "SandwichSampler",
    "SubnetSampler", "dominating_subspace", "sample_dominating", "EMA_DECAY", "create_ema", "alpha_divergence_loss",
    "distillation_loss", "ensemble_targets", "label_loss", "adaptive_clip_grad_", "build_optimizer", "build_scheduler",
    "no_weight_decay_names", "param_groups", "scale_lr", "warmup_cosine_lr", "RECALIBRATION_BATCHES", "recalibrate_bn",
    "recalibrate_subnet",
]
