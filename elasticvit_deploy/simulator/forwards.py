"""`adb forward` and `adb reverse` of the simulated server, answered as the real server and adbd answer them
(packages/modules/adb adb.cpp handle_forward_request, adb_listeners.cpp, socket_spec.cpp).

Forward listeners are real: `forward tcp:X <remote>` listens on 127.0.0.1:X (tcp:0 picks a free port and reports
it). Nothing listens on a simulated phone (its shell commands each get a private network namespace), so a
connection to a forward is closed at once, as the real server closes it when the phone refuses the remote end.
Only tcp: local sockets are bound on the host. Reverse tables are bookkeeping on the phone: nothing on the phone
can connect to them, and tcp:0 gets a port number picked from Linux's default ephemeral range without binding it.
"""

from __future__ import annotations

import random
import socket
import threading
from dataclasses import dataclass

from .transports import Transport, parse_net_address

EPHEMERAL_PORTS = (32768, 60999)  # Linux's default net.ipv4.ip_local_port_range
DEVICE_SOCKET_TYPES = ("local", "localreserved", "localabstract", "localfilesystem", "vsock")
HOST_SOCKET_TYPES = ("local", "localabstract", "localfilesystem", "vsock", "acceptfd")  # real, but not bound here
_REVERSE_LOCK = threading.Lock()


class ForwardError(Exception):
    """Answered with FAIL and this message."""


@dataclass(frozen=True)
class ForwardRequest:
    """A parsed forward command: kind is list, kill-all, forward or kill."""

    kind: str
    local: str = ""
    remote: str = ""
    no_rebind: bool = False


def parse_forward(service: str) -> ForwardRequest | None:
    """The forward command in a service name, or None if it is none; raises ForwardError for a malformed one."""
    if service == "list-forward":
        return ForwardRequest("list")
    if service == "killforward-all":
        return ForwardRequest("kill-all")
    if service.startswith("killforward:"):
        local = service.removeprefix("killforward:")
        if not local or ";" in local:
            raise ForwardError(f"bad killforward: {local}")
        return ForwardRequest("kill", local)
    if service.startswith("forward:"):
        spec = service.removeprefix("forward:")
        no_rebind = spec.startswith("norebind:")
        spec = spec.removeprefix("norebind:")
        pieces = spec.split(";")
        if len(pieces) != 2 or not pieces[0] or not pieces[1] or pieces[1].startswith("*"):
            raise ForwardError(f"bad forward: {spec}")
        return ForwardRequest("forward", pieces[0], pieces[1], no_rebind)
    return None


def _tcp_port(spec: str) -> int:
    """The port of a tcp: socket spec to listen on (parse_tcp_socket_spec; only local host names listen)."""
    rest = spec.removeprefix("tcp:")
    if not rest:
        raise ForwardError("cannot bind listener: string after tcp specification is empty")
    try:
        port = int(rest)
    except ValueError:
        try:
            host, port, _ = parse_net_address(rest)
        except ValueError as e:
            raise ForwardError(f"cannot bind listener: {e}") from None
        if host not in ("", "localhost"):
            raise ForwardError("cannot bind listener: listening on specified hostname currently unsupported") from None
        return port
    if not 0 <= port <= 65535:
        raise ForwardError(f"cannot bind listener: bad port number '{port}'")
    return port


def _check_socket_type(spec: str, available: tuple[str, ...], unavailable: tuple[str, ...]) -> None:
    kind = spec.partition(":")[0]
    if ":" in spec and kind in available:
        return
    if ":" in spec and kind in unavailable:
        raise ForwardError(f"cannot bind listener: attempted to listen on unavailable socket type: {spec}")
    raise ForwardError(f"cannot bind listener: unknown socket specification:{spec}")


