"""The farm harness end to end against simulated phones behind the adb server protocol (no real phone)."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from elasticvit_deploy.cli import main
from elasticvit_deploy.export import tflite_format
from elasticvit_deploy.farm.adb import AdbServer, Phone
from elasticvit_deploy.farm.batch import measure_batch
from elasticvit_deploy.farm.identity import read_identity
from elasticvit_deploy.farm.measure import LocalModel, MeasureOptions, PhoneDevice
from elasticvit_deploy.farm.runner_protocol import BENCHMARK_PATH, MODELS_DIR, RunnerSettings
from elasticvit_deploy.farm.store import ResultsStore
from elasticvit_deploy.simulator import SimulatedFarm


@pytest.fixture
def model_file(tiny_tflite):
    return tiny_tflite


@pytest.fixture
def farm(monkeypatch):
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/false")  # adbutils must never start a real adb server
    for var in ("ADB_SERVER_SOCKET", "ANDROID_ADB_SERVER_PORT"):
        monkeypatch.delenv(var, raising=False)
    with SimulatedFarm(["pixel4", "pixel6"], time_scale=0.02) as f:
        yield f


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


FAST = ["--warmup", "2", "--runs", "5", "--rounds", "2", "--cool-timeout", "2"]


def test_identity_and_list(farm):
    server = AdbServer("127.0.0.1", farm.port, explicit=True)
    ident = read_identity(Phone(server, "sim-pixel4-1"))
    assert ident.model == "Pixel 4" and ident.abi == "arm64-v8a" and len(ident.core_max_khz) == 8
    assert ident.big_core_mask() == "70" and ident.temp_path and ident.temp_path.startswith("/sys/")
    assert run("farm", "add", "p4", "--serial", "sim-pixel4-1").exit_code == 0
    r = run("farm", "list", "--adb", f"127.0.0.1:{farm.port}", "--json")
    assert r.exit_code == 0, r.output
    rows = {d["serial"]: d for d in json.loads(r.stdout)["devices"]}
    assert rows["sim-pixel4-1"] == {"serial": "sim-pixel4-1", "alias": "p4", "model": "Pixel 4", "state": "device",
                                    "adb": f"127.0.0.1:{farm.port}"}
    assert rows["sim-pixel6-1"]["state"] == "device"


def test_measure_on_a_phone_stores_and_reuses(farm, model_file, tmp_path):
    store = tmp_path / "r.sqlite"
    args = ["measure", model_file, "--serial", "sim-pixel4-1", "--adb", f"127.0.0.1:{farm.port}", "--store", store,
            "--json", *FAST]
    r = run(*args)
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.stdout)["results"]
    assert res["device"]["model"] == "Pixel 4" and res["flags"]["cores"] == "70" and not res["cached"]
    assert res["runtime"].startswith("benchmark_model classic@") and res["rounds"] == 2 and res["inferences"] == 10
    assert res["median_ms"] > 0 and res["temperature_c"]["first"] is not None and "any" in res["throttling"]
    sandbox = farm.phone("sim-pixel4-1").sandbox
    pushed = list((sandbox / MODELS_DIR.lstrip("/")).glob("*.tflite"))
    assert [p.name for p in pushed] == [f"{res['model_sha256']}.tflite"]
    again = json.loads(run(*args).stdout)["results"][0]
    assert again["cached"] and again["median_ms"] == res["median_ms"]


def test_all_phones_in_parallel_and_hostile_file_names(farm, model_file, tmp_path):
    hostile = tmp_path / "a; touch pwned $(touch pwned2) `touch pwned3` 'q\".tflite"
    shutil.copy(model_file, hostile)
    r = run("measure", hostile, "--all", "--adb", f"127.0.0.1:{farm.port}", "--store", tmp_path / "r.sqlite",
            "--json", *FAST)
    assert r.exit_code == 0, r.output
    results = json.loads(r.stdout)["results"]
    assert sorted(x["device"]["serial"] for x in results) == ["sim-pixel4-1", "sim-pixel6-1"]
    for serial in farm.serials:
        assert not [p for p in farm.phone(serial).sandbox.rglob("pwned*")]
    assert not list(tmp_path.rglob("pwned*")) and not list(Path.cwd().glob("pwned*"))


def test_offline_and_garbled_phones_are_reported_others_measured(farm, model_file, tmp_path):
    farm.phone("sim-pixel6-1").set_fault("offline")
    store = tmp_path / "r.sqlite"
    r = run("measure", model_file, "--serial", "sim-pixel4-1", "--serial", "sim-pixel6-1", "--adb",
            f"127.0.0.1:{farm.port}", "--store", store, *FAST)
    assert r.exit_code == 1
    assert "sim-pixel4-1" in r.stdout and "skipped sim-pixel6-1: sim-pixel6-1: offline" in r.stderr
    farm.phone("sim-pixel6-1").clear_faults()
    farm.phone("sim-pixel6-1").set_fault("garble")
    r = run("measure", model_file, "--serial", "sim-pixel6-1", "--adb", f"127.0.0.1:{farm.port}", "--store", store,
            "--fresh", *FAST)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.exit_code == 1 and len(errors) == 1 and "sim-pixel6-1" in errors[0]
    exported = json.loads(run("results", "export", "--store", store).stdout)["measurements"]
    assert [m["device_serial"] for m in exported] == ["sim-pixel4-1"]  # the earlier result is kept


def test_a_phone_failing_repeatedly_is_quarantined(farm, model_file, tmp_path):
    server = AdbServer("127.0.0.1", farm.port, explicit=True)
    options = MeasureOptions(rounds=1)
    settings = RunnerSettings(warmup=1, runs=2, cool_timeout_s=1)
    bad = PhoneDevice(Phone(server, "sim-pixel6-1", retries=0), None, settings, options)
    good = PhoneDevice(Phone(server, "sim-pixel4-1"), None, settings, options)
    models = []
    for i in range(5):
        models.append(tmp_path / f"m{i}.tflite")
        models[-1].write_bytes(tflite_format.embed_metadata(model_file.read_bytes(), {"copy": i}))  # same graph
    bad.prepare()
    farm.phone("sim-pixel6-1").set_fault("garble")
    bad.prepare = lambda: None  # already prepared; the runner output is what gets garbled
    report = measure_batch([bad, good], [LocalModel.load(m) for m in models], ResultsStore(tmp_path / "r.sqlite"),
                           options, quarantine_after=3)
    assert len([f for f in report.failures if f["device"] == "sim-pixel6-1"]) == 3
    assert any("quarantined after 3 failures" in s["reason"] for s in report.skipped)
    assert len(report.results) == 5 and {r.device["serial"] for r in report.results} == {"sim-pixel4-1"}


def test_transient_drop_is_retried(farm, model_file, tmp_path):
    farm.phone("sim-pixel4-1").set_fault("drop", times=1)
    r = run("measure", model_file, "--serial", "sim-pixel4-1", "--adb", f"127.0.0.1:{farm.port}", "--store",
            tmp_path / "r.sqlite", "--json", *FAST)
    assert r.exit_code == 0, r.output


def test_missing_benchmark_model_and_setup(farm, model_file, tmp_path):
    tool = farm.phone("sim-pixel6-1").sandbox / BENCHMARK_PATH.lstrip("/")
    simulated = tool.read_bytes()
    tool.unlink()
    r = run("measure", model_file, "--serial", "sim-pixel6-1", "--adb", f"127.0.0.1:{farm.port}", "--store",
            tmp_path / "r.sqlite", *FAST)
    assert r.exit_code == 1 and "sim-pixel6-1: no benchmark_model" in r.stderr and "farm setup" in r.stderr
    fake = tmp_path / "benchmark_model"
    fake.write_bytes(b"\x7fELF" + b"\x00" * 64)  # an ELF header, but no tool: pushed, then refused by name
    r = run("farm", "setup", "--benchmark-binary", fake, "--serial", "sim-pixel6-1", "--adb", f"127.0.0.1:{farm.port}")
    assert r.exit_code == 1 and "is not a benchmark tool we know" in r.stderr, r.output
    assert tool.read_bytes() == fake.read_bytes()
    tool.write_bytes(simulated)  # the simulated benchmark_model again: detected as the classic tool
    r = run("measure", model_file, "--serial", "sim-pixel6-1", "--adb", f"127.0.0.1:{farm.port}", "--store",
            tmp_path / "r.sqlite", "--json", *FAST)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["results"][0]["tool"]["family"] == "classic"


def test_unknown_serial_one_line(farm, model_file, tmp_path):
    r = run("measure", model_file, "--serial", "nope-1", "--adb", f"127.0.0.1:{farm.port}", "--store",
            tmp_path / "r.sqlite")
    assert r.exit_code == 1 and "nope-1: not connected" in r.stderr and "Traceback" not in r.output
