"""Latency targets: which installed predictor answers for a device name, in a search space.

- Tables (nn-Meter, measured on real phones) answer for `pixel1`, `pixel4`, `pixel6`, `xiaomi11` in the
  ElasticViT space, once installed (`predictor import-luts` / `fetch-luts`).
- Learned predictors (``predictor fit`` / ``predictor build``) live in ``<user data>/predictors/<device>@<space>/``
  and answer for any device name (``host``, a farm alias, a serial) in the space they were built for.
With both installed the table is preferred (it is the phone's own measurements); `kind` forces one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from supernet.space import ELASTICVIT, SearchSpace

from ..errors import shorten
from ..paths import user_data_dir
from .learned import LearnedPredictor
from .model import ArchLatencyModel, BlockPredictor
from .tables import TABLE_DEVICES, TableError, TablePredictor, installed_table_path

Kind = Literal["auto", "table", "learned"]
_DEVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
TABLE_SPACE = ELASTICVIT.name


class TargetError(ValueError):
    """No usable predictor for a target (the message says which command installs or builds one)."""


def check_device_name(name: str) -> str:
    if not _DEVICE.fullmatch(name):
        raise TargetError(f"device name {shorten(name)}: use letters, digits, '.', '_', ':' and '-' (at most 64)")
    return name


def predictors_dir() -> Path:
    return user_data_dir() / "predictors"


def learned_dir(device: str, space: SearchSpace) -> Path:
    return predictors_dir() / f"{check_device_name(device)}@{space.name}"


def resolve_base(description: dict) -> BlockPredictor:
    """The base predictor a transfer-learned predictor names (an installed table or learned predictor)."""
    if description.get("kind") == "table":
        return TablePredictor.load(description["name"])
    space = description.get("space", TABLE_SPACE)
    return LearnedPredictor.load(predictors_dir() / f"{description['name']}@{space}", resolve_base)


def load_target(device: str, space: SearchSpace, kind: Kind = "auto") -> ArchLatencyModel:
    """The arch-level latency model answering for `device` in `space`."""
    check_device_name(device)
    table_ok = device in TABLE_DEVICES and space.name == TABLE_SPACE
    if kind in ("auto", "table") and table_ok and installed_table_path(device) is not None:
        return ArchLatencyModel(TablePredictor.load(device), space)
    path = learned_dir(device, space)
    if kind in ("auto", "learned") and (path / "predictor.json").is_file():
        predictor = LearnedPredictor.load(path, resolve_base)
        return ArchLatencyModel(predictor, space, predictor.scale, predictor.offset_ms)
    if kind == "table" and not table_ok:
        raise TargetError(f"no latency table exists for {device} in space {space.name} (tables: "
                          f"{', '.join(TABLE_DEVICES)} in space {TABLE_SPACE})")
    hints = []
    if table_ok:
        hints.append("'elasticvit-deploy predictor import-luts DIR' (or fetch-luts) installs its table")
    hints.append(f"'elasticvit-deploy predictor build --device {device} --space {space.name}' builds one")
    raise TargetError(f"no latency predictor installed for {device} in space {space.name}: " + "; ".join(hints))


def installed_targets() -> list[dict[str, str]]:
    """Every installed predictor: tables and learned ones, with their space and where they are."""
    out = []
    for device in TABLE_DEVICES:
        path = installed_table_path(device)
        if path is not None:
            out.append({"device": device, "space": TABLE_SPACE, "kind": "table", "path": str(path)})
    root = predictors_dir()
    if root.is_dir():
        for d in sorted(root.iterdir()):
            if (d / "predictor.json").is_file() and "@" in d.name:
                device, space = d.name.rsplit("@", 1)
                out.append({"device": device, "space": space, "kind": "learned", "path": str(d)})
    return out


__all__ = ["TableError", "TargetError", "installed_targets", "learned_dir", "load_target", "resolve_base"]
