"""The subnet sampling strategies of supernet training, one module each (`supernet.training.registry` names them):

- `sandwich`: the sandwich rule, the baseline of the paper's Table 3;
- `complexity`: the paper's complexity-aware sampling (level walk, HSS sub-spaces);
- `elasticvit`: complexity- plus performance-aware sampling (memory banks, path-preference rule).

`base` holds the protocol they share (`SubnetSampler`) and its saved state.
"""

from .base import LEGACY_STATE_FORMAT, STATE_KIND, STATE_VERSION, SamplerStateError, Scorer, SubnetSampler
from .complexity import ComplexitySampler
from .elasticvit import ElasticViTSampler
from .sandwich import SandwichSampler

__all__ = ["LEGACY_STATE_FORMAT", "STATE_KIND", "STATE_VERSION", "ComplexitySampler", "ElasticViTSampler",
           "SamplerStateError", "SandwichSampler", "Scorer", "SubnetSampler"]
