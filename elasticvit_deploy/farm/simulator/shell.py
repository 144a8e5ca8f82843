"""Shell commands of a simulated phone: Android's shell (mksh) confined to the phone's tree (sandbox.py).

The command runs as ``/system/bin/sh -c COMMAND``, as adbd runs it, in its own session, with an empty stdin
(stdin sent by the client is discarded). Output goes back with shell protocol v2 (stdout, stderr and exit packets)
or v1 (raw merged output, then close). The command (with everything it started) is killed when the client goes
away: in v2 as soon as the connection closes, in v1 (where the client may half-close) when sending to it fails.
"""

from __future__ import annotations

import os
import random
import selectors
import socket
import string
import struct
import subprocess
import threading

from .phone import SimPhone
from .processes import kill_group
from .sandbox import shell_command
from .wire import Wire

ID_STDOUT, ID_STDERR, ID_EXIT = 1, 2, 3
CLIENT_CLOSE_WAIT_S = 5.0  # after the exit packet, how long the client may take to close its end
_GARBAGE = string.ascii_letters + string.digits + string.punctuation + " "


class _Dropped(Exception):
    """The 'drop' fault fired: hang up in the middle of the output."""


def run(wire: Wire, phone: SimPhone, command: str, v2: bool) -> None:
    """Run one command and stream its output; returns when the connection is finished."""
    assert phone.benchmark is not None, "the phone is not started"
    argv = shell_command(phone.userland, phone.sandbox, phone.benchmark.socket_dir, command)
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE if v2 else subprocess.STDOUT, start_new_session=True)
    finished = threading.Event()
    watcher = threading.Thread(target=_watch_client, args=(wire, proc, v2, finished), daemon=True)
    output = _Output(wire, phone, v2)
    graceful = False
    with proc, phone.processes.tracking(proc):
        watcher.start()
        try:
            code = _pump(proc, output)
            finished.set()
            output.finish(code)
            graceful = True
        except (_Dropped, OSError):
            kill_group(proc)
        finally:
            finished.set()
            _hang_up(wire.sock, graceful)
            proc.wait()
    watcher.join(timeout=CLIENT_CLOSE_WAIT_S)
    if watcher.is_alive():  # the client keeps its end open: stop listening to it
        _hang_up(wire.sock, graceful=False)
        watcher.join()


def _pump(proc: subprocess.Popen[bytes], output: _Output) -> int:
    """Forward the command's output until its pipes close; returns the exit code as a shell reports it."""
    with selectors.DefaultSelector() as selector:
        assert proc.stdout is not None
        selector.register(proc.stdout, selectors.EVENT_READ, ID_STDOUT)
        if proc.stderr is not None:
            selector.register(proc.stderr, selectors.EVENT_READ, ID_STDERR)
        while selector.get_map():
            for key, _ in selector.select():
                data = os.read(key.fd, 1 << 16)
                if data:
                    output.write(key.data, data)
                else:
                    selector.unregister(key.fileobj)
    code = proc.wait()
    return code if code >= 0 else 128 - code


def _watch_client(wire: Wire, proc: subprocess.Popen[bytes], v2: bool, finished: threading.Event) -> None:
    """Discard what the client sends; kill the command when the client goes away. In v1 an end of file is only a
    half-close (the adb client sends one when its stdin ends), so only an error counts there."""
    try:
        while wire.sock.recv(1 << 16):
            pass
        gone = v2
    except OSError:
        gone = True
    if gone and not finished.is_set():
        kill_group(proc)


def _hang_up(sock: socket.socket, graceful: bool) -> None:
    try:
        sock.shutdown(socket.SHUT_WR if graceful else socket.SHUT_RDWR)
    except OSError:
        pass


class _Output:
    """Packs output for the client and applies the garble and drop faults."""

    def __init__(self, wire: Wire, phone: SimPhone, v2: bool) -> None:
        self.wire = wire
        self.v2 = v2
        self.garble = phone.take_fault("garble")
        self.drop = phone.take_fault("drop")

    def write(self, stream: int, data: bytes) -> None:
        self._send(stream, data)

    def finish(self, code: int) -> None:
        if self.drop:
            raise _Dropped()
        if self.v2:
            self.wire.send(_packet(ID_EXIT, bytes([code & 0xFF])))

    def _send(self, stream: int, data: bytes) -> None:
        if not data:
            return
        if stream == ID_STDOUT and self.garble:
            data = "".join(random.choices(_GARBAGE, k=len(data))).encode("ascii")
        if stream == ID_STDOUT and self.drop:
            data = data[:max(1, len(data) // 2)]
        self.wire.send(_packet(stream, data) if self.v2 else data)
        if stream == ID_STDOUT and self.drop:
            raise _Dropped()


def _packet(packet_id: int, data: bytes) -> bytes:
    return struct.pack("<BI", packet_id, len(data)) + data
