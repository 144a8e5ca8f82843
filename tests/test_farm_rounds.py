"""Rounds on phones as they really go: one runner call per round, each stored when it completes (kills lose at most
the round in flight), real benchmark_model outputs replayed through the runner, tools that cannot do a delegate,
sensors that fail during cool-down, and failures that say why."""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from elasticvit_deploy.cli import main
from elasticvit_deploy.farm.adb import AdbServer, Phone
from elasticvit_deploy.farm.measure import _runner_failure
from elasticvit_deploy.farm.runner_protocol import BENCHMARK_PATH, DEVICE_DIR, RUNNER_PATH, RunnerOutputError
from elasticvit_deploy.simulator import SimulatedFarm

SAMPLES = Path(__file__).parent / "data" / "benchmark_model"
RUNNER = Path(__file__).resolve().parents[1] / "android_runner" / "runner.sh"
FAST = ["--warmup", "1", "--runs", "5", "--rounds", "2", "--cool-timeout", "0"]


@pytest.fixture(autouse=True)
def _no_real_adb(monkeypatch):
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/false")  # adbutils must never start a real adb server
    for var in ("ADB_SERVER_SOCKET", "ANDROID_ADB_SERVER_PORT"):
        monkeypatch.delenv(var, raising=False)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def body(sample: str) -> str:
    """A committed real output without its two header lines (source URL, description)."""
    return "".join((SAMPLES / sample).read_text(encoding="utf-8").splitlines(keepends=True)[2:])


def replay_tool(tmp_path: Path, listing: str, output: str, code: int = 0, refuse: str = "") -> Path:
    """A benchmark binary for simulated phones that answers --help with a real flag listing and any other call with
    a real published output, verbatim; a call with a flag matching the case pattern `refuse` fails instead."""
    refusal = f'case "$*" in {refuse}) echo "ERROR: flag not listed by this tool: $*"; exit 1 ;; esac' if refuse else ""
    tool = tmp_path / "replay.sh"
    tool.write_text(f"""#!/bin/sh
if [ "$1" = --help ]; then cat <<'END_OF_LISTING'
{body(listing)}END_OF_LISTING
exit 1; fi
{refusal}
cat <<'END_OF_OUTPUT'
{body(output)}END_OF_OUTPUT
exit {code}
""")
    tool.chmod(0o755)
    return tool


def test_short_rounds_of_a_real_output_are_recorded_and_shown(tmp_path, tiny_tflite):
    """The published inception-v4 log (50 runs asked, the 150 s --max_secs default stopped it at 34) replayed as a
    phone's tool: detected from TF Lite 1.12's real flag listing, its 34 runs stored and shown, not hidden."""
    # TF Lite 1.12 lists neither --max_secs nor --use_xnnpack nor --enable_op_profiling: none may be passed
    tool = replay_tool(tmp_path, "help-tf1-tflite1.12-am57x.txt",
                       "classic-inception-v4-imx8mp-vx-delegate-max-secs.txt",
                       refuse="*--max_secs*|*--use_xnnpack*|*--enable_op_profiling*|*--min_secs*")
    with SimulatedFarm(["pixel4"], time_scale=0.02, benchmark_binary=tool) as farm:
        args = ["measure", tiny_tflite, "--serial", "sim-pixel4-1", "--adb", f"127.0.0.1:{farm.port}", "--store",
                tmp_path / "r.sqlite", "--runs", "50", "--warmup", "1", "--rounds", "1", "--cool-timeout", "0",
                "--delegate", "cpu"]  # the default, xnnpack, is refused: TF Lite 1.12 had no XNNPACK
        r = run(*args, "--json")
        assert r.exit_code == 0, r.output
        (res,) = json.loads(r.stdout)["results"]
        assert res["short_rounds"] == [{"round": 0, "count": 34}] and res["median_ms"] == pytest.approx(4428.4)
        assert res["tool"]["family"] == "classic" and res["runtime"].startswith("benchmark_model classic@")
        r = run(*args)
        assert r.exit_code == 0 and "round 0: 34/50 runs" in r.stdout and "cached" in r.stdout, r.output


