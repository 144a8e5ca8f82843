"""Farm pieces that need no phone: statistics, runner protocol, results store, registry, host measurement."""

import json
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner

from elasticvit_deploy.cli import main
from elasticvit_deploy.farm.adb import AdbServer, FarmError, FarmInputError, check_serial, device_path
from elasticvit_deploy.farm.measure import HostDevice, LocalModel, MeasureOptions, measure_model
from elasticvit_deploy.farm.registry import DeviceEntry, Registry
from elasticvit_deploy.farm.runner_protocol import (
    RunnerOutputError,
    RunnerSettings,
    SettingsError,
    parse_runner_output,
    round_problem,
    runner_argv,
)
from elasticvit_deploy.farm.stats import is_stable, median_ci, summarize
from elasticvit_deploy.farm.store import ResultsStore, measurement_key
from elasticvit_deploy.farm.summary import MeasurementSummary
from supernet.documents import check_header


def test_summary_and_median_ci():
    x = [10.0, 11.0, 9.0, 10.5, 9.5, 10.2, 9.8, 10.1, 30.0]
    s = summarize(x)
    assert s.median_ms == pytest.approx(10.1) and s.min_ms == 9.0 and s.max_ms == 30.0 and s.runs == 9
    assert s.p90_ms == pytest.approx(np.percentile(x, 90)) and s.cv == pytest.approx(np.std(x, ddof=1) / np.mean(x))
    lo, hi = median_ci(x)
    assert lo <= s.median_ms <= hi and hi < 30.0  # an outlier does not reach the CI of the median
    rng = np.random.default_rng(0)
    assert is_stable(list(100 + rng.normal(0, 0.1, 40)), 1.0)
    assert not is_stable(list(100 + rng.normal(0, 30, 6)), 1.0)
    with pytest.raises(ValueError):
        summarize([])


RUNNER_OK = """EVD version 2
EVD root 0
EVD cool round=0 waited_s=2 temp_mc=39000 state=cooled sensor=zone
EVD before round=0 temp_mc=39000 freqs_khz=0:1000,1:2000
EVD begin round=0
INFO: STARTING!
INFO: Min num runs: [50]
INFO: count=10 first=2345 curr=2101 min=2050 max=2345 avg=2120.5 std=80
INFO: count=50 first=2100 curr=2090 min=2010 max=2210 avg=2101.2 std=41
INFO: Inference timings in us: Init: 12345, First inference: 2345, Warmup (avg): 2120.5, Inference (avg): 2101.2
EVD end round=0 exit=0
EVD after round=0 temp_mc=41000 freqs_khz=0:1000,2:1500
EVD done
"""


def test_runner_output_parsing():
    out = parse_runner_output(RUNNER_OK)
    (r,) = out.rounds
    assert r.count == 50 and r.avg_us == pytest.approx(2101.2) and r.init_us == 12345 and r.latency_ms == 2.1012
    assert r.cool == {"waited_s": 2, "temp_mc": 39000, "state": "cooled", "sensor": "zone"}
    assert r.before["freqs_khz"] == [1000, 2000] and r.after["freqs_khz"] == [1000, 0, 1500]  # by cpu number
    assert out.family == "classic" and out.root is False and round_problem(r) is None
    for broken, code in [(RUNNER_OK.replace("EVD done\n", ""), "garbled"),
                         ("EVD version 2\nEVD error bench_missing benchmark_model not found\n", "bench_missing"),
                         (RUNNER_OK.replace("EVD version 2", "EVD version 1"), "garbled"),
                         (RUNNER_OK.replace("state=cooled", "state=$(id)"), "garbled"),
                         ("\x00\x13garbage" * 20, "garbled")]:
        with pytest.raises(RunnerOutputError) as e:
            parse_runner_output(broken)
        assert e.value.code == code


def test_failed_rounds_say_why():
    (r,) = parse_runner_output(RUNNER_OK.replace("exit=0", "exit=1")).rounds
    assert "exit 1" in round_problem(r)
    failed = RUNNER_OK.replace("INFO: count=10", "ERROR: Failed to allocate tensors!\nINFO: count=10").replace(
        "exit=0", "exit=1")
    (r,) = parse_runner_output(failed).rounds
    assert "Failed to allocate tensors" in round_problem(r)
    taskset = "\n".join(ln for ln in RUNNER_OK.splitlines() if not ln.startswith("INFO")).replace(
        "EVD end", "taskset: sched_setaffinity: Invalid argument\nEVD end").replace("exit=0", "exit=1")
    (r,) = parse_runner_output(taskset).rounds
    assert "sched_setaffinity" in round_problem(r)
    (r,) = parse_runner_output(RUNNER_OK.replace("INFO: Inference timings", "INFO: nothing").replace(
        "INFO: count=", "INFO: counted=")).rounds
    assert "no timings" in round_problem(r)


