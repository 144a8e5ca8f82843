"""The file tree of a simulated phone: directories, sysfs files, its userland and the generated device tools.

/system/bin holds mksh as sh, toybox and its applets (sandbox.install), and small generated mksh scripts for what
the phone's own build provides: getprop, dumpsys (battery only), id (Android's names for uid 2000) and df (the
profile's storage). taskset is a script too: unlike toybox's, it cannot pin the host's CPUs to the phone's cores,
so it hands the mask to the simulated benchmark_model instead. The pre-installed benchmark_model is a client of
the phone's benchmark service (benchmark_service.py); a comment in it names the timing it gets (twin.py
`timing_identity`: the timing model and the table it follows), so the tool's sha256, which the farm's results store
keys on, changes with the timing.

Thermal zones: thermal_zone0 "cpu-therm" (the CPU) and thermal_zone1 "battery"; with the bcl-soc-zone quirk the
zones of a real SM8250 phone (their types and order as dumped from a Retroid Pocket 5, see the package
docstring), with the BCL zone "soc" moved to thermal_zone0. Qualcomm's bcl_soc driver reports the battery
percentage as that zone's temperature (drivers/thermal/qcom/bcl_soc.c, bcl_read_soc: POWER_SUPPLY_PROP_CAPACITY),
so it reads e.g. 85; CPU zones follow the CPU temperature, battery/bms the battery, the current, voltage and BCL
level zones and the unconnected thermistors keep the readings of that dump, other board sensors sit halfway
between ambient and the CPU.
"""

from __future__ import annotations

import os
import shlex
import threading
from pathlib import Path

from . import sandbox as userland_tools
from .profiles import PhoneProfile
from .sandbox import BENCHMARK_SOCKET, SOCKET_DIR, Userland
from .thermal import Thermal, freq_fraction

# (type, fixed reading or None) of the SM8250 zones in the recorded dump's order, "soc" taken out (it goes first)
_SM8250_ZONES: tuple[tuple[str, int | None], ...] = (
    ("aoss0-usr", None), ("cpu-0-0-usr", None), ("cpu-1-3-usr", None), ("cpu-1-4-usr", None),
    ("cpu-1-5-usr", None), ("cpu-1-6-usr", None), ("cpu-1-7-usr", None), ("gpuss-0-usr", None),
    ("aoss-1-usr", None), ("cwlan-usr", None), ("video-usr", None), ("ddr-usr", None), ("cpu-0-1-usr", None),
    ("q6-hvx-usr", None), ("camera-usr", None), ("cmpss-usr", None), ("npu-usr", None), ("gpuss-1-usr", None),
    ("gpuss-max-step", None), ("apc-0-max-step", None), ("apc-1-max-step", None), ("pop-mem-step", None),
    ("cpu-0-0-step", None), ("cpu-0-2-usr", None), ("cpu-0-1-step", None), ("cpu-0-2-step", None),
    ("cpu-0-3-step", None), ("cpu-1-0-step", None), ("cpu-1-1-step", None), ("cpu-1-2-step", None),
    ("cpu-1-3-step", None), ("cpu-1-4-step", None), ("cpu-1-5-step", None), ("cpu-1-6-step", None),
    ("cpu-0-3-usr", None), ("cpu-1-7-step", None), ("cwlan-step", None), ("video-step", None),
    ("ddr-step", None), ("q6-hvx-step", None), ("camera-step", None), ("cmpss-step", None), ("npu-step", None),
    ("cpuss-0-usr", None), ("cpuss-1-usr", None), ("pm8150_tz", None), ("pm8150b_tz", None),
    ("pm8150b-ibat-lvl0", 546), ("pm8150b-ibat-lvl1", 781), ("pm8150b-vbat-lvl0", 3986),
    ("pm8150b-vbat-lvl1", 3986), ("cpu-1-0-usr", None), ("pm8150b-vbat-lvl2", 3986), ("pm8150b-bcl-lvl0", 0),
    ("pm8150l_tz", None), ("pm8150l-vph-lvl0", 0), ("pm8150l-bcl-lvl0", -274000), ("cpu-1-1-usr", None),
    ("conn-therm-usr", None), ("xo-therm-usr", None), ("skin-therm-usr", None), ("mmw-pa1-usr", None),
    ("camera-therm-usr", -40000), ("skin-msm-therm-usr", -40000), ("mmw-pa2-usr", -40000),
    ("gpu-skin-avg-step", 7600), ("cpu-1-2-usr", None), ("bms", None), ("battery", None),
)
OFFLINE_CORE = 4  # the core the offline-core quirk takes offline