def test_a_failing_tool_says_why_in_one_line(tmp_path, tiny_tflite):
    tool = replay_tool(tmp_path, "help-tf1-tflite1.12-am57x.txt", "failure-flex-ops-not-linked-failed-allocate.txt",
                       code=1)
    with SimulatedFarm(["pixel4"], time_scale=0.02, benchmark_binary=tool) as farm:
        r = run("measure", tiny_tflite, "--serial", "sim-pixel4-1", "--adb", f"127.0.0.1:{farm.port}", "--store",
                tmp_path / "r.sqlite", *FAST, "--delegate", "cpu")
        assert r.exit_code == 1
        line = r.stderr.strip().splitlines()[-1]
        assert "benchmark_model failed in round 0 (exit 1)" in line and "Flex delegate" in line, r.stderr


def test_the_tools_own_delegate_flags_and_refusals(tmp_path, tiny_tflite):
    with SimulatedFarm(["pixel4"], time_scale=0.02, quirks=["litert2-benchmark"]) as farm:
        base = ["measure", tiny_tflite, "--serial", "sim-pixel4-1", "--adb", f"127.0.0.1:{farm.port}", "--store",
                tmp_path / "r.sqlite", *FAST]
        r = run(*base, "--delegate", "nnapi")
        assert r.exit_code == 1 and "nnapi" in r.stderr and "litert" in r.stderr.lower(), r.output
        r = run(*base, "--delegate", "gpu", "--json")
        assert r.exit_code == 0, r.output
        (res,) = json.loads(r.stdout)["results"]
        assert res["tool"]["family"] == "litert2" and res["rounds"] == 2 and res["inferences"] == 10
        assert res["runtime"].startswith("benchmark_model litert2@")


def test_classic_tool_flags_warmup_zero_and_result_fields(tmp_path, tiny_tflite):
    with SimulatedFarm(["pixel4"], time_scale=0.02, quirks=["op-profiling"]) as farm:
        r = run("measure", tiny_tflite, "--serial", "sim-pixel4-1", "--adb", f"127.0.0.1:{farm.port}", "--store",
                tmp_path / "r.sqlite", "--json", "--warmup", "0", "--runs", "5", "--rounds", "2", "--cool-timeout",
                "0")
        assert r.exit_code == 0, r.output
        (res,) = json.loads(r.stdout)["results"]
        assert res["rounds"] == 2 and res["short_rounds"] == [] and res["cores"] == "70"
        assert res["temp_sensor"]["path"].startswith("/sys/class/thermal/") and res["temp_sensor"]["type"]
        rounds = sqlite3.connect(tmp_path / "r.sqlite").execute("SELECT info FROM rounds").fetchall()
        infos = [json.loads(i) for (i,) in rounds]
        assert all(i["count"] == 5 and i["warmup_avg_us"] == 0 for i in infos)  # the profiler's tables not taken


