"""The file tree of a simulated phone: directories, sysfs files, its userland and the generated device tools.

/system/bin holds mksh as sh, toybox and its applets (sandbox.install), and small generated mksh scripts for what
the phone's own build provides: getprop, dumpsys (battery only), id (Android's names for uid 2000) and df (the
profile's storage). taskset is a script too: unlike toybox's, it cannot pin the host's CPUs to the phone's cores,
so it hands the mask to the simulated benchmark_model instead. The pre-installed benchmark_model is a client of
the phone's benchmark service (benchmark_service.py).
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

BENCHMARK_MODEL = "/data/local/tmp/elasticvit-deploy/benchmark_model"
SHELL_UID_LINE = ("uid=2000(shell) gid=2000(shell) groups=2000(shell),1004(input),1007(log),1011(adb),"
                  "1015(sdcard_rw),1028(sdcard_r),3001(net_bt_admin),3002(net_bt),3003(inet),3006(net_bw_stats),"
                  "3009(readproc),3011(uhid) context=u:r:shell:s0")
_BATTERY_SHARE = 0.35  # the battery sees this share of the CPU's excess temperature


def build(sandbox: Path, profile: PhoneProfile, serial: str, userland: Userland) -> None:
    """Create the directory tree, the userland, the tools and the pre-installed benchmark_model of a fresh phone
    (the sensor files are written by Sensors)."""
    for d in ("data/local/tmp/elasticvit-deploy", "sdcard", "system/bin", "sys"):
        (sandbox / d).mkdir(parents=True, exist_ok=True)
    sysfs = sandbox / "sys"
    _write(sysfs / "class/thermal/thermal_zone0/type", "cpu-therm\n")
    _write(sysfs / "class/thermal/thermal_zone1/type", "battery\n")
    _write(sysfs / "class/power_supply/battery/capacity", f"{profile.battery_level}\n")
    for cpu, khz in enumerate(profile.core_max_freqs_khz):
        cpufreq = sysfs / f"devices/system/cpu/cpu{cpu}/cpufreq"
        _write(cpufreq / "cpuinfo_max_freq", f"{khz}\n")
        _write(cpufreq / "scaling_governor", "schedutil\n")
    tools = {"getprop": _getprop(profile.props(serial)), "dumpsys": _dumpsys(), "taskset": _taskset(profile),
             "id": _id(), "df": _df(profile)}
    userland_tools.install(userland, sandbox / "system/bin", set(tools))
    for name, text in tools.items():
        _write(sandbox / "system/bin" / name, text, executable=True)
    _write(sandbox / BENCHMARK_MODEL.lstrip("/"), _benchmark_client(), executable=True)


class Sensors:
    """Writes the temperature and current-frequency files of a phone from its thermal model."""

    def __init__(self, sandbox: Path, thermal: Thermal) -> None:
        self.sandbox = sandbox
        self.thermal = thermal
        self._written: dict[Path, str] = {}

    def refresh(self) -> float:
        """Bring the files up to date (writing only those that changed); returns the temperature."""
        profile = self.thermal.profile
        temp_mc = self.thermal.current()
        battery_mc = profile.ambient_mc + _BATTERY_SHARE * (temp_mc - profile.ambient_mc)
        sysfs = self.sandbox / "sys"
        values = {sysfs / "class/thermal/thermal_zone0/temp": round(temp_mc),
                  sysfs / "class/thermal/thermal_zone1/temp": round(battery_mc),
                  sysfs / "class/power_supply/battery/temp": round(battery_mc / 100)}
        fraction = freq_fraction(profile, temp_mc)
        for cpu, khz in enumerate(profile.core_max_freqs_khz):
            values[sysfs / f"devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq"] = round(khz * fraction)
        for path, value in values.items():
            text = f"{value}\n"
            if self._written.get(path) != text:
                _write(path, text)
                self._written[path] = text
        return temp_mc


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
    return ("#!/system/bin/sh\n# getprop of a simulated phone: no argument lists all, unknown names print the default.\n"
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


def _taskset(profile: PhoneProfile) -> str:
    all_cores = (1 << profile.num_cores) - 1
    return ("#!/system/bin/sh\n# taskset MASK COMMAND [ARGS...] of a simulated phone. Like sched_setaffinity it fails when\n"
            "# the hex mask names none of the phone's cores. Host CPUs are not pinned: the mask is passed on to\n"
            "# the simulated benchmark_model in EVD_SIM_CORES.\n"
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


def _benchmark_client() -> str:
    socket = f"{SOCKET_DIR}/{BENCHMARK_SOCKET}"
    return f"""#!/system/bin/sh
# LiteRT benchmark_model of a simulated phone. The simulation needs the host's LiteRT, so it runs outside the
# phone: this script sends its arguments to the phone's benchmark service ({socket}) and prints the
# output that comes back (stdout and stderr apart), then exits with the simulation's exit code.
{{
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
