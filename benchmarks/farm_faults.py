"""Field-readiness figures of the farm: real benchmark_model outputs, kills, and jobs sharing one phone.

1. Every committed real benchmark_model output (tests/data/benchmark_model/, each with its source URL) parsed:
   family, timed runs, mean, and whether it counts as a usable run.
2. Kills: `elasticvit-deploy measure` on a simulated phone is SIGKILLed at random moments of its run (timed once
   uninterrupted first) and rerun until the measurement completes; per kill, the rounds the phone finished minus
   the rounds stored (goal: 0 or 1, the round in flight), and whether the stored rounds grew.
3. Concurrent jobs: N `measure --fresh` processes on one phone at once (sharing leases and the store): exit codes,
   waits announced, rounds stored vs benchmark runs the phone completed, and whether each stored measurement's
   rounds are numbered 0..n-1 with a summary that matches them.

    .venv/bin/python benchmarks/farm_faults.py [--kills 8] [--jobs 3] [--seed 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from elasticvit_deploy.export import tflite_format
from elasticvit_deploy.farm.benchmark_output import parse_benchmark_output
from elasticvit_deploy.simulator import SimulatedFarm

SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "data" / "benchmark_model"
SERIAL = "sim-pixel4-1"


def parse_samples() -> list[dict[str, Any]]:
    rows = []
    for path in sorted(SAMPLES.glob("*.txt")):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        run = parse_benchmark_output("".join(lines[2:]))
        rows.append({"sample": path.name, "family": run.family, "count": run.count, "avg_us": run.avg_us,
                     "ok": run.ok, "errors": len(run.errors)})
    return rows


def stored_rounds(store: Path) -> int:
    if not store.exists():
        return 0
    with sqlite3.connect(store) as db:
        return int(db.execute("SELECT COUNT(*) FROM rounds").fetchone()[0])


def measure_cmd(model: Path, port: int, store: Path, rounds: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "elasticvit_deploy", "measure", str(model), "--serial", SERIAL, "--adb",
            f"127.0.0.1:{port}", "--store", str(store), "--json", "--warmup", "1", "--runs", "20", "--rounds",
            str(rounds), "--cool-timeout", "0", *extra]


def kills(model: Path, work: Path, count: int, rng: random.Random) -> dict[str, Any]:
    store, env = work / "kills.sqlite", dict(os.environ, ELASTICVIT_DEPLOY_HOME=str(work / "home-kills"))
    rounds = 12
    with SimulatedFarm(["pixel4"], time_scale=0.02) as farm:
        start = time.monotonic()  # one uninterrupted run first: kills land anywhere in a run of that length
        subprocess.run(measure_cmd(model, farm.port, work / "baseline.sqlite", rounds), env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        length = time.monotonic() - start
        bench = farm.phone(SERIAL).benchmark
        bench.completed = 0
        per_kill, progress, killed = [], [], 0
        while True:
            stored0, done0 = stored_rounds(store), bench.completed
            proc = subprocess.Popen(measure_cmd(model, farm.port, store, rounds), env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                proc.wait(timeout=rng.uniform(0.05, 1.0) * length if killed < count else 900)
                break
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed += 1
            time.sleep(1.0)
            per_kill.append((bench.completed - done0) - (stored_rounds(store) - stored0))
            progress.append(stored_rounds(store))
        return {"run_s": round(length, 1), "kills": killed, "rounds_lost_per_kill": per_kill,
                "stored_after_each_kill": progress,
                "final_exit": proc.returncode, "rounds_asked": rounds, "rounds_stored": stored_rounds(store),
                "phone_completed": bench.completed}


def jobs(model: Path, work: Path, count: int) -> dict[str, Any]:
    store, env = work / "jobs.sqlite", dict(os.environ, ELASTICVIT_DEPLOY_HOME=str(work / "home-jobs"))
    rounds = 3
    with SimulatedFarm(["pixel4"], time_scale=0.02) as farm:
        bench = farm.phone(SERIAL).benchmark
        procs = [subprocess.Popen(measure_cmd(model, farm.port, store, rounds, "--fresh"), env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(count)]
        outs = [p.communicate(timeout=900) for p in procs]
        with sqlite3.connect(store) as db:
            ids = [mid for (mid,) in db.execute("SELECT id FROM measurements ORDER BY id")]
            numbering = [[r for (r,) in db.execute("SELECT round FROM rounds WHERE measurement_id = ? ORDER BY round",
                                                   (mid,))] for mid in ids]
            summaries = [json.loads(s)["rounds_ms"]
                         for (s,) in db.execute("SELECT summary FROM measurements ORDER BY id")]
            samples = [[v for (v,) in db.execute("SELECT latency_ms FROM samples WHERE measurement_id = ? "
                                                 "ORDER BY round", (mid,))]
                       for (mid,) in db.execute("SELECT id FROM measurements ORDER BY id")]
        return {"jobs": count, "exit_codes": [p.returncode for p in procs],
                "waits_announced": sum(err.count("waiting for") for _, err in outs),
                "rounds_stored": sum(map(len, numbering)), "phone_completed": bench.completed,
                "numbered_0_to_n": all(n == list(range(rounds)) for n in numbering),
                "summaries_match_rounds": all([round(x, 6) for x in s] == m
                                               for s, m in zip(samples, summaries, strict=True))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                  torch.nn.Linear(16 * 32 * 32, 10)).eval()
        model = work / "m.tflite"
        model.write_bytes(tflite_format.convert_module(net, torch.zeros(1, 3, 32, 32), False))
        result = {"samples": parse_samples(), "kills": kills(model, work, args.kills, random.Random(args.seed)),
                  "jobs": jobs(model, work, args.jobs)}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print("real benchmark_model outputs:")
    for r in result["samples"]:
        avg = "-" if r["avg_us"] is None else f"{r['avg_us']:.6g}"
        print(f"  {r['sample']:<68} {r['family']:<8} count={r['count']:<5} avg_us={avg:<12} ok={r['ok']}")
    k = result["kills"]
    print(f"kills: {k['kills']} SIGKILLs at random moments of a {k['run_s']} s run; rounds lost per kill "
          f"{k['rounds_lost_per_kill']} (goal: each 0 or 1); "
          f"stored after each kill {k['stored_after_each_kill']}; final run exit {k['final_exit']}, "
          f"{k['rounds_stored']}/{k['rounds_asked']} rounds stored, phone completed {k['phone_completed']}")
    j = result["jobs"]
    print(f"concurrent jobs: {j['jobs']} on one phone, exit codes {j['exit_codes']}, waits announced "
          f"{j['waits_announced']}, rounds stored {j['rounds_stored']} vs phone completed {j['phone_completed']}, "
          f"rounds numbered 0..n-1: {j['numbered_0_to_n']}, summaries match rounds: {j['summaries_match_rounds']}")


if __name__ == "__main__":
    main()
