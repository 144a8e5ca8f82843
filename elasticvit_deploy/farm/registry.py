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

from ..paths import user_data_dir
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
        raise FarmError(f"invalid alias {alias!r}: lower-case letters, digits, '-' and '_' (not {'/'.join(RESERVED)})")
    return alias


class Registry:
    def __init__(self, path: Path | None = None):
        self.path = path or default_registry_path()

    def load(self) -> dict[str, DeviceEntry]:
        if not self.path.exists():
            return {}
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise FarmError(f"{self.path}: not valid TOML ({e})") from None
        entries = {}
        for alias, fields in (data.get("devices") or {}).items():
            if not isinstance(fields, dict) or not isinstance(fields.get("serial"), str):
                raise FarmError(f"{self.path}: [devices.{alias}] needs serial = \"...\"")
            unknown = set(fields) - {"serial", "threads", "cores"}
            if unknown:
                raise FarmError(f"{self.path}: [devices.{alias}] has unknown keys {', '.join(sorted(unknown))}")
            entries[alias] = self._entry(alias, fields)
        return entries

    def _entry(self, alias: str, fields: dict) -> DeviceEntry:
        threads, cores = fields.get("threads"), fields.get("cores")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise FarmError(f"{self.path}: [devices.{alias}] threads must be a positive integer")
        if cores is not None and (not isinstance(cores, str) or not _MASK.fullmatch(cores)):
            raise FarmError(f"{self.path}: [devices.{alias}] cores must be a hex mask string such as \"70\"")
        return DeviceEntry(check_alias(alias), check_serial(fields["serial"]), threads, cores)

    def save(self, entries: dict[str, DeviceEntry]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"devices": {a: {k: v for k, v in asdict(e).items() if k != "alias" and v is not None}
                           for a, e in sorted(entries.items())}}
        with atomic_output(self.path) as tmp:
            tmp.write_text("# elasticvit-deploy device registry (edit freely)\n" + tomli_w.dumps(doc),
                           encoding="utf-8")

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
