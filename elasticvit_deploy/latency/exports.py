"""The cache of exported models the latency code measures: single blocks and whole subnets as verified fp32
TFLite files under ``<user data>/models/<space>/``, exported once and reused (same block or arch, same file)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from supernet.arch import Arch
from supernet.space import SearchSpace

from ..export.pipeline import export_module
from ..export.subnet import default_name, export_subnet
from ..paths import user_data_dir
from .block_modules import block_module
from .blocks import Block

__all__ = ["block_digest", "export_arch", "export_block", "models_dir"]


def models_dir(space: SearchSpace) -> Path:
    """Where the exported models of `space` are cached."""
    return user_data_dir() / "models" / space.name


def block_digest(block: Block) -> str:
    """A short digest of the block's fields (its cache file name)."""
    return hashlib.sha256(json.dumps(block.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def export_block(block: Block, space: SearchSpace) -> Path:
    """The block's verified fp32 TFLite model (exported once, then reused)."""
    out = models_dir(space) / "blocks"
    name = f"{block.family}-{block_digest(block)}"
    path = out / f"{name}-fp32.tflite"
    if not path.is_file():
        module, shape = block_module(block)
        export_module(module, shape, out, name, metadata={"kind": "elasticvit-block", "block": block.to_dict()},
                      n_samples=1)
    return path


def export_arch(arch: Arch, space: SearchSpace) -> Path:
    """The subnet's verified fp32 TFLite model with initial weights (exported once, then reused)."""
    out = models_dir(space) / "subnets"
    name = default_name(arch, space)
    path = out / f"{name}-fp32.tflite"
    if not path.is_file():
        export_subnet(arch, space, out, name=name, n_samples=1)
    return path
