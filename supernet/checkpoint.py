"""Supernet checkpoints: one file format, written atomically, loaded with a clear error for anything else.

Format (a `torch.save` dict, loaded with ``weights_only=True``, so a checkpoint cannot run code)::

    {"format": "elasticvit-deploy.supernet", "version": 1,
     "space": <space name>, "space_fingerprint": <SearchSpace.fingerprint>,
     "model": <supernet state_dict>, "ema": <EMA weights (a supernet state_dict) or absent>,
     "trainer": <training runs only: step, config, optimizer, scheduler, sampler, RNG states (see
                 supernet.training.trainer)>}

Official/timm-style files (a bare state dict, or one under ``state_dict`` / ``model`` / ``state_dict_ema``) are
accepted too, since the supernet uses the official module names; they are checked key by key and shape by shape.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_output
from .space import SearchSpace

FORMAT = "elasticvit-deploy.supernet"
VERSION = 1


class CheckpointError(ValueError):
    """The file is not a readable supernet checkpoint of the requested space; the message says why."""


@dataclass(frozen=True)
class SupernetWeights:
    """A validated state dict for a space's supernet, and where it came from."""

    state_dict: dict[str, torch.Tensor]
    path: str
    sha256: str
    source: str  # "ema" or "model"
    space: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "sha256": self.sha256, "weights": self.source, "space": self.space}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(path: str | Path, space: SearchSpace, model_state: dict[str, torch.Tensor],
                    ema_state: dict[str, torch.Tensor] | None = None, **extra: Any) -> None:
    """Write a supernet checkpoint atomically (the trainer adds optimizer/sampler state through `extra`)."""
    payload: dict[str, Any] = {"format": FORMAT, "version": VERSION, "space": space.name,
                               "space_fingerprint": space.fingerprint, "model": model_state}
    if ema_state is not None:
        payload["ema"] = ema_state
    payload.update(extra)
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict (tensors on CPU); `CheckpointError` if the file is missing or not a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({first[:160]})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, found {type(data).__name__}")
    return data


def check_header(data: dict[str, Any], path: str | Path, space: SearchSpace,
                 fix: str = "pass --space {space}") -> None:
    """Raise `CheckpointError` unless `data` is our format, a readable version, and recorded for `space` (`fix`, with
    the checkpoint's space filled in, ends the space-mismatch message)."""
    if data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an elasticvit-deploy supernet checkpoint (no {FORMAT!r} header)")
    if data.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {data.get('version')!r} is not supported "
                              f"(this release reads version {VERSION})")
    if data.get("space_fingerprint") != space.fingerprint:
        raise CheckpointError(f"{path}: checkpoint is for space {data.get('space')!r} "
                              f"(fingerprint {data.get('space_fingerprint')}), not {space.name!r} "
                              f"(fingerprint {space.fingerprint}); {fix.format(space=data.get('space'))}")


def _pick_state(data: dict[str, Any], prefer_ema: bool) -> tuple[dict[str, torch.Tensor], str]:
    if data.get("format") == FORMAT:
        if prefer_ema and isinstance(data.get("ema"), dict):
            return data["ema"], "ema"
        return data["model"], "model"
    candidates = [("state_dict_ema", "ema"), ("model_ema", "ema")] if prefer_ema else []
    for key, source in candidates + [("state_dict", "model"), ("model", "model")]:
        if isinstance(data.get(key), dict):
            return data[key], source
    return data, "model"


def _check_against(state: dict[str, Any], expected: dict[str, torch.Tensor], path: Path, space: SearchSpace) -> None:
    state_keys = {k.removeprefix("module.") for k in state}
    missing = sorted(set(expected) - state_keys)
    unexpected = sorted(state_keys - set(expected))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
    for k, v in state.items():
        k = k.removeprefix("module.")
        if k in expected and (not isinstance(v, torch.Tensor) or tuple(v.shape) != tuple(expected[k].shape)):
            shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            problems.append(f"{k} has shape {shape}, the {space.name} supernet needs {tuple(expected[k].shape)}")
            break
    if problems:
        raise CheckpointError(f"{path}: not a supernet checkpoint of space {space.name!r}: {'; '.join(problems)}")


def load_supernet_weights(path: str | Path, space: SearchSpace, expected: dict[str, torch.Tensor],
                          prefer_ema: bool = True) -> SupernetWeights:
    """Read `path`, pick the EMA weights when present (as evaluation does), check them against `expected`
    (the target supernet's state dict: keys and shapes) and the recorded space. Raises `CheckpointError`."""
    return supernet_weights(read_checkpoint(path), path, space, expected, prefer_ema)


def supernet_weights(data: dict[str, Any], path: str | Path, space: SearchSpace, expected: dict[str, torch.Tensor],
                     prefer_ema: bool = True) -> SupernetWeights:
    """`load_supernet_weights` on a checkpoint dict already read from `path` (callers that also need its other
    entries read the file once)."""
    path = Path(path)
    if data.get("format") == FORMAT:
        check_header(data, path, space)
    state, source = _pick_state(data, prefer_ema)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: the weights entry is a {type(state).__name__}, not a state dict")
    _check_against(state, expected, path, space)
    clean = {k.removeprefix("module."): v for k, v in state.items()}
    return SupernetWeights(clean, str(path), sha256_file(path), source, space.name)
