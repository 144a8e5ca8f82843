"""The device registry: `devices.toml` in the user-data dir, editable by hand, mapping aliases to serials.

    [devices.pixel4]
    serial = "98KAY17CJ1"
    threads = 1          # optional per-device defaults for `measure`
    cores = "70"         # hex core mask for taskset (default: the phone's big cluster)
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
from .adb import FarmError, check_serial

_ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,40}")
_MASK = re.compile(r"[0-9a-fA-F]{1,16}")
RESERVED = ("host", "all")


@dataclass(frozen=True)
class DeviceEntry:
    alias: str | None  # None for a phone named by serial that is not in the registry
    serial: str
    threads: int | None = None
    cores: str | None = None


def default_registry_path() -> Path:
    return user_data_dir() / "devices.toml"


def check_alias(alias: str) -> str:
    if not _ALIAS.fullmatch(alias) or alias in RESERVED:
        raise FarmError(f"invalid alias {shorten(alias)}: lower-case letters, digits, '-' and '_' "
                        f"(not {'/'.join(RESERVED)})")
    return alias


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
        """The registered phones; FarmError naming the file, the key and the problem if it is malformed."""
        if not self.path.exists():
            return {}
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise FarmError(f"{self.path}: not valid TOML ({e})") from None
        except RecursionError:
            raise FarmError(f"{self.path}: not valid TOML (nested too deeply)") from None
        unknown = sorted(set(data) - {"devices"})
        if unknown:
            raise FarmError(f"{self.path}: unknown key {shorten(unknown[0], 40)} (the registry holds only "
                            f"[devices.ALIAS] tables)")
        devices = data.get("devices", {})
        if not isinstance(devices, dict):
            raise FarmError(f"{self.path}: devices must be a table of [devices.ALIAS] entries, got "
                            f"{_kind(devices)}")
        return {alias: self._entry(alias, fields) for alias, fields in devices.items()}

    def _entry(self, alias: str, fields: object) -> DeviceEntry:
        where = f"{self.path}: [devices.{shorten(alias, 40) if len(alias) > 40 else alias}]"
        if not isinstance(fields, dict):
            raise FarmError(f"{where} must be a table with serial = \"...\", got {_kind(fields)}")
        unknown = sorted(set(fields) - {"serial", "threads", "cores"})
        if unknown:
            raise FarmError(f"{where} has unknown keys {', '.join(shorten(k, 40) for k in unknown[:5])} "
                            f"(known: serial, threads, cores)")
        serial, threads, cores = fields.get("serial"), fields.get("threads"), fields.get("cores")
        if not isinstance(serial, str):
            raise FarmError(f"{where} needs serial = \"...\" (a string), got {_kind(serial)}")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise FarmError(f"{where} threads must be a positive integer, got {shorten(threads)}")
        if cores is not None and (not isinstance(cores, str) or not _MASK.fullmatch(cores)):
            raise FarmError(f"{where} cores must be a hex mask string such as \"70\", got {shorten(cores)}")
        try:
            return DeviceEntry(check_alias(alias), check_serial(serial), threads, cores)
        except FarmError as e:
            raise FarmError(f"{where}: {e}") from None

    def save(self, entries: dict[str, DeviceEntry]) -> None:
        writable_dir(self.path.parent)
        doc = {"devices": {a: {k: v for k, v in asdict(e).items() if k != "alias" and v is not None}
                           for a, e in sorted(entries.items())}}
        try:
            with atomic_output(self.path) as tmp:
                tmp.write_text("# elasticvit-deploy device registry (edit freely)\n" + tomli_w.dumps(doc),
                               encoding="utf-8")
        except OSError as e:
            raise FarmError(f"{self.path}: cannot write ({e.strerror or e.__class__.__name__})") from None

    def add(self, entry: DeviceEntry) -> None:
        entries = self.load()
        entries[check_alias(entry.alias or "")] = entry
        self.save(entries)

    def alias_of(self, serial: str) -> str | None:
        return next((a for a, e in self.load().items() if e.serial == serial), None)

    def resolve(self, name: str) -> DeviceEntry:
        """An alias from the registry, or a bare serial."""
        entries = self.load()
        if name in entries:
            return entries[name]
        check_serial(name)
        return next((e for e in entries.values() if e.serial == name), DeviceEntry(alias=None, serial=name))
