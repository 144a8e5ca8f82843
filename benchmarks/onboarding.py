"""Few-shot onboarding of a new phone: how close a predictor built from N whole-model measurements gets, per phone.

1. Leave one phone out over the four real nn-Meter tables. The held-out phone is the "new" phone; its truth is its
   own table's latency of 1,000 random subnets of the ElasticViT space. For N = 5, 10, 20, 50:
   - transfer (`predictor build --method transfer`): N subnets chosen by `covering_subnets` from the other three
     tables, "measured" on the held-out phone (its table's latency x lognormal measurement noise, --noise-pct), and
     fitted by `fit_transfer` on the three tables;
   - the block builder (`predictor build --method blocks`) at equal phone time: as many blocks as the phone measures
     in the time the N subnets took (chosen by the builder's selection rule, "measured" from the held-out table),
     fitted without a base.
   Printed per phone and N: the share of the 1,000 subnets within +-5% and +-10%, the worst error, the fit chosen,
   and the phone time each needs (per model file: a fixed cost for push, init and cool-down, --fixed-s, plus the
   default protocol's inferences: (warmup + runs) x rounds x latency). Goal: >= 99% within 10% at N = 10.
2. End to end on a digital twin through the farm (--e2e): a simulated phone that follows a held-out phone's table
   (a SIMULATOR, not a phone), `predictor build --method transfer` on it from the other three tables, then
   `predictor validate` on it; printed: the minutes from a ready phone to a validated predictor and the
   validation's within 5% / 10%. A simulated phone comes with benchmark_model installed, so `farm setup` (one push
   of the tool and the runner, seconds on a real phone) is not part of the time.

    .venv/bin/python benchmarks/onboarding.py [--tables ../shared/data/nnmeter-hybrid-luts] [--json]
    .venv/bin/python benchmarks/onboarding.py --e2e xiaomi11 [--models 10] [--validate 10]   # ~15-25 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from elasticvit_deploy.farm.runner_protocol import DEFAULT_ROUNDS, RunnerSettings
from elasticvit_deploy.latency.learned import LearnedPredictor
from elasticvit_deploy.latency.model import ArchLatencyModel, universe
from elasticvit_deploy.latency.selection import choose_and_measure
from elasticvit_deploy.latency.tables import TABLE_DEVICES, TablePredictor, table_file_name
from elasticvit_deploy.latency.transfer import covering_subnets, fit_transfer
from supernet import encoding as enc
from supernet.sampling import sample_uniform
from supernet.space import ELASTICVIT

DEFAULT_TABLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nnmeter-hybrid-luts"
NS = (5, 10, 20, 50)
SETTINGS = RunnerSettings()
INFERENCES = (SETTINGS.warmup + SETTINGS.runs) * DEFAULT_ROUNDS  # per model file, the farm's default protocol


def figures(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    rel = predicted / truth - 1
    return {"within_5pct": float(np.mean(np.abs(rel) <= 0.05)), "within_10pct": float(np.mean(np.abs(rel) <= 0.10)),
            "worst_pct": float(np.max(np.abs(rel)) * 100), "bias_pct": float(np.mean(rel) * 100)}


def phone_seconds(latencies_ms: np.ndarray, fixed_s: float) -> float:
    """Phone time to measure these model files with the default protocol."""
    return float(len(latencies_ms) * fixed_s + INFERENCES * latencies_ms.sum() / 1000)


def blocks_in(seconds: float, mean_block_ms: float, fixed_s: float) -> int:
    """How many blocks of mean latency the phone measures in `seconds`."""
    return max(6, int(seconds / (fixed_s + INFERENCES * mean_block_ms / 1000)))


def study(tables: dict[str, TablePredictor], n_subnets: int, noise_pct: float, fixed_s: float, seed: int
          ) -> list[dict[str, Any]]:
    rows = sample_uniform(ELASTICVIT, n_subnets, seed=seed)
    models = {d: ArchLatencyModel(t, ELASTICVIT) for d, t in tables.items()}
    truth = {d: m.predict_batch(rows) for d, m in models.items()}
    rng = np.random.default_rng(seed)
    out = []
    for held in tables:
        bases = [d for d in tables if d != held]
        candidates = [b for b in universe(ELASTICVIT, "nnmeter") if b.table_key in tables[held].entries]
        mean_block_ms = float(np.mean(tables[held].predict_blocks(candidates)))
        for n in NS:
            archs = covering_subnets(ELASTICVIT, [models[b] for b in bases], n, seed=seed)
            exact = models[held].predict_batch(enc.encode_many(archs))
            measured = exact * rng.lognormal(0.0, noise_pct / 100, len(exact))
            t0 = time.perf_counter()
            transfer = fit_transfer(held, ELASTICVIT, [tables[b] for b in bases], archs, measured)
            fit_s = time.perf_counter() - t0
            predicted = ArchLatencyModel(transfer, ELASTICVIT, transfer.scale, transfer.offset_ms).predict_batch(rows)
            seconds = phone_seconds(exact, fixed_s)
            budget = blocks_in(seconds, mean_block_ms, fixed_s)
            blocks, ms = choose_and_measure(candidates, budget, tables[held].predict_blocks, seed=seed)
            learned = LearnedPredictor.fit(f"{held}-blocks", "nnmeter", blocks, ms)
            out.append({"phone": held, "bases": bases, "n": n, "phone_s": round(seconds, 1), "fit_s": round(fit_s, 2),
                        "choice": transfer.choice, "transfer": figures(predicted, truth[held]),
                        "blocks": {"n": len(blocks), **figures(ArchLatencyModel(learned, ELASTICVIT)
                                                              .predict_batch(rows), truth[held])}})
    return out


def print_study(rows: list[dict[str, Any]], n_subnets: int, noise_pct: float) -> None:
    print(f"leave one phone out: truth = the held-out phone's table over {n_subnets} random subnets; "
          f"measurements x lognormal noise {noise_pct:g}%")
    print(f"{'phone':<9} {'N':>3} {'phone time':>10} | {'transfer <=5%':>13} {'<=10%':>6} {'worst':>6} "
          f"{'fit':<22} | {'blocks':>6} {'<=5%':>6} {'<=10%':>6} {'worst':>6}")
    for r in rows:
        t, b = r["transfer"], r["blocks"]
        print(f"{r['phone']:<9} {r['n']:>3} {r['phone_s'] / 60:>8.1f} m | {t['within_5pct']:>13.1%} "
              f"{t['within_10pct']:>6.1%} {t['worst_pct']:>5.1f}% {r['choice']:<22} | {b['n']:>6} "
              f"{b['within_5pct']:>6.1%} {b['within_10pct']:>6.1%} {b['worst_pct']:>5.1f}%")
    at10 = [r for r in rows if r["n"] == 10]
    worst = min(r["transfer"]["within_10pct"] for r in at10)
    print(f"goal >= 99% within 10% at N = 10 for every held-out phone: lowest {worst:.1%} "
          f"({'met' if worst >= 0.99 else 'NOT met'})")


def _cli(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run `elasticvit-deploy ARGS --json` and return its document (stderr passes through: progress)."""
    proc = subprocess.run([sys.executable, "-m", "elasticvit_deploy", *args, "--json"], env=env,
                          stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"elasticvit-deploy {' '.join(args)} failed (exit {proc.returncode})")
    return json.loads(proc.stdout)


