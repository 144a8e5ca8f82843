"""Measurement history: labels on stored measurements (store schema 2, upgraded from 1), the default label, op
profiling runs kept apart from the timed rounds, memory and model size in summaries."""

import calendar
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from elasticvit_deploy.cli import main
from elasticvit_deploy.farm import store as store_module
from elasticvit_deploy.farm.adb import AdbServer, Phone
from elasticvit_deploy.farm.benchmark_tool import BenchmarkTool
from elasticvit_deploy.farm.labels import BadLabel, check_label, default_label, utc_label
from elasticvit_deploy.farm.measure import LocalModel, MeasureOptions, PhoneDevice, measure_model
from elasticvit_deploy.farm.runner_protocol import RUNNER_PATH, RunnerSettings
from elasticvit_deploy.farm.store import SCHEMA_VERSION, ResultsStore, StoreError, export_document
from elasticvit_deploy.farm.summary import MeasurementSummary, summarize_rounds
from elasticvit_deploy.simulator import SimulatedFarm

# The schema the first release of the results store created (schema_version 1).
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE measurements (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL, model_sha256 TEXT NOT NULL, model_name TEXT NOT NULL,
    device_fingerprint TEXT NOT NULL, device_serial TEXT NOT NULL, device_alias TEXT, runtime_version TEXT NOT NULL,
    flags TEXT NOT NULL, device TEXT NOT NULL, started_utc REAL NOT NULL, finished_utc REAL,
    complete INTEGER NOT NULL DEFAULT 0, summary TEXT);
CREATE INDEX measurements_key ON measurements (key, complete);
CREATE TABLE rounds (
    measurement_id INTEGER NOT NULL REFERENCES measurements (id) ON DELETE CASCADE, round INTEGER NOT NULL,
    info TEXT NOT NULL, PRIMARY KEY (measurement_id, round));
CREATE TABLE samples (
    measurement_id INTEGER NOT NULL REFERENCES measurements (id) ON DELETE CASCADE, round INTEGER NOT NULL,
    idx INTEGER NOT NULL, latency_ms REAL NOT NULL, PRIMARY KEY (measurement_id, round, idx));
