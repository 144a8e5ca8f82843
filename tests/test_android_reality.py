"""How the farm reads real Android phones: thermal sensor choice on real zone layouts, core numbering with an
offline core, phones without adb shell protocol v2, and the throttling judgement. The layouts are real listings
committed under tests/data/sysfs/ (each names its source on its first line)."""

import json
import re
import shlex
from pathlib import Path

import pytest

from elasticvit_deploy.farm import adb as adb_module
from elasticvit_deploy.farm.adb import AdbServer, FarmError, Phone, parse_legacy_output
from elasticvit_deploy.farm.identity import (
    BATTERY_TEMP_PATH,
    ThermalZone,
    choose_temp_sensor,
    parse_core_listing,
    parse_thermal_listing,
    raw_scale,
    read_health,
    read_identity,
    zone_kind,
)
from elasticvit_deploy.farm.throttling import judge_throttling
from elasticvit_deploy.simulator import SimulatedFarm

SYSFS = Path(__file__).parent / "data" / "sysfs"


def fixture_lines(name: str) -> list[str]:
    lines = (SYSFS / name).read_text().splitlines()
    assert lines[0].startswith("# source: https://"), f"{name} must name its source first"
    return [ln for ln in lines if not ln.startswith("#")]


def zone(number: int, zone_type: str, raw: int | None, **kw) -> ThermalZone:
    return ThermalZone(f"/sys/class/thermal/thermal_zone{number}/temp", zone_type, raw, **kw)


def hal_sensors(name: str) -> list[dict]:
    """The kernel thermal zones of a Pixel thermal HAL config: sensors that are neither virtual nor read elsewhere."""
    config = json.loads("\n".join(fixture_lines(name)))
    return [s for s in config["Sensors"] if not s.get("VirtualSensor") and not s.get("TempPath")]


def hal_raw(sensor: dict, celsius: float) -> int | None:
    """A raw reading of `celsius` in the sensor's own unit (its Multiplier), for the HAL's temperature sensors; a
    BCL sensor reads the first level the HAL acts on (percent, mA, mV: real magnitudes of those quantities), or
    nothing where the HAL names none."""
    if sensor["Type"].startswith("BCL"):
        levels = [float(t) for t in sensor.get("HotThreshold", []) if t != "NAN"]
        return int(levels[0]) if levels else None
    return round(celsius / float(sensor["Multiplier"]))


# ---------------------------------------------------------------------------------------------- sensor choice


def test_pixel4_never_picks_the_soc_battery_percent_zone():
    names = sorted({n for line in fixture_lines("identity-pixel4-zone-names.txt") for n in line.split()})
    assert "soc" in names and "pm8150b-ibat-lvl0" in names and "cpu-1-0-usr" in names
    units = {s["Name"]: s for s in hal_sensors("identity-pixel4-thermal-info-config.txt")}
    # every zone reads "45" in its unit: 45 C for the HAL's millidegree sensors, 45 for the others, so `soc` reads
    # a 45 % state of charge that would pass as 45 degrees; only the names can decide
    zones = [zone(i, n, hal_raw(units[n], 45.0) if n in units else 45) for i, n in enumerate(names)]
    chosen = choose_temp_sensor(zones)
    assert chosen is not None and chosen.type == "cpu-1-0-usr" and chosen.kind == "cpu"
    assert chosen.scale == 1000 and chosen.celsius == 45.0
    for bcl in ("soc", "pm8150b-ibat-lvl0", "pm8150b-vbat-lvl2", "bcl-virt-monitor", "bcl-cycle"):
        assert zone_kind(bcl) is None


def test_classification_agrees_with_the_pixel_thermal_hals():
    for name in ("identity-pixel4-thermal-info-config.txt", "identity-pixel6-thermal-info-config.txt"):
        for s in hal_sensors(name):
            kind = zone_kind(s["Name"])
            if s["Type"].startswith("BCL"):
                assert kind is None, s["Name"]
            elif s["Type"] == "CPU":
                assert kind == "cpu", s["Name"]
            elif s["Type"] == "GPU":
                assert kind == "soc", s["Name"]
            elif s["Type"] == "BATTERY":
                assert kind == "battery", s["Name"]