def test_cool_down_with_a_failing_sensor_is_unknown_or_battery_never_cooled(tmp_path, tiny_tflite):
    with SimulatedFarm(["pixel4"], time_scale=0.02) as farm:
        dev = AdbServer("127.0.0.1", farm.port, True).client().device("sim-pixel4-1")
        dev.sync.push(str(RUNNER), RUNNER_PATH)
        model = f"{DEVICE_DIR}/m.tflite"
        dev.sync.push(str(tiny_tflite), model)
        tool = f"-- --graph={model} --num_runs=2 --warmup_runs=0 --min_secs=0 --warmup_min_secs=0"
        # a zone that cannot be read: retried, then the battery sensor (about 30 C, above 20 C: waits, times out)
        r = dev.shell2(f"sh {RUNNER_PATH} --bench {BENCHMARK_PATH} --model {model} --temp-path /sys/nonexistent "
                       f"--temp-scale 1000 --cool-below 20000 --cool-timeout 1 {tool}", v2=True)
        cool = next(x for x in r.stdout.splitlines() if x.startswith("EVD cool"))
        assert "state=timeout sensor=battery" in cool and "temp_mc=-1" not in cool, r.stdout
        # an implausible reading (a BCL zone's battery percent read as millidegrees) is no temperature either
        r = dev.shell2(f"sh {RUNNER_PATH} --bench {BENCHMARK_PATH} --model {model} "
                       f"--temp-path /sys/class/power_supply/battery/capacity --temp-scale 1000 --cool-below 99000 "
                       f"{tool}", v2=True)
        cool = next(x for x in r.stdout.splitlines() if x.startswith("EVD cool"))
        assert "state=cooled sensor=battery" in cool, r.stdout
        # no sensor (none given, or the zone and the battery both unreadable): unknown, never cooled
        r = dev.shell2(f"sh {RUNNER_PATH} --bench {BENCHMARK_PATH} --model {model} --cool-below 99000 {tool}", v2=True)
        cool = next(x for x in r.stdout.splitlines() if x.startswith("EVD cool"))
        assert "state=unknown sensor=none" in cool, r.stdout


def test_a_missing_runner_is_named_with_its_exit_status(tmp_path):
    with SimulatedFarm(["pixel4"], time_scale=0.02) as farm:
        phone = Phone(AdbServer("127.0.0.1", farm.port, True), "sim-pixel4-1")
        result = phone.shell(["sh", f"{DEVICE_DIR}/gone.sh"])
        line = _runner_failure(RunnerOutputError("runner output is incomplete or garbled (no 'EVD done')"), result)
        assert line.startswith("the runner exited 127: ") and "gone.sh" in line, line


def _stored_rounds(store: Path) -> int:
    if not store.exists():
        return 0
    with sqlite3.connect(store) as db:
        return db.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]


def test_kills_at_random_moments_lose_at_most_the_round_in_flight(tmp_path, tiny_tflite):
    """SIGKILL `measure` at random moments, rerun it, until the measurement completes: every round the phone
    finished is stored except at most the one in flight at each kill, and the measurement always progresses."""
    rounds, rng = 8, random.Random(7)
    store = tmp_path / "r.sqlite"
    env = dict(os.environ, ELASTICVIT_DEPLOY_HOME=str(tmp_path / "home"))
    with SimulatedFarm(["pixel4"], time_scale=0.02) as farm:
        bench = farm.phone("sim-pixel4-1").benchmark
        cmd = [sys.executable, "-m", "elasticvit_deploy", "measure", str(tiny_tflite), "--serial", "sim-pixel4-1",
               "--adb", f"127.0.0.1:{farm.port}", "--json", "--warmup", "1", "--runs", "20", "--rounds", str(rounds),
               "--cool-timeout", "0"]
        start = time.monotonic()  # one uninterrupted run first (another store): the kills land inside such a run
        subprocess.run([*cmd, "--store", str(tmp_path / "baseline.sqlite")], env=env, check=True, capture_output=True)
        length = time.monotonic() - start
        bench.completed = 0
        cmd += ["--store", str(store)]
        lost, kills = [], 0
        while True:
            stored0, done0 = _stored_rounds(store), bench.completed
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                proc.wait(timeout=rng.uniform(0.3, 0.9) * length if kills < 6 else 600)
                out, err = proc.communicate()
                assert proc.returncode == 0, err.decode()[-2000:]
                break
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.communicate()
                kills += 1
            time.sleep(1.0)  # the phone notices the hang-up and stops the round in flight
            lost.append((bench.completed - done0) - (_stored_rounds(store) - stored0))
        res = json.loads(out)["results"][0]
        assert kills >= 1 and res["rounds"] == rounds and _stored_rounds(store) == rounds
        assert all(x in (0, 1) for x in lost), lost
        assert bench.completed - rounds == sum(lost)  # no round measured twice, none stored without the phone
        print(f"kills={kills} rounds lost per kill={lost} completed={bench.completed} stored={rounds}")
