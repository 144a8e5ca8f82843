"""Phones shared by many processes: leases (one benchmarking process per phone at a time, waiting or skipping) and
a results store that concurrent writers never corrupt (round numbers assigned in the write transaction)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from elasticvit_deploy.cli import main
from elasticvit_deploy.farm import store as store_module
from elasticvit_deploy.farm.adb import AdbServer, FarmInputError
from elasticvit_deploy.farm.lease import LeaseCancelled, LeaseHolder, PhoneBusy, PhoneLease, lease_path
from elasticvit_deploy.farm.runner_protocol import BENCHMARK_PATH
from elasticvit_deploy.farm.store import MeasurementConflict, ResultsStore
from elasticvit_deploy.simulator import SimulatedFarm
from elasticvit_deploy.simulator.benchmark_service import BenchmarkService

PROJECT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "elasticvit-deploy"
DEVICE = {"fingerprint": "fp", "serial": "s1", "alias": None}
SERIAL = "sim-pixel4-1"


def _env() -> dict[str, str]:
    """The test's environment (its ELASTICVIT_DEPLOY_HOME included) for CLI processes of this source tree."""
    env = {**os.environ, "ADBUTILS_ADB_PATH": "/bin/false", "PYTHONPATH": str(PROJECT)}
    for var in ("ADB_SERVER_SOCKET", "ANDROID_ADB_SERVER_PORT"):
        env.pop(var, None)
    return env


def _start(store: ResultsStore, key: str = "k") -> int:
    return store.start(key, model_sha256="sha", model_name="m.tflite", device=DEVICE, runtime="rt",
                       flags={"runs": 1})


# ----- the store ---------------------------------------------------------------------------------------------------

WRITER = """
import sys
from elasticvit_deploy.farm.store import ResultsStore
store = ResultsStore(sys.argv[1])
print(" ".join(str(store.add_round(int(sys.argv[2]), [float(sys.argv[3])], {"by": sys.argv[3]})) for _ in range(15)))
"""


