"""Device paths <-> sandbox paths: the simulator's "mounts".

A phone's sandbox directory stands in for its root file system. Sync requests map any absolute device path into
it. Shell commands are real host commands, so their text is mapped instead: every occurrence of a mounted prefix
(/data/local/tmp, /sdcard, /sys) that starts a path becomes the sandbox's directory, and the sandbox prefix is
mapped back to device paths in the output. This is a textual convenience for simulation, not an isolation
mechanism.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

MOUNTS = ("/data/local/tmp", "/sdcard", "/sys")
_MOUNT_RE = re.compile(r"(?<![\w.\-/])(" + "|".join(re.escape(m) for m in MOUNTS) + r")(?![\w.\-])")
_PLAIN_PATH = re.compile(r"/[\w.+/-]*", re.ASCII)


def check_sandbox(sandbox: Path) -> None:
    """Sandbox paths are pasted into shell command text, so they must be absolute and need no quoting."""
    if not _PLAIN_PATH.fullmatch(str(sandbox)):
        raise ValueError(f"sandbox path {str(sandbox)!r} must be absolute and contain only letters, digits and "
                         "._+-/ (it is pasted into shell commands)")


def host_path(sandbox: Path, device_path: str) -> Path:
    """The sandbox file standing for an absolute device path ('..' cannot climb out of the sandbox)."""
    if not device_path.startswith("/"):
        raise ValueError(f"not an absolute device path: {device_path!r}")
    return sandbox / posixpath.normpath(device_path).lstrip("/")


def map_command(sandbox: Path, command: str) -> str:
    """Rewrite the mounted device paths in a shell command's text to sandbox paths."""
    return _MOUNT_RE.sub(lambda m: f"{sandbox}{m.group(1)}", command)


class OutputUnmapper:
    """Streams output, rewriting sandbox paths back to device paths ('<sandbox>/x' -> '/x', '<sandbox>' -> '/').

    A chunk that ends with a possible start of the sandbox path is held back until the next chunk or flush()."""

    def __init__(self, sandbox: Path) -> None:
        self._needle = os.fsencode(sandbox)
        self._pattern = re.compile(re.escape(self._needle) + b"/?")
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        buf = self._pending + data
        keep = next((k for k in range(min(len(buf), len(self._needle)), 0, -1)
                     if self._needle.startswith(buf[-k:])), 0)
        self._pending = buf[len(buf) - keep:]
        return self._pattern.sub(b"/", buf[:len(buf) - keep])

    def flush(self) -> bytes:
        out, self._pending = self._pattern.sub(b"/", self._pending), b""
        return out