BENCHMARK_MODEL = "/data/local/tmp/elasticvit-deploy/benchmark_model"
SHELL_UID_LINE = ("uid=2000(shell) gid=2000(shell) groups=2000(shell),1004(input),1007(log),1011(adb),"
                  "1015(sdcard_rw),1028(sdcard_r),3001(net_bt_admin),3002(net_bt),3003(inet),3006(net_bw_stats),"
                  "3009(readproc),3011(uhid) context=u:r:shell:s0")
_BATTERY_SHARE = 0.35  # the battery sees this share of the CPU's excess temperature


def thermal_zones(quirks: frozenset[str]) -> list[tuple[str, int | None]]:
    """(type, fixed reading or None) of thermal_zone0, thermal_zone1, ... of a phone with these quirks."""
    if "bcl-soc-zone" in quirks:
        return [("soc", None), *_SM8250_ZONES]
    return [("cpu-therm", None), ("battery", None)]


def online_cores(profile: PhoneProfile, quirks: frozenset[str]) -> list[int]:
    return [cpu for cpu in range(profile.num_cores) if not ("offline-core" in quirks and cpu == OFFLINE_CORE)]


def props(profile: PhoneProfile, serial: str, quirks: frozenset[str]) -> dict[str, str]:
    """getprop of the phone: the profile's, reporting Android 6.0.1 (SDK 23) under the shell-v1 quirk."""
    values = profile.props(serial)
    if "shell-v1" in quirks:
        values.update({"ro.build.version.sdk": "23", "ro.build.version.release": "6.0.1"})
    return values


def build(sandbox: Path, profile: PhoneProfile, serial: str, userland: Userland, quirks: frozenset[str],
          timing: str) -> None:
    """Create the directory tree, the userland, the tools and the pre-installed benchmark_model of a fresh phone
    (the sensor files are written by Sensors); `timing` names the simulated tool's timing (one line)."""
    for d in ("data/local/tmp/elasticvit-deploy", "sdcard", "system/bin", "sys"):
        (sandbox / d).mkdir(parents=True, exist_ok=True)
    sysfs = sandbox / "sys"
    for zone, (kind, _) in enumerate(thermal_zones(quirks)):
        _write(sysfs / f"class/thermal/thermal_zone{zone}/type", f"{kind}\n")
    _write(sysfs / "class/power_supply/battery/capacity", f"{profile.battery_level}\n")
    online = online_cores(profile, quirks)
    cpus = sysfs / "devices/system/cpu"
    _write(cpus / "possible", f"0-{profile.num_cores - 1}\n")
    _write(cpus / "online", f"{_cpu_list(online)}\n")
    _write(cpus / "offline", f"{_cpu_list([c for c in range(profile.num_cores) if c not in online])}\n")
    for first, related in _policies(profile).items():  # a policy outlives its offline cores, as on Android
        policy = cpus / f"cpufreq/policy{first}"
        _write(policy / "related_cpus", " ".join(map(str, related)) + "\n")
        _write(policy / "cpuinfo_max_freq", f"{profile.core_max_freqs_khz[first]}\n")
    for cpu, khz in enumerate(profile.core_max_freqs_khz):
        if cpu:  # cpu0 cannot be taken offline and has no online file
            _write(cpus / f"cpu{cpu}/online", f"{int(cpu in online)}\n")
        if cpu not in online:
            (cpus / f"cpu{cpu}").mkdir(parents=True, exist_ok=True)
            continue
        cpufreq = cpus / f"cpu{cpu}/cpufreq"
        _write(cpufreq / "cpuinfo_max_freq", f"{khz}\n")
        _write(cpufreq / "scaling_governor", "schedutil\n")
    tools = {"getprop": _getprop(props(profile, serial, quirks)), "dumpsys": _dumpsys(),
             "taskset": _taskset(online), "id": _id(), "df": _df(profile)}
    userland_tools.install(userland, sandbox / "system/bin", set(tools))
    for name, text in tools.items():
        _write(sandbox / "system/bin" / name, text, executable=True)
    _write(sandbox / BENCHMARK_MODEL.lstrip("/"), _benchmark_client(timing), executable=True)


