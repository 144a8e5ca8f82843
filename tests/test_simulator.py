"""The simulated phone farm: adb server protocol (adbutils and the real adb binary), sandboxed phones, the simulated
benchmark_model, the thermal model and injected faults."""

import dataclasses
import os
import re
import subprocess
import threading
import time
import warnings
from pathlib import Path

import adbutils
import pytest
import torch

from elasticvit_deploy.simulator import PROFILES, PhoneProfile, SimulatedFarm, SimulationError

from .procs import adb_servers, sleepers, wait_until

TS = 0.01  # time_scale of most tests: simulated seconds pass 100x faster
DIR = "/data/local/tmp/elasticvit-deploy"
BENCH = f"{DIR}/benchmark_model"
RUNNER = Path(__file__).resolve().parent.parent / "android_runner" / "runner.sh"
ADB = Path(adbutils.__file__).parent / "binaries" / "adb"
_AVG = re.compile(r"Inference \(avg\): ([\d.]+)")


@pytest.fixture(autouse=True)
def _no_real_adb_server(monkeypatch):
    """adbutils must never start a real adb server."""
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/false")


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory) -> Path:
    import litert_torch

    module = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                                 torch.nn.Conv2d(16, 16, 3, padding=1)).eval()
    path = tmp_path_factory.mktemp("model") / "tiny.tflite"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the converter's own deprecation noise
        path.write_bytes(bytes(litert_torch.convert(module, (torch.zeros(1, 3, 16, 16),)).model_content()))
    return path


def client(farm: SimulatedFarm) -> adbutils.AdbClient:
    return adbutils.AdbClient(host="127.0.0.1", port=farm.port)


def device(farm: SimulatedFarm, serial: str | None = None) -> adbutils.AdbDevice:
    return client(farm).device(serial or farm.serials[0])


def install_model(dev: adbutils.AdbDevice, model: Path) -> str:
    dev.sync.push(model, f"{DIR}/models/tiny.tflite")
    return f"{DIR}/models/tiny.tflite"


def bench(dev: adbutils.AdbDevice, model: str, runs: int, prefix: str = "") -> adbutils.ShellReturn:
    result = dev.shell2(f"{prefix}{BENCH} --graph={model} --warmup_runs=1 --num_runs={runs} --min_secs=0 "
                        "--warmup_min_secs=0", v2=True)
    assert result.returncode == 0, result.output
    return result


def avg_us(result: adbutils.ShellReturn) -> float:
    return float(_AVG.search(result.stdout).group(1))


def read_int(farm: SimulatedFarm, serial: str, rel: str) -> int:
    return int((farm.phone(serial).sandbox / rel).read_text())




def test_profiles_are_realistic_and_frozen():
    assert set(PROFILES) == {"pixel1", "pixel4", "pixel6", "xiaomi11"}
    assert all(isinstance(p, PhoneProfile) and p.abi == "arm64-v8a" for p in PROFILES.values())
    p1, p4 = PROFILES["pixel1"], PROFILES["pixel4"]
    assert p1.model == "Pixel" and p1.soc == "MSM8996" and p1.core_max_freqs_khz == (1593600,) * 2 + (2150400,) * 2
    assert p4.num_cores == 8 and p4.speed_factor == 2.2 and PROFILES["xiaomi11"].manufacturer == "Xiaomi"
    assert len({p.fingerprint for p in PROFILES.values()}) == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        p1.speed_factor = 1.0  # type: ignore[misc]
    with pytest.raises(SimulationError, match="unknown phone profile"):
        SimulatedFarm(["pixel99"])


def test_farm_root_may_be_any_path(tmp_path):
    root = tmp_path / "a farm; touch pwned $(touch pwned2)"
    with SimulatedFarm(["pixel1"], root=root) as farm:
        assert farm.phone("sim-pixel1-1").sandbox == root.resolve() / "sim-pixel1-1"
        assert device(farm).shell("echo ok; pwd") == "ok\n/"
    assert (root / "sim-pixel1-1" / "system/bin/getprop").exists()  # an explicit root is kept
    assert not list(tmp_path.rglob("pwned*"))