def test_pixel6_tensor_picks_big_and_not_its_bcl_zones():
    sensors = hal_sensors("identity-pixel6-thermal-info-config.txt")
    zones = [zone(i, s["Name"], hal_raw(s, 38.0)) for i, s in enumerate(sensors)]
    # the BCL readings (ocp_cpu2 at 12000 mA, batoilo at 5000 mA) would pass for 12 C and 5 C in millidegrees
    assert {"ocp_cpu2", "batoilo", "soc", "vdroop1"} <= {z.type for z in zones}
    chosen = choose_temp_sensor(zones)
    assert (chosen.type, chosen.kind, chosen.scale, chosen.celsius) == ("BIG", "cpu", 1000, 38.0)
    without_cpu = [z for z in zones if z.type not in ("BIG", "MID", "LITTLE")]
    assert choose_temp_sensor(without_cpu).type == "G3D"
    only_bcl = [z for z in zones if zone_kind(z.type) is None]
    assert choose_temp_sensor(only_bcl) is None


def test_sm8250_dump_picks_a_big_cluster_sensor_and_ignores_soc_72():
    zones = []
    for i, line in enumerate(fixture_lines("identity-sm8250-retroid-pocket5.txt")):
        name, _, raw = line.partition(": ")
        zones.append(zone(i, name, int(raw)))
    chosen = choose_temp_sensor(zones)
    # the first big-cluster (cpu-1-*) core sensor of the dump; -step copies and cpu-0-* sensors rank after it
    assert (chosen.type, chosen.kind, chosen.scale, chosen.celsius) == ("cpu-1-3-usr", "cpu", 1000, 28.0)
    soc = next(z for z in zones if z.type == "soc")
    assert soc.raw == 72 and choose_temp_sensor([soc]) is None
    battery = [z for z in zones if z.type in ("battery", "soc", "pm8150l-bcl-lvl0")]
    assert choose_temp_sensor(battery).type == "battery"  # BCL zones out, -274000 implausible anyway


def msm8953_zones() -> list[ThermalZone]:
    lines = fixture_lines("identity-msm8953.txt")
    info = lines[1:lines.index("msm8953_64:/sys/class/thermal # ls")]
    at_temp = lines.index("msm8953_64:/sys/class/thermal # cat */temp")
    at_type = lines.index("msm8953_64:/sys/class/thermal # cat */type")
    temps, types = lines[at_temp + 1:at_type], lines[at_type + 1:]
    listing = " ".join(lines[lines.index("msm8953_64:/sys/class/thermal # ls") + 1:at_temp]).split()
    order = sorted(listing)  # the shell's glob order, which both `cat */...` follow
    assert len(order) == len(temps) == len(types) == 24
    script_output = [f"zone|/sys/class/thermal/{d}/temp|{t}||{ty}"
                     for d, t, ty in zip(order, temps, types, strict=True)]
    script_output += [f"alias|{line}" for line in info]
    return parse_thermal_listing("\n".join(script_output))


def test_msm8953_decidegree_tsens_named_cpu_by_sensor_info():
    zones = msm8953_zones()
    chosen = choose_temp_sensor(zones)
    assert (chosen.type, chosen.path, chosen.scale) == ("tsens_tz_sensor4", "/sys/class/thermal/thermal_zone9/temp", 10)
    assert chosen.celsius == pytest.approx(32.2)
    by_type = {z.type: z for z in zones}
    assert raw_scale(by_type["pm8953_tz"].raw) == 1000 and raw_scale(by_type["xo_therm"].raw) == 1
    # without sensor_info (older kernels have none) the first plausible tsens sensor is used, still in decidegrees
    plain = choose_temp_sensor([ThermalZone(z.path, z.type, z.raw) for z in zones])
    assert plain.type == "tsens_tz_sensor1" and plain.scale == 10 and plain.celsius == pytest.approx(30.6)


