"""The results store: SQLite in WAL mode, every raw sample plus its summary.

A measurement is keyed by what determines its numbers: the model file's sha256, the device fingerprint, the
runtime version and the measurement flags (threads, cores, warm-ups, runs, delegate, ...). Samples are committed
round by round as they arrive, so a crash or Ctrl-C loses at most the round in flight; a measurement is marked
complete only when its last round is in, and `measure` reuses complete ones unless told `--fresh`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..paths import user_data_dir

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    model_name TEXT NOT NULL,
    device_fingerprint TEXT NOT NULL,
    device_serial TEXT NOT NULL,
    device_alias TEXT,
    runtime_version TEXT NOT NULL,
    flags TEXT NOT NULL,
    device TEXT NOT NULL,
    started_utc REAL NOT NULL,
    finished_utc REAL,
    complete INTEGER NOT NULL DEFAULT 0,
    summary TEXT
);
CREATE INDEX IF NOT EXISTS measurements_key ON measurements (key, complete);
CREATE TABLE IF NOT EXISTS rounds (
    measurement_id INTEGER NOT NULL REFERENCES measurements (id) ON DELETE CASCADE,
    round INTEGER NOT NULL,
    info TEXT NOT NULL,
    PRIMARY KEY (measurement_id, round)
);
CREATE TABLE IF NOT EXISTS samples (
    measurement_id INTEGER NOT NULL REFERENCES measurements (id) ON DELETE CASCADE,
    round INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    PRIMARY KEY (measurement_id, round, idx)
);
"""


def default_store_path() -> Path:
    return user_data_dir(create=True) / "results.sqlite"


def measurement_key(model_sha256: str, device_fingerprint: str, runtime_version: str,
                    flags: dict[str, Any]) -> str:
    blob = json.dumps([model_sha256, device_fingerprint, runtime_version, flags], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class StoredMeasurement:
    id: int
    key: str
    model_sha256: str
    model_name: str
    device_fingerprint: str
    device_serial: str
    device_alias: str | None
    runtime_version: str
    flags: dict[str, Any]
    device: dict[str, Any]
    complete: bool
    summary: dict[str, Any] | None
    samples: list[float]
    rounds: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class ResultsStore:
    """One SQLite file; safe to share between threads (one connection per call) and processes (WAL)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: results store schema {row[0]} is not supported "
                                   f"(this release uses {SCHEMA_VERSION})")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA synchronous=NORMAL")
            with db:  # one transaction: committed on success, rolled back on error
                yield db
        finally:
            db.close()

    def find(self, key: str, complete_only: bool = True) -> StoredMeasurement | None:
        """The newest measurement with `key` (complete ones only, unless asked)."""
        with self._connect() as db:
            row = db.execute("SELECT id FROM measurements WHERE key = ? AND complete >= ? ORDER BY id DESC LIMIT 1",
                             (key, 1 if complete_only else 0)).fetchone()
        return self.get(row[0]) if row else None

    def start(self, key: str, *, model_sha256: str, model_name: str, device: dict[str, Any],
              runtime_version: str, flags: dict[str, Any]) -> int:
        """Open a measurement (or return the unfinished one with the same key, to resume it)."""
        with self._connect() as db:
            row = db.execute("SELECT id FROM measurements WHERE key = ? AND complete = 0 ORDER BY id DESC LIMIT 1",
                             (key,)).fetchone()
            if row:
                return int(row[0])
            cur = db.execute(
                "INSERT INTO measurements (key, model_sha256, model_name, device_fingerprint, device_serial, "
                "device_alias, runtime_version, flags, device, started_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, model_sha256, model_name, device["fingerprint"], device["serial"], device.get("alias"),
                 runtime_version, json.dumps(flags, sort_keys=True), json.dumps(device, sort_keys=True),
                 time.time()))
            return int(cur.lastrowid)

    def add_round(self, measurement_id: int, samples_ms: Sequence[float], info: dict[str, Any]) -> int:
        """Commit one round of raw samples (with its temperatures, init time, ...); returns the round number."""
        with self._connect() as db:
            (n,) = db.execute("SELECT COUNT(*) FROM rounds WHERE measurement_id = ?", (measurement_id,)).fetchone()
            db.execute("INSERT INTO rounds VALUES (?, ?, ?)", (measurement_id, n, json.dumps(info, sort_keys=True)))
            db.executemany("INSERT INTO samples VALUES (?, ?, ?, ?)",
                           [(measurement_id, n, i, float(v)) for i, v in enumerate(samples_ms)])
            return int(n)

    def finish(self, measurement_id: int, summary: dict[str, Any]) -> None:
        with self._connect() as db:
            db.execute("UPDATE measurements SET complete = 1, finished_utc = ?, summary = ? WHERE id = ?",
                       (time.time(), json.dumps(summary, sort_keys=True), measurement_id))

    def get(self, measurement_id: int) -> StoredMeasurement:
        with self._connect() as db:
            row = db.execute("SELECT id, key, model_sha256, model_name, device_fingerprint, device_serial, "
                             "device_alias, runtime_version, flags, device, complete, summary FROM measurements "
                             "WHERE id = ?", (measurement_id,)).fetchone()
            if row is None:
                raise KeyError(measurement_id)
            samples = [r[0] for r in db.execute(
                "SELECT latency_ms FROM samples WHERE measurement_id = ? ORDER BY round, idx", (measurement_id,))]
            rounds = [json.loads(r[0]) for r in db.execute(
                "SELECT info FROM rounds WHERE measurement_id = ? ORDER BY round", (measurement_id,))]
        return StoredMeasurement(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], json.loads(row[8]),
                                 json.loads(row[9]), bool(row[10]), json.loads(row[11]) if row[11] else None,
                                 samples, rounds)

    def all(self, complete_only: bool = True) -> list[StoredMeasurement]:
        with self._connect() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM measurements WHERE complete >= ? ORDER BY id",
                                            (1 if complete_only else 0,))]
        return [self.get(i) for i in ids]
