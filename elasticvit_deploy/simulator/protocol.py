"""The adb server's services, as the simulated farm answers them on one client connection, following the real
server (packages/modules/adb: sockets.cpp smart_socket_enqueue and parse_host_service, adb.cpp
handle_host_request, services.cpp) and adbd (daemon/services.cpp).

Host services, with a host:, host-serial:<serial>:, host-transport-id:<n>:, host-usb: or host-local: prefix:
version, devices, devices-l, host-features, features, get-state, get-serialno, get-devpath, kill (refused, like a
server started with ADB_REJECT_KILL_SERVER=1: the simulated server stops only with SimulatedFarm.stop()), transport
switches (transport:<serial>, transport-id:<n>, transport-usb/-local/-any, tport:serial:<serial>, tport:usb/local/
any), track-devices, track-devices-l, wait-for-<any|usb|local>-<state>[-<state>...] (device, any, disconnect, ...),
reconnect, reconnect-offline, connect:<host>[:<port>], disconnect:[<address>], emulator:<port> (ignored, as the real
server does with no emulator there), list-forward, forward:[norebind:]<local>;<remote>, killforward:<local> and
killforward-all.

Device services, after a transport switch: shell[,v2][,raw][,pty][,TERM=...]:<command>, exec:<command>, sync:,
reverse:<forward command>, reconnect, root:, unroot:, remount: (the answers of a user build's unrooted adbd). Any
other device service is refused with FAIL "closed", as the real server answers when adbd closes the stream: that
is the real answer for a phone socket nothing listens on (tcp:, localabstract:, ...), and what the simulator
answers for the services it does not model (see the package docstring).
"""

from __future__ import annotations

import dataclasses
import logging
import struct
from dataclasses import dataclass

from . import shell, sync
from .forwards import (
    ForwardError,
    HostForwards,
    parse_forward,
    reverse_install,
    reverse_listing,
    reverse_remove,
    reverse_remove_all,
)
from .transports import FEATURES, LOCAL, UNAUTHORIZED, USB, DeviceError, Transport, Transports, parse_net_address
from .wire import Wire

logger = logging.getLogger(__name__)

ADB_SERVER_VERSION = 41  # what adb 1.0.41 (platform-tools 28 and later, up to 36) expects
HOST_PREFIXES = ("host:", "host-serial:", "host-transport-id:", "host-usb:", "host-local:")
WAIT_POLL_S = 0.05
WAIT_STATES = ("device", "recovery", "rescue", "sideload", "bootloader", "any", "disconnect")
ROOT_ANSWER = "adbd cannot run as root in production builds\n"  # daemon/restart_service.cpp, user build
UNROOT_ANSWER = "adbd not running as root\n"
REMOUNT_ANSWER = 'Not running as root. Try "adb root" first.\n'  # remount on an unrooted adbd (fs_mgr_remount)


@dataclass
class ServerState:
    """What the services of one simulated server share."""

    transports: Transports
    forwards: HostForwards


@dataclass(frozen=True)
class Target:
    """The transport a host request names (by kind any/usb/local, serial or transport id), or the one the
    connection switched to before."""

    kind: str = "any"
    serial: str | None = None
    transport_id: int | None = None
    switched: Transport | None = None

    def acquire(self, transports: Transports) -> Transport:
        """The online transport named (faults applied); the switched one as it is."""
        return self.switched or transports.acquire(self.kind, self.serial, self.transport_id)

    def find(self, transports: Transports) -> Transport:
        """The transport named, in any state."""
        return self.switched or transports.find(self.kind, self.serial, self.transport_id)


def serve(wire: Wire, state: ServerState) -> None:
    """Answer the requests of one connection until it is done."""
    switched: Transport | None = None
    try:
        while True:
            request = wire.read_request()
            logger.debug("request %r (transport %s)", request, switched.serial if switched else None)
            try:
                if switched is not None and not request.startswith(HOST_PREFIXES):
                    _device_service(wire, state, switched, request)
                    return
                parsed = _parse_host_request(request, switched)
                if parsed is None:
                    return  # unparsable: the real server hangs up without an answer
                target, service = parsed
                new = _host_service(wire, state, target, service)
                if new is None:
                    return
                switched = new
                state.transports.register(wire.sock, switched)
            except DeviceError as e:
                wire.fail(str(e))
                return
    finally:
        if switched is not None:
            state.transports.unregister(wire.sock, switched)


