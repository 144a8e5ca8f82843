"""What a phone is and how it is doing: properties, core layout, thermal sensors, battery and storage."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .adb import FarmError, Phone

_PROP = re.compile(r"^\[([^\]]+)\]: \[(.*)\]$")
_CPU_ZONE = re.compile(r"cpu|soc|tsens|big|little|mid", re.IGNORECASE)

# One round trip each; constant scripts (no outside input), so running them through `sh -c` is safe.
_CORES_SCRIPT = ("for d in /sys/devices/system/cpu/cpu[0-9]*; do f=$d/cpufreq/cpuinfo_max_freq; "
                 "[ -r $f ] && echo \"${d##*cpu} $(cat $f)\"; done")
_THERMAL_SCRIPT = ("for z in /sys/class/thermal/thermal_zone*; do [ -r $z/temp ] && "
                   "echo \"$z/temp $(cat $z/type 2>/dev/null | tr ' ' _) $(cat $z/temp 2>/dev/null)\"; done")


@dataclass(frozen=True)
class DeviceIdentity:
    serial: str
    model: str
    manufacturer: str
    soc: str
    abi: str
    sdk: int
    build_fingerprint: str
    core_max_khz: list[int]               # per core index
    temp_path: str | None = None          # the sensor the runner waits on (CPU/SoC zone, else battery)
    temp_scale: int = 1000                # raw units per degree Celsius
    alias: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Identifies this physical phone in this build: results are keyed on it."""
        return hashlib.sha256(f"{self.serial}|{self.build_fingerprint}".encode()).hexdigest()[:16]

    def big_core_mask(self) -> str:
        """The fastest cluster with at least two cores (nn-Meter's `taskset 70` on a Pixel 4), as a hex mask."""
        clusters: dict[int, list[int]] = {}
        for core, khz in enumerate(self.core_max_khz):
            clusters.setdefault(khz, []).append(core)
        if not clusters:
            return "1"
        ranked = sorted(clusters.items(), reverse=True)
        cores = next((c for _, c in ranked if len(c) >= 2), ranked[0][1])
        return format(sum(1 << c for c in cores), "x")

    def to_dict(self) -> dict[str, Any]:
        return dict(asdict(self), fingerprint=self.fingerprint, big_core_mask=self.big_core_mask())


def _scale(raw: int) -> int:
    return 1000 if raw >= 1000 else 10 if raw >= 100 else 1


def read_identity(phone: Phone, alias: str | None = None) -> DeviceIdentity:
    phone.check_ready()
    props: dict[str, str] = {}
    for line in phone.shell(["getprop"]).stdout.splitlines():
        if m := _PROP.match(line.strip()):
            props[m.group(1)] = m.group(2)
    if "ro.build.fingerprint" not in props:
        raise FarmError(f"{phone.serial}: getprop returned no ro.build.fingerprint (is this an Android device?)")
    cores: dict[int, int] = {}
    for line in phone.shell_script(_CORES_SCRIPT).stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            cores[int(parts[0])] = int(parts[1])
    temp_path, temp_scale = None, 1000
    zones = []
    for line in phone.shell_script(_THERMAL_SCRIPT).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].lstrip("-").isdigit():
            zones.append((parts[0], parts[1], int(parts[2])))
    cpu_zones = [z for z in zones if _CPU_ZONE.search(z[1]) and z[2] > 0]
    if cpu_zones:
        temp_path, temp_scale = cpu_zones[0][0], _scale(cpu_zones[0][2])
    else:
        battery = phone.shell(["cat", "/sys/class/power_supply/battery/temp"])
        if battery.exit_code == 0 and battery.stdout.strip().isdigit():
            temp_path, temp_scale = "/sys/class/power_supply/battery/temp", 10
    sdk = props.get("ro.build.version.sdk", "0")
    return DeviceIdentity(
        serial=phone.serial, model=props.get("ro.product.model", "?"),
        manufacturer=props.get("ro.product.manufacturer", props.get("ro.soc.manufacturer", "?")),
        soc=props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware", "?"),
        abi=props.get("ro.product.cpu.abi", "?"), sdk=int(sdk) if sdk.isdigit() else 0,
        build_fingerprint=props["ro.build.fingerprint"],
        core_max_khz=[cores[i] for i in sorted(cores)], temp_path=temp_path, temp_scale=temp_scale, alias=alias,
        extra={"thermal_zones": [{"path": p, "type": t} for p, t, _ in zones]})


@dataclass(frozen=True)
class Health:
    battery_level: int | None
    temperature_c: float | None
    free_storage_mb: int | None

    def problems(self, min_battery: int, max_temp_c: float, min_free_mb: int) -> list[str]:
        out = []
        if self.battery_level is not None and self.battery_level < min_battery:
            out.append(f"battery at {self.battery_level}% (< {min_battery}%)")
        if self.temperature_c is not None and self.temperature_c > max_temp_c:
            out.append(f"temperature {self.temperature_c:.1f} C (> {max_temp_c:.0f} C)")
        if self.free_storage_mb is not None and self.free_storage_mb < min_free_mb:
            out.append(f"{self.free_storage_mb} MB free in /data/local/tmp (< {min_free_mb} MB)")
        return out


def read_health(phone: Phone, identity: DeviceIdentity) -> Health:
    level = temp = free = None
    for line in phone.shell(["dumpsys", "battery"]).stdout.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "level" and value.strip().isdigit():
            level = int(value.strip())
    if identity.temp_path:
        r = phone.shell(["cat", identity.temp_path])
        if r.exit_code == 0 and r.stdout.strip().lstrip("-").isdigit():
            temp = int(r.stdout.strip()) / identity.temp_scale
    df = phone.shell(["df", "-k", "/data/local/tmp"]).stdout.splitlines()
    if len(df) >= 2:
        fields = df[-1].split()
        if len(fields) >= 4 and fields[3].isdigit():
            free = int(fields[3]) // 1024
    return Health(level, temp, free)
