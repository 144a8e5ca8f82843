"""What a simulated phone's twin knows about a model's latency: the nn-Meter table of the phone it is the twin of.

A profile with ``tables=...`` (pixel1, pixel4, pixel6, xiaomi11) is the twin of the real phone whose block latency
table nn-Meter measured. For a model that carries the ElasticViT metadata the export embeds, the twin's latency of
one inference is exactly what that table says:

- an ElasticViT subnet (``kind`` "elasticvit-subnet" of the ElasticViT space's fingerprint): the sum of its
  blocks' table entries (`ArchLatencyModel` over a `TablePredictor`, no calibration);
- one block (``kind`` "elasticvit-block", as the latency builder exports them): its table entry.

The table holds blocks measured alone on the phone, so a twin knows no more than that: no layout, operator fusion
or effects between blocks that the table lacks. For anything else (a model without that metadata, an arch of
another space, a profile without a table, a table not installed, a block the table lacks) `TwinTiming.ms` is
None and the simulated benchmark_model falls back on host-scaled timing; `basis` says which and why.

The latency and export packages load slowly (PyTorch, scikit-learn) and the simulated benchmark_model is a fresh
process per run, so they are imported only when a table is there to read, and a model's twin timing is kept in
the farm's timing cache (`cached_twin_timing`), keyed by the model's and the table's sha256.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supernet.documents import DocumentError, check_header, header

from .profiles import PhoneProfile

if TYPE_CHECKING:
    from ..latency.tables import TablePredictor

__all__ = ["TIMING_MODEL", "TwinTiming", "cached_twin_timing", "timing_identity", "twin_table", "twin_timing"]

#: the simulated benchmark_model's timing model; part of the tool on every simulated phone (devicefs), so the
#: results store never reuses a result of another timing model (bump it when the timing changes)
TIMING_MODEL = "twin-1"
CACHE_KIND = "simulator-twin-timing"
CACHE_VERSION = 1


@dataclass(frozen=True)
class TwinTiming:
    """A twin's latency of one inference in ms (None: host-scaled timing instead) and what it rests on, e.g.
    "table pixel1" or "host-scaled (no ElasticViT arch embedded)"."""

    ms: float | None
    basis: str

    def to_dict(self) -> dict[str, Any]:
        return {"ms": self.ms, "basis": self.basis}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TwinTiming:
        ms = data["ms"]
        return cls(None if ms is None else float(ms), str(data["basis"]))


def _fallback(why: str) -> TwinTiming:
    return TwinTiming(None, f"host-scaled ({why})")


def twin_table(profile: PhoneProfile, tables: Path | None = None) -> Path | None:
    """The table file the twin of `profile` follows, found in the directory `tables` (default: the installed
    tables, `latency.tables.tables_dir()`); None for a profile without a table or a table not there."""
    if profile.tables is None:
        return None
    from ..latency.tables import table_file_name, tables_dir

    path = (tables if tables is not None else tables_dir()) / table_file_name(profile.tables)
    return path.resolve() if path.is_file() else None


def timing_identity(profile: PhoneProfile, table: Path | None) -> str:
    """One line naming the timing model and the table a phone follows (its sha256), or why it follows none."""
    if table is None:
        return f"{TIMING_MODEL} {_no_table(profile).basis}"
    return f"{TIMING_MODEL} table {profile.tables} sha256 {hashlib.sha256(table.read_bytes()).hexdigest()}"


def _no_table(profile: PhoneProfile) -> TwinTiming:
    if profile.tables is None:
        return _fallback(f"{profile.name} is no table phone's twin")
    return _fallback(f"no {profile.tables} table installed")


def twin_timing(model: bytes, profile: PhoneProfile, table: Path | None) -> TwinTiming:
    """What the twin of `profile`, following the table file `table` (None: none installed), knows about the
    latency of the .tflite `model`."""
    if table is None or profile.tables is None:
        return _no_table(profile)
    from ..export.tflite_format import read_metadata

    try:
        meta = read_metadata(model)
    except ValueError:  # metadata that is no JSON text
        return _fallback("unreadable ElasticViT metadata")
    kind = meta.get("kind") if isinstance(meta, dict) else None
    if meta is None or kind not in ("elasticvit-subnet", "elasticvit-block"):
        return _fallback("no ElasticViT arch embedded")
    from ..latency.tables import TableError

    try:
        predictor = _table(*_stamp(table), profile.tables)
    except (OSError, TableError):
        return _fallback(f"the {profile.tables} table is unreadable")
    return _subnet(meta, predictor) if kind == "elasticvit-subnet" else _block(meta, predictor)


def _subnet(meta: dict[str, Any], table: TablePredictor) -> TwinTiming:
    from supernet.arch import Arch, ArchError
    from supernet.space import ELASTICVIT
    from supernet.validation import check_arch

    from ..latency.model import ArchLatencyModel, UncoveredArchError

    if meta.get("space_fingerprint") != ELASTICVIT.fingerprint:
        return _fallback("arch of another search space embedded")
    try:
        arch = check_arch(Arch.from_dict(meta.get("arch")), ELASTICVIT)
    except ArchError:
        return _fallback("embedded arch is not one of the ElasticViT space")
    try:
        latency = ArchLatencyModel(table, ELASTICVIT).predict(arch)
    except UncoveredArchError:
        return _fallback(f"the {table.name} table lacks a block of this arch")
    return TwinTiming(latency, f"table {table.name}")


def _block(meta: dict[str, Any], table: TablePredictor) -> TwinTiming:
    from ..latency.blocks import Block

    try:
        key = Block(**meta["block"]).table_key
    except (KeyError, TypeError):
        return _fallback("embedded block unreadable")
    ms = table.entries.get(key)
    return _fallback(f"the {table.name} table has no entry for this block") if ms is None else \
        TwinTiming(ms, f"table {table.name}")


def _stamp(table: Path) -> tuple[str, int, int]:
    """The table file as the parsed-table cache knows it: path, size and modification time."""
    info = table.stat()
    return str(table), info.st_size, info.st_mtime_ns


@functools.lru_cache(maxsize=8)
def _table(path: str, size: int, mtime_ns: int, device: str) -> TablePredictor:
    """The table at `path`, parsed once per process (and again only if the file changed)."""
    from ..latency.tables import TablePredictor, read_table

    return TablePredictor(device, read_table(path), path)


def cached_twin_timing(model: bytes, model_sha256: str, profile: PhoneProfile, table: Path | None,
                       cache_dir: Path) -> TwinTiming:
    """`twin_timing`, kept in `cache_dir` by the model's and the table's sha256 (and the timing model): a run
    after the first skips loading the latency and export packages."""
    if table is None or profile.tables is None:
        return _no_table(profile)
    table_sha = hashlib.sha256(table.read_bytes()).hexdigest()
    cache = cache_dir / f"twin-{TIMING_MODEL}-{model_sha256}-{table_sha[:16]}-{profile.tables}.json"
    try:
        stored = json.loads(cache.read_text(encoding="utf-8"))
        check_header(stored, CACHE_KIND, CACHE_VERSION, str(cache))
        return TwinTiming.from_dict(stored)
    except (OSError, ValueError, KeyError, TypeError, DocumentError):
        pass
    timing = twin_timing(model, profile, table)
    try:  # a private temporary file (tools in PID namespaces of their own may share a pid), then rename
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{cache.name}.", dir=cache_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({**header(CACHE_KIND, CACHE_VERSION), **timing.to_dict()}, out)
        os.replace(tmp, cache)
    except OSError:
        pass  # not kept: the next run works it out again
    return timing
