"""How well the report's regression gate tells real slowdowns from noise, and the gate end to end on twins.

1. Gate rates (`--trials` pairs of measurements per cell): the baseline and the current build each get `--rounds`
   round means drawn from a phone's noise, the current one slower by a true change of 0, 2, 5 or 10%. Two phones:
   - quiet: lognormal round means, CV 1% (a cooled phone pinned to its big cluster);
   - noisy: CV 3%, and a quarter of the rounds hit by background load (x1.1-1.6), as on a shared phone with
     other apps running: a round-mean CV of about 15%.
   Printed per cell: the share of FAIL / WARN / PASS with today's gate (Mann-Whitney U + bootstrap CI of the
   ratio of medians, noise gate at --max-cv) and with the earlier one (do the two medians' 95% CIs overlap?),
   through `reports.verdicts.regression_verdict`, the function `report` runs. The targets: a true 5% regression
   on the quiet phone FAILs; no change never FAILs, on either phone.
2. End to end (`--e2e`, about a minute): two Pixel 4 twins behind a simulated adb server, one of them noisy
   (`background-load` quirk); label "v1" measures two ElasticViT blocks on both; label "v2" measures them again,
   one of them replaced under the same file name by a block its table says is about 5.5% slower (`--fresh`: the
   unchanged one is measured again, not reused); then
   `report --from-store` judges v2 against v1. Printed: each model x phone's verdict and reason.

    .venv/bin/python benchmarks/regression_gate.py [--trials 400] [--rounds 10] [--e2e] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from elasticvit_deploy.farm.stats import summarize
from elasticvit_deploy.latency.exports import export_block
from elasticvit_deploy.latency.model import universe
from elasticvit_deploy.latency.tables import TablePredictor, import_tables
from elasticvit_deploy.reports.inputs import ModelResult
from elasticvit_deploy.reports.verdicts import DEFAULT_MAX_CV, regression_verdict
from elasticvit_deploy.simulator import SimulatedFarm
from supernet.space import ELASTICVIT

CHANGES_PCT = (0.0, 2.0, 5.0, 10.0)
DEFAULT_TABLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nnmeter-hybrid-luts"
CLI = [sys.executable, "-m", "elasticvit_deploy"]
TWIN = "pixel4"
SERIALS = ("quiet-pixel4", "noisy-pixel4")
PHONES = ("quiet", "noisy")


def rounds(rng: np.random.Generator, phone: str, n: int, median_ms: float) -> list[float]:
    """`n` round means of a model whose undisturbed median is `median_ms`, with the phone's noise."""
    cv = 0.01 if phone == "quiet" else 0.03
    x = median_ms * rng.lognormal(0.0, np.sqrt(np.log(1 + cv ** 2)), n)
    if phone == "noisy":
        hit = rng.random(n) < 0.25
        x = np.where(hit, x * rng.uniform(1.1, 1.6, n), x)
    return [float(v) for v in x]


def result(samples: list[float], with_rounds: bool) -> ModelResult:
    """A measurement as the report reads it: its statistics, and its rounds only when `with_rounds` (without
    them the report falls back on comparing the two medians' CIs, the earlier gate)."""
    s = summarize(samples)
    return ModelResult("phone", {"fingerprint": "phone"}, "rt", "model.tflite", s.median_ms, s.ci95_ms, s.cv,
                       samples if with_rounds else [])


def gate_rates(trials: int, n_rounds: int, threshold_pct: float, max_cv: float, seed: int) -> list[dict[str, Any]]:
    """FAIL/WARN/PASS shares per phone, true change and gate."""
    rng = np.random.default_rng(seed)
    out = []
    for phone in PHONES:
        for change in CHANGES_PCT:
            counts: dict[str, Counter[str]] = {"distribution": Counter(), "ci-overlap": Counter()}
            for _ in range(trials):
                base = rounds(rng, phone, n_rounds, 10.0)
                current = rounds(rng, phone, n_rounds, 10.0 * (1 + change / 100))
                for gate, with_rounds in (("distribution", True), ("ci-overlap", False)):
                    v = regression_verdict(result(current, with_rounds), result(base, with_rounds), threshold_pct,
                                           max_cv)
                    assert v is not None
                    counts[gate][v.status] += 1
            for gate, c in counts.items():
                out.append({"phone": phone, "change_pct": change, "gate": gate,
                            **{s: c[s] / trials for s in ("FAIL", "WARN", "PASS")}})
    return out


