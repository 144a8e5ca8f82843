"""The nn-Meter hybrid-transformer latency tables: verified import from a directory, download from the pinned URL,
and the table predictor (a block's latency is its measured table entry).

The four tables (Pixel1, Pixel4, Pixel6, Xiaomi11; MIT, from microsoft/nn-Meter) are never shipped with this
project: `predictor import-tables DIR` or `predictor fetch-tables` installs them into ``<user data>/luts/`` (the
directory name of earlier releases, kept so installed tables stay found) after checking each file's sha256.
"""

from __future__ import annotations

import hashlib
import json
import math
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from supernet.atomic import atomic_output

from ..errors import shorten
from ..jsontext import JSONTextError, load_json_text
from ..paths import user_data_dir, writable_dir
from .blocks import FAMILIES, Block, Convention
from .errors import PredictorError

NNMETER_COMMIT = "9c31e190e78d6ac558213c68b41575fe545c0533"
URL_PATTERN = ("https://raw.githubusercontent.com/microsoft/nn-Meter/" + NNMETER_COMMIT
               + "/nn_meter/predictor/transformer_predictor/lut/{device}_lut_ln_v3.json")
TABLE_SHA256 = {
    "pixel1": "d9453d5519e47aa0894c1a7d1240d45892ff797720c7fe63ab800820c9403d23",
    "pixel4": "1f8888a759717a452b5e082d6413ed1d32fc5669f009865e4959af7600cb00b2",
    "pixel6": "7c69968784a30e05d613e883e901424b68df099a6093a9d1729d0d5b9a702364",
    "xiaomi11": "eb0fdefd490d2c77567e6df7e2acf8fea79ca5d2343727c7865eb54cda8f050b",
}
TABLE_DEVICES = tuple(TABLE_SHA256)


class TableError(PredictorError):
    """A table that is missing, corrupt, not the pinned file, or that cannot be downloaded or installed."""


def table_file_name(device: str) -> str:
    """nn-Meter's file name of `device`'s table."""
    return f"{device}_lut_ln_v3.json"


def tables_dir() -> Path:
    """Where installed tables live."""
    return user_data_dir() / "luts"


def installed_table_path(device: str) -> Path | None:
    """The installed table file of `device`, or None."""
    path = tables_dir() / table_file_name(device)
    return path if path.is_file() else None


def _check_bytes(device: str, data: bytes, source: str) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != TABLE_SHA256[device]:
        raise TableError(f"{source}: sha256 {digest[:16]}... is not the pinned {device} table "
                         f"({TABLE_SHA256[device][:16]}...): corrupt or another version")


def import_tables(directory: str | Path, devices: Sequence[str] = TABLE_DEVICES) -> dict[str, Path]:
    """Copy the verified tables found in `directory` into the user-data dir; raises TableError if none is found
    or one is corrupt (nothing is installed from a corrupt file)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise TableError(f"{directory}: not a directory")
    found = {d: directory / table_file_name(d) for d in devices if (directory / table_file_name(d)).is_file()}
    if not found:
        names = ", ".join(table_file_name(d) for d in devices)
        raise TableError(f"{directory}: holds none of the tables ({names})")
    payloads = {}
    for device, path in found.items():
        data = path.read_bytes()
        _check_bytes(device, data, str(path))
        payloads[device] = data
    return {device: _install(device, data) for device, data in payloads.items()}


def fetch_tables(devices: Sequence[str] = TABLE_DEVICES, timeout_s: float = 30.0,
                 opener: Callable[..., Any] = urllib.request.urlopen) -> dict[str, Path]:
    """Download the tables from the pinned nn-Meter commit, verify their sha256 and install them."""
    installed = {}
    for device in devices:
        url = URL_PATTERN.format(device=device)
        try:
            with opener(url, timeout=timeout_s) as response:
                data = response.read()
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise TableError(f"cannot download the {device} table from {url} ({reason}); offline? "
                             "Copy the files by hand and use 'predictor import-tables DIR'") from None
        _check_bytes(device, data, url)
        installed[device] = _install(device, data)
    return installed


def _install(device: str, data: bytes) -> Path:
    path = writable_dir(tables_dir()) / table_file_name(device)
    try:
        with atomic_output(path) as tmp:
            tmp.write_bytes(data)
    except OSError as e:
        raise TableError(f"{path}: cannot write the table ({e.strerror or e.__class__.__name__})") from None
    return path


def read_table(path: str | Path) -> dict[str, float]:
    """A table's entries, checked: a JSON object of block keys (known families) to positive milliseconds."""
    path = Path(path)
    try:
        data = load_json_text(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError) as e:
        raise TableError(f"{path}: not a readable JSON latency table ({e.__class__.__name__})") from None
    except JSONTextError as e:
        raise TableError(f"{e}; not a latency table") from None
    if not isinstance(data, dict) or not data:
        raise TableError(f"{path}: a latency table is a non-empty JSON object of block key -> ms")
    for key, value in data.items():
        if key.split("_", 1)[0] not in FAMILIES:
            raise TableError(f"{path}: unknown block key {shorten(key)}")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise TableError(f"{path}: entry {shorten(key)} is not a positive latency ({shorten(value)})")
    return {k: float(v) for k, v in data.items()}


class TablePredictor:
    """Block latencies looked up in a measured table (nn-Meter convention); NaN for a block the table lacks."""

    kind = "table"
    convention: Convention = "nnmeter"

    def __init__(self, name: str, entries: dict[str, float], source: str = ""):
        self.name = name
        self.entries = entries
        self.source = source

    @classmethod
    def load(cls, device: str, path: str | Path | None = None) -> TablePredictor:
        """The installed table of `device` (or the table file at `path`)."""
        if path is None:
            path = installed_table_path(device)
            if path is None:
                raise TableError(f"no latency table installed for {device}: run 'elasticvit-deploy predictor "
                                 "import-tables DIR' or 'elasticvit-deploy predictor fetch-tables'")
        return cls(device, read_table(path), str(path))

    def predict_blocks(self, blocks: Sequence[Block]) -> np.ndarray:
        return np.array([self.entries.get(b.table_key, np.nan) for b in blocks], dtype=np.float64)

    def content_id(self) -> str:
        """sha256 of what its predictions depend on: the table's entries (not where the table file lies)."""
        rows = json.dumps({"convention": self.convention, "entries": self.entries}, sort_keys=True)
        return hashlib.sha256(rows.encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "convention": self.convention, "source": self.source,
                "entries": len(self.entries)}
