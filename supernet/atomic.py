"""Atomic file output: write to a temporary name in the target directory, rename only when complete.

A crash, Ctrl-C or failed verification never leaves a half-written or unverified file at the final path.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class StagedFile:
    """A temporary file beside `final`; `commit()` fsyncs and renames it over `final`, `discard()` removes it."""

    def __init__(self, final: str | Path):
        self.final = Path(final)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.final.name}.", suffix=".tmp", dir=self.final.parent)
        os.close(fd)
        self.path = Path(tmp)

    def commit(self) -> Path:
        with open(self.path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(self.path, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(self.path, self.final)
        return self.final

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


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
