"""Teachers for distillation (spec 4.4): any `torch.save`'d module, or a subnet of one of our supernet checkpoints.

The paper uses two timm swsl-ResNeXt101 teachers; those weights cannot be fetched here, so the user names the
teacher(s): a file holding a whole pickled `nn.Module` (loaded with ``weights_only=False``: only name files you
trust), or ``{"path": CKPT, "arch": ARCH}`` for a supernet checkpoint of this project, whose EMA weights give the
static subnet ARCH (a canonical/official arch JSON file, or "max"/"min"; default "max"). Teachers run in eval mode
without gradients on the same fixed-crop inputs as the student.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..arch import Arch
from ..arch_spec import resolve_arch
from ..checkpoint import FORMAT, CheckpointError, read_checkpoint
from ..space import SearchSpace
from .evaluate import supernet_from_checkpoint


class TeacherError(ValueError):
    """A teacher that cannot be loaded or does not fit the data; the message names the file."""


def teacher_arch(spec: str, space: SearchSpace) -> Arch:
    """ "max", "min" or an arch JSON file (canonical object or official list) of `space`."""
    try:
        return resolve_arch(spec, space)
    except ValueError as e:
        raise TeacherError(f"teacher arch {spec}: {e}") from None


def _supernet_teacher(path: Path, data: dict[str, Any], arch_spec: str) -> nn.Module:
    try:
        net = supernet_from_checkpoint(data, path).supernet
    except CheckpointError as e:
        raise TeacherError(f"teacher {e}") from None
    return net.extract(teacher_arch(arch_spec, net.space))


def load_teacher(spec: str | dict[str, str], device: torch.device) -> nn.Module:
    """The teacher named by `spec` (a path, or {"path": ..., "arch": ...}), frozen, in eval mode on `device`."""
    path = Path(spec if isinstance(spec, str) else spec["path"])
    arch_spec = "max" if isinstance(spec, str) else spec.get("arch", "max")
    if not path.is_file():
        raise TeacherError(f"teacher {path}: no such file")
    try:
        data: Any = read_checkpoint(path)
    except CheckpointError:
        data = None  # not loadable with weights_only: a pickled module
    if isinstance(data, dict) and data.get("format") == FORMAT:
        module = _supernet_teacher(path, data, arch_spec)
    else:
        try:
            module = torch.load(path, map_location="cpu", weights_only=False)
        except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, AttributeError,
                ModuleNotFoundError, OSError) as e:
            raise TeacherError(f"teacher {path}: cannot load a module ({type(e).__name__}: {e})") from None
        if not isinstance(module, nn.Module):
            raise TeacherError(f"teacher {path}: holds a {type(module).__name__}, not a torch module (save the "
                               "whole module with torch.save(model, path), or name a supernet checkpoint)")
    module = module.to(device).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


@torch.no_grad()
def teacher_logits(teachers: list[nn.Module], x: torch.Tensor, num_classes: int) -> list[torch.Tensor]:
    """Every teacher's logits on `x`, checked to be (batch, num_classes)."""
    out = []
    for i, t in enumerate(teachers):
        y = t(x)
        if not isinstance(y, torch.Tensor) or tuple(y.shape) != (len(x), num_classes):
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise TeacherError(f"teacher {i + 1} returned {shape}, expected logits of shape ({len(x)}, {num_classes})")
        out.append(y.float())
    return out
