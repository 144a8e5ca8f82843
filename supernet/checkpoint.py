"""Supernet checkpoints: one file format, written atomically, read in one place (`read_checkpoint`).

Format (a `torch.save` dict, loaded with ``weights_only=True``, so a checkpoint cannot run code)::

    {"format": "elasticvit-deploy.supernet", "version": 1,          # supernet.documents.header("supernet", 1)
     "space": <space name>, "space_fingerprint": <SearchSpace.fingerprint>,
     "model": <supernet state_dict>, "ema": <EMA weights (a supernet state_dict) or absent>,
     "trainer": <training runs only: step, config, optimizer, scheduler, sampler, RNG states (see
                 supernet.training.trainer)>}

Official/timm-style files (a bare state dict, or one under ``state_dict`` / ``model`` / ``state_dict_ema``) are
accepted too, since the supernet uses the official module names; they are checked key by key and shape by shape.

`read_checkpoint` reads a file once into a `Checkpoint`; everything else (the weights for a space, the space a
file records, a training run's state and configuration) is asked of that record.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_output
from .documents import DocumentError, check_header, document_kind, header
from .errors import BadInput
from .model import ElasticViTSupernet
from .space import SearchSpace, get_space

KIND = "supernet"
VERSION = 1
FORMAT = header(KIND, VERSION)["format"]


class CheckpointError(BadInput):
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
    """Write a supernet checkpoint atomically (the trainer adds its state through `extra`, as ``trainer=...``)."""
    payload: dict[str, Any] = {**header(KIND, VERSION), "space": space.name, "space_fingerprint": space.fingerprint,
                               "model": model_state}
    if ema_state is not None:
        payload["ema"] = ema_state
    payload.update(extra)
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file read once (tensors on CPU): ours (`is_ours`, with the header above) or an official one."""

    path: Path
    entries: dict[str, Any] = field(repr=False)

    @property
    def is_ours(self) -> bool:
        return document_kind(self.entries) == KIND

    def check(self, space: SearchSpace, fix: str = "pass --space {space}") -> None:
        """Raise `CheckpointError` unless this is our format, at a readable version, recorded for `space` (`fix`,
        with the checkpoint's space filled in, ends the space-mismatch message)."""
        if not self.is_ours:
            raise CheckpointError(f"{self.path}: not an elasticvit-deploy supernet checkpoint (no {FORMAT!r} header)")
        try:
            check_header(self.entries, KIND, VERSION, where=str(self.path))
        except DocumentError as e:
            raise CheckpointError(str(e)) from None
        recorded = self.entries.get("space")
        if self.entries.get("space_fingerprint") != space.fingerprint:
            raise CheckpointError(f"{self.path}: checkpoint is for space {recorded!r} "
                                  f"(fingerprint {self.entries.get('space_fingerprint')}), not {space.name!r} "
                                  f"(fingerprint {space.fingerprint}); {fix.format(space=recorded)}")

    def space(self, space: SearchSpace | None = None) -> SearchSpace:
        """`space`, checked against the header when the file is ours; without it, the space the header records
        (an official file records none: name it)."""
        if space is None:
            if not self.is_ours:
                raise CheckpointError(f"{self.path}: not our checkpoint format, so name its search space")
            try:
                space = get_space(str(self.entries.get("space")))
            except KeyError as e:
                raise CheckpointError(f"{self.path}: {e.args[0]}") from None
        if self.is_ours:
            self.check(space)
        return space

    def weights(self, space: SearchSpace, prefer_ema: bool = True) -> SupernetWeights:
        """The weights for `space`'s supernet: the EMA ones when present and `prefer_ema` (as evaluation does),
        checked key by key and shape by shape, and against the recorded space. Raises `CheckpointError`."""
        self.space(space)
        state, source = self._pick_state(prefer_ema)
        if not isinstance(state, dict):
            raise CheckpointError(f"{self.path}: the weights entry is a {type(state).__name__}, not a state dict")
        with torch.device("meta"):
            expected = ElasticViTSupernet(space).state_dict()
        _check_against(state, expected, self.path, space)
        clean = {k.removeprefix("module."): v for k, v in state.items()}
        return SupernetWeights(clean, str(self.path), sha256_file(self.path), source, space.name)

    @property
    def run_config(self) -> dict[str, Any]:
        """The training configuration the file was written with ({} for weights-only and official files)."""
        trainer = self.entries.get("trainer")
        config = trainer.get("config") if isinstance(trainer, dict) else None
        return config if isinstance(config, dict) else {}

    def training_state(self) -> dict[str, Any]:
        """The trainer's saved state (what `--resume` continues from); `CheckpointError` for a file without one."""
        if not self.is_ours:
            raise CheckpointError(f"{self.path}: not an elasticvit-deploy supernet checkpoint (no {FORMAT!r} header)")
        state = self.entries.get("trainer")
        if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
            raise CheckpointError(f"{self.path}: holds supernet weights but no training state, so it cannot be "
                                  "resumed")
        return state

    def _pick_state(self, prefer_ema: bool) -> tuple[Any, str]:
        data = self.entries
        if self.is_ours:
            if prefer_ema and isinstance(data.get("ema"), dict):
                return data["ema"], "ema"
            return data.get("model"), "model"
        candidates = [("state_dict_ema", "ema"), ("model_ema", "ema")] if prefer_ema else []
        for key, source in candidates + [("state_dict", "model"), ("model", "model")]:
            if isinstance(data.get(key), dict):
                return data[key], source
        return data, "model"


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read `path` once; `CheckpointError` if the file is missing or not a PyTorch checkpoint dict."""
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
    return Checkpoint(path, data)


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