def test_implausible_and_unreadable_readings_are_skipped():
    zones = [zone(0, "cpu-1-0-usr", None), zone(1, "cpu-1-1-usr", -40000), zone(2, "cpu-1-2-usr", 0),
             zone(3, "cpu-1-3-usr", 150000), zone(4, "mtktscpu", 41000)]
    assert choose_temp_sensor(zones).type == "mtktscpu"
    battery_file = ThermalZone(BATTERY_TEMP_PATH, "battery", 312)
    assert choose_temp_sensor(zones[:4] + [battery_file]).scale == 10  # power_supply battery: decidegrees
    passive = choose_temp_sensor([zone(5, "BIG", 36000, passive_trips_raw=(95000, 90000, -1))])
    assert passive.throttle_c == 90.0


# ---------------------------------------------------------------------------------------------- fake phones


class FakePhone:
    """Answers read_identity/read_health's commands like a phone whose files are given."""

    def __init__(self, files: dict[str, str], cores: str, thermal: str, props: dict[str, str] | None = None):
        self.serial = "FAKE1"
        self.server = AdbServer("127.0.0.1", 5037, explicit=False)
        self.files, self.cores, self.thermal = files, cores, thermal
        self.props = props or {
            "ro.build.fingerprint": "google/flame/flame:11/RQ3A.211001.001/7641976:user/release-keys",
            "ro.product.model": "Pixel 4", "ro.build.version.sdk": "30"}

    def check_ready(self):
        pass

    def shell(self, argv, timeout=60.0):
        if argv == ["getprop"]:
            return adb_module.ShellResult(0, "".join(f"[{k}]: [{v}]\n" for k, v in self.props.items()), "")
        if argv[0] == "cat" and argv[1] in self.files:
            return adb_module.ShellResult(0, self.files[argv[1]] + "\n", "")
        if argv[0] == "cat":
            return adb_module.ShellResult(1, "", f"cat: {argv[1]}: No such file or directory\n")
        return adb_module.ShellResult(0, "", "")

    def shell_script(self, script, timeout=60.0):
        return adb_module.ShellResult(0, self.cores if "cpufreq" in script else self.thermal, "")


# A Pixel 4's cores (the simulator profile's frequencies) and its cpufreq policies policy0, policy4 and policy7
# (https://github.com/GrapheneOS-Archive/device_google_coral/blob/03d0432371a442c5aead7af65c03c66a66c18de2/flame/overlay/frameworks/base/core/res/res/xml/power_profile.xml
# names them), with cpu4 offline: its cpufreq directory gone, its `online` file 0.
PIXEL4_CPU4_OFFLINE = "\n".join(
    [f"cpu|{c}|{'' if c == 0 else 1}|1785600" for c in range(4)] + ["cpu|4|0|"]
    + [f"cpu|{c}|1|2419200" for c in (5, 6)] + ["cpu|7|1|2841600",
       "policy|1785600|0 1 2 3", "policy|2419200|4 5 6", "policy|2841600|7"])


