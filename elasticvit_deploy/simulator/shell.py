"""Shell commands of a simulated phone: Android's shell (mksh) confined to the phone's tree (sandbox.py).

The command runs as ``/system/bin/sh -c COMMAND``, as adbd runs it, in its own session; an empty command starts a
login shell (argv[0] "-/system/bin/sh") that reads its commands from stdin. What the client sends
becomes the command's stdin: with shell protocol v2 as stdin packets (id 0), with a close-stdin packet (id 4)
closing it and window-size packets (id 5) ignored (packages/modules/adb daemon/shell_service.cpp PassInput);
without it (shell v1, exec:) as raw bytes, and stdin then never ends while the connection lasts, as on adbd's
pseudo-terminal. Output goes back with shell protocol v2 (stdout, stderr and exit packets) or v1 (raw merged
output, then close).

If the client goes away before the command ends (a half-close counts: the real adb server turns a client's end of
file into closing the stream, sockets.cpp), nothing more is sent and, once the command took the input already sent
(at most INPUT_DRAIN_S: adbd too writes what it received before closing), the shell gets SIGHUP as adbd sends it
(PassDataStreams: kill(pid, SIGHUP) to the process it started, not to its group) and its output pipes are closed.
A command still running HANGUP_GRACE_S later is killed with everything it started: a phone would let it run on,
the simulator leaves no processes behind.
"""

from __future__ import annotations

import fcntl
import os
import random
import select
import selectors
import signal
import socket
import string
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path
from typing import BinaryIO

from .phone import SimPhone
from .processes import kill_group
from .sandbox import shell_command
from .wire import Closed, Wire

ID_STDIN, ID_STDOUT, ID_STDERR, ID_EXIT, ID_CLOSE_STDIN = 0, 1, 2, 3, 4
CHUNK = 1 << 16
HANGUP_GRACE_S = 2.0  # host seconds a hung-up command may take to end before it is killed
INPUT_DRAIN_S = 1.0  # host seconds a command may take to read the input it was sent before the client left
CLIENT_CLOSE_WAIT_S = 5.0  # after the exit packet, how long the client may take to close its end
SANDBOX_SHELL_PID = 2  # bwrap's init is pid 1 of the sandbox's PID namespace, the command it starts pid 2
LOGIN_SHELL = "exec -a -/system/bin/sh /system/bin/sh"  # what adbd execs for an empty command
_GARBAGE = string.ascii_letters + string.digits + string.punctuation + " "


class _Dropped(Exception):
    """The 'drop' fault fired: hang up in the middle of the output."""


class _Gone(Exception):
    """The client went away: send nothing more."""


def run(wire: Wire, phone: SimPhone, command: str, v2: bool) -> None:
    """Run one command, feed it the client's input and stream its output; returns when the connection is done."""
    assert phone.benchmark is not None, "the phone is not started"
    argv = shell_command(phone.userland, phone.sandbox, phone.benchmark.socket_dir, command or LOGIN_SHELL)
    proc = subprocess.Popen(argv, bufsize=0, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE if v2 else subprocess.STDOUT, start_new_session=True)
    stdin, proc.stdin = proc.stdin, None  # the input thread owns it
    session = _Session(proc)
    output = _Output(wire, phone, v2, session)
    graceful = False
    with proc, phone.processes.tracking(proc):
        reader = threading.Thread(target=_forward_input, args=(wire, stdin, v2, session), daemon=True)
        reader.start()
        try:
            code = _pump(proc, output)
            session.end()
            output.finish(code)
            graceful = True
        except (_Dropped, _Gone, OSError):
            session.hang_up()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()  # as adbd closes them: a command writing on gets SIGPIPE
        finally:
            _hang_up(wire.sock, graceful)
            proc.wait()
            session.end()
    reader.join(timeout=CLIENT_CLOSE_WAIT_S)
    if reader.is_alive():  # the client keeps its end open: stop listening to it
        _hang_up(wire.sock, graceful=False)
        reader.join()


def _pump(proc: subprocess.Popen[bytes], output: _Output) -> int:
    """Forward the command's output until its pipes close; returns the exit code as a shell reports it."""
    with selectors.DefaultSelector() as selector:
        assert proc.stdout is not None
        selector.register(proc.stdout, selectors.EVENT_READ, ID_STDOUT)
        if proc.stderr is not None:
            selector.register(proc.stderr, selectors.EVENT_READ, ID_STDERR)
        while selector.get_map():
            for key, _ in selector.select():
                data = os.read(key.fd, CHUNK)
                if data:
                    output.write(key.data, data)
                else:
                    selector.unregister(key.fileobj)
    code = proc.wait()
    return code if code >= 0 else 128 - code


class _Session:
    """The command's life as the client sees it: ended (it exited) or hung up (the client left first)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._lock = threading.Lock()
        self.hung_up = False
        self._ended = False
        self._timer: threading.Timer | None = None

    @property
    def ended(self) -> bool:
        with self._lock:
            return self._ended

    def end(self) -> None:
        with self._lock:
            self._ended = True
            if self._timer is not None:
                self._timer.cancel()

    def hang_up(self) -> None:
        """SIGHUP to the command's shell, then kill what is left after HANGUP_GRACE_S."""
        with self._lock:
            if self.hung_up or self._ended:
                return
            self.hung_up = True
            self._timer = threading.Timer(HANGUP_GRACE_S, self._kill_rest)
            self._timer.daemon = True
            self._timer.start()
        pid = _sandboxed_shell(self.proc.pid)
        try:
            if pid is None:
                raise ProcessLookupError  # not started yet or gone already
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            kill_group(self.proc)

    def _kill_rest(self) -> None:
        with self._lock:
            if self._ended:
                return
        kill_group(self.proc)


