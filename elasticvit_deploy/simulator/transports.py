"""The simulated adb server's transports: which phones are attached, under which transport id, and how a request
names one, resolved as the real server resolves it (packages/modules/adb transport.cpp, acquire_one_transport and
atransport::MatchesTarget).

A phone whose serial is a network address (``192.168.1.20:5555``) is a TCP transport ("local" to the server, like
an emulator); the others are USB transports. The listing sorts USB transports first, then by serial. A phone can be
unplugged and plugged back (a new transport id, as a re-enumerated USB device gets), kicked by `adb reconnect`
(gone, then back after a re-enumeration delay), and a network phone stays away after `adb disconnect` until
`adb connect` brings it back. Every attach or detach is kept in a short history, so device trackers report each
one even when a phone comes back quickly.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .phone import SimPhone

FEATURES = "shell_v2,fixed_push_mkdir"  # only what is implemented: no stat_v2, ls_v2 or sendrecv_v2
USB, LOCAL = "usb", "local"
DEFAULT_TCP_PORT = 5555
REENUMERATE_S = 1.0  # simulated seconds a kicked phone takes to be back (multiplied by the phone's time_scale)
SLOW_DELAY_S = 2.0
HISTORY = 64
UNAUTHORIZED = ("device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\n"
                "Try 'adb kill-server' if that seems wrong.\nOtherwise check for a confirmation dialog on your device.")


class DeviceError(Exception):
    """A request for a phone that cannot be served (not found, offline, ambiguous, ...): answered with FAIL."""

    def __init__(self, message: str, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous


def parse_net_address(address: str, default_port: int = DEFAULT_TCP_PORT) -> tuple[str, int, str]:
    """(host, port, canonical "host:port" or "[host]:port") of a network address, as android::base::ParseNetAddress
    reads it; raises ValueError with its error message."""
    ipv6, port_text = True, None
    if address.startswith("["):
        if "]:" not in address:
            raise ValueError(f"bad IPv6 address '{address}'")
        host, port_text = address[1:address.find("]:")], address[address.rfind("]:") + 2:]
    elif "." not in address and 2 <= address.count(":") <= 7:
        host = address
    elif address.count(":") <= 1:
        ipv6 = False
        host, colon, rest = address.partition(":")
        port_text = rest if colon else None
    else:
        host = ""
    if not host:
        raise ValueError(f"no host in '{address}'")
    port = default_port
    if port_text is not None:
        number = re.match(r"\s*([+-]?\d+)", port_text)  # sscanf("%d")
        if number is None or not 0 < int(number.group(1)) <= 65535:
            raise ValueError(f"bad port number '{port_text}' in '{address}'")
        port = int(number.group(1))
    return host, port, (f"[{host}]:{port}" if ipv6 else f"{host}:{port}")


def is_network_serial(serial: str) -> bool:
    """Whether a serial names a TCP transport (host:port), as `adb connect` creates them."""
    try:
        _, _, canonical = parse_net_address(serial)
    except ValueError:
        return False
    return canonical == serial and ":" in serial


def sanitize(text: str, alphanumeric: bool) -> str:
    """What the real server prints for product/model/device in `adb devices -l` (and matches qualifiers to)."""
    return "".join(c if (c.isascii() and c.isalnum()) or (not alphanumeric and c != "\n") else "_" for c in text)


@dataclass(eq=False)
class Transport:
    """One attached phone as the server sees it."""

    phone: SimPhone
    id: int
    reverses: list[tuple[str, str]] = field(default_factory=list)  # the phone's `adb reverse` table

    @property
    def serial(self) -> str:
        return self.phone.serial

    @property
    def kind(self) -> str:
        return LOCAL if is_network_serial(self.serial) else USB

    @property
    def state(self) -> str:
        return self.phone.state

    @property
    def devpath(self) -> str:
        """The USB port path (stable across replugs: the phone's original transport id numbers its port); network
        transports have none."""
        return f"usb:1-{self.phone.transport_id}" if self.kind == USB else ""

    @property
    def features(self) -> str:
        """The phone's adbd features: an adbd from before shell protocol v2 (quirk "shell-v1") announces none."""
        return "" if "shell-v1" in getattr(self.phone, "quirks", frozenset()) else FEATURES

    @property
    def device_side_name(self) -> str:
        """The name adbd gives its connection to the host (first column of `adb reverse --list`): "UsbFfs" for USB;
        for TCP adbd uses "host-<socket fd>", for which the simulator uses the transport id."""
        return "UsbFfs" if self.kind == USB else f"host-{self.id}"

    def matches(self, target: str) -> bool:
        """atransport::MatchesTarget: the serial (network serials also without the port or with a tcp:/udp:
        prefix), the devpath, or product:/model:/device: qualifiers."""
        if target == self.serial:
            return True
        if self.kind == LOCAL:
            bare = target[4:] if target.startswith(("tcp:", "udp:")) else target
            try:
                own_host, own_port, _ = parse_net_address(self.serial)
                host, port, _ = parse_net_address(bare, default_port=own_port)
            except ValueError:
                pass
            else:
                if (host, port) == (own_host, own_port):
                    return True
        if self.devpath and target == self.devpath:
            return True
        if self.state != "device":
            return False
        p = self.phone.profile
        return target in (f"product:{sanitize(p.product, False)}", f"model:{sanitize(p.model, True)}",
                          f"device:{sanitize(p.device, False)}")

    def line(self, long: bool) -> str:
        """This transport's line in `adb devices` / `adb devices -l`."""
        if not long:
            return f"{self.serial}\t{self.state}\n"
        line = f"{self.serial:<22} {self.state}" + (f" {self.devpath}" if self.devpath else "")
        if self.state == "device":  # product, model and device come with the phone's connection banner
            p = self.phone.profile
            line += (f" product:{sanitize(p.product, False)} model:{sanitize(p.model, True)}"
                     f" device:{sanitize(p.device, False)}")
        return f"{line} transport_id:{self.id}\n"


class Transports:
    """The attached phones of one simulated server (thread-safe). `on_detach` is called with each transport that
    goes away (the server drops its forwards)."""

    def __init__(self, phones: Sequence[SimPhone], on_detach: Callable[[Transport], None] = lambda t: None) -> None:
        self._phones = {p.serial: p for p in phones}
        self._changed = threading.Condition()
        self._attached: list[Transport] = [Transport(p, p.transport_id) for p in phones]
        self._next_id = max((p.transport_id for p in phones), default=0) + 1
        self._sockets: dict[Transport, set[socket.socket]] = {}
        self._timers: set[threading.Timer] = set()
        self._away: set[str] = set()  # unplugged by the farm: back only with plug()
        self._history: deque[tuple[int, str, str]] = deque(maxlen=HISTORY)
        self._generation = 0
        self._on_detach = on_detach
        self._closed = False
        with self._changed:
            self._record()

    # listing ---------------------------------------------------------------------------------------------------
    def listed(self) -> list[Transport]:
        with self._changed:
            return sorted(self._attached, key=lambda t: (t.kind != USB, t.serial))

    def listing(self, long: bool) -> str:
        return "".join(t.line(long) for t in self.listed())

    def changes_since(self, generation: int, long: bool, timeout: float) -> tuple[int, list[str]]:
        """Wait up to `timeout` for attaches/detaches after `generation`; returns the newest generation and the
        listings recorded after `generation` (oldest first)."""
        with self._changed:
            if self._generation == generation:
                self._changed.wait(timeout)
            texts = [(short, full) for gen, short, full in self._history if gen > generation]
            return self._generation, [full if long else short for short, full in texts]

    @property
    def generation(self) -> int:
        with self._changed:
            return self._generation

    def _record(self) -> None:
        """Remember the listing after a change (caller holds the lock) and wake the trackers."""
        self._generation += 1
        ordered = sorted(self._attached, key=lambda t: (t.kind != USB, t.serial))
        self._history.append((self._generation, "".join(t.line(False) for t in ordered),
                              "".join(t.line(True) for t in ordered)))
        self._changed.notify_all()

    # selection -------------------------------------------------------------------------------------------------
    def find(self, kind: str = "any", serial: str | None = None, transport_id: int | None = None) -> Transport:
        """The one transport a request names, in any state; raises DeviceError like acquire_one_transport."""
        if transport_id is not None:
            error = f"no device with transport id '{transport_id}'"
        elif serial is not None:
            error = f"device '{serial}' not found"
        else:
            error = {LOCAL: "no emulators found", "any": "no devices/emulators found"}.get(kind, "no devices found")
        found: Transport | None = None
        for t in self.listed():
            if transport_id is not None:
                if t.id == transport_id:
                    return t
                continue
            if serial is not None:
                if not t.matches(serial):
                    continue
                ambiguous = f"more than one device with serial {serial}"
            elif kind == "any" or t.kind == kind:
                ambiguous = {USB: "more than one USB device", LOCAL: "more than one emulator"}.get(
                    kind, "more than one device/emulator")
            else:
                continue
            if found is not None:
                raise DeviceError(ambiguous, ambiguous=True)
            found = t
        if found is None:
            raise DeviceError(error)
        return found

    def acquire(self, kind: str = "any", serial: str | None = None, transport_id: int | None = None) -> Transport:
        """The one online transport a request names, applying the phone's faults (slow answers, then counted or
        lasting unauthorized / offline); raises DeviceError with the real server's messages."""
        t = self.find(kind, serial, transport_id)
        phone = t.phone
        if phone.take_fault("slow"):
            time.sleep(SLOW_DELAY_S * phone.time_scale)
        if phone.take_fault("unauthorized"):
            raise DeviceError(UNAUTHORIZED)
        if phone.take_fault("offline"):
            raise DeviceError("device offline")
        return t

    def network_phone(self, serial: str) -> SimPhone | None:
        """The farm's network phone of that serial, attached or not."""
        phone = self._phones.get(serial)
        return phone if phone is not None and is_network_serial(serial) else None

    def reachable(self, serial: str) -> bool:
        """Whether the phone can come back by itself (after a kick) or by `adb connect`: not unplugged."""
        with self._changed:
            return serial in self._phones and serial not in self._away

    def attached(self, serial: str) -> Transport | None:
        with self._changed:
            return next((t for t in self._attached if t.serial == serial), None)

    # connections -----------------------------------------------------------------------------------------------
    def register(self, sock: socket.socket, transport: Transport) -> None:
        """A client connection now talks to `transport`: it is hung up when the transport goes away."""
        with self._changed:
            if transport in self._attached:
                self._sockets.setdefault(transport, set()).add(sock)
                return
        _shut(sock)

    def unregister(self, sock: socket.socket, transport: Transport) -> None:
        with self._changed:
            self._sockets.get(transport, set()).discard(sock)

    # plugging --------------------------------------------------------------------------------------------------
    def plug(self, serial: str, transport_id: int | None = None) -> Transport:
        """Attach a farm phone (with a new transport id unless one is given); raises KeyError if it is not a phone
        of this farm and ValueError if it is attached already."""
        phone = self._phones[serial]
        with self._changed:
            self._away.discard(serial)
            if self._closed:
                raise ValueError("the server is stopped")
            if any(t.serial == serial for t in self._attached):
                raise ValueError(f"{serial} is plugged in already")
            if transport_id is None:
                transport_id, self._next_id = self._next_id, self._next_id + 1
            transport = Transport(phone, transport_id)
            self._attached.append(transport)
            self._record()
            return transport

    def unplug(self, serial: str) -> Transport | None:
        """Pull the phone's cable (or take a network phone off the network): it is detached and stays away until
        plug(). Returns its transport if it was attached (it may be away for a moment after a kick). Raises KeyError
        if it is no phone of this farm, ValueError if it is unplugged already."""
        if serial not in self._phones:
            raise KeyError(serial)
        with self._changed:
            if serial in self._away:
                raise ValueError(f"{serial} is unplugged already")
            self._away.add(serial)
        try:
            return self.detach(serial)
        except KeyError:
            return None

    def detach(self, serial: str) -> Transport:
        """Take the phone's transport away: its connections are hung up (its running commands get SIGHUP as on a
        phone whose connection drops) and its forwards dropped. Raises KeyError if it is not attached."""
        with self._changed:
            transport = next((t for t in self._attached if t.serial == serial), None)
            if transport is None:
                raise KeyError(serial)
            self._attached.remove(transport)
            sockets = self._sockets.pop(transport, set())
            self._record()
        for sock in sockets:
            _shut(sock)
        self._on_detach(transport)
        return transport

    def kick(self, transport: Transport, come_back: bool = True) -> None:
        """What kick_transport does to a phone: detach it now and, if `come_back`, attach it again after the
        re-enumeration delay (a USB phone with a new transport id, a network phone reconnected under its old one),
        with an `offline` fault cleared as a replug clears it."""
        try:
            self.detach(transport.serial)
        except KeyError:
            return  # kicked already
        if not come_back:
            return
        keep_id = transport.id if transport.kind == LOCAL else None
        timer = threading.Timer(REENUMERATE_S * transport.phone.time_scale, self._come_back,
                                args=(transport.phone, keep_id))
        timer.daemon = True
        with self._changed:
            if self._closed:
                return
            self._timers.add(timer)
        timer.start()

    def _come_back(self, phone: SimPhone, transport_id: int | None) -> None:
        with self._changed:
            self._timers = {t for t in self._timers if t.is_alive() and t is not threading.current_thread()}
        if not self.reachable(phone.serial):
            return
        phone.clear_fault("offline")
        try:
            self.plug(phone.serial, transport_id)
        except ValueError:
            pass  # plugged back by hand meanwhile, or the server stopped

    def close(self) -> None:
        """Stop pending re-attachments."""
        with self._changed:
            self._closed = True
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
