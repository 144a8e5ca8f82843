"""Python, NumPy and torch RNG states as checkpointable values (exact resume needs every generator).

The states are plain tuples, lists and tensors, so a checkpoint holding them still loads with ``weights_only=True``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    """This process's generator states (CUDA ones too when CUDA is in use)."""
    legacy = np.random.get_state(legacy=True)
    assert isinstance(legacy, tuple)  # the global RandomState is an MT19937, whose legacy state is this 5-tuple
    name, keys, pos, has_gauss, cached = legacy
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {"python": random.getstate(), "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
            "torch": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def derive_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (e.g. run seed, epoch, sample index): the same parts always give the same
    seed, different parts independent streams (NumPy's SeedSequence)."""
    if any(p < 0 for p in parts):
        raise ValueError(f"seed parts must be >= 0, got {parts}")
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0]) & (2**63 - 1)
