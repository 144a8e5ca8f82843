"""The results store: SQLite in WAL mode, every raw sample plus its summary.

A measurement is keyed by what determines its numbers: the model file's sha256, the device fingerprint, the
runtime version and the measurement flags (threads, cores, warm-ups, runs, delegate, ...). Samples are committed
round by round as they arrive, so a crash or Ctrl-C loses at most the round in flight; a measurement is marked
complete only when its last round is in, and `measure` reuses complete ones unless told `--fresh`.

Every write is one `BEGIN IMMEDIATE` transaction, so concurrent writers (threads, processes) queue up on SQLite's
write lock (busy timeout BUSY_TIMEOUT_S) instead of colliding: round numbers are assigned inside the transaction,
finding-or-creating an unfinished measurement is atomic, and a measurement is completed only if its summary
covers exactly the rounds stored. The store is per host: SQLite's WAL needs a local disk, not a network file
system shared between machines.

Schema 2 adds labels (`tag`: the names a measurement was stored under, e.g. the commit it measured) and op
profiles (`set_profile`: one profiling run's tables per measurement, never part of its samples). A schema-1 store
is upgraded in place, in one write transaction, when it is opened; a store of a newer schema is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supernet.documents import header

from ..errors import BadInput, OperationFailed, shorten
from ..paths import user_data_dir, writable_dir
from .labels import check_label
from .summary import current_spelling

__all__ = ["BUSY_TIMEOUT_S", "SCHEMA_VERSION", "LabelInfo", "MeasurementConflict", "ResultsStore", "StoreError",
           "StoreFullError", "StoredMeasurement", "default_store_path", "export_document", "measurement_key"]

SCHEMA_VERSION = 2
EXPORT_KIND = "results-export"
EXPORT_VERSION = 1
BUSY_TIMEOUT_S = 120.0
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
CREATE TABLE IF NOT EXISTS labels (
    label TEXT NOT NULL,
    measurement_id INTEGER NOT NULL REFERENCES measurements (id) ON DELETE CASCADE,
    tagged_utc REAL NOT NULL,
    PRIMARY KEY (label, measurement_id)
);
CREATE INDEX IF NOT EXISTS labels_measurement ON labels (measurement_id);
CREATE TABLE IF NOT EXISTS profiles (
    measurement_id INTEGER PRIMARY KEY REFERENCES measurements (id) ON DELETE CASCADE,
    profile TEXT NOT NULL,
    created_utc REAL NOT NULL
);
"""


_MAGIC = b"SQLite format 3\x00"


class StoreError(BadInput):
    """The results store is unusable (corrupt, of another schema, not writable): one line naming the file and
    what to do about it."""


class MeasurementConflict(OperationFailed):
    """Another writer touched the measurement meanwhile (it is complete, or holds rounds this summary does not
    cover); nothing was written."""


class StoreFullError(OperationFailed):
    """The disk filled up while writing the store; the write was rolled back."""


def default_store_path() -> Path:
    return user_data_dir(create=True) / "results.sqlite"


