"""Atomic output: write to a temporary name beside the target, rename only when complete.

A crash, Ctrl-C or failed verification never leaves a half-written or unverified file (or directory) at the final
path. Publishing (the renames) is a critical section: a SIGINT/SIGTERM that arrives during it is held until the
renames are done, so a set of files is published whole or not at all.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .arch import shorten
from .errors import BadInput

INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _seal(path: Path) -> None:
    """Flush a staged file to disk and give it the usual permissions (mkstemp creates 0600)."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
    os.chmod(path, 0o666 & ~_umask())


class OutputDirError(BadInput):
    """An output directory cannot be created or written (read-only, full, ...)."""


def prepare_out_dir(out_dir: Path) -> None:
    """Create `out_dir` if needed and prove it writable before any work (with an unnamed file: nothing to leave)."""
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out_dir).close()
    except OSError as e:
        if created and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise OutputDirError(f"{shorten(str(out_dir))}: output directory is not writable ({e.strerror or e})") \
            from None


@contextmanager
def deferred_signals() -> Iterator[list[int]]:
    """A critical section: SIGINT/SIGTERM arriving inside it are recorded in the yielded list instead of acted on.

    Signals that arrived before it are acted on at entry, as usual (``signal.signal`` runs pending handlers before
    it replaces them), and those arriving up to the exit are recorded (likewise at the restore). Only the main
    thread can handle signals; elsewhere this is a no-op."""
    arrived: list[int] = []
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        yield arrived
        return
    try:
        for signum in INTERRUPTS:
            previous[signum] = signal.signal(signum, lambda received, _frame: arrived.append(received))
        yield arrived
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def redeliver(arrived: list[int]) -> None:
    """Act on the first signal a critical section held (KeyboardInterrupt for SIGINT), now that it is over."""
    if arrived:
        signal.raise_signal(arrived[0])


class StagedFile:
    """A temporary file beside `final`; `commit()` fsyncs and renames it over `final`, `discard()` removes it."""

    def __init__(self, final: str | Path):
        self.final = Path(final)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.final.name}.", suffix=".tmp", dir=self.final.parent)
        os.close(fd)
        self.path = Path(tmp)
        self.sealed = False

    def seal(self) -> None:
        """What `commit()` does before the rename, and what can fail for want of space: call it early to leave
        `commit()` only the rename."""
        _seal(self.path)
        self.sealed = True

    def commit(self) -> Path:
        if not self.sealed:
            self.seal()
        os.replace(self.path, self.final)
        return self.final

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class StagedDir:
    """A temporary directory beside `final` to fill; `commit()` swaps it in for `final` (an earlier `final` is
    removed only once the new one is in place), `discard()` removes it."""

    def __init__(self, final: str | Path):
        self.final = Path(final)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.", suffix=".tmp", dir=self.final.parent))

    def commit(self) -> Path:
        for f in self.path.iterdir():
            _seal(f)
        os.chmod(self.path, 0o777 & ~_umask())  # mkdtemp creates 0700
        with deferred_signals() as arrived:
            self._swap()
        redeliver(arrived)
        return self.final

    def _swap(self) -> None:
        if not self.final.exists():
            os.replace(self.path, self.final)
            return
        old = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.", suffix=".old", dir=self.final.parent))
        os.replace(self.final, old)  # onto the empty placeholder
        try:
            os.replace(self.path, self.final)
        except BaseException:
            os.replace(old, self.final)
            raise
        shutil.rmtree(old)

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces `path` if the block completes, and is removed otherwise."""
    staged = StagedFile(path)
    try:
        yield staged.path
        staged.commit()
    except BaseException:
        staged.discard()
        raise


def write_json_atomic(path: str | Path, obj: Any) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")
