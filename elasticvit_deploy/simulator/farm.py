"""SimulatedFarm: simulated Android phones behind an adb server endpoint on 127.0.0.1.

A simulator for trying the workflow and for CI: adbutils (AdbClient(host="127.0.0.1", port=farm.port)) and the
`adb -P <port>` command line talk to it as to a real adb server, while each phone is a sandbox directory on the
host whose shell commands run confined to it with Android's shell and toybox (sandbox.py), and benchmark_model is
simulated (see benchmark_model.py). Without a working sandbox the farm does not start (SandboxUnavailable).
"""

from __future__ import annotations

import os
import re
import socket
import socketserver
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from .errors import SimulationError
from .forwards import HostForwards
from .phone import SimPhone
from .profiles import PROFILES, PhoneProfile
from .protocol import ServerState, serve
from .quirks import check_quirks
from .sandbox import find_userland
from .transports import Transports
from .twin import twin_table
from .wire import Closed, Wire

_SERIAL = re.compile(r"[A-Za-z0-9\[][A-Za-z0-9._:\[\]-]{0,63}")  # no leading dot: .state is the farm's


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, port: int, phones: Sequence[SimPhone]) -> None:
        forwards = HostForwards()
        self.state = ServerState(Transports(phones, on_detach=forwards.remove_all), forwards)
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

    def server_close(self) -> None:
        """Close the listening socket, the forward listeners and pending reconnections."""
        super().server_close()
        self.state.transports.close()
        self.state.forwards.remove_all()


class _Handler(socketserver.BaseRequestHandler):
    server: _Server
    request: socket.socket

    def handle(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.lock:
            self.server.connections.add(self.request)
        try:
            serve(Wire(self.request), self.server.state)
        except (Closed, OSError):
            pass
        finally:
            with self.server.lock:
                self.server.connections.discard(self.request)


class SimulatedFarm:
    """Phones of the given profiles (names from PROFILES, or PhoneProfile objects) behind one adb server.

    port=0 picks a free port; root holds the phones' sandboxes (default: a temporary directory removed on stop);
    time_scale multiplies every simulated duration (sleeps, cooling), so tests can run phones faster than real.
    host_timings is the directory of the models' host timings that host-scaled latencies derive from, and of
    their twin timings (default: inside root); farms given the same directory simulate a model at the same
    speed, which comparisons need.
    serials names the phones (default sim-<profile>-<n>); a network address ("192.168.1.20:5555") makes a phone
    reached over TCP, as after `adb connect`.
    quirks (names from quirks.QUIRKS) are given to every phone, quirks_by_serial adds more to single phones (by
    serial); benchmark_binary is a host executable the phones run as their benchmark_model instead of the
    simulated one. SimulationError for an unknown profile, quirk or serial, or a benchmark_binary that is not an
    executable file."""

    def __init__(self, profiles: Sequence[str | PhoneProfile], port: int = 0, root: str | Path | None = None,
                 time_scale: float = 1.0, host_timings: str | Path | None = None,
                 serials: Sequence[str] | None = None, quirks: Iterable[str] = (),
                 benchmark_binary: str | Path | None = None,
                 quirks_by_serial: Mapping[str, Iterable[str]] | None = None,
                 tables: str | Path | None = None) -> None:
        self._tables = Path(tables) if tables is not None else None
        self._host_timings = Path(host_timings) if host_timings is not None else None
        if time_scale <= 0:
            raise SimulationError("time_scale must be positive")
        self._profiles = [_profile(p) for p in profiles]
        self._serials = _check_serials(serials, len(self._profiles)) if serials is not None else None
        self._quirks = _phone_quirks(self._serials or _default_serials(self._profiles), quirks, quirks_by_serial)
        self._benchmark_binary = _executable(benchmark_binary) if benchmark_binary is not None else None
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
                default = f"sim-{profile.name}-{counts[profile.name]}"
                serial = self._serials[transport_id - 1] if self._serials else default
                state_dir = root / ".state" / serial
                phone = SimPhone(serial, profile, transport_id, root / serial, state_dir, self.time_scale,
                                 userland, self._host_timings, self._quirks[transport_id - 1],
                                 self._benchmark_binary, twin_table(profile, self._tables))
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

    def unplug(self, serial: str) -> None:
        """Pull the phone's cable (a network phone: take it off the network): it vanishes from `adb devices`, its
        connections are hung up (its running commands get SIGHUP) and its forwards dropped, until plug()."""
        self._transports().unplug(self.phone(serial).serial)

    def plug(self, serial: str) -> None:
        """Plug the phone back in: it is listed again, under a new transport id (as a re-enumerated device)."""
        self._transports().plug(self.phone(serial).serial)

    def _transports(self) -> Transports:
        if self._server is None:
            raise RuntimeError("the farm is not running")
        return self._server.state.transports


def _check_serials(serials: Sequence[str], count: int) -> list[str]:
    """Serials given to a farm: one per phone, distinct, and usable as adb serials and directory names."""
    names = list(serials)
    if len(names) != count:
        raise SimulationError(f"{len(names)} serials for {count} phones")
    for name in names:
        if not _SERIAL.fullmatch(name):
            raise SimulationError(f"bad serial {name[:40]!r}: use letters, digits and . _ - : [ ] (at most 64), "
                             "starting with a letter, digit or [")
    if len(set(names)) != len(names):
        raise SimulationError("serials must differ")
    return names


def _default_serials(profiles: Sequence[PhoneProfile]) -> list[str]:
    """sim-<profile>-<n>, n counting the phones of each profile."""
    counts: Counter[str] = Counter()
    serials = []
    for profile in profiles:
        counts[profile.name] += 1
        serials.append(f"sim-{profile.name}-{counts[profile.name]}")
    return serials


def _phone_quirks(serials: Sequence[str], common: Iterable[str],
                  by_serial: Mapping[str, Iterable[str]] | None) -> list[frozenset[str]]:
    """Each phone's quirks: the common ones and its own (checked: known names, known serials)."""
    shared = check_quirks(common)
    extra = dict(by_serial or {})
    unknown = sorted(set(extra) - set(serials))
    if unknown:
        raise SimulationError(f"quirks_by_serial: no simulated phone {unknown[0][:80]!r}; the farm has "
                         f"{', '.join(serials)}")
    return [check_quirks(shared | check_quirks(extra.get(serial, ()))) for serial in serials]


def _executable(path: str | Path) -> Path:
    resolved = Path(path).resolve()
    if not resolved.is_file() or not os.access(resolved, os.X_OK):
        raise SimulationError(f"benchmark_binary {str(path)[:80]!r} is not an executable file")
    return resolved


def _profile(profile: str | PhoneProfile) -> PhoneProfile:
    if isinstance(profile, PhoneProfile):
        return profile
    if profile not in PROFILES:
        raise SimulationError(f"unknown phone profile {profile!r}; known: {', '.join(PROFILES)}")
    return PROFILES[profile]
