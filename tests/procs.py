"""Test helpers for the simulator tests: polling for a condition, and finding host processes by command line."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def wait_until(condition: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll `condition` until it is true or `timeout` seconds pass; its last value, as a bool."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def sleepers(arg: str) -> list[int]:
    """Host PIDs of live `sleep ARG` processes."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            words = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().split(")")[1].split()[0]
        except (OSError, IndexError):
            continue
        if words[:2] == [b"sleep", arg.encode()] and state != "Z":
            found.append(int(proc.name))
    return found


def adb_servers() -> set[int]:
    """Pids of running real adb servers (`adb ... fork-server server ...`)."""
    pids = set()
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if proc.name.isdigit() and argv and argv[0].endswith(b"adb") and b"fork-server" in argv:
            pids.add(int(proc.name))
    return pids
