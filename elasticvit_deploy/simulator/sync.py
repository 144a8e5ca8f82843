"""The sync service of a simulated phone (what `adb push/pull` and adbutils' Sync use), on the sandbox.

Requests are a 4-byte id and a little-endian uint32 length: STAT, LIST, SEND (then DATA chunks and DONE with the
mtime; a symlink's SEND carries its target), RECV and QUIT (protocol v1; the v2 variants are not advertised). Like
an unrooted phone, files and links can only be made below /data/local/tmp and /sdcard. Every path is resolved
inside the phone's tree (paths.locate): a symlink on the phone never leads to the host's files, and one that leads
out of the writable areas cannot be written through.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import struct
from pathlib import Path
from typing import BinaryIO

from .paths import Location, locate, within
from .phone import SimPhone
from .wire import Wire

SYNC_DATA_MAX = 64 * 1024
MAX_PATH = 1024
WRITABLE = ("/data/local/tmp", "/sdcard")
_NUMBER = re.compile(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


class _SyncError(Exception):
    """Answered with FAIL; the session ends like on a phone."""


def serve(wire: Wire, phone: SimPhone) -> None:
    """Answer sync requests until QUIT, an error or the client hanging up."""
    handlers = {b"STAT": _stat, b"LIST": _list, b"SEND": _send, b"RECV": _recv}
    while True:
        request, length = wire.recv_exact(4), wire.recv_u32()
        if request == b"QUIT":
            return
        try:
            if request not in handlers:
                raise _SyncError(f"unknown sync request {request!r}")
            if length > MAX_PATH:
                raise _SyncError("path too long")
            handlers[request](wire, phone.sandbox, wire.recv_exact(length).decode("utf-8", "surrogateescape"))
        except _SyncError as e:
            message = str(e).encode("utf-8")
            wire.send(b"FAIL" + struct.pack("<I", len(message)) + message)
            return


def _stat(wire: Wire, sandbox: Path, path: str) -> None:
    """lstat(path) as adbd does: a trailing slash follows a final symlink and needs a directory (clients test
    "link/" to tell a link to a directory from a link to a file)."""
    trailing = path.endswith("/") and path.strip("/") != ""
    try:
        with locate(sandbox, path, follow_last=trailing) as loc:
            st = os.stat(loc.name, dir_fd=loc.dir_fd, follow_symlinks=False)
        if trailing and not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError()
        fields = (st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
    except (OSError, ValueError):
        fields = (0, 0, 0)
    wire.send(b"STAT" + struct.pack("<III", *fields))


def _list(wire: Wire, sandbox: Path, path: str) -> None:
    entries: list[tuple[bytes, os.stat_result]] = []
    try:
        with locate(sandbox, path) as loc:
            fd = loc.open(os.O_RDONLY | os.O_DIRECTORY)
            try:
                for name in sorted(os.listdir(fd)):
                    try:
                        entries.append((os.fsencode(name), os.stat(name, dir_fd=fd, follow_symlinks=False)))
                    except OSError:
                        continue
            finally:
                os.close(fd)
    except (OSError, ValueError):
        pass
    for raw_name, st in entries:
        wire.send(b"DENT" + struct.pack("<IIII", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(raw_name))
                  + raw_name)
    wire.send(b"DONE" + bytes(16))


def _send(wire: Wire, sandbox: Path, spec: str) -> None:
    """SEND "path,mode": a symlink when the mode says so, else a regular file (whatever other type bits it has, as
    adbd does), its permissions with the owner's bits copied to group and other (send_impl)."""
    path, comma, mode_text = spec.rpartition(",")
    if not comma:
        raise _SyncError("missing , in ID_SEND_V1")
    mode = _strtoul(mode_text)
    if mode is None:
        raise _SyncError("bad mode")
    if stat.S_ISLNK(mode):
        _send_link(wire, sandbox, path)
        return
    permissions = mode & 0o777
    permissions |= (permissions >> 3) & 0o070
    permissions |= (permissions >> 3) & 0o007
    _send_file(wire, sandbox, path, permissions)


def _strtoul(text: str) -> int | None:
    """The mode as adbd reads it (strtoul with base 0, as a 32-bit mode_t); None when it overflows."""
    number = _NUMBER.match(text)
    if number is None:
        return 0
    sign, digits = number.groups()
    base = 16 if digits[:2].lower() == "0x" else 8 if digits.startswith("0") else 10
    value = int(digits, base)
    if value >= 1 << 64:
        return None
    return ((-value if sign == "-" else value) % (1 << 64)) & 0xFFFFFFFF


