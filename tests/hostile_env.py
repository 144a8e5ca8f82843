"""Real hostile environments for CLI tests: a full disk and a read-only directory, made with a private mount
namespace (``unshare -m``, as root) around one command, so the code under test meets a real ENOSPC or EROFS.

Root ignores permission bits, so ``chmod 555`` cannot make a directory read-only for the tests; a read-only bind
mount can. Tests that need these skip where mount namespaces are not available.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "elasticvit_deploy"]


def _namespaces_work() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


NAMESPACES = _namespaces_work()
needs_namespaces = pytest.mark.skipif(not NAMESPACES, reason="needs root and mount namespaces (unshare -m)")


def run_with_mounts(args: Sequence[str], *, full: Path | None = None, full_kb: int = 64,
                    read_only: Sequence[Path] = (), env: dict[str, str] | None = None, timeout: float = 300,
                    ) -> subprocess.CompletedProcess[str]:
    """Run `args` in a private mount namespace where `full` is a tmpfs of `full_kb` KiB (existing files copied in
    first, so the command sees them) and every path in `read_only` is a read-only bind mount of itself."""
    steps = []
    if full is not None:
        full.mkdir(parents=True, exist_ok=True)
        q = shlex.quote(str(full))
        steps += [f"cp -a {q} /tmp/.evd-full-seed.$$", f"mount -t tmpfs -o size={full_kb}k tmpfs {q}",
                  f"cp -a /tmp/.evd-full-seed.$$/. {q}/ 2>/dev/null; rm -rf /tmp/.evd-full-seed.$$"]
    for path in read_only:
        q = shlex.quote(str(path))
        steps += [f"mount --bind {q} {q}", f"mount -o remount,ro,bind {q}"]
    steps.append("exec " + shlex.join(args))
    return subprocess.run(["unshare", "-m", "sh", "-ec", "; ".join(steps)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)