def test_offline_core_keeps_core_numbers_and_the_big_cluster_mask():
    """An offline core's cpufreq cannot be read (https://github.com/ARM-software/workload-automation/pull/148);
    numbering cores by their position among the readable ones shifts every core after it
    (https://github.com/htop-dev/htop/issues/648)."""
    thermal = "zone|/sys/class/thermal/thermal_zone3/temp|36000|,110000,95000|cpu-1-0-usr"
    ident = read_identity(FakePhone({}, PIXEL4_CPU4_OFFLINE, thermal))
    assert ident.core_max_khz == [1785600] * 4 + [2419200] * 3 + [2841600]
    assert ident.offline_cores == [4] and ident.big_core_mask() == "70"
    assert ident.to_dict()["temp_sensor"] == {"path": "/sys/class/thermal/thermal_zone3/temp", "type": "cpu-1-0-usr",
                                              "scale": 1000, "kind": "cpu", "celsius": 36.0, "throttle_c": 95.0}
    # a kernel without cpufreq policies: the offline core's frequency is unknown (0), never taken from a neighbour
    no_policy = "\n".join(ln for ln in PIXEL4_CPU4_OFFLINE.splitlines() if not ln.startswith("policy"))
    khz, offline = parse_core_listing(no_policy)
    assert khz[4] == 0 and khz[5:] == [2419200, 2419200, 2841600] and offline == [4]


def test_cores_are_indexed_by_number_not_by_glob_order():
    # a ten-core phone: the shell's glob lists cpu0 cpu1 cpu10 cpu11 cpu2 ...
    lines = [f"cpu|{c}|1|{1000000 + c}" for c in sorted(range(10), key=str)]
    khz, _ = parse_core_listing("\n".join(lines))
    assert khz == [1000000 + c for c in range(10)]


def test_health_falls_back_to_the_battery_and_never_calls_an_unreadable_sensor_cool():
    thermal = "zone|/sys/class/thermal/thermal_zone3/temp|36000||cpu-1-0-usr"
    ident = read_identity(FakePhone({}, PIXEL4_CPU4_OFFLINE, thermal))
    zone_path = "/sys/class/thermal/thermal_zone3/temp"
    health = read_health(FakePhone({zone_path: "52000"}, "", ""), ident)
    assert health.temperature_c == 52.0 and health.temperature_sensor == zone_path
    assert health.problems(20, 50.0, 64) == ["temperature 52.0 C (> 50 C)"]
    for broken in ({}, {zone_path: "-40000"}, {zone_path: "0"}, {zone_path: "garbage"}):
        fallback = read_health(FakePhone(dict(broken, **{BATTERY_TEMP_PATH: "421"}), "", ""), ident)
        assert fallback.temperature_c == pytest.approx(42.1) and fallback.temperature_sensor == BATTERY_TEMP_PATH
        unknown = read_health(FakePhone(dict(broken), "", ""), ident)
        assert unknown.temperature_c is None and unknown.temperature_sensor is None


def test_identity_scripts_on_a_simulated_phone_with_an_offline_core_and_a_bcl_zone(monkeypatch):
    """The identity scripts run by the phone's real shell (mksh, toybox) over a sysfs laid out like a Pixel 4's
    with cpu4 offline, a `soc` zone reading 72 and passive trip points on the CPU zone."""
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/false")
    with SimulatedFarm(["pixel4"], time_scale=0.02) as farm:
        sysfs = farm.phone("sim-pixel4-1").sandbox / "sys"
        cpu = sysfs / "devices/system/cpu"
        (cpu / "cpu4/cpufreq/cpuinfo_max_freq").unlink()
        (cpu / "cpu4/online").write_text("0\n")
        for first, cores, khz in (("0", "0 1 2 3", 1785600), ("4", "4 5 6", 2419200), ("7", "7", 2841600)):
            policy = cpu / f"cpufreq/policy{first}"
            policy.mkdir(parents=True, exist_ok=True)  # the simulator lays policies out too
            (policy / "related_cpus").write_text(f"{cores}\n")
            (policy / "cpuinfo_max_freq").write_text(f"{khz}\n")
        zone0 = sysfs / "class/thermal/thermal_zone0"
        for n, (kind, temp) in enumerate((("hot", 100000), ("passive", 95000), ("critical", 115000))):
            (zone0 / f"trip_point_{n}_type").write_text(f"{kind}\n")
            (zone0 / f"trip_point_{n}_temp").write_text(f"{temp}\n")
        soc = sysfs / "class/thermal/thermal_zone9"
        soc.mkdir()
        (soc / "type").write_text("soc\n")
        (soc / "temp").write_text("72\n")
        ident = read_identity(Phone(AdbServer("127.0.0.1", farm.port, explicit=True), "sim-pixel4-1"))
    assert ident.core_max_khz == [1785600] * 4 + [2419200] * 3 + [2841600]
    assert ident.offline_cores == [4] and ident.big_core_mask() == "70"
    sensor = ident.temp_sensor
    assert sensor.path == "/sys/class/thermal/thermal_zone0/temp" and sensor.throttle_c == 95.0
    assert {"path": "/sys/class/thermal/thermal_zone9/temp", "type": "soc"} in ident.extra["thermal_zones"]


