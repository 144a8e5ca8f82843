"""Simulated Android phones behind a real adb server protocol endpoint, for trying the workflow and for CI.

    from elasticvit_deploy.simulator import SimulatedFarm
    with SimulatedFarm(["pixel1", "pixel4"], time_scale=0.01) as farm:
        client = adbutils.AdbClient(host="127.0.0.1", port=farm.port)

The endpoint speaks the adb server protocol (smart sockets, shell v2, sync v1), so adbutils and `adb -P PORT` work
unmodified. Each phone is a directory tree with sysfs-like files, Android's shell (mksh) and toybox, a few
generated tools and a simulated LiteRT benchmark_model, with noise and a thermal model. The four profiles are
twins of the phones whose nn-Meter tables the toolkit uses (twin.py): a model carrying an ElasticViT arch or block
takes what the installed table says (`SimulatedFarm(..., tables=DIR)` for another directory), anything else (or a
twin without its table) host timings scaled by the profile; the tool prints which in a line of its own, and the
farm's results keep it (`simulated`). It is a simulator, not an emulator. Its clients get a phone, not the host: shell
commands run confined to the phone's tree by bubblewrap (sandbox.py), and the simulator's own file access resolves
paths inside that tree (paths.py). `SimulatedFarm(..., benchmark_binary=PATH)` makes the phones run a host
executable (a real benchmark_model built for the host, or a script) as their benchmark_model instead, confined the
same way, its --graph naming the model the service opened inside the phone's tree.

Quirks of real phones (`SimulatedFarm(..., quirks=[...])`, `farm simulate --quirk NAME`; names in quirks.QUIRKS):

``bcl-soc-zone``
    Qualcomm's bcl_soc driver registers a thermal zone "soc" whose temperature is the battery percentage
    (drivers/thermal/qcom/bcl_soc.c in the SM8150/SM8250/SM8350 kernels: bcl_read_soc returns
    POWER_SUPPLY_PROP_CAPACITY). With this quirk it is thermal_zone0, followed by the zones of a real SM8250 phone
    in the order of a recorded dump (tests/data/sysfs/sm8250-retroid-pocket5-thermal-zones.txt): cpu-0-0-usr ...,
    cpuss-0-usr, pm8150b-bcl-lvl0, xo-therm-usr, bms, battery. A reader taking thermal_zone0 as the CPU gets 85.
``offline-core``
    cpu4 is offline: /sys/devices/system/cpu/online reads 0-3,5-7, cpu4/online 0, and cpu4 has no cpufreq
    directory, so its cpuinfo_max_freq cannot be read; taskset refuses a mask naming only offline cores.
``shell-v1``
    The phone lacks adbd's shell_v2 feature, as Android 6 and older (the adb protocol code refuses shell v2 for
    it); getprop reports Android 6.0.1, SDK 23 (the other properties stay the profile's).
``litert2-benchmark`` / ``tf1-benchmark`` / ``op-profiling``
    benchmark_model is LiteRT 2's CompiledModel tool, TF Lite 1.12's tool, or a classic build with op profiling
    on by default; see benchmark_model.py for what each prints, tool_flags.py for which flags it knows.
``idle-freq-drop``
    scaling_cur_freq, read while no benchmark runs (right after one, say), shows every core at the profile's idle
    frequency although nothing is throttled: on a real phone the cores drop to their lowest step as soon as they
    go idle, so a frequency read between runs says nothing about throttling.
``background-load``
    A phone that is also used for other work (a shared lab phone, one with apps syncing in the background): a
    quarter of the benchmark_model runs share the CPU with another process and are slowed throughout by a factor
    of 1.1-1.6 (rates assumed, not measured), so its rounds scatter with a high CV, as benchmarking guides warn
    of when they ask to close other apps first. The report's noise gate must answer "too noisy to judge".

What the simulator does not model. Its services follow the real adb server and adbd (protocol.py lists those it
answers; `SimulatedFarm.unplug`/`plug` and `serials=` with network addresses add phones that come and go), except:
the host services server-status, attach, detach, pair:, mdns:, track-devices-proto-binary/-text and kill (refused,
as by a server run with ADB_REJECT_KILL_SERVER=1) and the device services framebuffer:, jdwp:, track-jdwp,
track-app, abb:, abb_exec:, tcpip:, usb:, reboot:, backup:, restore:, enable-verity:, disable-verity:, dev:,
dev-raw: and spin (answered FAIL "closed"); sync's stat_v2, ls_v2 and sendrecv_v2 (not advertised). There is no
pseudo-terminal: shell v1, exec: and pty shells get pipes (isatty is false, no echo, no prompt, window sizes
ignored), and an empty command is a login shell reading its stdin. Forward listeners bind tcp: sockets only and
close every connection at once, and reverse forwards are only listed: nothing on a phone listens or connects, as
each command has a network namespace of its own. `adb connect` reaches no network: only the farm's network phones
connect, any other address is refused. A command still running HANGUP_GRACE_S after its SIGHUP is killed (a phone
lets it run on), and background processes end with the shell that started them (its PID namespace goes). A kicked
phone is back after REENUMERATE_S x time_scale; adbd's name for a TCP connection (reverse --list) is host-<transport
id>, not host-<socket fd>; a network phone's ro.serialno is its address.
"""

from .errors import SimulationError
from .farm import SimulatedFarm
from .phone import SimPhone
from .profiles import PROFILES, PhoneProfile
from .quirks import QUIRKS

__all__ = ["PROFILES", "QUIRKS", "PhoneProfile", "SimPhone", "SimulatedFarm", "SimulationError"]
