"""Labels: the name a batch of measurements is stored under (`measure --label`), so reports can follow a model's
latency across labels (commits, releases, nightly runs).

A label is 1 to `MAX_LABEL` printable characters. Without one, `measure` labels a batch with
``git describe --always --dirty`` when it runs inside a git work tree, else with the UTC time
(``20261201T224000Z``).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from ..errors import BadInput, shorten

__all__ = ["GIT_TIMEOUT_S", "MAX_LABEL", "BadLabel", "check_label", "default_label", "git_label", "utc_label"]

MAX_LABEL = 100
GIT_TIMEOUT_S = 10.0


class BadLabel(BadInput):
    """A label that is empty, too long, blank or holds control characters."""


def check_label(label: str) -> str:
    """`label` if it is 1-`MAX_LABEL` printable characters, not all blank; BadLabel saying why otherwise. Python
    callers of the store (`ResultsStore.tag`, `measure_batch(label=...)`) reach it with whatever they hold, so a
    label that is not a str is refused here too."""
    if not isinstance(label, str):
        raise BadLabel(f"a label must be a string, got {type(label).__name__}")
    if not label:
        raise BadLabel(f"a label must be 1 to {MAX_LABEL} printable characters, got an empty one")
    if len(label) > MAX_LABEL:
        raise BadLabel(f"a label must be at most {MAX_LABEL} characters, got {len(label)} ({shorten(label, 30)})")
    if not label.isprintable():
        raise BadLabel(f"a label must be printable characters only (no newlines or control characters), got "
                       f"{shorten(label, 40)}")
    if not label.strip():
        raise BadLabel("a label must not be blank")
    return label


def _git(cwd: Path, *args: str) -> str | None:
    """What `git ARGS` printed in `cwd` (stripped), or None when git is missing, fails or takes too long."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_label(cwd: Path | None = None) -> str | None:
    """``git describe --always --dirty`` of the work tree holding `cwd` (default: the current directory), or None
    when it is not inside a git work tree, git is missing or fails (no commit yet), or what it printed is not a
    valid label."""
    where = Path.cwd() if cwd is None else Path(cwd)
    if _git(where, "rev-parse", "--is-inside-work-tree") != "true":
        return None
    described = _git(where, "describe", "--always", "--dirty")
    try:
        return check_label(described) if described else None
    except BadLabel:
        return None


def utc_label(now: float | None = None) -> str:
    """The UTC time `now` (default: the current time) as a label, e.g. ``20261201T224000Z``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))


def default_label(cwd: Path | None = None, now: float | None = None) -> str:
    """The label of a batch given none: `git_label` of `cwd`, else `utc_label` of `now`."""
    return git_label(cwd) or utc_label(now)