def _sqlite_error(path: Path, e: sqlite3.Error) -> StoreError | StoreFullError:
    code = (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF
    if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return StoreError(f"{path}: the results store is corrupt ({e}); move it aside (mv {path} {path}.bad) and "
                          "measure again")
    if code == sqlite3.SQLITE_FULL or code == sqlite3.SQLITE_IOERR and _disk_full(path):
        return StoreFullError(f"{path}: no space left on the device (the failed write was rolled back, earlier "
                              "results are intact); free some space and try again")
    return StoreError(f"{path}: cannot use the results store ({e})")


def _disk_full(path: Path) -> bool:
    """Whether the file system holding `path` is (nearly) out of space: SQLite reports a failed shared-memory or
    WAL allocation as a disk I/O error."""
    try:
        return shutil.disk_usage(path.parent).free < 1 << 20
    except OSError:
        return False


def _check_header(path: Path) -> None:
    """Refuse a file that is not an SQLite database, or is shorter than its header says (truncated), before
    SQLite opens it for writing."""
    with open(path, "rb") as f:
        head = f.read(100)
    if not head:
        return  # an empty file is an empty database
    if len(head) < 100 or not head.startswith(_MAGIC):
        raise StoreError(f"{path}: not an SQLite database, so not a results store; move it aside "
                         f"(mv {path} {path}.bad) and measure again")
    page = int.from_bytes(head[16:18], "big")
    pages = int.from_bytes(head[28:32], "big")
    wal = path.with_name(path.name + "-wal")  # pages not yet checkpointed live there
    if head[24:28] == head[92:96] and (page if page != 1 else 65536) * pages > path.stat().st_size \
            and not (wal.is_file() and wal.stat().st_size):
        raise StoreError(f"{path}: the results store is truncated (its header promises {pages} pages); move it "
                         f"aside (mv {path} {path}.bad) and measure again")


def _check_schema(path: Path) -> None:
    """Refuse an SQLite file of another schema without writing to it (read-only connection)."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and not {"meta", "measurements", "rounds", "samples"} <= tables:
            names = ", ".join(shorten(t, 30) for t in sorted(tables)[:5])
            raise StoreError(f"{path}: an SQLite database of another schema (tables {names}), not a results store; "
                             f"move it aside (mv {path} {path}.bad) and measure again")
    finally:
        db.close()


def measurement_key(model_sha256: str, device_fingerprint: str, runtime: str, flags: dict[str, Any]) -> str:
    """What identifies a measurement's numbers: the model, the device, the runtime and the flags."""
    blob = json.dumps([model_sha256, device_fingerprint, runtime, flags], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class LabelInfo:
    """One label of the store: when it was first used and how many complete measurements carry it."""

    label: str
    first_utc: float
    measurements: int


@dataclass(frozen=True)
class StoredMeasurement:
    """One measurement as stored: its key, what was measured where, its rounds' means (`samples`, ms) and records
    (`rounds`), its summary once complete, its labels (oldest first) and its op profile (`ResultsStore.set_profile`),
    if any."""

    id: int
    key: str
    model_sha256: str
    model_name: str
    device_fingerprint: str
    device_serial: str
    device_alias: str | None
    runtime: str
    flags: dict[str, Any]
    device: dict[str, Any]
    complete: bool
    summary: dict[str, Any] | None
    samples: list[float]
    rounds: list[dict[str, Any]]
    labels: tuple[str, ...]
    profile: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """The exported record, in the toolkit's one spelling: `rounds_ms` for the rounds' means, `round_info`
        for their records, the summary's figures as `summary.MeasurementSummary` names them, `labels` and the
        stored `profile` (None if none)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in self.__dataclass_fields__
                               if k not in ("summary", "samples", "rounds", "labels")}
        return dict(out, summary=current_spelling(self.summary) if self.summary is not None else None,
                    rounds_ms=self.samples, round_info=self.rounds, labels=list(self.labels))


def export_document(measurements: Sequence[StoredMeasurement]) -> dict[str, Any]:
    """`results export` as JSON: a results-export document of every measurement given."""
    return {**header(EXPORT_KIND, EXPORT_VERSION), "measurements": [m.to_dict() for m in measurements]}


class _OpenConnections:
    """How many SQLite connections this process has open, per database file. Closing any other descriptor of a
    file drops every POSIX lock the process holds on it, SQLite's included (a classic way to corrupt a database),
    so `_check_header`, which opens and closes the file itself, runs only while none is open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    @contextmanager
    def counted(self, file: str) -> Iterator[None]:
        with self._lock:
            self._counts[file] += 1
        try:
            yield
        finally:
            with self._lock:
                self._counts[file] -= 1

    @contextmanager
    def none_open(self, file: str) -> Iterator[bool]:
        """Whether no connection to `file` is open; none opens until the block ends."""
        with self._lock:
            yield self._counts[file] == 0


_OPEN = _OpenConnections()


class ResultsStore:
    """One SQLite file; safe to share between threads (one connection per call) and processes (WAL)."""

    def __init__(self, path: str | Path | None = None):
        """Open (or create) the store; StoreError if the file is corrupt, of another schema or not writable,
        and then the file is left exactly as it was."""
        self.path = Path(path) if path else default_store_path()
        writable_dir(self.path.parent)
        self._file = os.path.realpath(self.path)
        try:
            with _OPEN.none_open(self._file) as idle:
                if self.path.exists():
                    if idle:  # reading the file ourselves is safe only while no connection holds locks on it
                        _check_header(self.path)
                    _check_schema(self.path)
        except OSError as e:
            raise StoreError(f"{self.path}: cannot read ({e.strerror or e.__class__.__name__})") from None
        except sqlite3.Error as e:
            raise _sqlite_error(self.path, e) from None
        with _OPEN.counted(self._file):
            db = self._new_connection()
            try:
                db.execute("PRAGMA journal_mode=WAL")  # persistent: set once, not per connection
            except sqlite3.Error as e:
                raise _sqlite_error(self.path, e) from None
            finally:
                db.close()
        self._create_or_upgrade()

    def _create_or_upgrade(self) -> None:
        """Create the tables of a new store, or upgrade a schema-1 store in place (its new tables created, its
        schema_version bumped), in one write transaction; StoreError, nothing written, for any other schema. A
        store of this schema is only read: opening it writes nothing."""
        with self._connect() as db:
            if self._schema_version(db) == str(SCHEMA_VERSION):
                return
        with self._connect(write=True) as db:
            if self._schema_version(db) == str(SCHEMA_VERSION):
                return  # another process upgraded it meanwhile
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _schema_version(self, db: sqlite3.Connection) -> str | None:
        """The store's schema_version (None for a new store); StoreError for one this release cannot use."""
        has_meta = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() if has_meta else None
        if row is not None and row[0] not in ("1", str(SCHEMA_VERSION)):
            raise StoreError(f"{self.path}: results store schema {shorten(row[0])} is not supported "
                             f"(this release uses {SCHEMA_VERSION})")
        return row[0] if row is not None else None

    def _new_connection(self) -> sqlite3.Connection:
        """A connection in autocommit mode (transactions are explicit); open it inside `_OPEN.counted`."""
        try:
            return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as e:
            raise _sqlite_error(self.path, e) from None

    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One connection and one transaction: `write` takes the write lock up front (BEGIN IMMEDIATE), a read
        sees one consistent snapshot (BEGIN). Committed on success, rolled back on any error (a failed commit
        included); SQLite errors come out as StoreError."""
        with _OPEN.counted(self._file):
            db = self._new_connection()
            try:
                db.execute("PRAGMA foreign_keys=ON")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield db
                db.execute("COMMIT")
            except BaseException as e:
                if db.in_transaction:
                    with suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise _sqlite_error(self.path, e) from None
                raise
            finally:
                db.close()

    def find(self, key: str, complete_only: bool = True) -> StoredMeasurement | None:
        """The newest measurement with `key` (complete ones only, unless asked)."""
        with self._connect() as db:
            row = db.execute("SELECT id FROM measurements WHERE key = ? AND complete >= ? ORDER BY id DESC LIMIT 1",
                             (key, 1 if complete_only else 0)).fetchone()
        return self.get(row[0]) if row else None

    def start(self, key: str, *, model_sha256: str, model_name: str, device: dict[str, Any],
              runtime: str, flags: dict[str, Any]) -> int:
        """Open a measurement (or return the unfinished one with the same key, to resume it), atomically: two
        callers with one key get one measurement."""
        with self._connect(write=True) as db:
            row = db.execute("SELECT id FROM measurements WHERE key = ? AND complete = 0 ORDER BY id DESC LIMIT 1",
                             (key,)).fetchone()
            if row:
                return int(row[0])
            cur = db.execute(
                "INSERT INTO measurements (key, model_sha256, model_name, device_fingerprint, device_serial, "
                "device_alias, runtime_version, flags, device, started_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, model_sha256, model_name, device["fingerprint"], device["serial"], device.get("alias"),
                 runtime, json.dumps(flags, sort_keys=True), json.dumps(device, sort_keys=True),
                 time.time()))
            assert cur.lastrowid is not None  # set by every INSERT
            return cur.lastrowid

    def add_round(self, measurement_id: int, samples_ms: Sequence[float], info: dict[str, Any]) -> int:
        """Commit one round of raw samples (with its temperatures, init time, ...); returns its round number, the
        next free one (0, 1, ...) at the moment of the write. MeasurementConflict if the measurement is complete."""
        with self._connect(write=True) as db:
            self._unfinished(db, measurement_id)
            (n,) = db.execute("SELECT COALESCE(MAX(round) + 1, 0) FROM rounds WHERE measurement_id = ?",
                              (measurement_id,)).fetchone()
            db.execute("INSERT INTO rounds VALUES (?, ?, ?)", (measurement_id, n, json.dumps(info, sort_keys=True)))
            db.executemany("INSERT INTO samples VALUES (?, ?, ?, ?)",
                           [(measurement_id, n, i, float(v)) for i, v in enumerate(samples_ms)])
            return int(n)

    def finish(self, measurement_id: int, summary: dict[str, Any]) -> None:
        """Mark the measurement complete with `summary`. MeasurementConflict (nothing written) if it is complete
        already, or if the summary counts `rounds` and the store holds another number of them: the summary was
        computed from data another writer has changed since."""
        with self._connect(write=True) as db:
            self._unfinished(db, measurement_id)
            claimed = summary.get("rounds")
            if isinstance(claimed, int) and not isinstance(claimed, bool):
                (stored,) = db.execute("SELECT COUNT(*) FROM rounds WHERE measurement_id = ?",
                                       (measurement_id,)).fetchone()
                if stored != claimed:
                    raise MeasurementConflict(
                        f"{self.path}: measurement {measurement_id} holds {stored} rounds but its summary covers "
                        f"{claimed}: another writer added rounds meanwhile; measure again (--fresh)")
            db.execute("UPDATE measurements SET complete = 1, finished_utc = ?, summary = ? WHERE id = ?",
                       (time.time(), json.dumps(summary, sort_keys=True), measurement_id))

    def _unfinished(self, db: sqlite3.Connection, measurement_id: int) -> None:
        """Inside a write transaction: the measurement exists and is not complete (MeasurementConflict if it is,
        KeyError if there is none)."""
        row = db.execute("SELECT complete FROM measurements WHERE id = ?", (measurement_id,)).fetchone()
        if row is None:
            raise KeyError(measurement_id)
        if row[0]:
            raise MeasurementConflict(f"{self.path}: measurement {measurement_id} was completed by another writer "
                                      "meanwhile; nothing more was written to it")

    def tag(self, measurement_id: int, label: str) -> None:
        """Tag the measurement with `label` (BadLabel if it is not a valid label, KeyError if there is no such
        measurement); tagging it again with the same label changes nothing."""
        check_label(label)
        with self._connect(write=True) as db:
            if db.execute("SELECT 1 FROM measurements WHERE id = ?", (measurement_id,)).fetchone() is None:
                raise KeyError(measurement_id)
            db.execute("INSERT OR IGNORE INTO labels VALUES (?, ?, ?)", (label, measurement_id, time.time()))

    def labels(self) -> list[LabelInfo]:
        """Every label carried by a complete measurement, oldest first (by the time it was first used)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT l.label, MIN(l.tagged_utc), COUNT(*) FROM labels l JOIN measurements m "
                "ON m.id = l.measurement_id WHERE m.complete = 1 GROUP BY l.label "
                "ORDER BY MIN(l.tagged_utc), MIN(l.rowid)").fetchall()
        return [LabelInfo(r[0], float(r[1]), int(r[2])) for r in rows]

    def labelled(self, label: str) -> list[StoredMeasurement]:
        """The complete measurements tagged `label`, in the order they were started."""
        with self._connect() as db:
            ids = [r[0] for r in db.execute(
                "SELECT m.id FROM labels l JOIN measurements m ON m.id = l.measurement_id "
                "WHERE l.label = ? AND m.complete = 1 ORDER BY m.id", (label,))]
        return [self.get(i) for i in ids]

    def set_profile(self, measurement_id: int, profile: dict[str, Any]) -> None:
        """Store (replacing any earlier one) the measurement's op profile, a `runner_protocol.ProfileRun.to_dict()`
        record; KeyError if there is no such measurement, TypeError/ValueError if `profile` is no JSON object."""
        if not isinstance(profile, dict):
            raise TypeError(f"a profile is a dict, got {type(profile).__name__}")
        text = json.dumps(profile, sort_keys=True, allow_nan=False)
        with self._connect(write=True) as db:
            if db.execute("SELECT 1 FROM measurements WHERE id = ?", (measurement_id,)).fetchone() is None:
                raise KeyError(measurement_id)
            db.execute("INSERT OR REPLACE INTO profiles VALUES (?, ?, ?)", (measurement_id, text, time.time()))

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
            labels = tuple(r[0] for r in db.execute(
                "SELECT label FROM labels WHERE measurement_id = ? ORDER BY tagged_utc, rowid", (measurement_id,)))
            profile = db.execute("SELECT profile FROM profiles WHERE measurement_id = ?",
                                 (measurement_id,)).fetchone()
        return StoredMeasurement(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], json.loads(row[8]),
                                 json.loads(row[9]), bool(row[10]), json.loads(row[11]) if row[11] else None,
                                 samples, rounds, labels, json.loads(profile[0]) if profile else None)

    def all(self, complete_only: bool = True) -> list[StoredMeasurement]:
        with self._connect() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM measurements WHERE complete >= ? ORDER BY id",
                                            (1 if complete_only else 0,))]
        return [self.get(i) for i in ids]