def _policies(profile: PhoneProfile) -> dict[int, list[int]]:
    """cpufreq policies: each run of neighbouring cores of one maximum frequency, named after its first core."""
    out: dict[int, list[int]] = {}
    first = 0
    for cpu, khz in enumerate(profile.core_max_freqs_khz):
        if cpu and khz != profile.core_max_freqs_khz[cpu - 1]:
            first = cpu
        out.setdefault(first, []).append(cpu)
    return out


class Sensors:
    """Writes the temperature and current-frequency files of a phone from its thermal model. With the
    idle-freq-drop quirk an idle phone's cores show the profile's idle frequency."""

    def __init__(self, sandbox: Path, thermal: Thermal, quirks: frozenset[str] = frozenset()) -> None:
        self.sandbox = sandbox
        self.thermal = thermal
        self.quirks = quirks
        self.zones = thermal_zones(quirks)
        self.online = online_cores(thermal.profile, quirks)
        self._written: dict[Path, str] = {}
        self._busy = 0

    def refresh(self) -> float:
        """Bring the files up to date (writing only those that changed); returns the temperature."""
        profile = self.thermal.profile
        temp_mc, busy = self.thermal.sample()
        if busy != self._busy:  # a benchmark process started or ended: it may have written the files meanwhile
            self._written.clear()
            self._busy = busy
        battery_mc = profile.ambient_mc + _BATTERY_SHARE * (temp_mc - profile.ambient_mc)
        sysfs = self.sandbox / "sys"
        values = {sysfs / f"class/thermal/thermal_zone{zone}/temp":
                  _zone_reading(kind, fixed, temp_mc, battery_mc, profile)
                  for zone, (kind, fixed) in enumerate(self.zones)}
        values[sysfs / "class/power_supply/battery/temp"] = round(battery_mc / 100)
        fraction = freq_fraction(profile, temp_mc)
        idle = "idle-freq-drop" in self.quirks and busy == 0
        for cpu in self.online:
            khz = profile.core_max_freqs_khz[cpu]
            current = min(profile.idle_freq_khz, khz) if idle else round(khz * fraction)
            values[sysfs / f"devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq"] = current
        for path, value in values.items():
            text = f"{value}\n"
            if self._written.get(path) != text:
                _write(path, text)
                self._written[path] = text
        return temp_mc


def _zone_reading(kind: str, fixed: int | None, cpu_mc: float, battery_mc: float, profile: PhoneProfile) -> int:
    if fixed is not None:
        return fixed
    if kind == "soc":
        return profile.battery_level
    if kind.startswith(("cpu", "apc-")):
        return round(cpu_mc)
    if kind in ("battery", "bms"):
        return round(battery_mc)
    return round(profile.ambient_mc + (cpu_mc - profile.ambient_mc) / 2)


def _cpu_list(cpus: list[int]) -> str:
    """The kernel's cpu list format: 0-3,5-7 (empty for none)."""
    ranges: list[str] = []
    for cpu in cpus:
        if ranges and cpu == int(ranges[-1].split("-")[-1]) + 1:
            ranges[-1] = f"{ranges[-1].split('-')[0]}-{cpu}"
        else:
            ranges.append(str(cpu))
    return ",".join(ranges)


