"""The path-preference rule of exploration (official `models/model.py`, `_importance_comparison`).

For a candidate and an anchor subnet, ``diff = FLOPs(own depths, anchor's transformer widths) -
FLOPs(own transformer widths, anchor's depths)``, where only the transformer stages take the anchor's values (CNN
stages, the stem, resolution and every micro choice stay the candidate's own). Among the candidates the one with
the minimum diff (the most "wide and shallow"; first on ties) is kept. The swapped archs need not be legal; only
their FLOPs are counted, with the official counter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import encoding as enc
from ..arch import Arch
from ..flops import batch_mflops
from ..space import SearchSpace


def preference_diffs(candidates: Sequence[Arch], anchor: Arch, space: SearchSpace) -> np.ndarray:
    """MFLOPs diff of every candidate against `anchor` (vectorised)."""
    m = enc.encode_many(candidates)
    a = enc.encode(anchor)
    t_idx = [i for i, s in enumerate(space.stages) if s.is_transformer]
    widths = [enc.stage_col(i, enc.WIDTH) for i in t_idx]
    depths = [enc.stage_col(i, enc.DEPTH) for i in t_idx]
    anchor_widths, anchor_depths = m.copy(), m.copy()
    anchor_widths[:, widths] = a[widths]
    anchor_depths[:, depths] = a[depths]
    return batch_mflops(anchor_widths, space) - batch_mflops(anchor_depths, space)


def pick_preferred(candidates: Sequence[Arch], anchor: Arch, space: SearchSpace) -> int:
    """Index of the candidate with the minimum diff (first on ties)."""
    return int(np.argmin(preference_diffs(candidates, anchor, space)))