def _sandboxed_shell(bwrap_pid: int) -> int | None:
    """Host pid of the command's shell: pid 2 of the sandbox, a child of bwrap's init (bwrap's own child)."""
    for init in _children(bwrap_pid):
        for child in _children(init):
            try:
                status = Path(f"/proc/{child}/status").read_text()
            except OSError:
                continue
            ns_pids = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
            if ns_pids and ns_pids[-1] == str(SANDBOX_SHELL_PID):
                return child
    return None


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def _forward_input(wire: Wire, stdin: BinaryIO | None, v2: bool, session: _Session) -> None:
    """Feed what the client sends to the command's stdin until the client goes away, then hang the command up
    (unless it ended already)."""
    assert stdin is not None
    sink = _Stdin(stdin, wire.sock)
    try:
        if v2:
            while True:
                packet_id, length = struct.unpack("<BI", wire.recv_exact(5))
                while length:
                    data = wire.recv_exact(min(length, CHUNK))
                    length -= len(data)
                    if packet_id == ID_STDIN:
                        sink.write(data)
                if packet_id == ID_CLOSE_STDIN:
                    sink.close()
        else:
            while data := wire.sock.recv(CHUNK):
                sink.write(data)
    except (Closed, OSError):
        pass
    if not session.ended:
        sink.drain(session)
    session.hang_up()  # before stdin closes: the command sees no end of its input, as on adbd's pty
    sink.close()


class _Stdin:
    """The command's stdin. A write waits while the command does not read, but once the client has left only for
    INPUT_DRAIN_S: adbd writes out what it received before it closes (sockets.cpp local_socket_close); writes stop
    once the command closed its end."""

    def __init__(self, pipe: BinaryIO, client: socket.socket) -> None:
        self._pipe: BinaryIO | None = pipe
        os.set_blocking(pipe.fileno(), False)
        self._client = client
        self._deadline: float | None = None  # set when the client is seen gone

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._pipe is not None:
            poller = select.poll()
            poller.register(self._pipe.fileno(), select.POLLOUT)
            if self._deadline is None:
                poller.register(self._client.fileno(), select.POLLRDHUP)
            wait = None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
            events = dict(poller.poll(None if wait is None else wait * 1000))
            if events.get(self._client.fileno(), 0) & (select.POLLRDHUP | select.POLLHUP | select.POLLERR):
                self._deadline = time.monotonic() + INPUT_DRAIN_S
            if self._pipe.fileno() in events:
                try:
                    view = view[os.write(self._pipe.fileno(), view):]
                except BlockingIOError:
                    pass
                except OSError:  # the command closed its stdin (or ended): drop what follows
                    self.close()
            elif self._deadline is not None and time.monotonic() >= self._deadline:
                raise Closed()  # the client left and the command does not read: give up its input

    def drain(self, session: _Session) -> None:
        """Wait (up to INPUT_DRAIN_S) for the command to read what was written, unless it ends."""
        deadline = time.monotonic() + INPUT_DRAIN_S
        while self._pipe is not None and not session.ended and time.monotonic() < deadline:
            try:
                pending = struct.unpack("i", fcntl.ioctl(self._pipe.fileno(), termios.FIONREAD, b"\0" * 4))[0]
            except OSError:
                return
            if not pending:
                return
            time.sleep(0.01)

    def close(self) -> None:
        if self._pipe is not None:
            try:
                self._pipe.close()
            except OSError:
                pass
            self._pipe = None


def _hang_up(sock: socket.socket, graceful: bool) -> None:
    try:
        sock.shutdown(socket.SHUT_WR if graceful else socket.SHUT_RDWR)
    except OSError:
        pass


class _Output:
    """Packs output for the client and applies the garble and drop faults."""

    def __init__(self, wire: Wire, phone: SimPhone, v2: bool, session: _Session) -> None:
        self.wire = wire
        self.v2 = v2
        self.session = session
        self.garble = phone.take_fault("garble")
        self.drop = phone.take_fault("drop")

    def write(self, stream: int, data: bytes) -> None:
        self._send(stream, data)

    def finish(self, code: int) -> None:
        if self.drop:
            raise _Dropped()
        if self.session.hung_up:
            raise _Gone()
        if self.v2:
            self.wire.send(_packet(ID_EXIT, bytes([code & 0xFF])))

    def _send(self, stream: int, data: bytes) -> None:
        if not data:
            return
        if self.session.hung_up:
            raise _Gone()
        if stream == ID_STDOUT and self.garble:
            data = "".join(random.choices(_GARBAGE, k=len(data))).encode("ascii")
        if stream == ID_STDOUT and self.drop:
            data = data[:max(1, len(data) // 2)]
        self.wire.send(_packet(stream, data) if self.v2 else data)
        if stream == ID_STDOUT and self.drop:
            raise _Dropped()


def _packet(packet_id: int, data: bytes) -> bytes:
    return struct.pack("<BI", packet_id, len(data)) + data