def test_device_list_serials_and_states():
    with SimulatedFarm(["pixel1", "pixel4", "pixel4"], time_scale=TS) as farm:
        assert farm.serials == ["sim-pixel1-1", "sim-pixel4-1", "sim-pixel4-2"]
        c = client(farm)
        assert c.server_version() == 41
        assert [(d.serial, d.state) for d in c.list()] == [(s, "device") for s in farm.serials]
        tags = c.list(extended=True)[1].tags
        assert tags["model"] == "Pixel_4" and tags["device"] == "flame" and tags["transport_id"] == "2"
        assert c.device(transport_id=2).shell("getprop ro.product.model") == "Pixel 4"
        farm.phone("sim-pixel4-1").set_fault("offline")
        farm.phone("sim-pixel4-2").set_fault("unauthorized")
        assert [d.state for d in c.list()] == ["device", "offline", "unauthorized"]
        assert [d.serial for d in c.device_list()] == ["sim-pixel1-1"]
        with pytest.raises(adbutils.AdbError, match="device offline"):
            c.device("sim-pixel4-1").shell("true")
        with pytest.raises(adbutils.AdbError, match="device unauthorized"):
            c.device("sim-pixel4-2").shell("true")
        with pytest.raises(adbutils.AdbError, match="device 'nope' not found"):
            c.device("nope").shell("true")
        with pytest.raises(adbutils.AdbError, match="device offline"):  # as a real server answers get-state
            c.device("sim-pixel4-1").get_state()
        farm.phone("sim-pixel4-1").clear_faults()
        c.wait_for("sim-pixel4-1", timeout=5)
        assert c.device("sim-pixel4-1").shell("echo back") == "back"


def test_shell_v2_streams_exit_codes_and_v1():
    with SimulatedFarm(["pixel6"], time_scale=TS) as farm:
        dev = device(farm)
        r = dev.shell2("echo out; echo err >&2; exit 3", v2=True)
        assert (r.stdout, r.stderr, r.returncode) == ("out\n", "err\n", 3)
        assert dev.shell2("kill -9 $$", v2=True).returncode == 137
        assert dev.shell("echo merged; echo also >&2") == "merged\nalso"  # shell v1: one stream, no exit code
        assert dev.get_features() == "shell_v2,fixed_push_mkdir"


def test_hostile_arguments_stay_literal():
    with SimulatedFarm(["pixel4"], time_scale=TS) as farm:
        args = ["a; touch pwned", "$(touch pwned2)", "x'y\"z", "new\nline"]
        r = device(farm).shell2(["echo", *args], v2=True)
        assert r.returncode == 0 and r.stdout == " ".join(args) + "\n"
        assert not [p for p in farm.phone(farm.serials[0]).sandbox.parent.rglob("pwned*")]
        assert not list(Path.cwd().glob("pwned*"))


def test_push_stat_list_pull_roundtrip(tmp_path):
    data = os.urandom(200_000) + b"\x00\xff" * 1000
    with SimulatedFarm(["pixel1"], time_scale=TS) as farm:
        sync = device(farm).sync
        assert sync.push(data, "/data/local/tmp/sub/blob.bin", mode=0o644) == len(data)
        info = sync.stat("/data/local/tmp/sub/blob.bin")
        assert info.size == len(data) and info.mode == 0o100666  # adbd copies the owner's bits to group and other
        assert sync.stat("/data/local/tmp/missing").mode == 0
        assert [f.path for f in sync.list("/data/local/tmp/sub")] == ["blob.bin"]
        assert sync.pull("/data/local/tmp/sub/blob.bin", tmp_path / "blob.bin") == len(data)
        assert (tmp_path / "blob.bin").read_bytes() == data == sync.read_bytes("/sdcard/../data/local/tmp/sub/blob.bin")
        assert (farm.phone(farm.serials[0]).sandbox / "data/local/tmp/sub/blob.bin").read_bytes() == data
        with pytest.raises(adbutils.AdbError):
            sync.push(b"x", "/system/bin/evil")  # not writable on an unrooted phone
        with pytest.raises(adbutils.AdbError, match="No such file"):
            sync.read_bytes("/data/local/tmp/missing")