def parse_host_service(text: str) -> tuple[str, str] | None:
    """(serial, command) of what follows host-serial:, as sockets.cpp parse_host_service splits it: a serial may be
    host:port (or [v6]:port, tcp:/udp:/vsock: prefixed) and a qualifier usb:/product:/model:/device: takes one more
    colon."""
    if not text:
        return None
    for prefix in ("usb:", "product:", "model:", "device:", "localfilesystem:"):
        if text.startswith(prefix):
            colon = text.find(":", len(prefix))
            if colon < 0:
                return None
            return _finish(text, colon + 1)
    pos = 0
    if text.startswith(("tcp:", "udp:")):
        pos = 4
        if pos == len(text):
            return None
    if text.startswith("vsock:", pos):
        pos = text.index(":", pos) + 1
    found_address = False
    if text[pos:pos + 1] == "[":
        end = text.find("]", pos)
        if end >= 0:
            pos = end + 1
            if text[pos:pos + 1] != ":":
                return None
            pos += 1
            found_address = True
    if not found_address:
        colon = text.find(":", pos)
        if colon < 0:
            return None
        pos = colon + 1
    colon = text.find(":", pos)
    if colon >= 0 and all(c.isdigit() for c in text[pos:colon]):  # a port between colons
        pos = colon + 1
    return _finish(text, pos)


def _finish(text: str, pos: int) -> tuple[str, str] | None:
    serial, command = text[:pos - 1], text[pos:]
    return (serial, command) if serial and command else None


def _parse_host_request(request: str, switched: Transport | None) -> tuple[Target, str] | None:
    """(target, service) of a host request; None when the real server would hang up; DeviceError for a device
    service without a transport."""
    if request.startswith("host-serial:"):
        split = parse_host_service(request.removeprefix("host-serial:"))
        return None if split is None else (Target(serial=split[0], switched=switched), split[1])
    if request.startswith("host-transport-id:"):
        number, colon, service = request.removeprefix("host-transport-id:").partition(":")
        if not number.isdigit() or not colon:
            return None
        return Target(transport_id=int(number), switched=switched), service
    for prefix, kind in (("host-usb:", USB), ("host-local:", LOCAL), ("host:", "any")):
        if request.startswith(prefix):
            return Target(kind=kind, switched=switched), request.removeprefix(prefix)
    raise DeviceError("device offline (no transport)")


def _host_service(wire: Wire, state: ServerState, target: Target, service: str) -> Transport | None:
    """Answer one host service; returns the transport when the connection switched to it."""
    transports = state.transports
    if service == "kill":
        wire.fail("kill-server rejected by remote server")
    elif service.startswith(("transport", "tport:")):
        return _switch(wire, transports, target, service)
    elif service in ("devices", "devices-l"):
        wire.okay(transports.listing(long=service == "devices-l"))
    elif service == "reconnect-offline":
        _reconnect_offline(wire, transports)
    elif service == "features":
        wire.okay(target.acquire(transports).features)
    elif service == "host-features":
        wire.okay(FEATURES)
    elif service.startswith("disconnect:"):
        _disconnect(wire, transports, service.removeprefix("disconnect:"))
    elif service == "version":
        wire.okay(f"{ADB_SERVER_VERSION:04x}")
    elif service in ("get-serialno", "get-devpath", "get-state"):
        t = target.acquire(transports)
        wire.okay({"get-serialno": t.serial, "get-devpath": t.devpath or "unknown", "get-state": t.state}[service])
    elif service.startswith("emulator:"):
        pass  # an emulator announcing itself: the real server answers nothing either
    elif service == "reconnect":
        _reconnect(wire, transports, target)
    elif service in ("list-forward", "killforward-all") or service.startswith(("forward:", "killforward:")):
        _host_forward(wire, state, target, service)
    elif service in ("track-devices", "track-devices-l"):
        wire.okay()
        _track_devices(wire, transports, long=service.endswith("-l"))
    elif service.startswith("wait-for-"):
        wire.okay()
        _wait_for(wire, transports, target, service.removeprefix("wait-for-"))
    elif service.startswith("connect:"):
        wire.okay()
        wire.send_string(_connect(transports, service.removeprefix("connect:")))
    else:
        wire.fail(f"unknown host service '{service}'")
    return None