def test_runner_argv_is_validated():
    flags = ["--graph=/data/local/tmp/elasticvit-deploy/models/ab.tflite", "--num_runs=5"]
    argv = runner_argv("/data/local/tmp/elasticvit-deploy/models/ab.tflite", flags, RunnerSettings(cores="70"), 3,
                       "/sys/class/thermal/thermal_zone0/temp", 1000)
    assert argv[:2] == ["sh", "/data/local/tmp/elasticvit-deploy/runner.sh"] and "--cores" in argv
    assert argv[-3:] == ["--", *flags]
    for bad in [["--graph=/x;id"], ["-x"], ["--a b"], ["--graph=$(id)"]]:
        with pytest.raises(ValueError):
            runner_argv("/data/m.tflite", bad, RunnerSettings(), 1, None, 1000)
    for bad in ["/data/x; rm -rf /", "/data/$(id)", "relative/path", "/data/../etc", "/data/a b"]:
        with pytest.raises(FarmError):
            device_path(bad)
    for settings in [RunnerSettings(cores="7;0"), RunnerSettings(runs=0), RunnerSettings(delegate="dsp")]:
        with pytest.raises(SettingsError):
            settings.validate()
    for serial in ["a b", "x;y", "$(id)", "", "a\nb", "q'"]:
        with pytest.raises(FarmInputError):
            check_serial(serial)
    assert check_serial("192.168.1.5:5555") and check_serial("emulator-5554")


def test_adb_server_resolution(monkeypatch):
    monkeypatch.delenv("ADB_SERVER_SOCKET", raising=False)
    monkeypatch.delenv("ANDROID_ADB_SERVER_PORT", raising=False)
    assert AdbServer.resolve() == AdbServer("127.0.0.1", 5037, False)
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", "5999")
    assert AdbServer.resolve().port == 5999
    monkeypatch.setenv("ADB_SERVER_SOCKET", "tcp:farm.local:6000")
    assert AdbServer.resolve() == AdbServer("farm.local", 6000, True)
    assert AdbServer.resolve("10.0.0.2:7000") == AdbServer("10.0.0.2", 7000, True)
    for bad in ["host:port", "1:99999"]:
        with pytest.raises(FarmInputError):
            AdbServer.resolve(bad)
    with pytest.raises(FarmError, match="no adb server at 127.0.0.1:1"):
        AdbServer.resolve("127.0.0.1:1").client()