def test_device_paths_are_the_phones_own():
    with SimulatedFarm(["pixel4"], time_scale=TS) as farm:
        dev = device(farm)
        sandbox = farm.phone(farm.serials[0]).sandbox
        dev.sync.push(b"hello\n", "/sdcard/greeting.txt")
        assert dev.shell("cat /sdcard/greeting.txt") == "hello"
        dev.shell("echo note > /data/local/tmp/note.txt")
        assert (sandbox / "data/local/tmp/note.txt").read_text() == "note\n"
        r = dev.shell2("pwd; echo $HOME; ls -d /data/local/tmp/note.txt; ls /data/local/tmp/nope", v2=True)
        assert r.stdout == "/\n/\n/data/local/tmp/note.txt\n" and str(sandbox) not in r.stderr
        assert "/data/local/tmp/nope" in r.stderr
        assert dev.shell("cat /sys/class/thermal/thermal_zone0/type") == "cpu-therm"


def test_getprop_and_device_tools():
    with SimulatedFarm(list(PROFILES), time_scale=TS) as farm:
        for serial in farm.serials:
            profile = farm.phone(serial).profile
            dev = device(farm, serial)
            assert dev.prop.model == profile.model
            assert dev.shell("getprop ro.soc.model") == profile.soc
            assert dev.shell("getprop ro.build.version.sdk") == str(profile.sdk)
            assert dev.shell(["getprop", "no.such.prop"]) == ""
        dev = device(farm, "sim-pixel1-1")
        listing = dev.shell("getprop")
        assert "[ro.product.manufacturer]: [Google]" in listing and "[ro.product.cpu.abi]: [arm64-v8a]" in listing
        battery = dev.shell("dumpsys battery")
        assert "  level: 85" in battery and "  temperature: 300" in battery
        assert dev.shell("id -u") == "2000" and "uid=2000(shell)" in dev.shell("id")
        assert dev.shell2("taskset c echo pinned", v2=True).stdout == "pinned\n"
        for bad in ("10", "xyz", "0"):  # pixel1 has 4 cores: mask 0x10 names none of them
            assert dev.shell2(f"taskset {bad} echo no", v2=True).returncode == 1
        freqs = [read_int(farm, "sim-pixel1-1", f"sys/devices/system/cpu/cpu{i}/cpufreq/cpuinfo_max_freq")
                 for i in range(4)]
        assert freqs == [1593600, 1593600, 2150400, 2150400]


def test_runner_script_on_a_simulated_phone(tiny_tflite):
    with SimulatedFarm(["pixel4"], time_scale=TS) as farm:
        dev = device(farm)
        dev.sync.push(RUNNER, f"{DIR}/runner.sh")
        model = install_model(dev, tiny_tflite)
        r = dev.shell2(f"sh {DIR}/runner.sh --bench {BENCH} --model {model} --rounds 2 "
                       "--temp-path /sys/class/thermal/thermal_zone0/temp --temp-scale 1000 --cores f -- "
                       f"--graph={model} --warmup_runs=2 --num_runs=5 --min_secs=0 --warmup_min_secs=0", v2=True)
        assert r.returncode == 0, r.output
        lines = r.stdout.splitlines()
        assert lines[:2] == ["EVD version 2", "EVD root 0"] and lines[-1] == "EVD done"
        for rnd in (0, 1):
            assert f"EVD end round={rnd} exit=0" in lines
            before = next(x for x in lines if x.startswith(f"EVD before round={rnd} "))
            assert re.fullmatch(rf"EVD before round={rnd} temp_mc=\d{{5}} freqs_khz=(\d:\d+,){{7}}7:\d+", before)
        counts = [x for x in lines if x.startswith("INFO: count=")]
        assert len(counts) == 4 and all(re.match(r"INFO: count=(2|5) ", x) for x in counts)
        assert lines.count(f"INFO: Graph: [{model}]") == 2 and "LiteRT version" not in r.stdout
        assert "Inference timings in us: Init: " in r.stdout


