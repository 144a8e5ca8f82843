"""What a phone is and how it is doing: properties, core layout, the temperature sensor, battery and storage.

Cores are indexed by their sysfs number (cpuN): an offline core keeps its place, and its maximum frequency comes
from its cpufreq policy (`related_cpus`) when its own cpufreq directory is gone.

The temperature sensor is chosen among the thermal zones by `choose_temp_sensor` (see there for the rules).
Kernels disagree on units: the sysfs ABI says millidegrees, but older vendor drivers report decidegrees (the
tsens sensors of an msm8953 read 309 for 30.9 C) or whole degrees (its xo_therm reads 30). The unit is decided per
zone from its reading at identity time and then kept for that zone.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .adb import FarmError, Phone, server_name

BATTERY_TEMP_PATH = "/sys/class/power_supply/battery/temp"  # decidegrees (Android's health HAL reads it so)
BATTERY_TEMP_SCALE = 10
PLAUSIBLE_C = (5.0, 120.0)  # a phone's sensor reading outside this range is not a temperature we can use

_PROP = re.compile(r"^\[([^\]]+)\]: \[(.*)\]$")
_INT = re.compile(r"-?\d+")

# Zones that report the battery gauge or PMIC current/voltage limits ("battery current limit", BCL), not degrees:
# Qualcomm's `soc`/`socd` (state of charge in percent), `pmXXXX-bcl-lvlN`, `-ibat-`/`-vbat-`/`-vph-` levels,
# `vbat`/`ibat`; Google's Tensor BCL zones (`batoilo`, `vdroop1`, `smpl_gm`, `ocp_cpu1`, `soft_ocp_gpu`,
# `battery_cycle`).
_NOT_A_TEMPERATURE = re.compile(r"^socd?$|bcl|-lvl\d|ibat|vbat|vph|batoilo|vdroop|smpl|ocp_|battery_cycle",
                                re.IGNORECASE)
_CPU = re.compile(r"^cpu|cpuss|mtktscpu|^big$|^mid$|^little$|^apc|cluster|tsens_tz_sensor", re.IGNORECASE)
_BIG_CLUSTER = re.compile(r"^cpu-1-|^cpuss-1|^big$|gold|prime", re.IGNORECASE)
_DERIVED = re.compile(r"-step$|-lowf$|-max-step$|-avg-step$", re.IGNORECASE)  # virtual copies of a sensor
_SOC_OR_GPU = re.compile(r"gpu|g3d|^soc[_-]|_soc$|soc_max|mtktsap|aoss|ddr|npu|tpu", re.IGNORECASE)
_BATTERY = re.compile(r"^battery$|^mtktsbattery|^batt_therm$|^bms$", re.IGNORECASE)
KIND_RANK = {"cpu": 0, "soc": 1, "battery": 2}

# One round trip each; constant scripts (no outside input), so running them through `sh -c` is safe. They use
# only mksh builtins and `cat`, which every Android shell has.
_CORES_SCRIPT = (
    "for d in /sys/devices/system/cpu/cpu[0-9]*; do [ -d $d ] || continue; "
    "echo \"cpu|${d##*/cpu}|$(cat $d/online 2>/dev/null)|$(cat $d/cpufreq/cpuinfo_max_freq 2>/dev/null)\"; done; "
    "for p in /sys/devices/system/cpu/cpufreq/policy[0-9]*; do [ -d $p ] || continue; "
    "echo \"policy|$(cat $p/cpuinfo_max_freq 2>/dev/null)|$(cat $p/related_cpus 2>/dev/null)\"; done")
SENSOR_INFO_PATH = "/sys/module/msm_thermal/sensor_info"  # older Qualcomm kernels: which tsens sensor is which core
_THERMAL_SCRIPT = (
    "for z in /sys/class/thermal/thermal_zone*; do [ -d $z ] || continue; trips=; "
    "for f in $z/trip_point_*_type; do [ \"$(cat $f 2>/dev/null)\" = passive ] && "
    "trips=\"$trips,$(cat ${f%_type}_temp 2>/dev/null)\"; done; "
    "echo \"zone|$z/temp|$(cat $z/temp 2>/dev/null)|$trips|$(cat $z/type 2>/dev/null)\"; done; "
    f"echo \"battery|{BATTERY_TEMP_PATH}|$(cat {BATTERY_TEMP_PATH} 2>/dev/null)||battery\"; "
    f"cat {SENSOR_INFO_PATH} 2>/dev/null | while read -r line; do echo \"alias|$line\"; done")


@dataclass(frozen=True)
class ThermalZone:
    """One temperature file as read at identity time: `raw` is None when it could not be read."""

    path: str
    type: str
    raw: int | None
    passive_trips_raw: tuple[int, ...] = ()  # the zone's passive trip points (where the kernel throttles), raw
    alias: str | None = None  # what msm_thermal's sensor_info calls it ("cpu4", "gpu"), on kernels that have it

    @property
    def number(self) -> int:
        """The N of thermal_zoneN (zones are ordered by it; -1 for a file outside /sys/class/thermal)."""
        m = re.search(r"thermal_zone(\d+)/", self.path)
        return int(m.group(1)) if m else -1


@dataclass(frozen=True)
class TempSensor:
    """The sensor the runner waits on: `scale` raw units per degree Celsius, `kind` cpu/soc/battery."""

    path: str
    type: str
    scale: int
    kind: str
    celsius: float                      # the reading when it was chosen
    throttle_c: float | None = None     # the zone's lowest passive trip point, where the kernel starts throttling

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def raw_scale(raw: int) -> int:
    """Raw units per degree for a reading of this size: 1000 (millidegrees, the ABI) from 1000 up, 10 (decidegrees)
    from 100, else 1 (degrees). Readings of 100..999 are taken as decidegrees: 10..100 C is where phones are."""
    magnitude = abs(raw)
    return 1000 if magnitude >= 1000 else 10 if magnitude >= 100 else 1


def plausible_celsius(raw: int | None, scale: int) -> float | None:
    """raw / scale when that is a plausible phone temperature (PLAUSIBLE_C), else None (unknown, never cool)."""
    if raw is None or scale <= 0:
        return None
    celsius = raw / scale
    return celsius if PLAUSIBLE_C[0] <= celsius <= PLAUSIBLE_C[1] else None


def zone_kind(zone_type: str, alias: str | None = None) -> str | None:
    """cpu, soc (other die sensors: GPU, SoC, memory, NPU) or battery; None for zones never chosen (BCL levels
    and battery percent, board/skin/radio thermistors). A sensor_info alias (`cpu4`, `gpu`) names the sensor."""
    if _NOT_A_TEMPERATURE.search(zone_type):
        return None
    for name in (alias, zone_type):
        if not name:
            continue
        if _CPU.search(name):
            return "cpu"
        if _SOC_OR_GPU.search(name):
            return "soc"
        if _BATTERY.search(name):
            return "battery"
    return None


def _cpu_preference(zone: ThermalZone) -> int:
    """Within the CPU zones: a big-cluster sensor first, then other core sensors (a tsens sensor that
    sensor_info names `cpuN` among them), then virtual copies (-step), then unnamed tsens sensors."""
    if zone.type.lower().startswith("tsens_tz_sensor"):
        return 1 if zone.alias and _CPU.search(zone.alias) else 3
    if _DERIVED.search(zone.type):
        return 2
    return 0 if _BIG_CLUSTER.search(zone.type) else 1


def choose_temp_sensor(zones: list[ThermalZone]) -> TempSensor | None:
    """The sensor to wait on: the best-ranked zone whose reading is a plausible temperature.

    Ranking: CPU cluster zones (`cpu-1-0-usr`, `cpuss-0-usr`, `cpu0-silver-usr`, `mtktscpu`, `BIG`, `LITTLE`,
    `tsens_tz_sensorN`), then SoC/GPU zones, then the battery (a `battery` zone, or the power_supply file, given
    as a zone of type `battery` outside /sys/class/thermal). Zones that report battery percent, current or
    voltage (Qualcomm's `soc`, `pm8150b-bcl-lvl0`, `vbat`; Tensor's `ocp_cpu1`, `vdroop1`) are never chosen, whatever
    they read. Ties go to the lowest thermal_zone number. Each zone's scale comes from its own reading (raw_scale);
    the power_supply battery file is decidegrees."""
    best: tuple[tuple[int, int, int], TempSensor] | None = None
    for zone in zones:
        kind = zone_kind(zone.type, zone.alias)
        if kind is None or zone.raw is None:
            continue
        outside = zone.number < 0
        scale = BATTERY_TEMP_SCALE if outside and kind == "battery" else raw_scale(zone.raw)
        celsius = plausible_celsius(zone.raw, scale)
        if celsius is None:
            continue
        rank = (KIND_RANK[kind], _cpu_preference(zone) if kind == "cpu" else 0,
                zone.number if not outside else 1 << 30)
        if best is None or rank < best[0]:
            trips = [t / scale for t in zone.passive_trips_raw if plausible_celsius(t, scale) is not None]
            best = (rank, TempSensor(zone.path, zone.type, scale, kind, celsius, min(trips) if trips else None))
    return best[1] if best else None


def parse_thermal_listing(text: str) -> list[ThermalZone]:
    """The output of _THERMAL_SCRIPT: `zone|PATH|RAW|,TRIP,...|TYPE` lines, one `battery|PATH|RAW||battery` line
    and `alias|KIND:NAME:ALIAS:SCALE` lines (msm_thermal's sensor_info, where the kernel has it)."""
    rows, aliases = [], {}
    for line in text.splitlines():
        line = line.rstrip("\r")
        if line.startswith("alias|"):
            fields = line[len("alias|"):].split(":")
            if len(fields) >= 3 and fields[2]:
                aliases[fields[1]] = fields[2]
            continue
        parts = line.split("|", 4)
        if len(parts) == 5 and parts[0] in ("zone", "battery"):
            rows.append(parts[1:])
    zones = []
    for path, raw, trips, zone_type in rows:
        raw, zone_type = raw.strip(), zone_type.strip()
        zones.append(ThermalZone(path, zone_type, int(raw) if _INT.fullmatch(raw) else None,
                                 tuple(int(t) for t in trips.split(",") if _INT.fullmatch(t.strip())),
                                 aliases.get(zone_type)))
    return zones


def parse_core_listing(text: str) -> tuple[list[int], list[int]]:
    """From _CORES_SCRIPT's output (`cpu|N|ONLINE|MAX_KHZ` and `policy|MAX_KHZ|RELATED CPUS` lines): the maximum
    frequency (kHz) of every core by its number, 0 where unknown, and the offline cores. A core whose own
    cpuinfo_max_freq cannot be read (an offline core's cpufreq directory is gone) takes its policy's."""
    own: dict[int, int] = {}
    policy: dict[int, int] = {}
    offline: set[int] = set()
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 4 and parts[0] == "cpu" and parts[1].isdigit():
            core = int(parts[1])
            own.setdefault(core, 0)
            if parts[2] == "0":
                offline.add(core)
            if parts[3].isdigit():
                own[core] = int(parts[3])
        elif len(parts) == 3 and parts[0] == "policy" and parts[1].isdigit():
            for cpu in parts[2].split():
                if cpu.isdigit():
                    policy[int(cpu)] = int(parts[1])
    numbers = set(own) | set(policy)
    if not numbers:
        return [], []
    return [own.get(c) or policy.get(c, 0) for c in range(max(numbers) + 1)], sorted(offline)


@dataclass(frozen=True)
class DeviceIdentity:
    serial: str
    adb: str                              # the adb server it is on (HOST:PORT, canonical)
    model: str
    manufacturer: str
    soc: str
    abi: str
    sdk: int
    build_fingerprint: str
    core_max_khz: list[int]               # by core number (cpuN), 0 where unknown
    temp_sensor: TempSensor | None = None  # the sensor the runner waits on (CPU zone, else SoC, else battery)
    alias: str | None = None
    offline_cores: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Identifies this phone (serial on its adb server) in this build: results are keyed on it. Two phones
        with one serial on two servers (identical devices, emulators) are told apart; a phone moved to another
        server starts afresh."""
        return hashlib.sha256(f"{self.adb}|{self.serial}|{self.build_fingerprint}".encode()).hexdigest()[:16]

    @property
    def temp_path(self) -> str | None:
        return self.temp_sensor.path if self.temp_sensor else None

    @property
    def temp_scale(self) -> int:
        return self.temp_sensor.scale if self.temp_sensor else 1000

    def big_core_mask(self) -> str:
        """The fastest cluster with at least two cores (nn-Meter's `taskset 70` on a Pixel 4), as a hex mask over
        core numbers; cores of unknown frequency are left out."""
        clusters: dict[int, list[int]] = {}
        for core, khz in enumerate(self.core_max_khz):
            if khz > 0:
                clusters.setdefault(khz, []).append(core)
        if not clusters:
            return "1"
        ranked = sorted(clusters.items(), reverse=True)
        cores = next((c for _, c in ranked if len(c) >= 2), ranked[0][1])
        return format(sum(1 << c for c in cores), "x")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return dict(out, temp_path=self.temp_path, temp_scale=self.temp_scale, fingerprint=self.fingerprint,
                    big_core_mask=self.big_core_mask())


def read_identity(phone: Phone, alias: str | None = None) -> DeviceIdentity:
    phone.check_ready()
    props: dict[str, str] = {}
    for line in phone.shell(["getprop"]).stdout.splitlines():
        if m := _PROP.match(line.strip()):
            props[m.group(1)] = m.group(2)
    if "ro.build.fingerprint" not in props:
        raise FarmError(f"{phone.serial}: getprop returned no ro.build.fingerprint (is this an Android device?)")
    core_max_khz, offline = parse_core_listing(phone.shell_script(_CORES_SCRIPT).stdout)
    zones = parse_thermal_listing(phone.shell_script(_THERMAL_SCRIPT).stdout)
    sdk = props.get("ro.build.version.sdk", "0")
    return DeviceIdentity(
        serial=phone.serial, adb=server_name(phone.server), model=props.get("ro.product.model", "?"),
        manufacturer=props.get("ro.product.manufacturer", props.get("ro.soc.manufacturer", "?")),
        soc=props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware", "?"),
        abi=props.get("ro.product.cpu.abi", "?"), sdk=int(sdk) if sdk.isdigit() else 0,
        build_fingerprint=props["ro.build.fingerprint"], core_max_khz=core_max_khz,
        temp_sensor=choose_temp_sensor(zones), alias=alias, offline_cores=offline,
        extra={"thermal_zones": [{"path": z.path, "type": z.type} for z in zones if z.number >= 0]})


@dataclass(frozen=True)
class Health:
    battery_level: int | None
    temperature_c: float | None      # None: no sensor gave a plausible reading (unknown, not cool)
    free_storage_mb: int | None
    temperature_sensor: str | None = None  # the path that gave temperature_c

    def problems(self, min_battery: int, max_temp_c: float, min_free_mb: int) -> list[str]:
        out = []
        if self.battery_level is not None and self.battery_level < min_battery:
            out.append(f"battery at {self.battery_level}% (< {min_battery}%)")
        if self.temperature_c is not None and self.temperature_c > max_temp_c:
            out.append(f"temperature {self.temperature_c:.1f} C (> {max_temp_c:.0f} C)")
        if self.free_storage_mb is not None and self.free_storage_mb < min_free_mb:
            out.append(f"{self.free_storage_mb} MB free in /data/local/tmp (< {min_free_mb} MB)")
        return out


def _read_celsius(phone: Phone, path: str, scale: int) -> float | None:
    r = phone.shell(["cat", path])
    raw = r.stdout.strip()
    return plausible_celsius(int(raw), scale) if r.exit_code == 0 and _INT.fullmatch(raw) else None


def read_health(phone: Phone, identity: DeviceIdentity) -> Health:
    """Battery level, temperature and free storage now. The temperature is the identity's sensor, else the
    battery's when that sensor fails or reads an implausible value, else None (unknown)."""
    level = temp = free = None
    for line in phone.shell(["dumpsys", "battery"]).stdout.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "level" and value.strip().isdigit():
            level = int(value.strip())
    source = None
    candidates = [(identity.temp_path, identity.temp_scale)] if identity.temp_path else []
    if identity.temp_path != BATTERY_TEMP_PATH:
        candidates.append((BATTERY_TEMP_PATH, BATTERY_TEMP_SCALE))
    for path, scale in candidates:
        if (temp := _read_celsius(phone, path, scale)) is not None:
            source = path
            break
    df = phone.shell(["df", "-k", "/data/local/tmp"]).stdout.splitlines()
    if len(df) >= 2:
        fields = df[-1].split()
        if len(fields) >= 4 and fields[3].isdigit():
            free = int(fields[3]) // 1024
    return Health(level, temp, free, source)
