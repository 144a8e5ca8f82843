"""Phone leases: at most one process at a time benchmarks (or sets up) a phone, across processes and CI jobs.

A lease is an exclusive `flock` on ``<data dir>/leases/<adb server>_<serial>.lock``; the kernel drops it when
its holder exits, however it exits (crash, SIGKILL), so a lease is never stale. While held, the file holds a
small JSON record of the holder (pid, host, command, since) that a waiting process shows; it is removed on
release (a file left by a killed holder is simply locked again by the next one). Leases are per host:
processes sharing one data directory (`ELASTICVIT_DEPLOY_HOME`) on one machine exclude each other; processes on
other machines using the same remote adb server do not. Waiting polls (not first come, first served).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from ..paths import user_data_dir, writable_dir
from .adb import AdbServer, FarmError, check_serial, server_name

POLL_S = 0.2
_PLAIN = re.compile(r"[A-Za-z0-9.-]")
_MAX_NAME = 200


class PhoneBusy(FarmError):
    """The phone is leased by another process (and we were told not to wait, or waited long enough)."""

    def __init__(self, message: str, holder: LeaseHolder | None):
        super().__init__(message)
        self.holder = holder


class LeaseCancelled(FarmError):
    """Waiting for a lease was given up because the caller is stopping (Ctrl-C)."""


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a lease, as written in its lock file."""

    pid: int
    host: str
    command: str
    since: float  # epoch seconds

    def describe(self) -> str:
        """``in use by pid 1234 on hostX (elasticvit-deploy measure, since 12:00:01)``."""
        since = time.strftime("%H:%M:%S", time.localtime(self.since))
        return f"in use by pid {self.pid} on {self.host} ({self.command}, since {since})"

    @classmethod
    def parse(cls, text: str) -> LeaseHolder | None:
        """The holder recorded in a lock file; None if it is empty or being rewritten."""
        try:
            d = json.loads(text)
            return cls(int(d["pid"]), _printable(d["host"], 64), _printable(d["command"], 80), float(d["since"]))
        except (ValueError, TypeError, KeyError):
            return None


def _printable(value: object, limit: int) -> str:
    """`value` as one short line of printable text, for messages."""
    return "".join(c if c.isprintable() else " " for c in " ".join(str(value).split()))[:limit]




def _encode(text: str) -> str:
    """`text` as a file name part: letters, digits, '.' and '-' kept, anything else %xx (so distinct inputs
    never share a name)."""
    return "".join(c if _PLAIN.fullmatch(c) else "".join(f"%{b:02x}" for b in c.encode()) for c in text)


def lease_path(server: AdbServer | None, serial: str) -> Path:
    """The lock file of a phone (`server` None: this machine's CPU, `serial` "host")."""
    where = "local" if server is None else server_name(server)
    name = f"{_encode(where)}_{_encode(check_serial(serial))}.lock"
    if len(name) > _MAX_NAME:
        name = hashlib.sha256(name.encode()).hexdigest()[:40] + ".lock"
    return user_data_dir(create=True) / "leases" / name


def default_command() -> str:
    """What this process is, for holder records: the program name and its subcommand."""
    argv = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"] + sys.argv[1:2]
    return " ".join(a for a in argv if a and not a.startswith("-"))[:80]


class PhoneLease:
    """Exclusive use of one phone for the duration of a ``with`` block (or acquire() ... release()).

    With `wait`, a taken lease is waited for: `on_wait` gets ``waiting for NAME: in use by ...`` when the wait
    starts and whenever the holder changes; after `timeout_s` (None: no limit) PhoneBusy is raised, and if `stop`
    is set meanwhile, LeaseCancelled. Without `wait`, PhoneBusy is raised at once."""

    def __init__(self, server: AdbServer | None, serial: str, *, wait: bool = True,
                 on_wait: Callable[[str], None] | None = None, timeout_s: float | None = None,
                 stop: threading.Event | None = None, command: str | None = None, name: str | None = None):
        self.path = lease_path(server, serial)
        self.name = name or serial
        self.wait = wait
        self.on_wait = on_wait
        self.timeout_s = timeout_s
        self.stop = stop
        self.command = command or default_command()
        self._fd: int | None = None

    def acquire(self) -> Self:
        if self._fd is not None:
            raise RuntimeError("lease already held")
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        announced: LeaseHolder | None = None
        first = True
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = LeaseHolder.parse(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
                os.close(fd)
            except BaseException:
                os.close(fd)
                raise
            else:
                if self._is_current(fd):
                    break
                os.close(fd)  # its holder removed this file on release: lock the one now at the path
                continue
            busy = holder.describe() if holder else "in use by another process"
            if not self.wait or (deadline is not None and time.monotonic() >= deadline):
                waited = "" if not self.wait else f"; gave up after waiting {self.timeout_s:g} s"
                raise PhoneBusy(f"{busy}{waited}", holder)
            if self.on_wait and (first or (holder is not None and holder != announced)):
                self.on_wait(f"waiting for {self.name}: {busy}")
                announced, first = holder, False
            if self.stop is not None:
                if self.stop.wait(POLL_S):
                    raise LeaseCancelled(f"{self.name}: stopped while waiting for the phone")
            else:
                time.sleep(POLL_S)
        record = LeaseHolder(os.getpid(), socket.gethostname(), self.command, time.time())
        os.ftruncate(fd, 0)  # a killed holder's record may still be there
        os.pwrite(fd, json.dumps(asdict(record)).encode(), 0)
        self._fd = fd
        return self

    def _open(self) -> int:
        """The lock file, created (with its directory) if missing."""
        for _ in range(100):  # a releasing holder may remove the emptied directory between mkdir and open
            try:
                writable_dir(self.path.parent)
                return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:
                continue
            except OSError as e:
                raise FarmError(f"{self.path}: cannot open the lease file ({e.strerror or e.__class__.__name__})") \
                    from None
        raise FarmError(f"{self.path}: cannot open the lease file (its directory keeps vanishing)")

    def _is_current(self, fd: int) -> bool:
        """Whether the locked file is still the one at the path (not removed by the holder before us)."""
        try:
            at_path = os.stat(self.path)
        except FileNotFoundError:
            return False
        locked = os.fstat(fd)
        return (at_path.st_dev, at_path.st_ino) == (locked.st_dev, locked.st_ino)

    def release(self) -> None:
        """Give the phone back (idempotent): the lock file is removed while still locked (a process that opened
        it meanwhile sees that and opens the new one), then the lock dropped; an emptied lease directory goes too."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with suppress(OSError):
            os.unlink(self.path)
        os.close(fd)  # drops the flock
        with suppress(OSError):
            self.path.parent.rmdir()

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

