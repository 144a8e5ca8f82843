"""The adjacent-step walk over complexity levels (the paper's complexity-aware sampling; official `process.py`).

Every training step the level index moves by -1, 0 or +1, drawn uniformly from {-1, 0, +1} at an interior level,
from {0, 0, +1} at the lowest and from {-1, 0, 0} at the top, so the walk stays put with probability 2/3 at the
ends (official `get_bank_id`). Training starts at index 0.
"""

from __future__ import annotations

import numpy as np


def walk_moves(index: int, n_levels: int) -> tuple[int, int, int]:
    """The three equally likely moves from level `index` (a single level never moves)."""
    if not 0 <= index < n_levels:
        raise ValueError(f"level index {index} outside 0..{n_levels - 1}")
    if n_levels == 1:
        return (0, 0, 0)
    if index == 0:
        return (0, 0, 1)
    if index == n_levels - 1:
        return (-1, 0, 0)
    return (-1, 0, 1)


def next_level_index(index: int, n_levels: int, rng: np.random.Generator) -> int:
    """One step of the walk: `index` plus a move drawn uniformly from `walk_moves` (one `rng.integers` draw)."""
    return index + walk_moves(index, n_levels)[int(rng.integers(0, 3))]
