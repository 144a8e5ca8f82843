"""Installed predictors: which one answers for a device name, in a search space.

- Tables (nn-Meter, measured on real phones) answer for `pixel1`, `pixel4`, `pixel6`, `xiaomi11` in the
  ElasticViT space, once installed (`predictor import-tables` / `fetch-tables`).
- Learned predictors (``predictor fit`` / ``predictor build``) live in ``<user data>/predictors/<device>@<space>/``
  and answer for any device name (``host``, a farm alias, a serial) in the space they were built for.
With both installed the table is preferred (it is the phone's own measurements); `kind` forces one.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from supernet.documents import header
from supernet.space import ELASTICVIT, SearchSpace

from ..errors import BadInput, shorten
from ..paths import user_data_dir
from .errors import PredictorError
from .learned import LearnedPredictor
from .model import ArchLatencyModel, BlockPredictor
from .tables import TABLE_DEVICES, TablePredictor, installed_table_path

__all__ = ["PREDICTOR_KINDS", "BadDeviceName", "InstalledPredictor", "PredictorKind", "PredictorNotFound",
           "check_device_name", "installed_predictors", "learned_dir", "load_predictor", "predictors_dir",
           "listing_document", "resolve_base"]

PredictorKind = Literal["auto", "table", "learned"]
PREDICTOR_KINDS: tuple[PredictorKind, ...] = ("auto", "table", "learned")
LISTING_KIND, LISTING_VERSION = "predictor-listing", 1  # what `predictor list --json` prints
_DEVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
TABLE_SPACE = ELASTICVIT.name


class BadDeviceName(BadInput):
    """A device name that cannot name a predictor (it becomes a directory name)."""


class PredictorNotFound(PredictorError):
    """No installed predictor answers for a device in a space (the message says which command installs one)."""


def check_device_name(name: str) -> str:
    """`name`, checked to be a usable device name (`BadDeviceName` otherwise)."""
    if not _DEVICE.fullmatch(name):
        raise BadDeviceName(f"device name {shorten(name)}: use letters, digits, '.', '_', ':' and '-' (at most 64)")
    return name


def predictors_dir() -> Path:
    """Where learned predictors live."""
    return user_data_dir() / "predictors"


def learned_dir(device: str, space: SearchSpace) -> Path:
    """The directory of `device`'s learned predictor for `space`."""
    return predictors_dir() / f"{check_device_name(device)}@{space.name}"


def resolve_base(description: dict[str, Any]) -> BlockPredictor:
    """The base predictor a transfer-learned predictor names (an installed table or learned predictor)."""
    if description.get("kind") == "table":
        return TablePredictor.load(description["name"])
    space = description.get("space", TABLE_SPACE)
    return LearnedPredictor.load(predictors_dir() / f"{description['name']}@{space}", resolve_base)


def load_predictor(device: str, space: SearchSpace, kind: PredictorKind = "auto") -> ArchLatencyModel:
    """The arch-level latency model of the predictor answering for `device` in `space`."""
    check_device_name(device)
    table_ok = device in TABLE_DEVICES and space.name == TABLE_SPACE
    if kind in ("auto", "table") and table_ok and installed_table_path(device) is not None:
        return ArchLatencyModel(TablePredictor.load(device), space)
    path = learned_dir(device, space)
    if kind in ("auto", "learned") and (path / "predictor.json").is_file():
        predictor = LearnedPredictor.load(path, resolve_base)
        return ArchLatencyModel(predictor, space, predictor.scale, predictor.offset_ms)
    if kind == "table" and not table_ok:
        raise PredictorNotFound(f"no latency table exists for {device} in space {space.name} (tables: "
                                f"{', '.join(TABLE_DEVICES)} in space {TABLE_SPACE})")
    hints = []
    if table_ok:
        hints.append("'elasticvit-deploy predictor import-tables DIR' (or fetch-tables) installs its table")
    hints.append(f"'elasticvit-deploy predictor build --device {device} --space {space.name}' builds one")
    raise PredictorNotFound(f"no latency predictor installed for {device} in space {space.name}: "
                            + "; ".join(hints))


@dataclass(frozen=True)
class InstalledPredictor:
    """One installed predictor: the device it answers for, its space, its kind and where it is."""

    device: str
    space: str
    kind: str
    path: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def installed_predictors() -> list[InstalledPredictor]:
    """Every installed predictor: tables, then learned ones."""
    out = []
    for device in TABLE_DEVICES:
        path = installed_table_path(device)
        if path is not None:
            out.append(InstalledPredictor(device, TABLE_SPACE, "table", str(path)))
    root = predictors_dir()
    if root.is_dir():
        for d in sorted(root.iterdir()):
            if (d / "predictor.json").is_file() and "@" in d.name:
                device, space = d.name.rsplit("@", 1)
                out.append(InstalledPredictor(device, space, "learned", str(d)))
    return out


def listing_document(rows: list[InstalledPredictor]) -> dict[str, Any]:
    """The `predictor-listing` document of `rows` (what `predictor list --json` prints)."""
    return {**header(LISTING_KIND, LISTING_VERSION), "predictors": [r.to_dict() for r in rows]}