def _switch(wire: Wire, transports: Transports, target: Target, service: str) -> Transport | None:
    """host:transport...: / host:tport:...: the tport: forms answer the transport id too."""
    send_id = service.startswith("tport:")
    rest = service.removeprefix("tport:") if send_id else service
    if send_id and rest.startswith("serial:"):
        target = dataclasses.replace(target, serial=rest.removeprefix("serial:"))
    elif send_id:
        target = dataclasses.replace(target, kind={"usb": USB, "local": LOCAL}.get(rest, "any"))
    elif rest.startswith("transport-id:"):
        number = rest.removeprefix("transport-id:")
        if not number.isdigit():
            wire.fail("invalid transport id")
            return None
        target = dataclasses.replace(target, transport_id=int(number))
    elif rest in ("transport-usb", "transport-local", "transport-any"):
        target = dataclasses.replace(target, kind={"transport-usb": USB, "transport-local": LOCAL}.get(rest, "any"))
    elif rest.startswith("transport:"):
        target = dataclasses.replace(target, serial=rest.removeprefix("transport:"))
    t = dataclasses.replace(target, switched=None).acquire(transports)
    wire.send(b"OKAY" + (struct.pack("<Q", t.id) if send_id else b""))
    return t


def _reconnect(wire: Wire, transports: Transports, target: Target) -> None:
    """host:reconnect: kick the phone (in any state); it comes back after re-enumeration. The real server answers
    OKAY even when no phone matches, with the error as the text."""
    try:
        t = target.find(transports)
    except DeviceError as e:
        wire.okay(str(e))
        return
    wire.okay(f"reconnecting {t.serial} [{t.state}]\n")
    transports.kick(t)


def _reconnect_offline(wire: Wire, transports: Transports) -> None:
    """host:reconnect-offline: kick every USB phone that is not online."""
    stale = [t for t in transports.listed() if t.kind == USB and t.state != "device"]
    wire.okay("\n".join(f"reconnecting {t.serial}" for t in stale))
    for t in stale:
        transports.kick(t)


def _disconnect(wire: Wire, transports: Transports, address: str) -> None:
    """host:disconnect:[address]: drop network phones (all of them for an empty address); a USB phone named by its
    serial is kicked and comes back."""
    if not address:
        for t in transports.listed():
            if t.kind == LOCAL:
                transports.kick(t, come_back=False)
        wire.okay("disconnected everything")
        return
    serial = address
    if transports.attached(address) is None and not address.startswith(("vsock:", "localfilesystem:")):
        try:
            serial = parse_net_address(address)[2]
        except ValueError as e:
            wire.fail(f"couldn't parse '{address}': {e}")
            return
    found = transports.attached(serial)
    if found is None:
        wire.fail(f"no such device '{serial}'")
        return
    wire.okay(f"disconnected {address}")
    transports.kick(found, come_back=found.kind == USB)


def _connect(transports: Transports, address: str) -> str:
    """host:connect:<address>: a network phone of the farm (re)attaches; the simulator reaches no network, so any
    other address is answered as the real server answers when nothing listens there."""
    if not address:
        return "empty address"
    if address.startswith(("vsock:", "localfilesystem:")):
        return f"failed to connect to '{address}': not modelled by the simulator"
    if address.isdigit():
        host, port, serial = "", int(address), f"localhost:{address}"
    else:
        try:
            host, port, serial = parse_net_address(address)
        except ValueError as e:
            return str(e)
    phone = transports.network_phone(serial)
    if phone is not None and transports.attached(serial) is not None:
        return f"already connected to {serial}"
    if phone is not None and transports.reachable(serial):
        transports.plug(serial)
        return f"connected to {serial}"
    if host in ("", "localhost"):
        return "Connection refused"  # network_loopback_client's error: strerror alone
    return f"failed to connect to '{host}:{port}': Connection refused"


def _wait_for(wire: Wire, transports: Transports, target: Target, spec: str) -> None:
    """wait-for-<transport>-<state>...: (after the OKAY) OKAY once a state is reached, FAIL if the request is
    malformed or ambiguous or the client goes away (services.cpp wait_service)."""
    parts = spec.split("-")
    if len(parts) < 2:
        wire.fail(f"short wait-for-: {spec}")
        return
    kind = {"local": LOCAL, "usb": USB, "any": "any"}.get(parts[0])
    if kind is None:
        wire.fail(f"bad wait-for- transport: {spec}")
        return
    states = parts[1:]
    if any(s not in WAIT_STATES for s in states):
        wire.fail(f"bad wait-for- state: {spec}")
        return
    target = dataclasses.replace(target, kind=kind)
    while True:
        error = "unknown error"
        try:
            t: Transport | None = target.find(transports)
            if t is not None and t.state != "device":
                error, t = ("device offline" if t.state == "offline" else UNAUTHORIZED), None
        except DeviceError as e:
            if e.ambiguous:
                wire.fail(str(e))
                return
            error, t = str(e), None
        if any((s == "disconnect" and t is None) or (s != "disconnect" and t is not None and s in ("any", t.state))
               for s in states):
            wire.okay()
            return
        if wire.client_stirred(WAIT_POLL_S):
            wire.fail(error)
            return


