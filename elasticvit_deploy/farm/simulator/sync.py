"""The sync service of a simulated phone (what `adb push/pull` and adbutils' Sync use), on the sandbox.

Requests are an 4-byte id and a little-endian uint32 length: STAT, LIST, SEND (then DATA chunks and DONE with the
mtime), RECV and QUIT (protocol v1; the v2 variants are not advertised). Like an unrooted phone, files can only be
written below /data/local/tmp and /sdcard.
"""

from __future__ import annotations

import os
import posixpath
import stat
import struct
import tempfile
from pathlib import Path
from typing import BinaryIO

from .paths import host_path
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
        st = os.lstat(host_path(sandbox, path))
        fields = (st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
    except (OSError, ValueError):
        fields = (0, 0, 0)
    wire.send(b"STAT" + struct.pack("<III", *fields))


def _list(wire: Wire, sandbox: Path, path: str) -> None:
    try:
        entries = sorted(os.scandir(host_path(sandbox, path)), key=lambda e: e.name)
    except (OSError, ValueError):
        entries = []
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        name = os.fsencode(entry.name)
        wire.send(b"DENT" + struct.pack("<IIII", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(name))
                  + name)
    wire.send(b"DONE" + bytes(16))


def _send(wire: Wire, sandbox: Path, spec: str) -> None:
    path, _, mode_text = spec.rpartition(",")
    error = _send_error(path, mode_text)
    target = tmp = None
    if error is None:
        target = host_path(sandbox, path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            os.close(fd)
            tmp = Path(name)
        except OSError as e:
            error = f"couldn't create file: {e.strerror}"
    try:
        with open(tmp or os.devnull, "wb") as out:
            mtime = _receive_data(wire, out)  # always read up to DONE, as adbd does, even when failing
        if tmp is not None and target is not None:
            error = _install(tmp, target, int(mode_text) & 0o777, mtime)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    if error is not None:
        raise _SyncError(error)
    wire.send(b"OKAY" + bytes(4))


def _install(tmp: Path, target: Path, mode: int, mtime: int) -> str | None:
    """Move the received file into place; returns an error message or None."""
    try:
        tmp.chmod(mode)
        os.utime(tmp, (mtime, mtime))
        tmp.replace(target)
    except OSError as e:
        return f"couldn't write file: {e.strerror}"
    return None


def _send_error(path: str, mode_text: str) -> str | None:
    """Why a SEND cannot be written, or None."""
    if not mode_text.isdigit():
        return "invalid SEND request: expected PATH,MODE"
    if not stat.S_ISREG(int(mode_text)):
        return "only regular files can be pushed to a simulated phone"
    device = posixpath.normpath(path) if path.startswith("/") else ""
    if not any(device.startswith(root + "/") for root in WRITABLE):
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
        f = open(host_path(sandbox, path), "rb")  # noqa: SIM115 - the sends below must not look like open errors
    except ValueError:
        raise _SyncError("open failed: not an absolute path") from None
    except OSError as e:
        raise _SyncError(f"open failed: {e.strerror}") from None
    with f:
        while chunk := f.read(SYNC_DATA_MAX):
            wire.send(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
    wire.send(b"DONE" + bytes(4))