# ---------------------------------------------------------------------------------------------- shell v1


class LegacyDevice:
    """An adbutils device of an Android 6 phone: no shell_v2 feature; `shell` runs a canned command and answers
    the way its adbd does: CRLF line endings before Android 7
    (https://github.com/ARM-software/workload-automation/pull/119), stderr in the same stream and no exit status
    (the shell protocol that carries them came with Android 7: https://github.com/tananaev/adblib/issues/4,
    https://github.com/yume-chan/ya-webadb/issues/412)."""

    def __init__(self, answers: dict[str, tuple[str, int]], features: str = "cmd,stat_v2", drop_sentinel=False):
        self.answers, self.features, self.drop_sentinel = answers, features, drop_sentinel
        self.commands: list[str] = []
        self.feature_queries = 0

    def get_features(self):
        self.feature_queries += 1
        return self.features

    def shell(self, cmdargs, timeout=None, encoding="utf-8", rstrip=True):
        assert isinstance(cmdargs, str) and encoding is None and not rstrip
        self.commands.append(cmdargs)
        command, _, sentinel = cmdargs.rpartition("; echo ")
        out, status = self.answers[" ".join(shlex.split(command))]
        tail = "" if self.drop_sentinel else sentinel.replace("$?", str(status)) + "\n"
        return (out + tail).replace("\n", "\r\n").encode()

    def shell2(self, *a, **kw):
        raise AssertionError("shell2 must not be used on a phone without shell_v2")


def legacy_phone(monkeypatch, device) -> Phone:
    phone = Phone(AdbServer("127.0.0.1", 1, explicit=True), "FAKE6", retries=1, backoff_s=0)
    monkeypatch.setattr(phone, "_device", lambda: device)
    monkeypatch.setattr(phone, "check_ready", lambda: None)
    return phone


def test_legacy_shell_reads_output_and_the_real_exit_status(monkeypatch):
    forged = "evd-exit-0000000000000000:0\n"  # a command printing something sentinel-like cannot fake the status
    device = LegacyDevice({"getprop": ("[ro.build.fingerprint]: [google/angler/angler:6.0.1/MTC20L]\n", 0),
                           "ls /nope": ("ls: /nope: No such file or directory\n", 1),
                           "sh -c echo hi": (forged + "evd-exit-", 3)})
    phone = legacy_phone(monkeypatch, device)
    assert not phone.supports_shell_v2()
    r = phone.shell(["getprop"])
    assert r.exit_code == 0 and r.stdout == "[ro.build.fingerprint]: [google/angler/angler:6.0.1/MTC20L]\n"
    r = phone.shell(["ls", "/nope"])
    assert (r.exit_code, r.stderr, r.said()) == (1, "", "ls: /nope: No such file or directory")
    r = phone.shell(["sh", "-c", "echo hi"])
    assert r.exit_code == 3 and r.stdout == forged + "evd-exit-"
    assert device.feature_queries == 1  # asked once per Phone
    nonces = {re.search(r"echo (evd-exit-[0-9a-f]{16}):\$\?$", c).group(1) for c in device.commands}
    assert len(nonces) == len(device.commands)  # a fresh nonce per call
    words = list(shlex.shlex(device.commands[-1], posix=True, punctuation_chars=True))
    assert words[:4] == ["sh", "-c", "echo hi", ";"]  # argv stays quoted: the sentinel is a separate command