"""
DEVICE = {"fingerprint": "fp1", "serial": "S1", "alias": "p1"}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _v1_store(path, version="1"):
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA)
        db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (version,))
        db.execute("INSERT INTO measurements (key, model_sha256, model_name, device_fingerprint, device_serial, "
                   "runtime_version, flags, device, started_utc, complete, summary) VALUES "
                   "('k1', 'sha', 'm.tflite', 'fp1', 'S1', 'rt', '{}', ?, 1.0, 1, '{\"median_ms\": 2.0}')",
                   (json.dumps(DEVICE),))
        db.execute("INSERT INTO rounds VALUES (1, 0, '{\"count\": 5}')")
        db.execute("INSERT INTO samples VALUES (1, 0, 0, 2.0)")
    db.close()


def _complete(store, key, ms=(1.0, 1.2)):
    mid = store.start(key, model_sha256="sha", model_name="m.tflite", device=DEVICE, runtime="rt", flags={})
    for v in ms:
        store.add_round(mid, [v], {"count": 5})
    store.finish(mid, {"median_ms": sum(ms) / len(ms), "rounds": len(ms)})
    return mid


def test_a_schema_1_store_is_upgraded_in_place(tmp_path):
    path = tmp_path / "r.sqlite"
    _v1_store(path)
    store = ResultsStore(path)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    assert {"labels", "profiles"} <= tables
    (old,) = store.all()
    assert old.samples == [2.0] and old.summary == {"median_ms": 2.0} and old.labels == () and old.profile is None
    store.tag(old.id, "before-upgrade")
    store.set_profile(old.id, {"ops": None, "memory_mb": {}, "simulated": None, "tool": "classic"})
    again = ResultsStore(path).get(old.id)  # opening an upgraded store changes nothing
    assert again.labels == ("before-upgrade",) and again.profile["tool"] == "classic"


def test_opening_a_current_store_writes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "r.sqlite"
    mid = _complete(ResultsStore(path), "k1")
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.1)  # a write would give up at once: the lock is held
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        assert [m.id for m in ResultsStore(path).all()] == [mid]
        writer.execute("ROLLBACK")
    finally:
        writer.close()


def test_a_store_of_a_newer_schema_is_refused_untouched(tmp_path):
    path = tmp_path / "r.sqlite"
    _v1_store(path, version="3")
    with pytest.raises(StoreError, match="schema '3' is not supported"):
        ResultsStore(path)
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)
    db.close()
    assert not {"labels", "profiles"} & tables


def test_tags_are_idempotent_and_labels_come_oldest_first(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    first, second = _complete(store, "k1"), _complete(store, "k2")
    unfinished = store.start("k3", model_sha256="sha", model_name="m.tflite", device=DEVICE, runtime="rt", flags={})
    store.tag(second, "v1")
    store.tag(first, "v2")
    store.tag(first, "v1")
    store.tag(first, "v2")  # again: nothing changes
    store.tag(unfinished, "v3")
    infos = store.labels()
    assert [(i.label, i.measurements) for i in infos] == [("v1", 2), ("v2", 1)]  # v3: no complete measurement
    assert infos[0].first_utc <= infos[1].first_utc
    assert [m.id for m in store.labelled("v1")] == [first, second] and store.labelled("v3") == []
    assert store.get(first).labels == ("v2", "v1") and store.get(unfinished).labels == ("v3",)
    with pytest.raises(KeyError):
        store.tag(999, "v1")
    with pytest.raises(BadLabel):
        store.tag(first, "bad\nlabel")


def test_concurrent_taggers_lose_nothing(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    ids = [_complete(store, f"k{i}", (1.0,)) for i in range(6)]
    errors = []

    def tagger(n):
        try:
            for mid in ids:
                ResultsStore(store.path).tag(mid, f"worker-{n}")
                store.tag(mid, "shared")
        except Exception as e:  # a failed write must fail the test, whatever it raised
            errors.append(e)

    threads = [threading.Thread(target=tagger, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    counts = {i.label: i.measurements for i in store.labels()}
    assert counts == {"shared": 6, **{f"worker-{n}": 6 for n in range(6)}}
    assert all(len(store.get(mid).labels) == 7 for mid in ids)


def test_profiles_are_replaced_and_exported_with_labels(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    mid = _complete(store, "k1")
    assert store.get(mid).profile is None
    store.set_profile(mid, {"ops": None, "memory_mb": {}, "simulated": None, "tool": "classic"})
    store.set_profile(mid, {"ops": None, "memory_mb": {"peak_mb": 3.5}, "simulated": None, "tool": "litert2"})
    assert store.get(mid).profile["tool"] == "litert2"
    store.tag(mid, "nightly")
    (exported,) = export_document(store.all())["measurements"]
    assert exported["labels"] == ["nightly"] and exported["profile"]["memory_mb"] == {"peak_mb": 3.5}
    with pytest.raises(KeyError):
        store.set_profile(999, {})


@pytest.mark.parametrize("bad", ["", " ", "a\nb", "tab\there", "x" * 101, "bell\x07"])
def test_check_label_refuses_what_is_no_label(bad):
    with pytest.raises(BadLabel):
        check_label(bad)


def test_check_label_keeps_good_labels():
    for good in ("v1.2.0", "abc123-dirty", "x" * 100, "release 7 (rc)", "été"):
        assert check_label(good) == good


def _git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd, check=True,
                   capture_output=True)


@pytest.fixture
def no_git_env(monkeypatch, tmp_path):
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # never look above the test's directories


def test_default_label_is_git_describe_in_a_work_tree_else_the_utc_time(tmp_path, no_git_env):
    repo, plain = tmp_path / "repo", tmp_path / "plain"
    repo.mkdir()
    plain.mkdir()
    _git(repo, "init", "-q")
    assert re.fullmatch(r"\d{8}T\d{6}Z", default_label(repo))  # no commit yet: git describe fails
    (repo / "a.txt").write_text("a")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "one")
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert default_label(repo) == sha
    (repo / "a.txt").write_text("changed")
    assert default_label(repo) == f"{sha}-dirty"
    (repo / "sub").mkdir()
    assert default_label(repo / "sub") == f"{sha}-dirty"
    now = calendar.timegm((2026, 12, 1, 22, 40, 0))
    assert default_label(plain, now) == utc_label(now) == "20261201T224000Z"


def test_default_label_without_git_is_the_utc_time(tmp_path, no_git_env, monkeypatch):
    _git(tmp_path, "init", "-q")
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # git cannot be found
    assert default_label(tmp_path, 0.0) == "19700101T000000Z"


HOST_FAST = ["--device", "host", "--warmup", "0", "--runs", "2", "--rounds", "2"]


def test_measure_tags_the_batch_and_retags_reused_measurements(tmp_path, tiny_tflite):
    store_path = tmp_path / "r.sqlite"
    r = run("measure", tiny_tflite, *HOST_FAST, "--store", store_path, "--label", "v1")
    assert r.exit_code == 0, r.output
    assert "label: v1" in r.stderr.splitlines()
    r = run("measure", tiny_tflite, *HOST_FAST, "--store", store_path, "--label", "v2", "--json")
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.stdout)["results"]
    assert res["cached"] and res["label"] == "v2" and "profile" not in res
    store = ResultsStore(store_path)
    assert [i.label for i in store.labels()] == ["v1", "v2"]
    assert [m.id for m in store.labelled("v1")] == [m.id for m in store.labelled("v2")]
    exported = json.loads(run("results", "export", "--store", store_path).stdout)["measurements"]
    assert exported[0]["labels"] == ["v1", "v2"]


def test_measure_labels_default_to_git_describe_or_the_time(tmp_path, tiny_tflite, no_git_env, monkeypatch):
    repo, plain = tmp_path / "repo", tmp_path / "plain"
    repo.mkdir()
    plain.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("a")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "one")
    monkeypatch.chdir(repo)
    doc = json.loads(run("measure", tiny_tflite, *HOST_FAST, "--store", tmp_path / "r.sqlite", "--json").stdout)
    assert doc["results"][0]["label"] == default_label(repo) and not doc["results"][0]["label"].endswith("Z")
    monkeypatch.chdir(plain)
    doc = json.loads(run("measure", tiny_tflite, *HOST_FAST, "--store", tmp_path / "r.sqlite", "--json").stdout)
    assert re.fullmatch(r"\d{8}T\d{6}Z", doc["results"][0]["label"])
    assert len(ResultsStore(tmp_path / "r.sqlite").labels()) == 2


@pytest.mark.parametrize("label", ["", "two\nlines", "x" * 101])
def test_a_bad_label_is_one_line_exit_2_before_anything_is_measured(tmp_path, tiny_tflite, label):
    r = run("measure", tiny_tflite, *HOST_FAST, "--store", tmp_path / "r.sqlite", "--label", label)
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error:") and "label" in line
    assert not (tmp_path / "r.sqlite").exists()


def test_host_cannot_profile_and_says_so_once(tmp_path, tiny_tflite):
    other = tmp_path / "other.tflite"
    other.write_bytes(tiny_tflite.read_bytes() + b"\0" * 16)  # another file (sha256), the same graph
    r = run("measure", tiny_tflite, other, *HOST_FAST, "--store", tmp_path / "r.sqlite", "--profile", "--json")
    assert r.exit_code == 0, r.output
    assert r.stderr.count("host: op profiling needs a phone's benchmark_model") == 1
    assert all("profile" not in res for res in json.loads(r.stdout)["results"])


def test_memory_medians_and_model_size_in_summaries():
    rounds = [{"count": 5, "memory_mb": {"init_mb": 1.0, "overall_mb": 3.0}},
              {"count": 5, "memory_mb": {"init_mb": 2.0}}, {"count": 5}]
    s = summarize_rounds(rounds, [1.0, 1.1, 1.2], {}, 5, model_bytes=1234)
    assert s.memory_mb == {"init_mb": 1.5, "overall_mb": 3.0} and s.model_bytes == 1234
    assert MeasurementSummary.from_dict(s.to_dict()) == s
    bare = summarize_rounds([{"count": 5}], [1.0], {}, 5)
    assert "memory_mb" not in bare.to_dict() and "model_bytes" not in bare.to_dict()
    old = {k: v for k, v in s.to_dict().items() if k not in ("memory_mb", "model_bytes")}
    assert MeasurementSummary.from_dict(old).memory_mb == {} and MeasurementSummary.from_dict(old).model_bytes is None


def test_profile_args_turn_profiling_on_with_fewer_runs():
    classic = BenchmarkTool("classic", None, frozenset({"graph", "num_runs", "warmup_runs", "num_threads",
                                                         "enable_op_profiling", "report_peak_memory_footprint",
                                                         "use_xnnpack"}))
    timed = classic.args("/m.tflite", warmup=10, runs=50, threads=1, delegate="xnnpack", max_secs=60)
    profiled = classic.profile_args("/m.tflite", runs=50, threads=1, delegate="xnnpack", max_secs=60)
    assert "--enable_op_profiling=false" in timed and not [f for f in timed if f.endswith("=true") and "prof" in f]
    assert profiled is not None
    assert {"--enable_op_profiling=true", "--report_peak_memory_footprint=true", "--warmup_runs=1",
            "--num_runs=20", "--use_xnnpack=true"} <= set(profiled)
    assert "--enable_op_profiling=false" not in profiled
    assert "--num_runs=3" in classic.profile_args("/m.tflite", runs=3, threads=1, delegate="xnnpack", max_secs=60)
    unlisted = BenchmarkTool("classic", None, frozenset())  # listing unreadable: the known flags, no peak memory
    assert "--report_peak_memory_footprint=true" not in unlisted.profile_args(
        "/m.tflite", runs=5, threads=1, delegate="cpu", max_secs=60)
    litert2 = BenchmarkTool("litert2", None, frozenset())
    assert "--use_profiler=true" in litert2.profile_args("/m.tflite", runs=5, threads=1, delegate="xnnpack",
                                                         max_secs=60)
    tf1 = BenchmarkTool("classic", None, frozenset({"graph", "num_runs", "warmup_runs", "num_threads"}))
    assert tf1.profile_args("/m.tflite", runs=5, threads=1, delegate="cpu", max_secs=60) is None
    with pytest.raises(ValueError, match="no op profiling flag"):
        tf1.args("/m.tflite", warmup=1, runs=5, threads=1, delegate="cpu", max_secs=60, profiling=True)


@pytest.fixture
def farm(monkeypatch):
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/false")  # adbutils must never start a real adb server
    for var in ("ADB_SERVER_SOCKET", "ANDROID_ADB_SERVER_PORT"):
        monkeypatch.delenv(var, raising=False)
    with SimulatedFarm(["pixel4", "pixel6"], time_scale=0.02, quirks_by_serial={"sim-pixel6-1": ["tf1-benchmark"]}
                       ) as f:
        yield f


def _recording_runner_calls(device, monkeypatch):
    calls = []
    shell = device.phone.shell

    def recording(argv, *args, **kwargs):
        if RUNNER_PATH in argv:
            calls.append(list(argv))
        return shell(argv, *args, **kwargs)

    monkeypatch.setattr(device.phone, "shell", recording)
    return calls


def test_profiling_is_one_extra_run_apart_from_the_timed_rounds(farm, tiny_tflite, tmp_path, monkeypatch):
    server = AdbServer("127.0.0.1", farm.port, explicit=True)
    settings = RunnerSettings(warmup=2, runs=25, cool_timeout_s=1)
    options = MeasureOptions(rounds=2, profile=True)
    device = PhoneDevice(Phone(server, "sim-pixel4-1"), "p4", settings, options)
    device.prepare()
    calls = _recording_runner_calls(device, monkeypatch)
    store = ResultsStore(tmp_path / "r.sqlite")
    model = LocalModel.load(tiny_tflite)
    result = measure_model(device, model, store, options, label="v1")
    timed, (profiled,) = calls[:2], calls[2:]
    for argv in timed:
        assert "--enable_op_profiling=false" in argv and "--num_runs=25" in argv and "--warmup_runs=2" in argv
        assert not [f for f in argv if f.startswith(("--enable_op_profiling=true", "--report_peak"))]
    assert "--enable_op_profiling=true" in profiled and "--num_runs=20" in profiled and "--warmup_runs=1" in profiled
    assert "--report_peak_memory_footprint=true" in profiled  # the simulated tool lists it
    s = result.summary
    assert s.rounds == 2 and s.inferences == 50 and len(s.rounds_ms) == 2
    assert s.model_bytes == tiny_tflite.stat().st_size and s.memory_mb and all(v > 0 for v in s.memory_mb.values())
    (stored,) = store.all()
    profile = result.profile
    assert profile is not None and profile.tool == "classic" and profile.simulated
    assert len(stored.samples) == 2 and stored.labels == ("v1",) and stored.profile == profile.to_dict()
    ops = profile.ops
    assert ops is not None and ops.nodes and ops.types and abs(sum(t.share for t in ops.types) - 1) < 0.02
    assert {n.type for n in ops.nodes} == {t.type for t in ops.types}
    assert result.to_dict()["profile"] == profile.to_dict() and result.to_dict()["label"] == "v1"
    calls.clear()
    again = measure_model(device, model, store, options, label="v2")  # reused, its profile stored: no tool run
    assert again.cached and again.profile == profile and calls == []
    assert store.get(stored.id).labels == ("v1", "v2")


def test_measure_profile_on_the_farm(farm, tiny_tflite, tmp_path):
    store = tmp_path / "r.sqlite"
    args = ["measure", tiny_tflite, "--serial", "sim-pixel4-1", "--serial", "sim-pixel6-1", "--adb",
            f"127.0.0.1:{farm.port}", "--store", store, "--warmup", "1", "--runs", "4", "--rounds", "2",
            "--cool-timeout", "1", "--delegate", "cpu", "--label", "nightly"]
    r = run(*args, "--json")
    assert r.exit_code == 0, r.output
    by_serial = {res["device"]["serial"]: res for res in json.loads(r.stdout)["results"]}
    assert "profile" not in by_serial["sim-pixel4-1"] and by_serial["sim-pixel4-1"]["memory_mb"]
    r = run(*args, "--profile")  # reused measurements without a profile get one
    assert r.exit_code == 0, r.output
    assert "label: nightly" in r.stderr and r.stderr.count("has no op profiling flag") == 1  # the TF Lite 1 phone
    (line,) = [ln for ln in r.stdout.splitlines() if ln.startswith("profile ")]
    assert line.startswith("profile sim-pixel4-1 tiny.tflite: ") and "%" in line
    exported = {m["device_serial"]: m for m in json.loads(run("results", "export", "--store", store).stdout)
                ["measurements"]}
    assert exported["sim-pixel4-1"]["profile"]["ops"]["types"] and exported["sim-pixel6-1"]["profile"] is None
    assert exported["sim-pixel4-1"]["labels"] == exported["sim-pixel6-1"]["labels"] == ["nightly"]
    assert len(exported["sim-pixel4-1"]["rounds_ms"]) == 2


def test_a_killed_batch_keeps_the_labels_of_what_it_completed(tmp_path, tiny_tflite):
    """SIGKILL `measure --label` once its first model is complete: that measurement is stored and tagged; the
    rerun reuses it and tags the rest."""
    second = tmp_path / "second.tflite"
    second.write_bytes(tiny_tflite.read_bytes() + b"\0" * 16)  # another file, another sha256
    store = tmp_path / "r.sqlite"
    env = dict(os.environ, ELASTICVIT_DEPLOY_HOME=str(tmp_path / "home"))
    with SimulatedFarm(["pixel4"], time_scale=0.05) as farm:
        cmd = [sys.executable, "-m", "elasticvit_deploy", "measure", str(tiny_tflite), str(second), "--serial",
               "sim-pixel4-1", "--adb", f"127.0.0.1:{farm.port}", "--warmup", "1", "--runs", "20", "--rounds", "6",
               "--cool-timeout", "0", "--label", "nightly", "--store", str(store), "--json"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and proc.poll() is None:
                if store.exists() and ResultsStore(store).labels():
                    break
                time.sleep(0.05)
            assert proc.poll() is None, "the batch finished before it could be killed; give it more rounds"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.communicate()
        (info,) = ResultsStore(store).labels()
        assert info.label == "nightly" and info.measurements == 1
        (tagged,) = ResultsStore(store).labelled("nightly")
        assert tagged.model_name == "tiny.tflite" and tagged.complete
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        results = json.loads(done.stdout)["results"]
        assert [r["cached"] for r in results] == [True, False]
        assert {m.model_name for m in ResultsStore(store).labelled("nightly")} == {"tiny.tflite", "second.tflite"}