def test_concurrent_writers_get_distinct_consecutive_round_numbers(tmp_path):
    path = tmp_path / "r.sqlite"
    store = ResultsStore(path)
    ids: list[int] = []
    starters = [threading.Thread(target=lambda: ids.append(_start(ResultsStore(path)))) for _ in range(6)]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    assert len(set(ids)) == 1  # find-or-create is atomic: one unfinished measurement for one key
    (mid,) = set(ids)
    numbers: list[int] = []
    lock = threading.Lock()

    def thread_writer(i: int) -> None:
        got = [ResultsStore(path).add_round(mid, [float(i)], {"by": str(i)}) for _ in range(15)]
        with lock:
            numbers.extend(got)

    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(mid), str(100 + i)], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env()) for i in range(3)]
    threads = [threading.Thread(target=thread_writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        numbers += [int(n) for n in out.split()]
    assert sorted(numbers) == list(range(7 * 15))
    stored = store.get(mid)
    assert len(stored.rounds) == len(stored.samples) == 105
    with sqlite3.connect(path) as db:  # every round's sample is the one its writer sent with it
        pairs = db.execute("SELECT r.info, s.latency_ms FROM rounds r JOIN samples s USING (measurement_id, round) "
                           "WHERE measurement_id = ?", (mid,)).fetchall()
    assert len(pairs) == 105 and all(float(json.loads(info)["by"]) == ms for info, ms in pairs)


def test_the_raw_header_check_never_runs_beside_an_open_connection(tmp_path, monkeypatch):
    """Closing a descriptor of the database drops this process's POSIX locks on it, SQLite's included: the raw
    header check (which opens and closes the file) must wait for a moment with no connection open."""
    path = tmp_path / "r.sqlite"
    store = ResultsStore(path)
    checked: list[Path] = []
    monkeypatch.setattr(store_module, "_check_header", checked.append)
    ResultsStore(path)
    assert checked == [path]
    with store._connect() as db:
        db.execute("SELECT COUNT(*) FROM rounds").fetchone()  # holds a read lock on the file
        ResultsStore(path)  # as another thread's store would be opened meanwhile
    assert checked == [path]
    ResultsStore(path)
    assert checked == [path, path]


def test_finish_refuses_a_summary_of_stale_rounds(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    mid = _start(store)
    store.add_round(mid, [1.0], {})
    store.add_round(mid, [2.0], {})
    with pytest.raises(MeasurementConflict, match="holds 2 rounds but its summary covers 1"):
        store.finish(mid, {"rounds": 1, "median_ms": 1.0})
    assert not store.get(mid).complete
    store.finish(mid, {"rounds": 2, "median_ms": 1.5})
    with pytest.raises(MeasurementConflict, match="completed by another writer"):
        store.add_round(mid, [3.0], {})
    with pytest.raises(MeasurementConflict, match="completed by another writer"):
        store.finish(mid, {"rounds": 2, "median_ms": 9.9})
    done = store.get(mid)
    assert done.samples == [1.0, 2.0] and done.summary == {"rounds": 2, "median_ms": 1.5}
    assert _start(store) != mid  # a finished measurement is never resumed


# ----- leases ------------------------------------------------------------------------------------------------------

HOLD = """
import sys, time
from elasticvit_deploy.farm.adb import AdbServer
from elasticvit_deploy.farm.lease import PhoneLease
PhoneLease(AdbServer("127.0.0.1", 5037, explicit=True), "X1", command="holder").acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_lease_is_exclusive_names_its_holder_and_dies_with_it():
    server = AdbServer("127.0.0.1", 5037, explicit=True)
    other = AdbServer("lab-2", 5037, explicit=True)
    assert lease_path(server, "X1") != lease_path(other, "X1")  # the same serial on two servers: two phones
    assert lease_path(AdbServer("localhost", 5037, explicit=False), "X1") == lease_path(server, "X1")
    assert lease_path(server, "a_b").name != lease_path(server, "a.b").name
    with pytest.raises(FarmInputError, match="invalid serial"):
        lease_path(server, "../x")
    holder = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(PhoneBusy) as busy:
            PhoneLease(server, "X1", wait=False).acquire()
        assert busy.value.holder.pid == holder.pid and busy.value.holder.command == "holder"
        assert str(busy.value).startswith(f"in use by pid {holder.pid} on {socket.gethostname()} (holder, since ")
        with PhoneLease(other, "X1", wait=False):  # not the same phone
            pass
        with pytest.raises(PhoneBusy, match="gave up after waiting 0.3 s"):
            PhoneLease(server, "X1", timeout_s=0.3).acquire()
        stop, heard = threading.Event(), []
        with pytest.raises(LeaseCancelled):  # Ctrl-C in a batch: a waiting worker gives up
            PhoneLease(server, "X1", stop=stop, on_wait=lambda m: (heard.append(m), stop.set())).acquire()
        assert heard == [f"waiting for X1: {busy.value}"]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert LeaseHolder.parse(lease_path(server, "X1").read_text()).pid == holder.pid  # its file is left behind
    with PhoneLease(server, "X1", wait=False) as lease:  # but the kernel dropped the dead holder's lock
        now = LeaseHolder.parse(lease.path.read_text())
        assert (now.pid, now.host, now.command) == (os.getpid(), socket.gethostname(), lease.command)
    assert not lease.path.exists() and not lease.path.parent.exists()  # released: nothing left in the data dir


@pytest.fixture
def farm(monkeypatch):
    """One simulated Pixel 4 whose benchmark service counts concurrent benchmark_model runs (`farm.peak`)."""
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/false")
    for var in ("ADB_SERVER_SOCKET", "ANDROID_ADB_SERVER_PORT"):
        monkeypatch.delenv(var, raising=False)
    count = {"active": 0, "peak": 0, "timed": 0}
    lock = threading.Lock()
    original = BenchmarkService._run

    def counting(self, conn, *request):  # noqa: ANN001 - the service's own: (conn, ..., the tool's args)
        with lock:
            count["active"] += 1
            count["peak"] = max(count["peak"], count["active"])
            count["timed"] += any(a.startswith("--graph") for a in request[-1])
        try:
            return original(self, conn, *request)
        finally:
            with lock:
                count["active"] -= 1

    monkeypatch.setattr(BenchmarkService, "_run", counting)
    with SimulatedFarm(["pixel4"], time_scale=0.02) as f:
        f.count = count
        yield f


def _reader(stream, lines: list[str]) -> threading.Thread:  # noqa: ANN001 - a text stream
    """A thread appending the stream's lines to `lines` as they come."""
    thread = threading.Thread(target=lambda: lines.extend(iter(stream.readline, "")), daemon=True)
    thread.start()
    return thread


def test_three_measure_processes_take_turns_on_one_phone(farm, tiny_tflite, tmp_path):
    store = tmp_path / "r.sqlite"
    server = AdbServer("127.0.0.1", farm.port, explicit=True)
    argv = [str(CLI), "measure", str(tiny_tflite), "--serial", SERIAL, "--adb", str(server), "--store", str(store),
            "--json", "--warmup", "1", "--runs", "3", "--rounds", "3", "--cool-timeout", "1", "--fresh"]
    lease = PhoneLease(server, SERIAL, command="the test").acquire()  # all three must wait at first
    procs: list[subprocess.Popen[str]] = []
    outs: list[list[str]] = []
    errs: list[list[str]] = []
    readers: list[threading.Thread] = []
    try:
        try:
            for _ in range(3):
                procs.append(subprocess.Popen(argv, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              env=_env()))
                outs.append([])
                errs.append([])
                readers += [_reader(procs[-1].stdout, outs[-1]), _reader(procs[-1].stderr, errs[-1])]
            deadline = time.monotonic() + 120
            mine = f"waiting for {SERIAL}: in use by pid {os.getpid()} on {socket.gethostname()} (the test, since "
            while not all(any(ln.startswith(mine) for ln in e) for e in errs):
                assert time.monotonic() < deadline and all(p.poll() is None for p in procs), errs
                time.sleep(0.1)
            assert farm.count["timed"] == 0
        finally:
            lease.release()
        for p in procs:
            p.wait(timeout=300)
        for r in readers:
            r.join()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0, 0], errs
    pids = {p.pid for p in procs}
    waited_on_peer = [e for e in errs if any(f"in use by pid {pid} " in ln for ln in e for pid in pids)]
    assert len(waited_on_peer) >= 2  # after the test's turn, the two later ones waited for an earlier one
    assert farm.count["peak"] == 1 and farm.count["timed"] == 9  # 3 x 3 rounds, never two at once
    results = [json.loads("".join(out))["results"][0] for out in outs]
    assert all(r["rounds"] == 3 and not r["cached"] for r in results)
    measurements = ResultsStore(store).all()
    assert len(measurements) == 3
    for m in measurements:
        assert len(m.rounds) == len(m.samples) == m.summary["rounds"] == 3
        assert m.summary["rounds_ms"] == [round(x, 6) for x in m.samples]
    with sqlite3.connect(store) as db:
        for m in measurements:
            rounds = [r for (r,) in db.execute("SELECT round FROM rounds WHERE measurement_id = ? ORDER BY round",
                                               (m.id,))]
            assert rounds == [0, 1, 2]
    assert sorted(r["median_ms"] for r in results) == sorted(m.summary["median_ms"] for m in measurements)


def test_no_wait_and_wait_timeout_skip_a_busy_phone(farm, tiny_tflite, tmp_path):
    server = AdbServer("127.0.0.1", farm.port, explicit=True)
    args = ["measure", str(tiny_tflite), "--serial", SERIAL, "--adb", str(server), "--store",
            str(tmp_path / "r.sqlite"), "--json", "--warmup", "1", "--runs", "2", "--rounds", "1"]
    busy = f"busy: in use by pid {os.getpid()} on {socket.gethostname()} (ci job 7, since "
    with PhoneLease(server, SERIAL, command="ci job 7"):
        r = CliRunner().invoke(main, [*args, "--no-wait"])
        assert r.exit_code == 1 and "waiting" not in r.stderr, r.output
        (skipped,) = json.loads(r.stdout)["skipped"]
        assert skipped["device"] == SERIAL and skipped["reason"].startswith(busy)
        r = CliRunner().invoke(main, [*args, "--wait-timeout", "1"])
        assert r.exit_code == 1 and f"waiting for {SERIAL}: in use by pid {os.getpid()}" in r.stderr, r.output
        assert json.loads(r.stdout)["skipped"][0]["reason"].endswith("gave up after waiting 1 s")
        with PhoneLease(None, "host", command="ci job 7"):  # this host's CPU is leased the same way
            r = CliRunner().invoke(main, ["measure", str(tiny_tflite), "--device", "host", "--no-wait", "--json",
                                          "--store", str(tmp_path / "r.sqlite")])
            assert r.exit_code == 1 and json.loads(r.stdout)["skipped"][0]["reason"].startswith("busy: ")
    assert farm.count["timed"] == 0
    r = CliRunner().invoke(main, [*args, "--no-wait"])  # free again
    assert r.exit_code == 0 and json.loads(r.stdout)["results"], r.output


def test_farm_setup_waits_for_the_phone(farm, tmp_path):
    server = AdbServer("127.0.0.1", farm.port, explicit=True)
    fake = tmp_path / "benchmark_model"
    fake.write_bytes(b"\x7fELF" + b"\x01" * 64)
    on_phone = farm.phone(SERIAL).sandbox / BENCHMARK_PATH.lstrip("/")
    lease = PhoneLease(server, SERIAL, command="a measurement").acquire()
    setup = subprocess.Popen([str(CLI), "farm", "setup", "--benchmark-binary", str(fake), "--serial", SERIAL,
                              "--adb", str(server)], text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=_env())
    try:
        first = setup.stderr.readline()
        assert first.startswith(f"waiting for {SERIAL}: in use by pid {os.getpid()} ") and "a measurement" in first
        assert on_phone.read_bytes() != fake.read_bytes()  # nothing pushed while the phone is taken
        lease.release()
        setup.communicate(timeout=120)
        assert on_phone.read_bytes() == fake.read_bytes()
    finally:
        lease.release()
        if setup.poll() is None:
            setup.kill()
            setup.wait()
