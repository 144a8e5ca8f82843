"""The device registry: `devices.toml` in the user-data dir, editable by hand, mapping aliases to serials.

    [devices.pixel4]
    serial = "98KAY17CJ1"
    threads = 1          # optional per-device defaults for `measure`
    cores = "70"         # hex core mask for taskset (default: the phone's big cluster)
    adb = "lab-2:5037"   # optional: the adb server the phone is on (another host's `adb -a` server)

A phone without `adb` is on the default server (`--adb`, else the adb environment variables, else
127.0.0.1:5037). One farm may span several servers: every distinct `adb` named here is part of it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

import tomli_w

from supernet.atomic import atomic_output

from ..errors import shorten
from ..paths import user_data_dir, writable_dir
from .adb import AdbServer, FarmInputError, check_serial, server_name

_ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,40}")
_MASK = re.compile(r"[0-9a-fA-F]{1,16}")
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]{2,45}\]")
_KEYS = ("serial", "threads", "cores", "adb")
RESERVED = ("host", "all")


@dataclass(frozen=True)
class DeviceEntry:
    alias: str | None  # None for a phone named by serial that is not in the registry
    serial: str
    threads: int | None = None
    cores: str | None = None
    adb: str | None = None  # HOST:PORT of the phone's adb server; None: the default server


def default_registry_path() -> Path:
    return user_data_dir() / "devices.toml"


def check_alias(alias: str) -> str:
    if not _ALIAS.fullmatch(alias) or alias in RESERVED:
        raise FarmInputError(f"invalid alias {shorten(alias)}: lower-case letters, digits, '-' and '_' "
                        f"(not {'/'.join(RESERVED)})")
    return alias


def entry_server(entry: DeviceEntry, default: AdbServer) -> AdbServer:
    """The adb server a registered phone is on: its own `adb`, else `default`."""
    return AdbServer.resolve(entry.adb) if entry.adb else default


def check_adb_address(value: str, source: str | None = None) -> str:
    """An adb server address ``HOST:PORT`` (a host name, IPv4 address or [IPv6] address, and a port 1-65535);
    FarmInputError otherwise, its message starting with `source` (e.g. "--adb") when given."""
    host, sep, port = value.rpartition(":")
    if not sep or not (_HOSTNAME.fullmatch(host) or _IPV6.fullmatch(host)) or not port.isascii() \
            or not port.isdigit() or len(port) > 5 or not 0 < int(port) < 65536:
        where = f"{source}: " if source else ""
        raise FarmInputError(f"{where}expected HOST:PORT (such as \"lab-2:5037\"), got {shorten(value)}")
    return value


def _kind(value: object) -> str:
    """What a TOML value is, for a message: `no value`, or its type with the value quoted short."""
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
             dict: "a table"}
    if value is None:
        return "no value"
    return f"{names.get(type(value), type(value).__name__)} {shorten(value, 40)}"


class Registry:
    def __init__(self, path: Path | None = None):
        self.path = path or default_registry_path()

    def load(self) -> dict[str, DeviceEntry]:
        """The registered phones; FarmInputError naming the file, the key and the problem if it is malformed."""
        if not self.path.exists():
            return {}
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise FarmInputError(f"{self.path}: not valid TOML ({e})") from None
        except RecursionError:
            raise FarmInputError(f"{self.path}: not valid TOML (nested too deeply)") from None
        unknown = sorted(set(data) - {"devices"})
        if unknown:
            raise FarmInputError(f"{self.path}: unknown key {shorten(unknown[0], 40)} (the registry holds only "
                            f"[devices.ALIAS] tables)")
        devices = data.get("devices", {})
        if not isinstance(devices, dict):
            raise FarmInputError(f"{self.path}: devices must be a table of [devices.ALIAS] entries, got "
                            f"{_kind(devices)}")
        return {alias: self._entry(alias, fields) for alias, fields in devices.items()}

    def _entry(self, alias: str, fields: object) -> DeviceEntry:
        where = f"{self.path}: [devices.{shorten(alias, 40) if len(alias) > 40 else alias}]"
        if not isinstance(fields, dict):
            raise FarmInputError(f"{where} must be a table with serial = \"...\", got {_kind(fields)}")
        unknown = sorted(set(fields) - set(_KEYS))
        if unknown:
            raise FarmInputError(f"{where} has unknown keys {', '.join(shorten(k, 40) for k in unknown[:5])} "
                            f"(known: {', '.join(_KEYS)})")
        serial, threads, cores, adb = (fields.get(k) for k in _KEYS)
        if not isinstance(serial, str):
            raise FarmInputError(f"{where} needs serial = \"...\" (a string), got {_kind(serial)}")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise FarmInputError(f"{where} threads must be a positive integer, got {shorten(threads)}")
        if cores is not None and (not isinstance(cores, str) or not _MASK.fullmatch(cores)):
            raise FarmInputError(f"{where} cores must be a hex mask string such as \"70\", got {shorten(cores)}")
        if adb is not None:
            if not isinstance(adb, str):
                raise FarmInputError(f"{where} adb must be a string \"HOST:PORT\", got {_kind(adb)}")
            check_adb_address(adb, f"{where} adb")
        try:
            return DeviceEntry(check_alias(alias), check_serial(serial), threads, cores, adb)
        except FarmInputError as e:
            raise FarmInputError(f"{where}: {e}") from None

    def save(self, entries: dict[str, DeviceEntry]) -> None:
        writable_dir(self.path.parent)
        doc = {"devices": {a: {k: v for k, v in asdict(e).items() if k != "alias" and v is not None}
                           for a, e in sorted(entries.items())}}
        try:
            with atomic_output(self.path) as tmp:
                tmp.write_text("# elasticvit-deploy device registry (edit freely)\n" + tomli_w.dumps(doc),
                               encoding="utf-8")
        except OSError as e:
            raise FarmInputError(f"{self.path}: cannot write ({e.strerror or e.__class__.__name__})") from None

    def add(self, entry: DeviceEntry) -> None:
        entries = self.load()
        entries[check_alias(entry.alias or "")] = entry
        self.save(entries)

    def farm(self, default: AdbServer) -> list[tuple[AdbServer, list[DeviceEntry]]]:
        """The farm's adb servers, `default` first, then every other one named in the registry, each with the
        registered phones on it."""
        servers: dict[str, tuple[AdbServer, list[DeviceEntry]]] = {server_name(default): (default, [])}
        for _, entry in sorted(self.load().items()):
            server = entry_server(entry, default)
            servers.setdefault(server_name(server), (server, []))[1].append(entry)
        return list(servers.values())

    def resolve(self, name: str, server: AdbServer | None = None) -> DeviceEntry:
        """An alias from the registry, or a bare serial: the registered entry of that serial (on `server`, when
        given, counting entries without `adb` as on it), else an unregistered entry."""
        entries = self.load()
        if name in entries:
            return entries[name]
        check_serial(name)
        here = None if server is None else server_name(server)
        return next((e for _, e in sorted(entries.items())
                     if e.serial == name and (server is None or server_name(entry_server(e, server)) == here)),
                    DeviceEntry(alias=None, serial=name))