def test_store_rounds_resume_and_reuse(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    device = {"fingerprint": "fp", "serial": "s1", "alias": "p"}
    key = measurement_key("sha", "fp", "rt", {"runs": 5})
    assert key != measurement_key("sha", "fp", "rt", {"runs": 6})
    mid = store.start(key, model_sha256="sha", model_name="m.tflite", device=device, runtime="rt",
                      flags={"runs": 5})
    store.add_round(mid, [1.5], {"count": 5})
    assert store.find(key) is None and store.find(key, complete_only=False).samples == [1.5]
    again = ResultsStore(tmp_path / "r.sqlite")  # a new process after a crash: the same unfinished measurement
    assert again.start(key, model_sha256="sha", model_name="m.tflite", device=device, runtime="rt",
                       flags={"runs": 5}) == mid
    again.add_round(mid, [1.7], {"count": 5})
    again.finish(mid, {"median_ms": 1.6})
    done = store.find(key)
    assert done.complete and done.samples == [1.5, 1.7] and done.summary == {"median_ms": 1.6}
    with sqlite3.connect(tmp_path / "r.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_host_measurement_is_stored_reused_and_resumed(tmp_path, tiny_tflite):
    store = ResultsStore(tmp_path / "r.sqlite")
    host = HostDevice(RunnerSettings(warmup=2, runs=5))
    model = LocalModel.load(tiny_tflite)
    first = measure_model(host, model, store, MeasureOptions(rounds=3))
    s = first.summary
    assert not first.cached and s.rounds == 3 and s.inferences == 15 and s.init_ms > 0
    assert 0 < s.min_ms <= s.median_ms <= s.p90_ms and s.temperature_c["first"] is None
    assert first.device["kind"] == "host" and first.runtime.startswith("ai-edge-litert")
    second = measure_model(host, model, store, MeasureOptions(rounds=3))
    assert second.cached and second.summary == s
    fresh = measure_model(host, model, store, MeasureOptions(rounds=3, fresh=True))
    assert not fresh.cached and len(store.all()) == 2
    stable = measure_model(host, model, store, MeasureOptions(rounds=3, fresh=True, until_stable_pct=50.0,
                                                                max_rounds=9))
    assert 3 <= stable.summary.rounds <= 9 and stable.summary.stable is not None
    assert "stable" in stable.summary.to_dict() and "stable" not in s.to_dict()


def test_registry_roundtrip_and_errors(tmp_path):
    reg = Registry(tmp_path / "devices.toml")
    reg.add(DeviceEntry("pixel4", "98KAY17CJ1", threads=1, cores="70"))
    reg.add(DeviceEntry("pixel6", "1A2B3C", None, None))
    assert reg.load()["pixel4"] == DeviceEntry("pixel4", "98KAY17CJ1", 1, "70")
    assert reg.resolve("pixel6").serial == "1A2B3C" and reg.resolve("98KAY17CJ1").alias == "pixel4"
    assert reg.resolve("OTHER1").alias is None
    (tmp_path / "devices.toml").write_text('[devices.x]\nserial = "a;b"\n')
    with pytest.raises(FarmInputError, match="invalid serial"):
        reg.load()
    (tmp_path / "devices.toml").write_text("[devices\n")
    with pytest.raises(FarmInputError, match="not valid TOML"):
        reg.load()


def test_cli_measure_host_json_and_results_export(tmp_path, tiny_tflite):
    store = tmp_path / "r.sqlite"
    args = ["measure", str(tiny_tflite), "--device", "host", "--warmup", "1", "--runs", "3", "--rounds", "2",
            "--store", str(store)]
    r = CliRunner().invoke(main, args + ["--json"])
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.stdout)["results"]
    assert res["rounds"] == 2 and res["device"]["serial"] == "host" and not res["cached"]
    assert json.loads(CliRunner().invoke(main, args + ["--json"]).stdout)["results"][0]["cached"]
    exported = json.loads(CliRunner().invoke(main, ["results", "export", "--store", str(store)]).stdout)
    assert check_header(exported, "results-export", 1) == 1
    (stored,) = exported["measurements"]
    assert len(stored["rounds_ms"]) == len(stored["round_info"]) == 2 and stored["runtime"] == res["runtime"]
    assert stored["summary"]["rounds_ms"] == res["rounds_ms"] and stored["summary"]["ci95_ms"] == res["ci95_ms"]
    csv_text = CliRunner().invoke(main, ["results", "export", "--format", "csv", "--store", str(store)]).stdout
    assert csv_text.splitlines()[0].startswith("model_name,") and len(csv_text.splitlines()) == 2


@pytest.mark.parametrize("args, needle", [
    (["measure", "/no/such.tflite"], "no such model file"),
    (["measure", "{bad}", "--serial", "a;b"], "not a readable"),
    (["measure", "{good}", "--serial", "a;b"], "invalid serial"),
    (["measure", "{good}", "--device", "nope"], "unknown alias"),
    (["measure", "{good}", "--cores", "zz"], "core mask"),
    (["farm", "add", "Bad Alias", "--serial", "x"], "invalid alias"),
    (["farm", "setup", "--benchmark-binary", "{bad}"], "not an ELF"),
])
def test_cli_bad_input(tmp_path, tiny_tflite, args, needle):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    args = [a.replace("{bad}", str(bad)).replace("{good}", str(tiny_tflite)) for a in args]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and needle in r.stderr and "Traceback" not in r.output, r.output


def test_measure_json_is_a_typed_document_in_the_one_spelling(tmp_path, tiny_tflite):
    args = ["measure", str(tiny_tflite), "--device", "host", "--warmup", "0", "--runs", "2", "--rounds", "3",
            "--store", str(tmp_path / "r.sqlite"), "--json"]
    doc = json.loads(CliRunner().invoke(main, args).stdout)
    assert list(doc)[:2] == ["format", "version"] and check_header(doc, "measurements", 1) == 1
    (res,) = doc["results"]
    assert list(res)[:2] == ["format", "version"] and check_header(res, "measurement", 1) == 1
    assert res["runtime"].startswith("ai-edge-litert ") and res["tool"]["version"] == res["runtime"]
    assert len(res["rounds_ms"]) == 3 and res["ci95_ms"][0] <= res["median_ms"] <= res["ci95_ms"][1]
    assert not {"runtime_version", "round_ms", "median_ci95_ms", "median_ci95_rel", "runs"} & set(res)
    assert MeasurementSummary.from_dict(res).to_dict() == {k: v for k, v in res.items() if k in
                                                         MeasurementSummary.__dataclass_fields__}


def test_threads_left_to_the_device_keep_the_store_keys_of_one_thread(tmp_path, tiny_tflite):
    settled = RunnerSettings().with_device_threads(None)
    assert RunnerSettings().threads is None and settled.threads == 1
    assert RunnerSettings().with_device_threads(4).threads == 4 and settled.with_device_threads(4).threads == 1
    with pytest.raises(ValueError, match="settle threads"):
        RunnerSettings().flags()
    # the key a measurement of the default settings (one thread) was stored under before threads could be left open
    assert measurement_key("sha", "fp", "rt", settled.flags()) == \
        "06ac253a8fd4365be66c5c7c5d2feb113e8ae3b3187e7028efac90a92d59d844"
    assert HostDevice(RunnerSettings()).settings.flags() == RunnerSettings(threads=1).flags()
    args = ["measure", str(tiny_tflite), "--device", "host", "--warmup", "0", "--runs", "2", "--rounds", "2",
            "--store", str(tmp_path / "r.sqlite"), "--json"]
    first = json.loads(CliRunner().invoke(main, [*args, "--threads", "1"]).stdout)["results"][0]
    again = json.loads(CliRunner().invoke(main, args).stdout)["results"][0]
    assert not first["cached"] and again["cached"] and again["flags"]["threads"] == 1
    other = json.loads(CliRunner().invoke(main, [*args, "--threads", "2"]).stdout)["results"][0]
    assert not other["cached"] and other["flags"]["threads"] == 2


def test_a_summary_stored_in_the_earlier_spelling_is_reused_and_exported_in_the_one_spelling(tmp_path, tiny_tflite):
    store = ResultsStore(tmp_path / "r.sqlite")
    host = HostDevice(RunnerSettings(warmup=0, runs=2))
    model = LocalModel.load(tiny_tflite)
    key = measurement_key(model.sha256, host.device_info()["fingerprint"], host.runtime_version(),
                          host.settings.flags())
    mid = store.start(key, model_sha256=model.sha256, model_name=model.path.name, device=host.device_info(),
                      runtime=host.runtime_version(), flags=host.settings.flags())
    for ms in (1.0, 1.2):
        store.add_round(mid, [ms], {"count": 2})
    store.finish(mid, {"runs": 2, "median_ms": 1.1, "p90_ms": 1.18, "mean_ms": 1.1, "std_ms": 0.14, "cv": 0.13,
                       "min_ms": 1.0, "max_ms": 1.2, "median_ci95_ms": [1.0, 1.2], "median_ci95_rel": 0.09,
                       "best_ms": 0.9, "round_ms": [1.0, 1.2], "rounds": 2, "inferences": 4, "init_ms": 0.5,
                       "temperature_c": {"first": None, "last": None, "max": None}, "throttling": {"any": False},
                       "runtime": {"version": "ai-edge-litert 1", "tool": "classic", "family": "classic",
                                   "root": False, "knobs": []}, "short_rounds": []})
    cached = measure_model(host, model, store, MeasureOptions(rounds=2))
    assert cached.cached and cached.summary.ci95_ms == (1.0, 1.2) and cached.summary.rounds_ms == (1.0, 1.2)
    assert cached.summary.tool == {"version": "ai-edge-litert 1", "family": "classic", "output_family": "classic",
                                   "root": False, "knobs": []}
    exported = json.loads(CliRunner().invoke(main, ["results", "export", "--store", str(store.path)]).stdout)
    summary = exported["measurements"][0]["summary"]
    assert summary["ci95_ms"] == [1.0, 1.2] and summary["rounds_ms"] == [1.0, 1.2] and summary["tool"]["family"]
    assert not {"median_ci95_ms", "median_ci95_rel", "round_ms", "runtime", "runs"} & set(summary)
