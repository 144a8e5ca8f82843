"""The simulator's quirks of real phones and real benchmark_model builds, seen through the adb server protocol as a
client would see them on a real phone, and an external benchmark binary run in place of the simulated one.

Outputs are compared line for line, in format (numbers and model paths normalised), with the real outputs
recorded in tests/data/benchmark_model and the real sysfs listing in tests/data/sysfs."""

from __future__ import annotations

import dataclasses
import fcntl
import re
import sys
from pathlib import Path

import adbutils
import pytest
from click.testing import CliRunner

from elasticvit_deploy.cli import main
from elasticvit_deploy.farm.benchmark_output import parse_benchmark_output
from elasticvit_deploy.farm.benchmark_tool import detect_tool
from elasticvit_deploy.simulator import PROFILES, SimulatedFarm, SimulationError
from elasticvit_deploy.simulator.benchmark_model import SimulatedPhone
from elasticvit_deploy.simulator.quirks import QUIRKS

from .procs import wait_until

TS = 0.01
BENCH = "/data/local/tmp/elasticvit-deploy/benchmark_model"
MODEL = "/data/local/tmp/tiny.tflite"
DATA = Path(__file__).resolve().parent / "data"
FAST = f"--graph={MODEL} --warmup_runs=1 --warmup_min_secs=0 --min_secs=0"
# runs vary enough that a stat line is never "(all same)", as in the recorded outputs
NOISY = dataclasses.replace(PROFILES["pixel4"], name="noisy", noise_cv=0.3)
PHONE_QUIRKS = {"sim-noisy-1": (), "sim-noisy-2": ("litert2-benchmark",), "sim-noisy-3": ("tf1-benchmark",),
                "sim-noisy-4": ("op-profiling", "bcl-soc-zone", "offline-core"),
                "sim-noisy-5": ("idle-freq-drop",), "sim-noisy-6": ("shell-v1",)}


@pytest.fixture(autouse=True)
def _no_real_adb_server(monkeypatch):
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/false")


@pytest.fixture(scope="module")
def farm(tiny_tflite):
    with SimulatedFarm([NOISY] * 6, time_scale=TS, quirks_by_serial=PHONE_QUIRKS) as f:
        for serial in f.serials:
            device(f, serial).sync.push(tiny_tflite, MODEL)
        yield f


def device(farm: SimulatedFarm, serial: str) -> adbutils.AdbDevice:
    return adbutils.AdbClient(host="127.0.0.1", port=farm.port).device(serial)


def bench(farm: SimulatedFarm, serial: str, args: str, merged: bool = False) -> adbutils.ShellReturn:
    return device(farm, serial).shell2(f"{BENCH} {args}{' 2>&1' if merged else ''}", v2=True)