def test_legacy_session_cut_short_is_retried_then_reported(monkeypatch):
    phone = legacy_phone(monkeypatch, LegacyDevice({"getprop": ("[a]: [b]\n", 0)}, drop_sentinel=True))
    with pytest.raises(FarmError, match="FAKE6: shell getprop failed after 2 attempts"):
        phone.shell(["getprop"])
    with pytest.raises(adb_module.AdbError):
        parse_legacy_output(b"half of the output", "evd-exit-0123456789abcdef")


def test_setup_identity_works_on_a_phone_without_shell_v2(monkeypatch):
    device = LegacyDevice({"getprop": ("[ro.build.fingerprint]: [google/angler/angler:6.0.1/MTC20L]\n"
                                       "[ro.product.model]: [Nexus 6P]\n", 0)})
    phone = legacy_phone(monkeypatch, device)
    real_shell = phone.shell

    def shell(argv, timeout=60.0):  # the identity scripts: an empty sysfs answer, through the same legacy path
        if argv[:2] == ["sh", "-c"]:
            device.answers[" ".join(argv)] = ("", 0)
        return real_shell(argv, timeout)

    monkeypatch.setattr(phone, "shell", shell)
    ident = read_identity(phone)
    assert ident.model == "Nexus 6P" and ident.build_fingerprint == "google/angler/angler:6.0.1/MTC20L"


def test_shell_v2_phones_keep_stderr_apart(monkeypatch):
    class V2Device:
        def get_features(self):
            return "shell_v2,cmd,stat_v2"

        def shell2(self, argv, timeout=None, v2=False):
            assert v2 and argv == ["ls", "/nope"]
            return type("R", (), {"returncode": 1, "stdout": "", "stderr": "ls: /nope: No such file\n"})()

    phone = legacy_phone(monkeypatch, V2Device())
    r = phone.shell(["ls", "/nope"])
    assert phone.supports_shell_v2() and (r.exit_code, r.stdout, r.said()) == (1, "", "ls: /nope: No such file")


def quirky_pixel4(monkeypatch, *quirks: str) -> SimulatedFarm:
    """A simulated Pixel 4 with real phones' quirks."""
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/false")
    return SimulatedFarm(["pixel4"], time_scale=0.02, quirks=list(quirks))


def sim_phone(farm: SimulatedFarm) -> Phone:
    return Phone(AdbServer("127.0.0.1", farm.port, explicit=True), farm.serials[0])


