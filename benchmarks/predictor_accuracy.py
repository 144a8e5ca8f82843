"""Learning a phone from little data, against the real nn-Meter tables of four phones.

1. For each phone: the builder's selection rule (elasticvit_deploy.latency.selection) picks at most 5% of the
   phone's table entries to "measure" (looked up in the table), learned block regressors are fitted on them, and
   1,000 random subnets are predicted; printed: the share within +-5% / +-10% of the full-table sum (goal: >= 99%
   within +-5%), mean and worst error, and the regressor chosen per family.
2. Transfer: start from another phone's full table and at most 1% of the new phone's entries.
3. Throughput of batch prediction (archs/s) with the table and the learned predictor.

    .venv/bin/python benchmarks/predictor_accuracy.py [--tables ../shared/data/nnmeter-hybrid-luts] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from elasticvit_deploy.latency.learned import LearnedPredictor
from elasticvit_deploy.latency.model import ArchLatencyModel, universe
from elasticvit_deploy.latency.selection import choose_and_measure
from elasticvit_deploy.latency.tables import TABLE_DEVICES, TablePredictor, table_file_name
from supernet.sampling import sample_uniform
from supernet.space import ELASTICVIT

DEFAULT_TABLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nnmeter-hybrid-luts"
TRANSFER_BASE = {"pixel1": "pixel4", "pixel4": "xiaomi11", "pixel6": "xiaomi11", "xiaomi11": "pixel4"}


def errors(model: ArchLatencyModel, reference: np.ndarray, rows: np.ndarray) -> dict[str, float]:
    rel = model.predict_batch(rows) / reference - 1
    return {"within_5pct": float(np.mean(np.abs(rel) <= 0.05)), "within_10pct": float(np.mean(np.abs(rel) <= 0.10)),
            "mean_abs_err_pct": float(np.mean(np.abs(rel)) * 100), "worst_err_pct": float(np.max(np.abs(rel)) * 100),
            "bias_pct": float(np.mean(rel) * 100)}


def learn(table: TablePredictor, budget: int, base: TablePredictor | None, seed: int) -> LearnedPredictor:
    candidates = [b for b in universe(ELASTICVIT, "nnmeter") if b.table_key in table.entries]
    blocks, ms = choose_and_measure(candidates, budget, table.predict_blocks, seed=seed)
    return LearnedPredictor.fit(f"{table.name}-learned", "nnmeter", blocks, ms, base=base)


def throughput(model: ArchLatencyModel, rows: np.ndarray) -> float:
    model.predict_batch(rows[:10])  # compile
    start = time.perf_counter()
    model.predict_batch(rows)
    return len(rows) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=Path, default=DEFAULT_TABLES,
                        help="directory with the nn-Meter tables (<device>_lut_ln_v3.json)")
    parser.add_argument("--subnets", type=int, default=1000)
    parser.add_argument("--fraction", type=float, default=0.05, help="share of table entries to measure")
    parser.add_argument("--transfer-fraction", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tables = {d: TablePredictor.load(d, args.tables / table_file_name(d)) for d in TABLE_DEVICES}
    rows = sample_uniform(ELASTICVIT, args.subnets, seed=args.seed + 1)
    figures: dict[str, dict] = {"from_scratch": {}, "transfer": {}}
    for device, table in tables.items():
        reference = ArchLatencyModel(table, ELASTICVIT).predict_batch(rows)
        budget = int(args.fraction * len(table.entries))
        start = time.perf_counter()
        learned = learn(table, budget, None, args.seed)
        figures["from_scratch"][device] = {
            "budget": budget, "fit_s": time.perf_counter() - start,
            **errors(ArchLatencyModel(learned, ELASTICVIT), reference, rows),
            "regressors": {f: m.choice for f, m in learned.families.items()}}
        base = tables[TRANSFER_BASE[device]]
        t_budget = int(args.transfer_fraction * len(table.entries))
        transfer = learn(table, t_budget, base, args.seed)
        figures["transfer"][device] = {"base": base.name, "budget": t_budget,
                                       **errors(ArchLatencyModel(transfer, ELASTICVIT), reference, rows),
                                       "regressors": {f: m.choice for f, m in transfer.families.items()}}
        print(f"{device}: done", file=sys.stderr)
    big = sample_uniform(ELASTICVIT, 200_000, seed=args.seed + 2)
    figures["throughput_archs_per_s"] = {
        "table": throughput(ArchLatencyModel(tables["pixel1"], ELASTICVIT), big),
        "learned": throughput(ArchLatencyModel(learn(tables["pixel1"], 605, None, args.seed), ELASTICVIT), big)}
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"1. learned from <= {args.fraction:.0%} of each table, {args.subnets} random subnets vs the full-table "
          "sum:")
    for device, f in figures["from_scratch"].items():
        print(f"  {device:<9} {f['budget']:4d} blocks: {f['within_5pct']:7.1%} within 5%, {f['within_10pct']:7.1%} "
              f"within 10%, mean |err| {f['mean_abs_err_pct']:.2f}%, worst {f['worst_err_pct']:.1f}%, "
              f"bias {f['bias_pct']:+.2f}%  ({f['fit_s']:.0f} s; "
              f"{', '.join(f'{k}={v}' for k, v in f['regressors'].items())})")
    print(f"2. transfer: another phone's full table + <= {args.transfer_fraction:.0%} of the new phone's:")
    for device, f in figures["transfer"].items():
        print(f"  {device:<9} from {f['base']:<9} {f['budget']:4d} blocks: {f['within_5pct']:7.1%} within 5%, "
              f"{f['within_10pct']:7.1%} within 10%, mean |err| {f['mean_abs_err_pct']:.2f}%, "
              f"worst {f['worst_err_pct']:.1f}%, bias {f['bias_pct']:+.2f}%")
    t = figures["throughput_archs_per_s"]
    print(f"3. batch prediction: table {t['table']:,.0f} archs/s, learned {t['learned']:,.0f} archs/s "
          "(goal >= 100,000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
