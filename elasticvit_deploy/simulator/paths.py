"""Device paths resolved inside a phone's tree, as the phone itself would resolve them.

The simulator's own code (the sync service, the simulated benchmark_model) reaches into a phone's files from the
host, where a symlink the phone's user made (``/data/local/tmp/x -> /etc/shadow``) would point at the host's
files. `locate` walks a device path one component at a time on directory file descriptors: symlinks are followed
inside the phone's tree (absolute targets restart at the phone's root, ``..`` stops there), and each step opens
with O_NOFOLLOW, so a link swapped in mid-walk fails instead of leading out.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

MAX_LINKS = 40  # like the kernel's limit on symlinks followed in one lookup
_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class Location:
    """The directory holding a path's last component (an open fd and its resolved device path) and its name.
    `name` is "." when the path names a directory itself. Close it (or use it as a context manager)."""

    dir_fd: int
    device_dir: str
    name: str
    _fds: list[int] = field(repr=False, default_factory=list)

    @property
    def device_path(self) -> str:
        """The resolved device path of the located entry."""
        if self.name == ".":
            return self.device_dir
        return f"{self.device_dir.rstrip('/')}/{self.name}"

    def open(self, flags: int, mode: int = 0o644) -> int:
        """os.open of the entry itself; never follows a symlink there."""
        return os.open(self.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.dir_fd)

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def locate(root: Path, device_path: str, *, follow_last: bool = True, make_dirs_below: tuple[str, ...] = ()
           ) -> Location:
    """Resolve an absolute `device_path` inside the tree `root` (see the module docstring). `follow_last`: resolve
    a symlink in the last component too; `make_dirs_below`: create missing directories on the way (mode 0755)
    where they lie below one of these device paths.
    Raises ValueError for a relative path and OSError (ENOENT, ENOTDIR, ELOOP, ...) as a lookup would."""
    if not device_path.startswith("/"):
        raise ValueError(f"not an absolute device path: {device_path[:80]!r}")
    fds = [os.open(root, _DIR)]
    names: list[str] = []  # resolved components from the root to the directory fds[-1]
    pending = deque(c for c in device_path.split("/") if c)
    links = 0
    try:
        while pending:
            name = pending.popleft()
            if name == ".":
                continue
            if name == "..":
                if names:
                    os.close(fds.pop())
                    names.pop()
                continue
            last = not pending
            try:
                st = os.stat(name, dir_fd=fds[-1], follow_symlinks=False)
            except FileNotFoundError:
                if last:
                    pending.appendleft(name)
                    break
                if not within("/" + "/".join([*names, name]), make_dirs_below):
                    raise
                os.mkdir(name, 0o755, dir_fd=fds[-1])
                st = os.stat(name, dir_fd=fds[-1], follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode) and (follow_last or not last):
                links += 1
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), device_path)
                target = os.readlink(name, dir_fd=fds[-1])
                if target.startswith("/"):
                    for fd in fds[1:]:
                        os.close(fd)
                    del fds[1:], names[:]
                pending.extendleft(reversed([c for c in target.split("/") if c]))
                continue
            if last and not stat.S_ISDIR(st.st_mode):
                pending.appendleft(name)
                break
            fds.append(os.open(name, _DIR, dir_fd=fds[-1]))
            names.append(name)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    name = pending[0] if pending else "."
    return Location(fds[-1], "/" + "/".join(names), name, fds)


def within(device_path: str, roots: tuple[str, ...]) -> bool:
    """Whether a resolved device path lies strictly below one of `roots`."""
    return any(device_path.startswith(root.rstrip("/") + "/") for root in roots)