def skeleton(text: str, model: str) -> list[str]:
    """Lines with the model path as MODEL, the signature as SIG and every number as N (trailing blanks cut)."""
    out = []
    for line in (text.replace(model, "MODEL") if model else text).splitlines():
        line = re.sub(r"Signature name:(\s+)\S+", r"Signature name:\1SIG", line)
        out.append(re.sub(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?", "N", line).rstrip())
    while out and not out[-1]:
        out.pop()
    return out


def fixture(name: str) -> str:
    """A recorded output without its '# ...' header lines and the shell prompt that ran it."""
    lines = (DATA / "benchmark_model" / name).read_text(encoding="utf-8").splitlines()
    return "\n".join(x for x in lines if not x.startswith(("# ", "root@")))




# --- choosing quirks -----------------------------------------------------------------------------------------

def test_quirks_are_named_checked_and_recorded_on_the_phone(farm):
    assert {"bcl-soc-zone", "offline-core", "shell-v1", "litert2-benchmark", "tf1-benchmark", "op-profiling",
            "idle-freq-drop"} <= set(QUIRKS)
    with pytest.raises(SimulationError, match=r"unknown quirk 'meteor'; known: bcl-soc-zone, .*idle-freq-drop"):
        SimulatedFarm(["pixel4"], quirks=["meteor"])
    with pytest.raises(SimulationError, match="litert2-benchmark and tf1-benchmark cannot be combined"):
        SimulatedFarm(["pixel4"], quirks=["litert2-benchmark", "tf1-benchmark"])
    with pytest.raises(SimulationError, match="no simulated phone 'sim-pixel9-1'"):
        SimulatedFarm(["pixel4"], quirks_by_serial={"sim-pixel9-1": ["shell-v1"]})
    with pytest.raises(SimulationError, match="is not an executable file"):
        SimulatedFarm(["pixel4"], benchmark_binary="/nonexistent/benchmark_model")
    assert farm.phone("sim-noisy-1").quirks == frozenset()
    assert farm.phone("sim-noisy-4").quirks == frozenset(PHONE_QUIRKS["sim-noisy-4"])


def test_cli_rejects_bad_quirk_and_benchmark_binary(tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["farm", "simulate", "--quirk", "meteor"])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1
    assert "'meteor' is not one of" in r.output and "bcl-soc-zone" in r.output
    r = runner.invoke(main, ["farm", "simulate", "--benchmark-binary", str(tmp_path / "missing")])
    assert r.exit_code == 2 and r.output.strip().splitlines() == [
        f"error: --benchmark-binary: no such file '{tmp_path / 'missing'}'"]
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    r = runner.invoke(main, ["farm", "simulate", "--benchmark-binary", str(plain)])
    assert r.exit_code == 2 and "is not executable" in r.output and len(r.output.strip().splitlines()) == 1
    r = runner.invoke(main, ["farm", "simulate", "--quirk", "tf1-benchmark", "--quirk", "litert2-benchmark"])
    assert r.exit_code == 2 and r.output.strip().splitlines() == [
        "error: quirks litert2-benchmark and tf1-benchmark cannot be combined"]
    help_text = runner.invoke(main, ["farm", "simulate", "--help"]).output
    assert all(name in help_text for name in QUIRKS) and "--benchmark-binary" in help_text


# --- phones ----------------------------------------------------------------------------------------------------

def _zones(dev: adbutils.AdbDevice) -> list[tuple[str, int]]:
    out = dev.shell2('i=0; while [ -e /sys/class/thermal/thermal_zone$i ]; do z=/sys/class/thermal/thermal_zone$i; '
                     'echo "$(cat $z/type) $(cat $z/temp)"; i=$((i+1)); done', v2=True).stdout
    return [(kind, int(temp)) for kind, temp in (line.split() for line in out.splitlines())]


def test_bcl_soc_zone_is_thermal_zone0_reading_the_battery_percent(farm):
    recorded = [line.split(":")[0] for line in (DATA / "sysfs/sm8250-retroid-pocket5-thermal-zones.txt")
                .read_text().splitlines() if not line.startswith("#")]
    zones = _zones(device(farm, "sim-noisy-4"))
    assert zones[0] == ("soc", NOISY.battery_level)  # a battery percent where a naive reader expects millidegrees
    assert [kind for kind, _ in zones[1:]] == [kind for kind in recorded if kind != "soc"]
    readings = dict(zones)
    assert 25000 < readings["cpu-0-0-usr"] < 60000 and 25000 < readings["cpuss-0-usr"] < 60000
    assert readings["pm8150b-bcl-lvl0"] == 0 and readings["camera-therm-usr"] == -40000
    assert [kind for kind, _ in _zones(device(farm, "sim-noisy-1"))] == ["cpu-therm", "battery"]


def test_offline_core_has_no_cpufreq(farm):
    dev = device(farm, "sim-noisy-4")
    cpu = "/sys/devices/system/cpu"
    r = dev.shell2(f"cat {cpu}/cpu4/cpufreq/cpuinfo_max_freq", v2=True)
    assert r.returncode == 1 and "No such file" in r.stderr
    assert dev.shell(f"cat {cpu}/cpu3/cpufreq/cpuinfo_max_freq {cpu}/cpu5/cpufreq/cpuinfo_max_freq").split() == [
        str(NOISY.core_max_freqs_khz[3]), str(NOISY.core_max_freqs_khz[5])]
    assert dev.shell(f"cat {cpu}/online {cpu}/offline {cpu}/cpu4/online").split() == ["0-3,5-7", "4", "0"]
    assert dev.shell2("taskset 10 echo pinned", v2=True).returncode == 1  # cpu4 alone: sched_setaffinity fails
    assert dev.shell2("taskset 30 echo pinned", v2=True).stdout == "pinned\n"
    assert device(farm, "sim-noisy-1").shell(f"cat {cpu}/cpu4/cpufreq/cpuinfo_max_freq") == "2419200"


def test_shell_v1_phone_reports_android_6(farm):
    dev = device(farm, "sim-noisy-6")
    assert "shell-v1" in farm.phone("sim-noisy-6").quirks
    assert dev.shell("getprop ro.build.version.sdk") == "23"
    assert dev.shell("getprop ro.build.version.release") == "6.0.1"
    assert device(farm, "sim-noisy-1").shell("getprop ro.build.version.sdk") == str(NOISY.sdk)


def test_idle_freq_drop_shows_idle_cores_after_a_run(farm):
    freq = "sys/devices/system/cpu/cpu7/cpufreq/scaling_cur_freq"
    assert bench(farm, "sim-noisy-5", f"{FAST} --num_runs=5").returncode == 0
    phone = farm.phone("sim-noisy-5")
    assert phone.temperature_mc < NOISY.throttle_threshold_mc  # not throttled ...
    assert wait_until(lambda: (phone.sandbox / freq).read_text() == f"{NOISY.idle_freq_khz}\n")  # ... but idle
    assert (farm.phone("sim-noisy-1").sandbox / freq).read_text() == f"{NOISY.core_max_freqs_khz[7]}\n"


def test_thermal_state_cut_short_by_a_kill_is_recovered(farm):
    phone = farm.phone("sim-noisy-1")
    state = phone.state_dir / "thermal"
    for broken in ("", "31000.5 12", "31000.5 nan -", "garbage x y"):
        with open(state, "r+") as f:  # as a writer killed mid-write leaves it (under the lock, so no update races)
            fcntl.flock(f, fcntl.LOCK_EX)
            f.truncate()
            f.write(broken)
        assert phone.temperature_mc == pytest.approx(NOISY.ambient_mc, abs=1)
        with open(state) as f:
            fcntl.flock(f, fcntl.LOCK_SH)
            assert len(f.read().split()) == 3  # rewritten whole
    with open(state, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.truncate()
    r = bench(farm, "sim-noisy-1", f"{FAST} --num_runs=3")
    assert r.returncode == 0 and parse_benchmark_output(r.stdout + r.stderr).count == 3


# --- benchmark_model families ----------------------------------------------------------------------------------

def test_classic_output_follows_the_real_tool_line_for_line(farm):
    r = bench(farm, "sim-noisy-1", f"{FAST} --num_runs=50 --num_threads=4 --use_xnnpack=false", merged=True)
    assert r.returncode == 0
    assert r.stdout.count("\nINFO: Simulator timing: host-scaled (no pixel4 table installed)\n") == 1
    ours = [line for line in skeleton(r.stdout, MODEL) if not re.match(  # the simulator's own line left out
        r"INFO: Min (num runs|runs duration|warmup runs|warmup runs duration)|INFO: Simulator timing: ", line)]
    real = skeleton(fixture("classic-ssd-mobilenet-v2-am62x-tflite2.18-no-xnnpack.txt"),
                    "/usr/share/oob-demo-assets/models/ssd_mobilenet_v2_coco.tflite")
    assert ours == real
    assert "LiteRT version" not in r.stdout
    run = parse_benchmark_output(r.stdout)
    assert (run.family, run.count, run.ok) == ("classic", 50, True)


def test_classic_flags_help_unknown_and_bad_values(farm):
    r = bench(farm, "sim-noisy-1", "--help")
    assert r.returncode == 1 and r.stdout == "INFO: STARTING!\n"
    assert r.stderr.startswith(f"ERROR: usage: {BENCH} <flags>\nFlags:\n\t--num_runs=50 ")
    assert r.stderr.endswith("\nERROR: Benchmarking failed.\n")
    tool = detect_tool(r.stdout + r.stderr)
    assert tool.family == "classic" and {"use_xnnpack", "enable_op_profiling", "max_secs"} <= tool.flags
    r = bench(farm, "sim-noisy-1", f"{FAST} --num_runs=2 --use_cpu=true --graph=/other")
    assert r.returncode == 0 and "WARN: Unconsumed cmdline flags: --use_cpu=true --graph=/other\n" in r.stdout
    r = bench(farm, "sim-noisy-1", f"{FAST} --num_runs=abc")
    assert r.returncode == 1 and r.stderr.startswith(
        "ERROR: Failed to parse flag 'num_runs' against argv '--num_runs=abc'\nERROR: usage: ")
    r = bench(farm, "sim-noisy-1", f"{FAST} --num_runs=3x")  # std::istream reads the 3
    assert r.returncode == 0 and parse_benchmark_output(r.stdout).count == 3
    r = bench(farm, "sim-noisy-1", "--graph=/data/local/tmp/none.tflite")
    assert r.returncode == 1 and r.stderr == ("ERROR: Could not open '/data/local/tmp/none.tflite'.\n"
                                              "ERROR: Failed to load model /data/local/tmp/none.tflite\n"
                                              "ERROR: Benchmarking failed.\n")


def test_empty_warmup_prints_zero_like_the_real_stat(farm):
    r = bench(farm, "sim-noisy-1", f"--graph={MODEL} --warmup_runs=0 --warmup_min_secs=0 --num_runs=4 --min_secs=0")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "INFO: count=0" in lines and "nan" not in r.stdout
    assert re.search(r"First inference: 0, Warmup \(avg\): 0, Inference \(avg\): [\d.e+]+$", r.stdout, re.M)
    run = parse_benchmark_output(r.stdout)
    assert run.ok and run.count == 4 and run.warmup_avg_us in (0.0, None)


def test_max_secs_ends_the_timed_runs_early(farm):
    asked = 100_000
    for serial in ("sim-noisy-1", "sim-noisy-2"):  # classic, litert2
        r = bench(farm, serial, f"{FAST} --num_runs={asked} --max_secs=0.002")
        assert r.returncode == 0, r.stderr
        run = parse_benchmark_output(r.stdout + r.stderr)
        assert run.ok and 1 <= run.count < asked
        assert run.count * run.avg_us >= 2000 - run.count  # it ran until past max_secs (whole microseconds)
    r = bench(farm, "sim-noisy-3", f"--graph={MODEL} --num_runs=7 --max_secs=0 --min_secs=5")  # TF Lite 1.12
    assert parse_benchmark_output(r.stdout).count == 7  # it had no time limits: exactly the runs asked


def test_op_profiling_build_prints_the_profiler_tables(farm):
    r = bench(farm, "sim-noisy-4", f"{FAST} --num_runs=6")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    timings = out.index("INFO: Inference timings in us: ")
    assert timings < out.index("INFO: Profiling Info for Benchmark Initialization:") < out.index(
        "INFO: Operator-wise Profiling Info for Regular Benchmark Runs:")
    real = fixture("litert2-fc-fp32-sme2-use-profiler.txt").splitlines()  # same tsl StatsCalculator tables
    header = next(line for line in real if "[node type]" in line)
    summary = next(line for line in real if "[Node type]" in line)
    assert out.count(header + "\n") == 4 and out.count(summary + "\n") == 2
    assert re.search(r"^Timings \(microseconds\): count=6 first=\d+ curr=\d+ min=\d+ max=\d+ avg=[\d.e+]+ "
                     r"std=\d+\nMemory \(bytes\): count=0\n\d+ nodes observed\n", out, re.M)
    run = parse_benchmark_output(out)
    assert run.ok and run.count == 6  # the profiler's own count= line is not taken for the runs
    off = bench(farm, "sim-noisy-4", f"{FAST} --num_runs=2 --enable_op_profiling=false").stdout
    assert "Profiling Info" not in off and "INFO: Enable op profiling: [0]" in off
    assert "--enable_op_profiling=true" in bench(farm, "sim-noisy-4", "--help").stderr


def test_litert2_output_follows_the_real_tool(farm):
    r = bench(farm, "sim-noisy-2", f"{FAST} --num_runs=10 --use_cpu=true --use_xnnpack=false")
    assert r.returncode == 0, r.stderr
    assert "WARN: Unconsumed cmdline flags: --use_xnnpack=false\n" in r.stdout
    assert "INFO: Graph:" not in r.stdout  # the CompiledModel tool logs only the loop flags
    stats = [line for line in skeleton(r.stdout, MODEL) if line.startswith("INFO: count=")]
    real_stats = [line for line in skeleton(fixture("litert2-fc-fp32-sme2-use-profiler.txt"), "") if
                  line.startswith("INFO: count=")]
    assert stats[1] == real_stats[1]  # count= ... std= p5= median= p95=
    results = skeleton(r.stderr, MODEL)
    start = results.index("========== BENCHMARK RESULTS ==========")
    real = skeleton(fixture("litert2-llama-prefill-gpu-full-delegation-excerpt.txt"), "")
    real = real[real.index("========== BENCHMARK RESULTS =========="):]
    assert results[start:start + len(real)] == real
    assert results[start - 1] == "INFO: [benchmark_litert_model.h:N]" and "(10 runs)" in r.stderr
    assert "\nINFO: [simulator:0] Simulator timing: host-scaled (no pixel4 table installed)\n" in r.stderr
    run = parse_benchmark_output(r.stdout + r.stderr)
    assert (run.family, run.count, run.ok) == ("litert2", 10, True)


def test_litert2_help_lists_its_own_flags_and_exits_0(farm):
    r = bench(farm, "sim-noisy-2", "--help")
    assert r.returncode == 0
    assert r.stdout.startswith("\n  NPU Vendor Flags from LiteRT:\n\nINFO: STARTING!\n")
    tool = detect_tool(r.stdout + r.stderr)
    assert tool.family == "litert2"
    assert {"use_cpu", "use_gpu", "use_npu", "max_secs"} <= tool.flags and not tool.flags & {"use_xnnpack",
                                                                                               "use_nnapi"}


def test_tf1_output_and_flags_follow_tflite_1_12(farm):
    r = bench(farm, "sim-noisy-3", f"--graph={MODEL}", merged=True)
    assert r.returncode == 0
    ours = skeleton(r.stdout, MODEL)
    ours.remove("Simulator timing: host-scaled (no pixelN table installed)")  # the simulator's own line
    assert ours == skeleton(fixture("tf1-mobilenet-v1-quant-am57x-tflite1.12.txt"),
                            "mobilenet_v1_1.0_224_quant.tflite")
    run = parse_benchmark_output(r.stdout)
    assert (run.family, run.count, run.ok) == ("tf1", 50, True)
    r = bench(farm, "sim-noisy-3", "--help")
    assert r.returncode == 0 and r.stdout == "STARTING!\n"
    real = fixture("help-tf1-tflite1.12-am57x.txt").splitlines()
    flag = re.compile(r"\s*--(\w+)=(\S*)\s+(\w+)")
    assert [flag.match(x).groups() for x in r.stderr.splitlines() if flag.match(x)] == [
        flag.match(x).groups() for x in real if flag.match(x)]
    assert detect_tool(r.stderr).family == "classic"  # how the farm reads a 1.x listing
    r = bench(farm, "sim-noisy-3", f"--graph={MODEL} --num_runs=2 --use_xnnpack=false --enable_op_profiling=true")
    assert r.returncode == 0 and "Unconsumed" not in r.stdout and "Timings (microseconds)" not in r.stdout
    r = bench(farm, "sim-noisy-3", "--graph=/data/local/tmp/none.tflite")
    assert r.returncode == 134 and r.stderr == ("Could not open '/data/local/tmp/none.tflite'.\n"
                                                "Failed to mmap model /data/local/tmp/none.tflite\n")


# --- an external benchmark binary ------------------------------------------------------------------------------

FAKE_TOOL = """#!{python}
import os, sys
graph = next(a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--graph="))
print("INFO: STARTING!")
print("INFO: argv:", " ".join(sys.argv[1:]))
print("INFO: model bytes:", os.path.getsize(graph))
print("INFO: host files visible:", os.path.exists("/etc/hostname") or os.path.exists("/home"))
print("INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 "
      "seconds.")
print("INFO: count=1 curr=1500")
print()
print("INFO: Running benchmark for at least 3 iterations and at least 1 seconds but terminate if exceeding 150 "
      "seconds.")
print("INFO: count=3 first=1000 curr=1200 min=1000 max=1200 avg=1100 std=81")
print()
print("INFO: Inference timings in us: Init: 900, First inference: 1500, Warmup (avg): 1500, Inference (avg): 1100")
print("WARN: a line on stderr", file=sys.stderr)
sys.exit(3 if "--num_runs=13" in sys.argv else 0)
"""


def test_external_benchmark_binary_gets_the_flags_and_the_model(tmp_path, tiny_tflite):
    binary = tmp_path / "benchmark_model"
    binary.write_text(FAKE_TOOL.format(python=sys.executable))
    binary.chmod(0o755)
    with SimulatedFarm(["pixel4"], time_scale=TS, benchmark_binary=binary) as farm:
        dev = device(farm, farm.serials[0])
        dev.sync.push(tiny_tflite, MODEL)
        r = dev.shell2(f"cd /data/local/tmp && taskset f0 {BENCH} --graph=tiny.tflite --num_threads=2 "
                       "--num_runs=3", v2=True)
        assert r.returncode == 0 and r.stderr == "WARN: a line on stderr\n"
        argv = re.search(r"INFO: argv: (.*)", r.stdout).group(1).split()
        assert re.fullmatch(r"--graph=/proc/self/fd/\d+", argv[0]) and argv[1:] == ["--num_threads=2",
                                                                                    "--num_runs=3"]
        assert f"INFO: model bytes: {tiny_tflite.stat().st_size}\n" in r.stdout
        assert "INFO: host files visible: False\n" in r.stdout  # confined like the simulated tool
        run = parse_benchmark_output(r.stdout)
        assert (run.family, run.count, run.avg_us) == ("classic", 3, 1100.0)
        assert dev.shell2(f"{BENCH} --graph={MODEL} --num_runs=13", v2=True).returncode == 3


def test_background_load_slows_a_share_of_whole_tool_runs(tmp_path):
    """Each tool run of a background-load phone is slowed throughout, by 1.1-1.6x, in about a quarter of the runs;
    without the quirk no run is."""
    (tmp_path / "sandbox").mkdir()
    settings = {"profile": dataclasses.asdict(PROFILES["pixel4"]), "time_scale": TS,
                "host_timing_cache": str(tmp_path / "cache"), "table": None, "sandbox": str(tmp_path / "sandbox")}
    loaded = [SimulatedPhone(tmp_path, {**settings, "quirks": ["background-load"]}, None) for _ in range(400)]
    slowed = [p.load for p in loaded if p.load != 1.0]
    assert 0.15 < len(slowed) / len(loaded) < 0.35 and all(1.1 <= x <= 1.6 for x in slowed)
    phone = next(p for p in loaded if p.load != 1.0)
    phone.sigma = 0.0  # no per-inference noise: the run's factor alone
    assert phone.duration_s(0.01) == pytest.approx(0.01 / phone.cluster_fraction * phone.load)
    assert {SimulatedPhone(tmp_path, {**settings, "quirks": []}, None).load for _ in range(50)} == {1.0}