def _write(path: Path, text: str, executable: bool = False) -> None:
    """Write atomically (a private temporary file, then rename), so a concurrent `cat` never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o755 if executable else 0o644)
    os.replace(tmp, path)


def _getprop(props: dict[str, str]) -> str:
    listing = "".join(f"[{k}]: [{v}]\n" for k, v in sorted(props.items()))
    cases = "".join(f"  {shlex.quote(k)}) echo {shlex.quote(v)} ;;\n" for k, v in sorted(props.items()))
    return ("#!/system/bin/sh\n"
            "# getprop of a simulated phone: no argument lists all, unknown names print the default.\n"
            f"if [ $# -eq 0 ]; then\ncat <<'END_OF_PROPS'\n{listing}END_OF_PROPS\nexit 0\nfi\n"
            f'case "$1" in\n{cases}  *) echo "$2" ;;\nesac\n')


def _dumpsys() -> str:
    battery = "/sys/class/power_supply/battery"
    lines = ["Current Battery Service state:", "  AC powered: false", "  USB powered: true",
             "  Wireless powered: false", "  Max charging current: 500000", "  Max charging voltage: 5000000",
             "  status: 2", "  health: 2", "  present: true", "  level: $(cat \"$B/capacity\")", "  scale: 100",
             "  voltage: 4200", "  temperature: $(cat \"$B/temp\")", "  technology: Li-ion"]
    body = "".join(f'    echo "{line}"\n' for line in lines)
    return ("#!/system/bin/sh\n# dumpsys of a simulated phone: only the battery service.\n"
            f'B={battery}\ncase "$1" in\n  battery)\n{body}    ;;\n'
            '  *) echo "Can\'t find service: $1" >&2; exit 1 ;;\nesac\n')


def _taskset(online: list[int]) -> str:
    all_cores = sum(1 << cpu for cpu in online)
    return ("#!/system/bin/sh\n"
            "# taskset MASK COMMAND [ARGS...] of a simulated phone. Like sched_setaffinity it fails when\n"
            "# the hex mask names none of the phone's online cores. Host CPUs are not pinned: the mask is passed\n"
            "# on to the simulated benchmark_model in EVD_SIM_CORES.\n"
            'm=${1#0x}\ncase "$m" in\n'
            '  ""|-*) echo "usage: taskset MASK COMMAND [ARGS...]" >&2; exit 1 ;;\n'
            '  *[!0-9a-fA-F]*|?????????*) echo "taskset: bad mask \'$1\'" >&2; exit 1 ;;\nesac\n'
            f"mask=$((0x$m & {all_cores}))\n"
            'if [ "$mask" -eq 0 ]; then echo "taskset: sched_setaffinity: Invalid argument" >&2; exit 1; fi\n'
            '[ $# -ge 2 ] || { echo "usage: taskset MASK COMMAND [ARGS...]" >&2; exit 1; }\n'
            'shift\nEVD_SIM_CORES=$mask\nexport EVD_SIM_CORES\nexec "$@"\n')


def _id() -> str:
    return ("#!/system/bin/sh\n# id of the (unrooted) shell user of a simulated phone.\ncase \"$*\" in\n"
            "  -u|-g) echo 2000 ;;\n  -un|-nu|-gn|-ng) echo shell ;;\n"
            f"  '') echo {shlex.quote(SHELL_UID_LINE)} ;;\n"
            '  *) echo "id: unsupported arguments: $*" >&2; exit 1 ;;\nesac\n')


def _df(profile: PhoneProfile) -> str:
    free_kb = profile.free_storage_mb * 1024
    used_kb = 24 * 1024 * 1024
    total_kb = free_kb + used_kb
    use = round(100 * used_kb / total_kb)
    row = f"{total_kb:>10} {used_kb:>9} {free_kb:>9} {use:>3}%"
    return ("#!/system/bin/sh\n# df of a simulated phone (fixed figures from its profile; arguments are ignored).\n"
            "echo 'Filesystem       1K-blocks      Used Available Use% Mounted on'\n"
            f"echo '/dev/block/dm-8 {row} /data'\necho '/dev/fuse       {row} /storage/emulated'\n")


def _benchmark_client(timing: str) -> str:
    socket = f"{SOCKET_DIR}/{BENCHMARK_SOCKET}"
    return f"""#!/system/bin/sh
# LiteRT benchmark_model of a simulated phone. The simulation needs the host's LiteRT, so it runs outside the
# phone: this script sends its arguments to the phone's benchmark service ({socket}) and prints the
# output that comes back (stdout and stderr apart), then exits with the simulation's exit code.
# Simulated timing: {" ".join(timing.split())}
{{
  print -r -- "argv0 $0"
  print -r -- "cwd $PWD"
  print -r -- "cores ${{EVD_SIM_CORES:-}}"
  for arg in "$@"; do print -r -- "arg $arg"; done
  print -r -- end
}} | nc -U {socket} 2>/dev/null | {{
  code=""
  while IFS= read -r line; do
    case "$line" in
      "1 "*) print -r -- "${{line#1 }}" ;;
      "2 "*) print -ru2 -- "${{line#2 }}" ;;
      "x "*) code=${{line#x }} ;;
    esac
  done
  [ -n "$code" ] || {{ print -u2 "ERROR: the simulated phone's benchmark service did not answer"; exit 1; }}
  exit "$code"
}}
"""