class _Listener:
    """A host listener of one forward: accepts connections and closes them (the phone has nothing listening)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", port))
            self.sock.listen(16)
        except OSError as e:
            self.sock.close()
            raise ForwardError(f"cannot bind listener: {e.strerror or e}") from None
        self.port = int(self.sock.getsockname()[1])
        self._thread = threading.Thread(target=self._refuse, name=f"simfarm-forward-{self.port}", daemon=True)
        self._thread.start()

    def _refuse(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept()
        except OSError:
            pass
        self.sock.close()
        self._thread.join()


@dataclass
class _Forward:
    local: str
    remote: str
    transport: Transport
    listener: _Listener


class HostForwards:
    """The server's `adb forward` listeners, in the order they were made (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forwards: list[_Forward] = []

    def install(self, local: str, remote: str, transport: Transport, no_rebind: bool) -> int:
        """Forward `local` to `remote` on the phone; returns the port bound for tcp:0, else 0."""
        with self._lock:
            for f in self._forwards:
                if f.local == local:
                    if no_rebind:
                        raise ForwardError("cannot rebind existing socket")
                    f.remote, f.transport = remote, transport
                    return 0
            if not local.startswith("tcp:"):
                if ":" in local and local.partition(":")[0] in HOST_SOCKET_TYPES:
                    raise ForwardError("cannot bind listener: the simulated adb server binds tcp: sockets only")
                _check_socket_type(local, (), ("localreserved",))
            requested = _tcp_port(local)
            listener = _Listener(requested)
            name = f"tcp:{listener.port}" if requested == 0 else local
            self._forwards.append(_Forward(name, remote, transport, listener))
            return listener.port if requested == 0 else 0

    def remove(self, local: str) -> None:
        with self._lock:
            found = next((f for f in self._forwards if f.local == local), None)
            if found is None:
                raise ForwardError(f"listener '{local}' not found")
            self._forwards.remove(found)
        found.listener.close()

    def remove_all(self, transport: Transport | None = None) -> None:
        """Remove every forward (of one transport: when it goes away)."""
        with self._lock:
            gone = [f for f in self._forwards if transport is None or f.transport is transport]
            self._forwards = [f for f in self._forwards if f not in gone]
        for f in gone:
            f.listener.close()

    def listing(self) -> str:
        """`adb forward --list`: "<serial> <local> <remote>" lines of every phone."""
        with self._lock:
            return "".join(f"{f.transport.serial} {f.local} {f.remote}\n" for f in self._forwards)


def reverse_install(transport: Transport, local: str, remote: str, no_rebind: bool) -> int:
    """Add `adb reverse` of the phone's `local` to the host's `remote`; returns the port picked for tcp:0, else 0.
    The table belongs to the transport (it goes away with it, as adbd's listeners go with the connection)."""
    with _REVERSE_LOCK:
        table = transport.reverses
        for i, (name, _) in enumerate(table):
            if name == local:
                if no_rebind:
                    raise ForwardError("cannot rebind existing socket")
                table[i] = (name, remote)
                return 0
        port = 0
        if local.startswith("tcp:"):
            if _tcp_port(local) == 0:
                used = {name for name, _ in table}
                while f"tcp:{(port := random.randint(*EPHEMERAL_PORTS))}" in used:
                    pass
                local = f"tcp:{port}"
        else:
            _check_socket_type(local, DEVICE_SOCKET_TYPES, ())
        table.append((local, remote))
        return port


def reverse_remove(transport: Transport, local: str) -> None:
    with _REVERSE_LOCK:
        for entry in transport.reverses:
            if entry[0] == local:
                transport.reverses.remove(entry)
                return
    raise ForwardError(f"listener '{local}' not found")


def reverse_remove_all(transport: Transport) -> None:
    with _REVERSE_LOCK:
        transport.reverses.clear()


def reverse_listing(transport: Transport) -> str:
    """`adb reverse --list` as adbd formats it: its connection's name, the phone's socket, the host's socket."""
    with _REVERSE_LOCK:
        return "".join(f"{transport.device_side_name} {local} {remote}\n" for local, remote in transport.reverses)