def test_simulated_phone_without_shell_v2_end_to_end(monkeypatch):
    with quirky_pixel4(monkeypatch, "shell-v1") as farm:
        phone = sim_phone(farm)
        assert not phone.supports_shell_v2()
        r = phone.shell(["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert (r.exit_code, r.stdout, r.stderr) == (3, "out\nerr\n", "")
        ident = read_identity(phone)
        assert ident.model == "Pixel 4" and ident.sdk == 23 and ident.big_core_mask() == "70"
        assert ident.temp_sensor is not None


def test_simulated_bcl_soc_zone_and_offline_core(monkeypatch):
    with quirky_pixel4(monkeypatch, "bcl-soc-zone", "offline-core") as farm:
        ident = read_identity(sim_phone(farm))
    assert ident.temp_sensor.kind == "cpu" and zone_kind(ident.temp_sensor.type) == "cpu"
    assert 4 in ident.offline_cores and ident.core_max_khz[5:] == [2419200, 2419200, 2841600]
    assert ident.big_core_mask() == "70"  # cpu4's maximum from its cpufreq policy (policy4: cpus 4 5 6)


def test_simulated_idle_frequency_drop_is_not_reported_as_throttling(monkeypatch, tiny_tflite, tmp_path):
    from elasticvit_deploy.farm.measure import LocalModel, MeasureOptions, PhoneDevice, measure_model
    from elasticvit_deploy.farm.runner_protocol import RunnerSettings
    from elasticvit_deploy.farm.store import ResultsStore

    options = MeasureOptions(rounds=2)
    with quirky_pixel4(monkeypatch, "idle-freq-drop") as farm:
        phone = PhoneDevice(sim_phone(farm), None, RunnerSettings(warmup=1, runs=3, cores="auto", cool_timeout_s=1),
                            options)
        phone.prepare()
        result = measure_model(phone, LocalModel.load(tiny_tflite), ResultsStore(tmp_path / "r.sqlite"), options)
        rounds = ResultsStore(tmp_path / "r.sqlite").all()[0].rounds
    pinned = [4, 5, 6]
    after = [r["after"]["freqs_khz"] for r in rounds]
    assert all(0 < f[c] < 0.8 * 2419200 for f in after for c in pinned)  # the cores idle when the runner reads them
    assert result.summary.throttling["freq_drop"] is False
    assert result.to_dict()["temp_sensor"]["path"] == "/sys/class/thermal/thermal_zone0/temp"


# ---------------------------------------------------------------------------------------------- throttling

PIXEL4 = {"max_khz": [1785600] * 4 + [2419200] * 3 + [2841600], "pinned_cores": [4, 5, 6]}


def rnd(avg_us, after_khz, temps=(38000, 41000), state="cooled"):
    freqs = [300000] * 4 + [after_khz] * 3 + [825600]
    return {"avg_us": avg_us, "cool": {"state": state, "temp_mc": temps[0]},
            "before": {"temp_mc": temps[0], "freqs_khz": [300000] * 4 + [710400] * 3 + [825600]},
            "after": {"temp_mc": temps[1], "freqs_khz": freqs}}


def test_idle_frequency_after_a_round_is_not_throttling():
    # steady timings; the pinned cores read their lowest operating point because benchmark_model has exited
    rounds = [rnd(20100, 710400), rnd(20300, 710400), rnd(19900, 710400)]
    flags = judge_throttling(rounds, PIXEL4)
    assert flags == {"cooldown_timeout": False, "hot": False, "at_trip_point": False, "slowdown": False,
                     "freq_drop": False, "any": False, "cooldown_unknown": False}


def test_slowed_rounds_with_low_clocks_are_throttling():
    rounds = [rnd(20100, 710400), rnd(20400, 2419200), rnd(27300, 1171200, temps=(44000, 47000))]
    flags = judge_throttling(rounds, PIXEL4)
    assert flags["slowdown"] and flags["freq_drop"] and flags["hot"] and flags["any"]
    # slowed but the pinned cores still at full clock: a slowdown, not a frequency drop
    busy = judge_throttling([rnd(20100, 2419200), rnd(27300, 2419200)], PIXEL4)
    assert busy["slowdown"] and not busy["freq_drop"]


def test_trip_point_corroborates_a_low_clock():
    rounds = [rnd(20100, 710400, temps=(90000, 96000))]
    assert judge_throttling(rounds, dict(PIXEL4, throttle_c=95.0))["freq_drop"]
    assert not judge_throttling(rounds, PIXEL4)["freq_drop"]  # no trip point known, no slowdown: no evidence


def test_cooldown_states():
    timeout = judge_throttling([rnd(20100, 710400, state="timeout")], PIXEL4)
    assert timeout["cooldown_timeout"] and timeout["any"]
    unknown = judge_throttling([rnd(20100, 710400, temps=(-1, -1), state="unknown")], PIXEL4)
    assert unknown["cooldown_unknown"] and not unknown["any"] and not unknown["hot"]
    legacy = {"avg_us": 20000, "cool": {"reached": 0}, "before": {}, "after": {}}
    assert judge_throttling([legacy], {})["cooldown_timeout"]