def _track_devices(wire: Wire, transports: Transports, long: bool) -> None:
    """host:track-devices[-l]: the device list now, then again at every change, until the client hangs up (or
    sends anything: a device tracker cannot be written to)."""
    generation = transports.generation
    last = transports.listing(long)
    wire.send_string(last)
    while not wire.client_stirred(0):
        generation, texts = transports.changes_since(generation, long, timeout=WAIT_POLL_S)
        for text in [*texts, transports.listing(long)]:  # the current one catches state changes (faults)
            if text != last:
                wire.send_string(text)
                last = text


def _host_forward(wire: Wire, state: ServerState, target: Target, service: str) -> None:
    """forward:, killforward:, killforward-all, list-forward: "OKAY" for the request, then "OKAY" for the result
    (and the port picked for tcp:0)."""
    transport = None
    if service.startswith(("forward:", "killforward:")):
        try:
            transport = target.acquire(state.transports)
        except DeviceError:
            wire.fail("")  # adb.cpp's transport_acquirer drops the error text
            return
    try:
        request = parse_forward(service)
        assert request is not None
        if request.kind == "list":
            wire.okay(state.forwards.listing())
            return
        port = 0
        if request.kind == "kill-all":
            state.forwards.remove_all()
        elif request.kind == "kill":
            state.forwards.remove(request.local)
        else:
            assert transport is not None
            port = state.forwards.install(request.local, request.remote, transport, request.no_rebind)
    except ForwardError as e:
        wire.fail(str(e))
        return
    wire.send(b"OKAYOKAY")
    if port:
        wire.send_string(str(port))


def _device_service(wire: Wire, state: ServerState, transport: Transport, request: str) -> None:
    """One device service on a switched connection (adbd's daemon_service_to_fd)."""
    phone = transport.phone
    old_adbd = "shell-v1" in getattr(phone, "quirks", frozenset())
    if request.startswith("shell") and ":" in request:
        options, _, command = request.removeprefix("shell").partition(":")
        if old_adbd and options:
            wire.fail("closed")  # an adbd from before shell protocol v2 knows only "shell:"
            return
        wire.okay()
        shell.run(wire, phone, command, v2="v2" in options.split(","))
    elif request.startswith("exec:"):
        wire.okay()
        shell.run(wire, phone, request.removeprefix("exec:"), v2=False)
    elif request.startswith("sync:"):
        wire.okay()
        sync.serve(wire, phone)
    elif request.startswith("reverse:"):
        wire.okay()
        _reverse(wire, transport, request.removeprefix("reverse:"))
    elif request == "reconnect":
        wire.okay()
        wire.send(b"done")
        state.transports.kick(transport)
    elif request.startswith(("root:", "unroot:", "remount:")):
        wire.okay()
        answers = {"root": ROOT_ANSWER, "unroot": UNROOT_ANSWER, "remount": REMOUNT_ANSWER}
        wire.send(answers[request.partition(":")[0]].encode("ascii"))
    else:
        wire.fail("closed")


def _reverse(wire: Wire, transport: Transport, service: str) -> None:
    """reverse:<forward command>, answered by adbd after the stream opened: one OKAY for the result."""
    try:
        request = parse_forward(service)
        if request is None:
            raise ForwardError("not a reverse forwarding command")
        if request.kind == "list":
            wire.send_string(reverse_listing(transport))
            return
        port = 0
        if request.kind == "kill-all":
            reverse_remove_all(transport)
        elif request.kind == "kill":
            reverse_remove(transport, request.local)
        else:
            port = reverse_install(transport, request.local, request.remote, request.no_rebind)
    except ForwardError as e:
        wire.fail(str(e))
        return
    wire.okay()
    if port:
        wire.send_string(str(port))