def end_to_end(phone: str, tables_dir: Path, n_models: int, n_validate: int, time_scale: float) -> dict[str, Any]:
    """Transfer build -> validate on the twin of `phone`, in a fresh user-data directory."""
    from elasticvit_deploy.simulator import SimulatedFarm

    bases = [d for d in TABLE_DEVICES if d != phone]
    with tempfile.TemporaryDirectory(prefix="evd-onboarding-") as home:
        env = dict(os.environ, ELASTICVIT_DEPLOY_HOME=home)
        subprocess.run([sys.executable, "-m", "elasticvit_deploy", "predictor", "import-tables", str(tables_dir)],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        with SimulatedFarm([phone], time_scale=time_scale, tables=Path(home) / "luts") as farm:
            adb = ["--adb", f"127.0.0.1:{farm.port}"]
            serial = farm.serials[0]
            t0 = time.perf_counter()
            steps: dict[str, float] = {}
            built = _cli(["predictor", "build", "--device", serial, "--method", "transfer", "--models",
                          str(n_models), "--base", ",".join(bases), *adb], env)
            steps["build_s"] = time.perf_counter() - t0
            checked = _cli(["predictor", "validate", "--device", serial, "--n", str(n_validate), *adb], env)
            total = time.perf_counter() - t0
            steps["validate_s"] = total - steps["build_s"]
    return {"phone": phone, "twin": serial, "bases": bases, "models": n_models, "validated_on": n_validate,
            "time_scale": time_scale, "minutes": round(total / 60, 2),
            "steps_s": {k: round(v, 1) for k, v in steps.items()}, "choice": built.get("choice"),
            "validation": {k: checked[k] for k in ("n", "within_5pct", "within_10pct", "worst_pct")}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=Path, default=DEFAULT_TABLES,
                        help="directory with the nn-Meter tables (<device>_lut_ln_v3.json)")
    parser.add_argument("--subnets", type=int, default=1000, help="random subnets the predictors are scored on")
    parser.add_argument("--noise-pct", type=float, default=1.0, help="measurement noise of a whole model (lognormal)")
    parser.add_argument("--fixed-s", type=float, default=5.0,
                        help="phone seconds per model file besides its inferences (push, init, cool-down)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--e2e", metavar="PHONE", choices=TABLE_DEVICES, default=None,
                        help="also onboard the digital twin of PHONE through the farm (minutes)")
    parser.add_argument("--models", type=int, default=10, help="--e2e: subnets measured for the transfer")
    parser.add_argument("--validate", type=int, default=10, help="--e2e: subnets the validation measures")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="--e2e: host seconds per simulated phone second (1: the lab's real time)")
    parser.add_argument("--json", action="store_true")
    a = parser.parse_args()
    paths = {d: a.tables / table_file_name(d) for d in TABLE_DEVICES}
    if missing := [str(p) for p in paths.values() if not p.is_file()]:
        print(f"error: missing tables: {', '.join(missing)} (give --tables DIR)", file=sys.stderr)
        return 2
    tables = {d: TablePredictor.load(d, p) for d, p in paths.items()}
    out: dict[str, Any] = {"study": study(tables, a.subnets, a.noise_pct, a.fixed_s, a.seed),
                           "subnets": a.subnets, "noise_pct": a.noise_pct, "fixed_s": a.fixed_s,
                           "inferences_per_model": INFERENCES}
    if not a.json:
        print_study(out["study"], a.subnets, a.noise_pct)
    if a.e2e:
        out["e2e"] = e2e = end_to_end(a.e2e, a.tables, a.models, a.validate, a.time_scale)
        if not a.json:
            v = e2e["validation"]
            print(f"end to end on the {a.e2e} twin (a SIMULATOR) from {', '.join(e2e['bases'])}: "
                  f"{e2e['minutes']:.1f} min from a ready phone to a validated predictor ({e2e['models']} subnets "
                  f"measured, fit {e2e['choice']}); validation on {e2e['validated_on']} subnets: within 5% "
                  f"{v['within_5pct']:.0%}, within 10% {v['within_10pct']:.0%}")
    if a.json:
        print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
