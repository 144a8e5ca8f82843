"""The sync service of a simulated phone (what `adb push/pull` and adbutils' Sync use), on the sandbox.

Requests are an 4-byte id and a little-endian uint32 length: STAT, LIST, SEND (then DATA chunks and DONE with the
mtime), RECV and QUIT (protocol v1; the v2 variants are not advertised). Like an unrooted phone, files can only be
written below /data/local/tmp and /sdcard. Every path is resolved inside the phone's tree (paths.locate): a symlink
on the phone never leads to the host's files, and one that leads out of the writable areas cannot be written through.
"""

from __future__ import annotations

import os
import secrets
import stat
import struct
from pathlib import Path
from typing import BinaryIO

from .paths import locate, within
from .phone import SimPhone
from .wire import Wire

SYNC_DATA_MAX = 64 * 1024
MAX_PATH = 1024
WRITABLE = ("/data/local/tmp", "/sdcard")


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
    try:
        with locate(sandbox, path, follow_last=False) as loc:
            st = os.stat(loc.name, dir_fd=loc.dir_fd, follow_symlinks=False)
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
    for name, st in entries:
        wire.send(b"DENT" + struct.pack("<IIII", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(name))
                  + name)
    wire.send(b"DONE" + bytes(16))


def _send(wire: Wire, sandbox: Path, spec: str) -> None:
    path, _, mode_text = spec.rpartition(",")
    error = _send_error(path, mode_text)
    loc, tmp = None, f".evd-push.{secrets.token_hex(6)}.tmp"
    if error is None:
        try:
            loc = locate(sandbox, path, follow_last=False, make_dirs_below=WRITABLE)
            if loc.name == "." or not within(loc.device_path, WRITABLE):
                error = "couldn't create file: Permission denied"
                loc.close()
                loc = None
        except (OSError, ValueError) as e:
            error = f"couldn't create file: {getattr(e, 'strerror', None) or e}"
    try:
        out = open(os.devnull, "wb") if loc is None else os.fdopen(
            os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                    dir_fd=loc.dir_fd), "wb")
        with out:
            mtime = _receive_data(wire, out)  # always read up to DONE, as adbd does, even when failing
            if loc is not None:
                os.fchmod(out.fileno(), int(mode_text) & 0o777)
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


def _send_error(path: str, mode_text: str) -> str | None:
    """Why a SEND cannot be written, or None."""
    if not mode_text.isdigit():
        return "invalid SEND request: expected PATH,MODE"
    if not stat.S_ISREG(int(mode_text)):
        return "only regular files can be pushed to a simulated phone"
    if not path.startswith("/"):
        return "couldn't create file: Permission denied"
    return None


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
