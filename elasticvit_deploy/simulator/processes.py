"""The host processes a simulated phone runs (its sandboxed shell commands and simulations), to kill on stop."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Processes:
    """A thread-safe set of running processes, each started in its own session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()

    @contextmanager
    def tracking(self, proc: subprocess.Popen[bytes]) -> Iterator[None]:
        """Remember `proc` while the block runs, so kill_all() can kill it."""
        with self._lock:
            self._running.add(proc)
        try:
            yield
        finally:
            with self._lock:
                self._running.discard(proc)

    def kill_all(self) -> None:
        with self._lock:
            running = list(self._running)
        for proc in running:
            kill_group(proc)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill a process started in its own session, with everything it started."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
