"""Which devices a command measures on: phones named by adb serial or registry alias, every ready phone of the
farm, or this host; one device by name, leased and prepared for a command that measures on it.

Each phone is reached on its own adb server: a registered alias's `adb`, else the server given (`--adb`) or the
default one. A phone's settings are completed from its devices.toml entry: `cores` when the command names none
(else the phone's big cluster), `threads` when the settings leave it to the device (settled at prepare).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from ..errors import BadInput, OperationFailed
from .adb import AdbServer, FarmError, Phone, check_serial, server_name
from .lease import PhoneLease
from .measure import Device, HostDevice, MeasureOptions, PhoneDevice
from .registry import DeviceEntry, Registry, entry_server
from .runner_protocol import RunnerSettings

__all__ = ["HOST", "DeviceSelection", "NoPhones", "UnknownDevice", "device_lease", "resolve_devices",
           "single_device"]

HOST = "host"  # the name of this machine's CPU as a device

Skipped = dict[str, str]  # {"device": name, "reason": why it is not measured}


class UnknownDevice(BadInput):
    """A device name that is neither `host` nor a registered alias."""


class NoPhones(OperationFailed):
    """`--all` found no phone on any adb server of the farm."""


@dataclass
class DeviceSelection:
    """The devices to measure on, and what `--all` found but cannot use (phones offline, unauthorized or not
    connected, servers not answering), each with the reason."""

    devices: list[Device] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def _whole_farm(registry: Registry, default: AdbServer) -> tuple[list[tuple[DeviceEntry, AdbServer]], list[Skipped]]:
    """Every ready phone on every server of the farm, and what is not usable, with the reason: phones offline or
    unauthorized, registered phones not connected, servers not answering (one entry each)."""
    ready: list[tuple[DeviceEntry, AdbServer]] = []
    skipped: list[Skipped] = []
    for server, registered in registry.farm(default):
        try:
            states = server.states()
        except FarmError as e:
            there = f" (registered there: {', '.join(r.alias or r.serial for r in registered)})" if registered else ""
            skipped.append({"device": f"adb server {server}", "reason": f"{e}{there}"})
            continue
        by_serial = {e.serial: e for e in registered}
        for serial, state in sorted(states.items()):
            entry = by_serial.get(serial, DeviceEntry(alias=None, serial=serial))
            if state != "device":
                try:
                    Phone(server, serial).check_ready()  # the state again, to word its reason
                except FarmError as e:
                    skipped.append({"device": entry.alias or serial, "reason": str(e)})
                    continue
            ready.append((entry, server))
        skipped += [{"device": e.alias or e.serial, "reason": f"{e.serial}: not connected to the adb server at "
                     f"{server}"} for e in registered if e.serial not in states]
    return ready, skipped


def _wanted(registry: Registry, default: AdbServer, serials: tuple[str, ...], aliases: tuple[str, ...]
            ) -> list[tuple[DeviceEntry, AdbServer]]:
    """The phones named by serial or alias, each with its adb server."""
    wanted = []
    for s in serials:
        entry = registry.resolve(check_serial(s), default)
        wanted.append((entry, entry_server(entry, default)))
    for name in aliases:
        if name == HOST:
            continue
        entries = registry.load()
        if name not in entries:
            known = ", ".join(sorted(entries)) or "none registered yet (see `farm add`)"
            raise UnknownDevice(f"--device {name}: unknown alias (known: {known}; or use {HOST})")
        wanted.append((entries[name], entry_server(entries[name], default)))
    return wanted


def resolve_devices(serials: tuple[str, ...], aliases: tuple[str, ...], use_all: bool, adb: str | None,
                    settings: RunnerSettings, options: MeasureOptions) -> DeviceSelection:
    """The devices named by serial, by alias (`host`: this machine) or all the farm's (`use_all`), this host when
    none is named. A serial on two servers is two phones, named ``SERIAL@HOST:PORT``. FarmInputError for a bad
    serial, adb address or registry, UnknownDevice for an unknown alias, NoPhones when `use_all` finds none."""
    if not (serials or use_all or [a for a in aliases if a != HOST]):
        return DeviceSelection([HostDevice(settings)])
    registry = Registry()
    default = AdbServer.resolve(adb)
    wanted = _wanted(registry, default, serials, aliases)
    skipped: list[Skipped] = []
    if use_all:
        found, skipped = _whole_farm(registry, default)
        wanted += found
        if not wanted and not skipped:
            servers = ", ".join(str(s) for s, _ in registry.farm(default))
            raise NoPhones(f"--all: no phones on the adb servers {servers}")
    devices: list[Device] = [HostDevice(settings)] if HOST in aliases else []
    unique: dict[tuple[str, str], tuple[DeviceEntry, AdbServer]] = {}
    for entry, server in wanted:
        unique.setdefault((server_name(server), entry.serial), (entry, server))
    servers_of = Counter(entry.serial for entry, _ in unique.values())
    for entry, server in unique.values():
        phone_settings = replace(settings, cores=settings.cores or entry.cores or "auto")
        device = PhoneDevice(Phone(server, entry.serial), entry.alias, phone_settings, options,
                             default_threads=entry.threads)
        if entry.alias is None and servers_of[entry.serial] > 1:
            device.name = f"{entry.serial}@{server}"  # one serial on two servers: two phones
        devices.append(device)
    return DeviceSelection(devices, skipped)


def device_lease(device: Device, *, wait: bool = True, on_wait: Callable[[str], None] | None = None,
                 timeout_s: float | None = None, stop: threading.Event | None = None,
                 command: str | None = None) -> PhoneLease:
    """The lease of a device, named as the device: a phone's keyed by its adb server and serial, this host's by
    its name (two host measurements at once would slow each other down). See PhoneLease for the rest."""
    server, serial = (device.phone.server, device.phone.serial) if isinstance(device, PhoneDevice) \
        else (None, device.name)
    return PhoneLease(server, serial, wait=wait, on_wait=on_wait, timeout_s=timeout_s, stop=stop, command=command,
                      name=device.name)


@contextmanager
def single_device(name: str, adb: str | None, settings: RunnerSettings, options: MeasureOptions,
                  on_wait: Callable[[str], None] | None = None) -> Iterator[Device]:
    """One device by name (`host`, a registry alias or an adb serial), leased (waiting while another process
    uses it; `on_wait` hears why) and prepared, for the duration of the block. The errors of resolving,
    leasing and preparing it name it as ``--device NAME: ...``."""
    if name == HOST:
        device: Device = HostDevice(settings)
    else:
        device = resolve_devices((name,), (), False, adb, settings, options).devices[0]
    lease = device_lease(device, on_wait=on_wait)
    try:
        lease.acquire()
    except FarmError as e:
        raise FarmError(f"--device {name}: {e}") from None
    try:
        try:
            device.prepare()
        except FarmError as e:
            raise FarmError(f"--device {name}: {e}") from None
        yield device
    finally:
        lease.release()
