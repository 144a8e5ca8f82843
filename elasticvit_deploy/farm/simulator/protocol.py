"""The adb server's services, as the simulated farm answers them on one client connection.

Host services: host:version, host:devices(-l), host:host-features, host:kill (acknowledged only), transport
switches (host:transport:<serial>, host:tport:serial:<serial>, host:transport-id:<n>, host:transport-any/-usb,
host:tport:any/usb) and device queries with a host prefix (host-serial:<serial>:, host-transport-id:<n>:, host-usb:,
host: - features, get-state, get-serialno, get-devpath, wait-for-<transport>-<state>). After a transport switch the
same connection carries one device service: shell[,v2][,...]:<command>, exec:<command> or sync:.
"""

from __future__ import annotations

import logging
import select
import struct
import time
from collections.abc import Sequence

from . import shell, sync
from .phone import SimPhone
from .wire import Wire

logger = logging.getLogger(__name__)

ADB_SERVER_VERSION = 41  # what adb 1.0.41 (platform-tools 28 and later, up to 36) expects
FEATURES = "shell_v2,fixed_push_mkdir"  # only what is implemented: no stat_v2, ls_v2 or sendrecv_v2
DEVICE_QUERIES = ("features", "get-state", "get-serialno", "get-devpath")
SLOW_DELAY_S = 2.0
WAIT_POLL_S = 0.05
UNAUTHORIZED = ("device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\n"
                "Try 'adb kill-server' if that seems wrong.\nOtherwise check for a confirmation dialog on your device.")


class DeviceError(Exception):
    """A request for a phone that cannot be served (not found, offline, ...): answered with FAIL."""


def serve(wire: Wire, phones: Sequence[SimPhone]) -> None:
    """Answer the requests of one connection until it is done."""
    phone = None
    while True:
        request = wire.read_request()
        logger.debug("request %r (transport %s)", request, phone.serial if phone else None)
        try:
            if phone is None:
                phone = _host_request(wire, phones, request)
                if phone is None:
                    return
            else:
                _device_service(wire, phone, request)
                return
        except DeviceError as e:
            wire.fail(str(e))
            return


def _host_request(wire: Wire, phones: Sequence[SimPhone], request: str) -> SimPhone | None:
    """Answer a host request; returns the phone when the request switched the connection to it."""
    if request == "host:version":
        wire.okay(f"{ADB_SERVER_VERSION:04x}")
    elif request in ("host:devices", "host:devices-l"):
        wire.okay("".join(_device_line(p, request.endswith("-l")) for p in phones))
    elif request == "host:host-features":
        wire.okay(FEATURES)
    elif request == "host:kill":
        wire.okay()  # the simulated server only stops with SimulatedFarm.stop()
    elif (switch := _parse_switch(request)) is not None:
        selector, value, send_id = switch
        phone = _select(phones, selector, value)
        _acquire(phone, online=True)
        wire.send(b"OKAY" + (struct.pack("<Q", phone.transport_id) if send_id else b""))
        return phone
    elif (query := _parse_query(phones, request)) is not None:
        selector, value, command = query
        if command.startswith("wait-for-"):
            _wait_for(wire, phones, selector, value, command)
        else:
            _device_query(wire, _select(phones, selector, value), command)
    else:
        wire.fail("unknown host service")
    return None


def _device_service(wire: Wire, phone: SimPhone, request: str) -> None:
    name, _, argument = request.partition(":")
    service, *options = name.split(",")
    if service == "shell":
        wire.okay()
        shell.run(wire, phone, argument, v2="v2" in options)
    elif service == "exec":
        wire.okay()
        shell.run(wire, phone, argument, v2=False)
    elif request == "sync:":
        wire.okay()
        sync.serve(wire, phone)
    elif request.startswith("host:"):
        _device_query(wire, phone, request.removeprefix("host:"))
    else:
        wire.fail(f"unsupported service on a simulated phone: {request}")


def _device_query(wire: Wire, phone: SimPhone, command: str) -> None:
    answers = {"get-state": phone.state, "get-serialno": phone.serial, "get-devpath": _devpath(phone)}
    if command in answers:
        _acquire(phone, online=False)
        wire.okay(answers[command])
    elif command == "features":
        _acquire(phone, online=True)
        wire.okay(FEATURES)
    else:
        wire.fail(f"unsupported device query on a simulated phone: {command}")