def test_benchmark_model_errors_and_speeds(tiny_tflite):
    with SimulatedFarm(["pixel1", "pixel6"], time_scale=1.0) as farm:  # real time: too short to heat up
        slow, fast = device(farm, "sim-pixel1-1"), device(farm, "sim-pixel6-1")
        r = slow.shell2(f"{BENCH} --graph=/data/local/tmp/none.tflite", v2=True)
        assert r.returncode == 1 and "ERROR: Could not open '/data/local/tmp/none.tflite'." in r.stderr
        slow.sync.push(b"not a flatbuffer" * 10, "/data/local/tmp/bad.tflite")
        r = slow.shell2(f"{BENCH} --graph=/data/local/tmp/bad.tflite", v2=True)
        assert r.returncode == 1 and "ERROR: Failed to load model /data/local/tmp/bad.tflite" in r.stderr
        models = [install_model(d, tiny_tflite) for d in (slow, fast)]
        ratio = avg_us(bench(slow, models[0], 30)) / avg_us(bench(fast, models[1], 30))
        assert 4.0 / 1.4 * 0.8 < ratio < 4.0 / 1.4 * 1.25  # the profiles' speed factors
        little, big = (avg_us(bench(slow, models[0], 30, prefix=f"taskset {mask} ")) for mask in ("1", "8"))
        assert 2150400 / 1593600 * 0.85 < little / big < 2150400 / 1593600 * 1.15


def test_heating_then_cooling(tiny_tflite):
    hot = dataclasses.replace(PROFILES["pixel4"], name="hot", heat_mc_per_busy_s=10_000)
    with SimulatedFarm([hot], time_scale=TS) as farm:
        serial = farm.serials[0]
        phone, dev = farm.phone(serial), device(farm)
        model = install_model(dev, tiny_tflite)
        assert phone.temperature_mc == pytest.approx(hot.ambient_mc, abs=1)
        bench(dev, model, 300)
        assert phone.temperature_mc > hot.ambient_mc + 5000  # busy: heats up
        assert read_int(farm, serial, "sys/class/thermal/thermal_zone0/temp") > hot.ambient_mc + 3000
        assert wait_until(lambda: phone.temperature_mc < hot.ambient_mc + 200)  # idle: decays towards ambient
        assert wait_until(lambda: read_int(farm, serial, "sys/class/thermal/thermal_zone0/temp")
                          < hot.ambient_mc + 300)


def test_throttling_slows_runs_and_lowers_frequency(tiny_tflite):
    steady = dataclasses.replace(PROFILES["pixel6"], name="steady", heat_mc_per_busy_s=0.0, cooling_tau_s=1e9,
                                 throttle_factor=0.5)
    with SimulatedFarm([steady], time_scale=TS) as farm:
        serial = farm.serials[0]
        phone, dev = farm.phone(serial), device(farm)
        freq = "sys/devices/system/cpu/cpu7/cpufreq/scaling_cur_freq"
        model = install_model(dev, tiny_tflite)
        cool = avg_us(bench(dev, model, 40))
        assert read_int(farm, serial, freq) == 2802000
        phone.temperature_mc = steady.throttle_threshold_mc + 10_000
        assert wait_until(lambda: read_int(farm, serial, freq) == 1401000)
        throttled = avg_us(bench(dev, model, 40))
        assert 1.6 < throttled / cool < 2.5


def test_fault_offline_and_unauthorized_count_down():
    with SimulatedFarm(["pixel4"], time_scale=TS) as farm:
        phone, dev = farm.phone(farm.serials[0]), device(farm)
        phone.set_fault("offline", times=1)
        with pytest.raises(adbutils.AdbError, match="offline"):
            dev.shell("true")
        assert dev.shell("echo ok") == "ok"
        phone.set_fault("unauthorized", times=2)
        for _ in range(2):
            with pytest.raises(adbutils.AdbError, match="unauthorized"):
                dev.sync.stat("/data/local/tmp")
        assert client(farm).list()[0].state == "device"
        with pytest.raises(ValueError):
            phone.set_fault("meteor")


def test_fault_drop_closes_mid_output():
    with SimulatedFarm(["pixel4"], time_scale=TS) as farm:
        phone, dev = farm.phone(farm.serials[0]), device(farm)
        phone.set_fault("drop", times=1)
        with pytest.raises(EOFError):
            dev.shell2("echo 0123456789; sleep 0.2; echo more", v2=True)
        assert dev.shell2("echo fine", v2=True).stdout == "fine\n"