def _writable(sandbox: Path, path: str, failure: str, on_directory: str) -> Location:
    """The location to create `path` at, inside a writable area of the phone; raises _SyncError("failure: reason"),
    with `on_directory` as the reason when `path` is a directory."""
    try:
        loc = locate(sandbox, path, follow_last=False, make_dirs_below=WRITABLE)
    except ValueError:
        raise _SyncError(f"{failure}: Permission denied") from None  # adbd's cwd is /, read-only
    except OSError as e:
        raise _SyncError(f"{failure}: {e.strerror}") from None
    if loc.name == ".":
        loc.close()
        raise _SyncError(f"{failure}: {on_directory}")
    if not within(loc.device_path, WRITABLE):
        loc.close()
        raise _SyncError(f"{failure}: Permission denied")
    return loc


def _send_file(wire: Wire, sandbox: Path, path: str, permissions: int) -> None:
    error, loc, tmp = None, None, f".evd-push.{secrets.token_hex(6)}.tmp"
    try:
        loc = _writable(sandbox, path, "couldn't create file", "Is a directory")
    except _SyncError as e:
        error = str(e)
    try:
        out = open(os.devnull, "wb") if loc is None else os.fdopen(
            os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                    dir_fd=loc.dir_fd), "wb")
        with out:
            mtime = _receive_data(wire, out)  # always read up to DONE, as adbd does, even when failing
            if loc is not None:
                os.fchmod(out.fileno(), permissions)
                out.flush()
                os.utime(out.fileno(), (mtime, mtime))
        if loc is not None:
            os.replace(tmp, loc.name, src_dir_fd=loc.dir_fd, dst_dir_fd=loc.dir_fd)
    except OSError as e:
        error = f"couldn't write file: {e.strerror}"
    finally:
        if loc is not None:
            try:
                os.unlink(tmp, dir_fd=loc.dir_fd)
            except FileNotFoundError:
                pass
            loc.close()
    if error is not None:
        raise _SyncError(error)
    wire.send(b"OKAY" + bytes(4))


def _send_link(wire: Wire, sandbox: Path, path: str) -> None:
    """A symlink SEND: one DATA with the target (NUL-terminated), then DONE with the mtime (handle_send_link). The
    link is made inside the phone's tree; its target is only text, resolved inside the tree when followed."""
    request, length = wire.recv_exact(4), wire.recv_u32()
    if request != b"DATA":
        raise _SyncError("invalid data message: expected ID_DATA")
    if length > SYNC_DATA_MAX:
        raise _SyncError("oversize data message")
    target = wire.recv_exact(length).partition(b"\0")[0]
    with _writable(sandbox, path, "symlink failed", "File exists") as loc:
        try:
            current = os.readlink(loc.name, dir_fd=loc.dir_fd)
        except OSError:
            current = None
        if current != os.fsdecode(target):
            try:
                os.unlink(loc.name, dir_fd=loc.dir_fd)
            except OSError:
                pass
            try:
                os.symlink(target, loc.name, dir_fd=loc.dir_fd)
            except OSError as e:
                raise _SyncError(f"symlink failed: {e.strerror}") from None
        request, mtime = wire.recv_exact(4), wire.recv_u32()
        if request != b"DONE":
            raise _SyncError("invalid data message: expected ID_DONE")
        os.utime(loc.name, (mtime, mtime), dir_fd=loc.dir_fd, follow_symlinks=False)
    wire.send(b"OKAY" + bytes(4))


def _receive_data(wire: Wire, out: BinaryIO) -> int:
    """Copy DATA chunks to `out` up to DONE; returns DONE's mtime."""
    while True:
        request, length = wire.recv_exact(4), wire.recv_u32()
        if request == b"DONE":
            return length
        if request != b"DATA" or length > SYNC_DATA_MAX:
            raise _SyncError("invalid data message")
        out.write(wire.recv_exact(length))


def _recv(wire: Wire, sandbox: Path, path: str) -> None:
    try:
        with locate(sandbox, path) as loc:
            fd = loc.open(os.O_RDONLY)
    except ValueError:
        raise _SyncError("open failed: not an absolute path") from None
    except OSError as e:
        raise _SyncError(f"open failed: {e.strerror}") from None
    with open(fd, "rb") as f:
        while chunk := f.read(SYNC_DATA_MAX):
            wire.send(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
    wire.send(b"DONE" + bytes(4))