def _wait_for(wire: Wire, phones: Sequence[SimPhone], selector: str, value: str, command: str) -> None:
    """wait-for-<transport>-<state>: OKAY now, OKAY again once a matching phone is in that state."""
    parts = command.split("-")
    if len(parts) < 4:
        raise DeviceError(f"bad wait-for request: {command}")
    transport, state = parts[2], parts[-1]
    if transport == "local":
        selector = "local"
    wire.okay()
    while not any(state in ("any", p.state) for p in _matching(phones, selector, value)):
        readable, _, _ = select.select([wire.sock], [], [], WAIT_POLL_S)
        if readable and not wire.sock.recv(1):
            return  # the client gave up
    wire.okay()


def _parse_switch(request: str) -> tuple[str, str, bool] | None:
    """(selector, value, reply with transport id) of a transport switch request, or None."""
    fixed = {"host:transport-any": ("any", "", False), "host:transport-usb": ("any", "", False),
             "host:transport-local": ("local", "", False), "host:tport:any": ("any", "", True),
             "host:tport:usb": ("any", "", True), "host:tport:local": ("local", "", True)}
    if request in fixed:
        return fixed[request]
    for prefix, selector, send_id in (("host:transport:", "serial", False), ("host:tport:serial:", "serial", True),
                                      ("host:transport-id:", "id", False)):
        if request.startswith(prefix):
            return selector, request.removeprefix(prefix), send_id
    return None


def _parse_query(phones: Sequence[SimPhone], request: str) -> tuple[str, str, str] | None:
    """(selector, value, command) of a device query with a host prefix, or None."""
    for prefix, selector in (("host-serial:", "serial"), ("host-transport-id:", "id")):
        if request.startswith(prefix):
            rest = request.removeprefix(prefix)
            known = [p.serial for p in phones if rest.startswith(p.serial + ":")]
            value, _, command = (known[0], ":", rest.removeprefix(known[0] + ":")) if known else rest.partition(":")
            return selector, value, command
    for prefix, selector in (("host-usb:", "any"), ("host-local:", "local"), ("host:", "any")):
        command = request.removeprefix(prefix)
        if request.startswith(prefix) and (command in DEVICE_QUERIES or command.startswith("wait-for-")):
            return selector, "", command
    return None


def _matching(phones: Sequence[SimPhone], selector: str, value: str) -> list[SimPhone]:
    if selector == "serial":
        return [p for p in phones if p.serial == value]
    if selector == "id":
        return [p for p in phones if str(p.transport_id) == value]
    return [] if selector == "local" else list(phones)  # simulated phones are USB devices, not emulators


def _select(phones: Sequence[SimPhone], selector: str, value: str) -> SimPhone:
    found = _matching(phones, selector, value)
    if len(found) == 1:
        return found[0]
    if found:
        raise DeviceError("more than one device/emulator")
    if selector == "serial":
        raise DeviceError(f"device '{value}' not found")
    if selector == "id":
        raise DeviceError(f"no device with transport id '{value}'")
    raise DeviceError("no emulators found" if selector == "local" else "no devices/emulators found")


def _acquire(phone: SimPhone, online: bool) -> None:
    """Apply the phone's transport faults: slow answers, and (when it must be online) unauthorized / offline."""
    if phone.take_fault("slow"):
        time.sleep(SLOW_DELAY_S * phone.time_scale)
    if online and phone.take_fault("unauthorized"):
        raise DeviceError(UNAUTHORIZED)
    if online and phone.take_fault("offline"):
        raise DeviceError("device offline")


def _device_line(phone: SimPhone, long: bool) -> str:
    state = phone.state
    if not long:
        return f"{phone.serial}\t{state}\n"
    line = f"{phone.serial:<22} {state} {_devpath(phone)}"
    if state == "device":
        p = phone.profile
        line += f" product:{p.product} model:{p.model.replace(' ', '_')} device:{p.device}"
    return f"{line} transport_id:{phone.transport_id}\n"


def _devpath(phone: SimPhone) -> str:
    return f"usb:1-{phone.transport_id}"
