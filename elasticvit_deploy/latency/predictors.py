"""Installed predictors: which one answers for a device name, in a search space.

- Tables (nn-Meter, measured on real phones) answer for `pixel1`, `pixel4`, `pixel6`, `xiaomi11` in the
  ElasticViT space, once installed (`predictor import-tables` / `fetch-tables`).
- Predictors fitted for a device live in ``<user data>/predictors/<device>@<space>/`` and answer for any device
  name (``host``, a farm alias, a serial) in the space they were built for: learned block regressors
  (``predictor fit`` / ``predictor build``) or transfer predictors (``predictor build --method transfer``). Their
  ``predictor.json``'s document kind says which; `SAVED_KINDS` maps each kind to its loader.
With both installed the table is preferred (it is the phone's own measurements); `kind` forces one ("learned":
the one fitted for the device, whatever its kind).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from supernet.documents import document_kind, header
from supernet.space import SearchSpace

from ..errors import BadInput, shorten
from ..paths import user_data_dir
from . import learned, transfer
from .errors import PredictorError
from .learned import LearnedPredictor, PredictorFileError
from .model import ArchLatencyModel, BlockPredictor
from .tables import TABLE_DEVICES, TablePredictor, installed_table_path
from .transfer import TABLE_SPACE, TransferPredictor

__all__ = ["PREDICTOR_KINDS", "SAVED_KINDS", "BadDeviceName", "InstalledPredictor", "PredictorKind",
           "PredictorNotFound", "SavedKind", "SavedPredictor", "check_device_name", "installed_predictors",
           "learned_dir", "load_predictor", "load_saved", "predictors_dir", "listing_document", "resolve_base",
           "transfer_bases"]

PredictorKind = Literal["auto", "table", "learned"]
PREDICTOR_KINDS: tuple[PredictorKind, ...] = ("auto", "table", "learned")
LISTING_KIND, LISTING_VERSION = "predictor-listing", 1  # what `predictor list --json` prints
_DEVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


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
    """Where the predictors fitted for devices (learned or transfer) live."""
    return user_data_dir() / "predictors"


def learned_dir(device: str, space: SearchSpace) -> Path:
    """The directory of the predictor fitted for `device` in `space` (learned or transfer)."""
    return predictors_dir() / f"{check_device_name(device)}@{space.name}"


class SavedPredictor(BlockPredictor, Protocol):
    """A block predictor saved in a device's directory, with its model-level scale and offset."""

    scale: float
    offset_ms: float

    def content_id(self) -> str: ...

    def summary(self, directory: str | Path) -> dict[str, Any]: ...

    def save(self, directory: str | Path) -> Path: ...


@dataclass(frozen=True)
class SavedKind:
    """How to open one kind of saved predictor: its kind as listed, and its loader
    (``load(directory, resolve_base)``)."""

    kind: str
    load: Callable[[Path, Callable[[dict[str, Any]], BlockPredictor]], SavedPredictor]


#: the document kind of a saved ``predictor.json`` -> how to open it
SAVED_KINDS: dict[str, SavedKind] = {
    learned.DOCUMENT_KIND: SavedKind(LearnedPredictor.kind, LearnedPredictor.load),
    transfer.DOCUMENT_KIND: SavedKind(TransferPredictor.kind, TransferPredictor.load),
}


def _saved_kind(directory: Path) -> SavedKind:
    path = directory / "predictor.json"
    try:
        found = document_kind(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PredictorFileError(f"{directory}: no readable predictor.json ({e.__class__.__name__})") from None
    if found not in SAVED_KINDS:
        what = "no format header" if found is None else f"a {shorten(found)} document"
        raise PredictorFileError(f"{path}: {what}, not a saved predictor ({', '.join(SAVED_KINDS)}); rebuild the "
                                 "predictor")
    return SAVED_KINDS[found]


def load_saved(directory: str | Path) -> SavedPredictor:
    """The predictor saved in `directory`, of whichever kind its ``predictor.json`` says."""
    directory = Path(directory)
    return _saved_kind(directory).load(directory, resolve_base)


def resolve_base(description: dict[str, Any]) -> BlockPredictor:
    """The base predictor another predictor names by description: an installed table, or a predictor saved for
    a device (in the space the description names, the tables' by default)."""
    if description.get("kind") == "table":
        return TablePredictor.load(description["name"])
    space = description.get("space", TABLE_SPACE)
    return load_saved(predictors_dir() / f"{check_device_name(str(description['name']))}@{space}")


def load_predictor(device: str, space: SearchSpace, kind: PredictorKind = "auto") -> ArchLatencyModel:
    """The arch-level latency model of the predictor answering for `device` in `space`."""
    check_device_name(device)
    table_ok = device in TABLE_DEVICES and space.name == TABLE_SPACE
    if kind in ("auto", "table") and table_ok and installed_table_path(device) is not None:
        return ArchLatencyModel(TablePredictor.load(device), space)
    path = learned_dir(device, space)
    if kind in ("auto", "learned") and (path / "predictor.json").is_file():
        predictor = load_saved(path)
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


def _base_named(name: str, space: SearchSpace) -> BlockPredictor:
    """The predictor answering for `name` in `space`, or an error naming the spaces it has predictors in."""
    try:
        return load_predictor(name, space).predictor
    except PredictorNotFound:
        elsewhere = sorted({p.space for p in installed_predictors() if p.device == name})
        if not elsewhere:
            raise
        raise PredictorNotFound(f"base {shorten(name)} is a predictor of space {shorten(elsewhere[0])}, not "
                                f"{shorten(space.name)}") from None


def transfer_bases(names: Sequence[str], space: SearchSpace, device: str) -> list[BlockPredictor]:
    """The base predictors of a transfer predictor for `device`: the installed predictors `names` (each the one
    answering for that name in `space`), or without names every installed phone table of the space except the
    device's own, checked to share the space and one block convention (`transfer.check_bases`);
    `PredictorNotFound` when there is none."""
    if names:
        bases = [_base_named(name, space) for name in names]
        transfer.check_bases(space, bases, device)
        return bases
    if space.name != TABLE_SPACE:
        raise PredictorNotFound(f"phone tables exist only for space {TABLE_SPACE}: to transfer in space "
                                f"{space.name}, pass --base with learned predictors of that space")
    found = [d for d in TABLE_DEVICES if d != device and installed_table_path(d) is not None]
    if not found:
        raise PredictorNotFound("no phone table installed to transfer from: 'elasticvit-deploy predictor "
                                "import-tables DIR' (or fetch-tables) installs them, or pass --base")
    return [TablePredictor.load(d) for d in found]


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
    """Every installed predictor: tables, then those saved for a device (kind "learned" or "transfer", or
    "unreadable" for a directory whose predictor.json is not a saved predictor)."""
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
                try:
                    kind = _saved_kind(d).kind
                except PredictorFileError:
                    kind = "unreadable"
                out.append(InstalledPredictor(device, space, kind, str(d)))
    return out


def listing_document(rows: list[InstalledPredictor]) -> dict[str, Any]:
    """The `predictor-listing` document of `rows` (what `predictor list --json` prints)."""
    return {**header(LISTING_KIND, LISTING_VERSION), "predictors": [r.to_dict() for r in rows]}
