"""The one place the project may unpickle a file, which runs whatever code the file names.

Every other load is code-free: checkpoints with ``torch.load(weights_only=True)`` (`supernet.checkpoint`), arrays
with ``np.load(allow_pickle=False)``, configs with ``yaml.safe_load``, predictors with skops and an exact type
allowlist. tests/test_hostile_loads.py greps the sources and fails on an unsafe load anywhere but here, so adding one
means adding it to this module, behind an explicit opt-in of the user.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def load_pickled_module(path: str | Path) -> Any:
    """Unpickle a ``torch.save(model, path)`` file onto the CPU. RUNS CODE FROM THE FILE: call it only for a file
    the user has said they trust (e.g. a teacher with ``trust_pickle = true``). Errors are torch's/pickle's."""
    return torch.load(path, map_location="cpu", weights_only=False)  # trusted-load: the user opted in for this file
