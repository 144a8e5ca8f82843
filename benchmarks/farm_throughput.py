"""Farm throughput on simulated phones, results-store overhead, and repeatability on this host.

1. Models measured per minute with 1 vs 4 simulated phones (goal: >= 3.5x with 4), through the same code as
   `elasticvit-deploy measure --all`: adb server protocol, runner pushed and run, results stored.
   The models are the slowest ElasticViT blocks (5-25 ms on a Pixel 1, its table says), exported as the latency
   builder exports them, and the simulated phones are Pixel 1 twins: each block runs at its table latency (what a
   real Pixel 1 took), and the simulated benchmark_model sleeps for that phone time, so, as on a real farm, phone
   time dominates and phones work in parallel.
2. Results-store overhead per stored result (start + rounds + finish, SQLite WAL).
3. Repeatability of `--device host`: CV of the median over 5 repeated fresh measurements of the same model.

    .venv/bin/python benchmarks/farm_throughput.py [--models 8] [--runs 200] [--tables DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from elasticvit_deploy.farm.adb import AdbServer, Phone
from elasticvit_deploy.farm.batch import measure_batch
from elasticvit_deploy.farm.measure import HostDevice, LocalModel, MeasureOptions, PhoneDevice
from elasticvit_deploy.farm.runner_protocol import RunnerSettings
from elasticvit_deploy.farm.store import ResultsStore, measurement_key
from elasticvit_deploy.latency.exports import export_block
from elasticvit_deploy.latency.model import universe
from elasticvit_deploy.latency.tables import TablePredictor, import_tables
from elasticvit_deploy.simulator import SimulatedFarm
from supernet.space import ELASTICVIT

PHONE = "pixel1"  # the twin the farm is made of: the slowest table phone, so phone time dominates
DEFAULT_TABLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nnmeter-hybrid-luts"


def make_models(n: int, tables: Path) -> list[LocalModel]:
    """`n` ElasticViT blocks exported to TFLite, at evenly spaced quantiles of their Pixel 1 table latency within
    5-25 ms, with the tables installed for the twins."""
    import_tables(tables)
    table = TablePredictor.load(PHONE)
    candidates = [b for b in universe(ELASTICVIT, "graph") if 5.0 <= table.entries.get(b.table_key, 0.0) <= 25.0]
    candidates.sort(key=lambda b: table.entries[b.table_key])
    picks = [candidates[round(i * (len(candidates) - 1) / max(n - 1, 1))] for i in range(n)]
    return [LocalModel.load(export_block(b, ELASTICVIT)) for b in dict.fromkeys(picks)]


def farm_rate(profiles: list[str], models: list[LocalModel], settings: RunnerSettings, rounds: int,
              store_path: Path, host_timings: Path) -> tuple[float, list[float]]:
    """Models measured per minute by a farm of `profiles` (every model on every phone), and the medians.
    Farms share `host_timings`, so a model takes the same simulated time in each and only parallelism differs."""
    with SimulatedFarm(profiles, host_timings=host_timings) as farm:
        server = AdbServer("127.0.0.1", farm.port, explicit=True)
        options = MeasureOptions(rounds=rounds, fresh=True)
        devices = [PhoneDevice(Phone(server, s), None, settings, options) for s in farm.serials]
        t0 = time.perf_counter()
        report = measure_batch(devices, models, ResultsStore(store_path), options)
        elapsed = time.perf_counter() - t0
    if report.failures or report.skipped:
        raise SystemExit(f"farm run failed: {report.failures or report.skipped}")
    return len(report.results) / elapsed * 60, [r.summary.median_ms for r in report.results]


def store_overhead_ms(path: Path, n: int = 300, rounds: int = 3) -> float:
    store = ResultsStore(path)
    device = {"fingerprint": "bench", "serial": "bench"}
    t0 = time.perf_counter()
    for i in range(n):
        key = measurement_key(f"sha{i}", "bench", "rt", {"runs": 50})
        mid = store.start(key, model_sha256=f"sha{i}", model_name="m.tflite", device=device, runtime="rt",
                          flags={"runs": 50})
        for r in range(rounds):
            store.add_round(mid, [1.0 + r], {"count": 50})
        store.finish(mid, {"median_ms": 1.0})
    return (time.perf_counter() - t0) / n * 1000


def host_repeatability(model: LocalModel, store_path: Path, repeats: int = 5) -> tuple[list[float], float]:
    store = ResultsStore(store_path)
    host = HostDevice(RunnerSettings())
    medians = []
    for _ in range(repeats):
        r = measure_batch([host], [model], store, MeasureOptions(fresh=True)).results[0]
        medians.append(r.summary.median_ms)
    return medians, statistics.stdev(medians) / statistics.mean(medians)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--runs", type=int, default=200,
                        help="timed runs per round on the simulated phones (200 x 5-22 ms blocks: seconds of phone "
                        "time per round, as a whole subnet's 50 runs take)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tables", type=Path, default=DEFAULT_TABLES,
                        help="directory with the nn-Meter tables (the twins' latencies)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("ADBUTILS_ADB_PATH", "/bin/false")  # never start a real adb server
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        os.environ["ELASTICVIT_DEPLOY_HOME"] = str(tmp_path / "home")  # the tables and exports of this run only
        models = make_models(args.models, args.tables)
        settings = RunnerSettings(runs=args.runs, cores="auto", cool_below_mc=None)
        timings = tmp_path / "host-timings"
        # an untimed pass first: each model's first run on a farm fills the shared timing cache (the twin's table
        # latency, or the host's timing), which the timed passes must not count
        farm_rate([PHONE], models, settings, 1, tmp_path / "warm.sqlite", timings)
        one, medians_ms = farm_rate([PHONE], models, settings, args.rounds, tmp_path / "one.sqlite", timings)
        four, _ = farm_rate([PHONE] * 4, models, settings, args.rounds,
                            tmp_path / "four.sqlite", timings)
        overhead = store_overhead_ms(tmp_path / "overhead.sqlite")
        medians, cv = host_repeatability(models[len(models) // 2], tmp_path / "host.sqlite")
    figures = {"models_per_min_1_phone": one, "models_per_min_4_phones": four, "speedup_4_vs_1": four / one,
               "store_overhead_ms_per_result": overhead, "host_medians_ms": medians, "host_median_cv": cv}
    print(f"simulated farm, {len(models)} models x {args.rounds} rounds x (10 warm-up + {args.runs} runs); Pixel 1 "
          f"twin medians {min(medians_ms):.1f}..{max(medians_ms):.1f} ms:")
    print(f"  1 phone : {one:6.1f} models/min")
    print(f"  4 phones: {four:6.1f} models/min  -> {four / one:.2f}x (goal >= 3.5x)")
    print(f"results store: {overhead:.2f} ms per stored result (start + {3} rounds + finish)")
    print(f"--device host repeatability: medians {', '.join(f'{m:.4f}' for m in medians)} ms -> CV of the median "
          f"{cv:.2%}")
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
