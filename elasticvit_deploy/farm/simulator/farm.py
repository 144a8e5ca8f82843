"""SimulatedFarm: simulated Android phones behind an adb server endpoint on 127.0.0.1.

A simulator for trying the workflow and for CI: adbutils (AdbClient(host="127.0.0.1", port=farm.port)) and the
`adb -P <port>` command line talk to it as to a real adb server, while each phone is a sandbox directory on the
host whose shell commands run confined to it with Android's shell and toybox (sandbox.py), and benchmark_model is
simulated (see benchmark_model.py). Without a working sandbox the farm does not start (SandboxUnavailable).
"""

from __future__ import annotations

import socket
import socketserver
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from .phone import SimPhone
from .profiles import PROFILES, PhoneProfile
from .sandbox import find_userland
from .protocol import serve
from .wire import Closed, Wire


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, port: int, phones: Sequence[SimPhone]) -> None:
        self.phones = phones
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def hang_up_all(self) -> None:
        with self.lock:
            connections = list(self.connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(socketserver.BaseRequestHandler):
    server: _Server
    request: socket.socket

    def handle(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.lock:
            self.server.connections.add(self.request)
        try:
            serve(Wire(self.request), self.server.phones)
        except (Closed, OSError):
            pass
        finally:
            with self.server.lock:
                self.server.connections.discard(self.request)


class SimulatedFarm:
    """Phones of the given profiles (names from PROFILES, or PhoneProfile objects) behind one adb server.

    port=0 picks a free port; root holds the phones' sandboxes (default: a temporary directory removed on stop);
    time_scale multiplies every simulated duration (sleeps, cooling), so tests can run phones faster than real.
    host_timings is the directory of the models' host timings that simulated latencies derive from (default:
    inside root); farms given the same directory simulate a model at the same speed, which comparisons need."""

    def __init__(self, profiles: Sequence[str | PhoneProfile], port: int = 0, root: str | Path | None = None,
                 time_scale: float = 1.0, host_timings: str | Path | None = None) -> None:
        self._host_timings = Path(host_timings) if host_timings is not None else None
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self._profiles = [_profile(p) for p in profiles]
        self._port = port
        self._root = Path(root) if root is not None else None
        self.time_scale = time_scale
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._phones: list[SimPhone] = []

    def start(self) -> Self:
        """Create the phones and start serving."""
        if self._server is not None:
            raise RuntimeError("the farm is already running")
        userland = find_userland()
        if self._root is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="evd-simfarm-", ignore_cleanup_errors=True)
        root = Path(self._tempdir.name if self._tempdir else self._root or ".").resolve()
        counts: Counter[str] = Counter()
        try:
            for transport_id, profile in enumerate(self._profiles, start=1):
                counts[profile.name] += 1
                serial = f"sim-{profile.name}-{counts[profile.name]}"
                state_dir = root / ".state" / serial
                phone = SimPhone(serial, profile, transport_id, root / serial, state_dir, self.time_scale,
                                 userland, self._host_timings)
                self._phones.append(phone)
                phone.start()
            self._server = _Server(self._port, self._phones)
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="simfarm-adb-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, hang up every connection, kill running commands, remove a temporary root."""
        if self._server is not None:
            self._server.shutdown()
            self._server.hang_up_all()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for phone in self._phones:
            phone.stop()
        self._phones = []
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port of the adb server endpoint (on 127.0.0.1)."""
        if self._server is None:
            raise RuntimeError("the farm is not running")
        return int(self._server.server_address[1])

    @property
    def serials(self) -> list[str]:
        return [p.serial for p in self._phones]

    def phone(self, serial: str) -> SimPhone:
        for p in self._phones:
            if p.serial == serial:
                return p
        raise KeyError(f"no simulated phone {serial!r}; the farm has {', '.join(self.serials) or 'none'}")


def _profile(profile: str | PhoneProfile) -> PhoneProfile:
    if isinstance(profile, PhoneProfile):
        return profile
    if profile not in PROFILES:
        raise ValueError(f"unknown phone profile {profile!r}; known: {', '.join(PROFILES)}")
    return PROFILES[profile]