def test_fault_garble_keeps_exit_code():
    with SimulatedFarm(["pixel4"], time_scale=TS) as farm:
        phone, dev = farm.phone(farm.serials[0]), device(farm)
        phone.set_fault("garble")
        r = dev.shell2("echo EVD version 1; exit 4", v2=True)
        assert r.returncode == 4 and len(r.stdout) == len("EVD version 1\n") and r.stdout != "EVD version 1\n"
        phone.clear_faults()
        assert dev.shell2("echo clean", v2=True).stdout == "clean\n"


def test_fault_slow_delays_answers():
    with SimulatedFarm(["pixel4"], time_scale=1.0) as farm:
        phone, dev = farm.phone(farm.serials[0]), device(farm)
        dev.shell("true")
        phone.set_fault("slow", times=1)
        start = time.monotonic()
        assert dev.shell("echo late") == "late"
        assert time.monotonic() - start >= 2.0  # the fault's 2 s delay
        start = time.monotonic()
        dev.shell("true")
        assert time.monotonic() - start < 2.0  # the fault was used up: no second delay


def test_disconnect_kills_the_command():
    """The command runs in the phone's own PID namespace, so it is found on the host by its unique argument."""
    with SimulatedFarm(["pixel4"], time_scale=TS) as farm:
        dev = device(farm)
        conn = dev.open_transport()
        conn.send_command("shell,v2:touch /data/local/tmp/started; exec sleep 31337")
        conn.check_okay()
        started = farm.phone(farm.serials[0]).sandbox / "data/local/tmp/started"
        assert wait_until(lambda: started.exists() and sleepers("31337"))
        conn.close()
        assert wait_until(lambda: not sleepers("31337"))




def test_concurrent_phones_overlap():
    """Commands on different phones run at the same time: their (real-time) sleeps overlap, whatever the load."""
    with SimulatedFarm(["pixel1", "pixel4", "pixel6", "xiaomi11"], time_scale=1.0) as farm:
        results: dict[str, str] = {}
        spans: dict[str, tuple[float, float]] = {}

        def work(serial: str) -> None:
            start = time.monotonic()
            results[serial] = device(farm, serial).shell2("sleep 0.5; getprop ro.product.model", v2=True).stdout
            spans[serial] = (start, time.monotonic())

        threads = [threading.Thread(target=work, args=(s,)) for s in farm.serials]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert max(a for a, _ in spans.values()) < min(b for _, b in spans.values())
        assert sorted(results.values()) == sorted(f"{p.model}\n" for p in PROFILES.values())




@pytest.mark.skipif(not os.access(ADB, os.X_OK), reason="adbutils ships no adb binary on this platform")
def test_real_adb_binary_talks_to_the_farm(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("ADB_SERVER_SOCKET", "ANDROID_ADB_SERVER_PORT")}
    env["HOME"] = str(tmp_path)  # adb keeps its ~/.android there
    servers_before = adb_servers()
    with SimulatedFarm(["pixel1", "pixel4"], time_scale=TS) as farm:

        def adb(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([str(ADB), "-P", str(farm.port), *args], env=env, capture_output=True, text=True,
                                  timeout=30, stdin=subprocess.DEVNULL, check=False)

        listing = adb("devices")
        assert listing.returncode == 0 and "daemon" not in listing.stderr
        assert listing.stdout.splitlines()[1:3] == [f"{s}\tdevice" for s in farm.serials]
        hi = adb("-s", farm.serials[1], "shell", "echo", "hi")
        assert (hi.returncode, hi.stdout) == (0, "hi\n")
        code = adb("-s", farm.serials[1], "shell", "echo oops >&2; exit 7")
        assert (code.returncode, code.stderr) == (7, "oops\n")
        assert adb("-s", farm.serials[0], "push", str(RUNNER), f"{DIR}/runner.sh").returncode == 0
        assert adb("-s", farm.serials[0], "pull", f"{DIR}/runner.sh", str(tmp_path / "r.sh")).returncode == 0
        assert (tmp_path / "r.sh").read_bytes() == RUNNER.read_bytes()
        assert "device 'nope' not found" in adb("-s", "nope", "shell", "true").stderr
    assert adb_servers() <= servers_before  # no real adb server was started
