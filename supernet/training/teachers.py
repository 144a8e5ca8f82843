"""Teachers for distillation (official `process.py`): a subnet of one of our supernet checkpoints, or, opted in, any
pickled module.

The paper uses two timm swsl-ResNeXt101 teachers; those weights cannot be fetched here, so the user names the
teacher(s):
- ``{"path": CKPT, "arch": ARCH}``: a supernet checkpoint of this project, read with ``weights_only=True`` (so it
  cannot run code), whose EMA weights give the static subnet ARCH (a canonical/official arch JSON file, or
  "max"/"min"). A bare path that is such a checkpoint gives its "max" subnet.
- ``{"path": FILE, "trust_pickle": true}``: a ``torch.save(model, path)`` file holding a whole `nn.Module`. Unpickling
  it runs code from the file, so it is loaded (through `supernet.trusted_load`) only with this explicit opt-in; a
  bare path, or ``trust_pickle = false``, to anything but our checkpoint is refused with a line naming the option.
Teachers run in eval mode without gradients on the same fixed-crop inputs as the student.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..arch import Arch, ArchError
from ..arch_spec import resolve_arch
from ..checkpoint import Checkpoint, CheckpointError, read_checkpoint
from ..errors import BadInput
from ..space import SearchSpace
from ..trusted_load import load_pickled_module
from .evaluate import load_supernet


class TeacherError(BadInput):
    """A teacher that cannot be loaded or does not fit the data; the message names the file."""


def teacher_arch(spec: str, space: SearchSpace) -> Arch:
    """ "max", "min" or an arch JSON file (canonical object or official list) of `space`."""
    try:
        return resolve_arch(spec, space)
    except ArchError as e:
        raise TeacherError(f"teacher arch {spec}: {e}") from None


def _supernet_teacher(checkpoint: Checkpoint, arch_spec: str) -> nn.Module:
    try:
        net = load_supernet(checkpoint).supernet
    except CheckpointError as e:
        raise TeacherError(f"teacher {e}") from None
    return net.extract(teacher_arch(arch_spec, net.space))


def _pickled_module(path: Path) -> nn.Module:
    try:
        module = load_pickled_module(path)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, AttributeError,
            ModuleNotFoundError, OSError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        raise TeacherError(f"teacher {path}: cannot load a module ({type(e).__name__}: {first})") from None
    if not isinstance(module, nn.Module):
        raise TeacherError(f"teacher {path}: holds a {type(module).__name__}, not a torch module (save the "
                           "whole module with torch.save(model, path), or name a supernet checkpoint)")
    return module


def load_teacher(spec: str | dict[str, Any], device: torch.device) -> nn.Module:
    """The teacher named by `spec` (a path, {"path", "arch"} or {"path", "trust_pickle"}; see the module docstring),
    frozen, in eval mode on `device`."""
    entry = {"path": spec} if isinstance(spec, str) else spec
    path = Path(entry["path"])
    if not path.is_file():
        raise TeacherError(f"teacher {path}: no such file")
    try:
        checkpoint: Checkpoint | None = read_checkpoint(path)
    except CheckpointError:
        checkpoint = None  # not loadable with weights_only (e.g. a pickled module)
    found = "is not" if checkpoint is None else "holds a state dict, not"
    if checkpoint is not None and checkpoint.is_ours:
        module = _supernet_teacher(checkpoint, entry.get("arch", "max"))
    elif "arch" in entry:
        raise TeacherError(f"teacher {path} {found} an elasticvit-deploy checkpoint, which a teacher with arch "
                           "must be (a supernet checkpoint written by elasticvit-deploy train)")
    elif checkpoint is not None:
        raise TeacherError(f"teacher {path} {found} an elasticvit-deploy checkpoint or a whole module (save the "
                           "whole module with torch.save(model, path))")
    elif entry.get("trust_pickle") is True:
        module = _pickled_module(path)
    else:
        raise TeacherError(f"teacher {path} is not an elasticvit-deploy checkpoint; loading a pickled module runs "
                           "code from the file: set trust_pickle = true for this teacher if you trust it")
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