def print_rates(rows: list[dict[str, Any]], trials: int, n_rounds: int, threshold_pct: float) -> None:
    print(f"regression gate, {trials} trials per cell, {n_rounds} rounds per side, threshold {threshold_pct:g}%")
    print(f"{'phone':<6} {'true change':>11}  {'distribution gate (FAIL/WARN/PASS)':>36}  "
          f"{'CI-overlap gate (FAIL/WARN/PASS)':>34}")
    by = {(r["phone"], r["change_pct"], r["gate"]): r for r in rows}
    for phone in PHONES:
        for change in CHANGES_PCT:
            cells = []
            for gate in ("distribution", "ci-overlap"):
                r = by[(phone, change, gate)]
                cells.append(f"{r['FAIL']:>6.1%} / {r['WARN']:>6.1%} / {r['PASS']:>6.1%}")
            print(f"{phone:<6} {change:>10.0f}%  {cells[0]:>36}  {cells[1]:>34}")


def twin_blocks(tables: Path) -> tuple[Path, Path, Path, float]:
    """Two ElasticViT blocks of 5-15 ms on the twin's table, and a third one its table says is about 5.5% slower
    than the second; with the slowdown it brings."""
    import_tables(tables)
    table = TablePredictor.load(TWIN)
    blocks = sorted((b for b in universe(ELASTICVIT, "graph") if 5.0 <= table.entries.get(b.table_key, 0.0) <= 15.0),
                    key=lambda b: table.entries[b.table_key])
    first, second = blocks[0], blocks[len(blocks) // 2]
    ms = table.entries[second.table_key]
    slower = min((b for b in blocks if table.entries[b.table_key] / ms >= 1.04),
                 key=lambda b: abs(table.entries[b.table_key] / ms - 1.055))
    return (export_block(first, ELASTICVIT), export_block(second, ELASTICVIT), export_block(slower, ELASTICVIT),
            table.entries[slower.table_key] / ms - 1)


def run_cli(*args: str) -> str:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"elasticvit-deploy {' '.join(args[:2])} failed ({done.returncode}): "
                         f"{done.stderr.strip()[-500:]}")
    return done.stdout


def end_to_end(tables: Path, n_rounds: int, time_scale: float) -> dict[str, Any]:
    """Labels v1 and v2 measured on a quiet and a noisy Pixel 4 twin, v2 with one model slower; the report's
    verdicts on v2."""
    a, b, slower, change = twin_blocks(tables)
    with tempfile.TemporaryDirectory() as tmp, \
            SimulatedFarm([TWIN, TWIN], serials=list(SERIALS), time_scale=time_scale, tables=tables,
                          quirks_by_serial={SERIALS[1]: ["background-load"]}) as farm:
        root = Path(tmp)
        store = root / "results.sqlite"
        for label, (first, second) in (("v1", (a, b)), ("v2", (a, slower))):
            d = root / label
            d.mkdir()
            shutil.copy(first, d / "model-a.tflite")
            shutil.copy(second, d / "model-b.tflite")
            run_cli("measure", str(d / "model-a.tflite"), str(d / "model-b.tflite"), "--all", "--adb",
                    f"127.0.0.1:{farm.port}", "--rounds", str(n_rounds), "--label", label, "--store", str(store),
                    "--fresh", "--json")  # model-a again too, not its stored v1 result: the noise, not a copy
        summary = json.loads(run_cli("report", "--from-store", "--store", str(store), "--out", str(root / "report"),
                                     "--json"))
    verdicts = [{"phone": v["device"].get("alias") or v["device"]["serial"], "model": v["model"], "status": v["status"],
                 "regression": (v.get("regression_verdict") or {}).get("reason")} for v in summary["verdicts"]]
    return {"true_change_pct": change * 100, "verdicts": verdicts}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threshold", type=float, default=5.0)
    ap.add_argument("--max-cv", type=float, default=DEFAULT_MAX_CV * 100, help="percent")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--e2e", action="store_true", help="also run the gate end to end on twins")
    ap.add_argument("--tables", type=Path, default=DEFAULT_TABLES)
    ap.add_argument("--time-scale", type=float, default=0.05, help="simulated seconds slept per phone second")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = gate_rates(args.trials, args.rounds, args.threshold, args.max_cv / 100, args.seed)
    report: dict[str, Any] = {"rates": rows}
    if not args.json:
        print_rates(rows, args.trials, args.rounds, args.threshold)
    if args.e2e:
        report["e2e"] = end_to_end(args.tables, args.rounds, args.time_scale)
        if not args.json:
            e2e = report["e2e"]
            print(f"\nend to end on {TWIN} twins: model-b.tflite made {e2e['true_change_pct']:.1f}% slower in v2")
            for v in e2e["verdicts"]:
                print(f"  {v['phone']:<16} {v['model']:<16} {v['status']:<5} {v['regression']}")
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
