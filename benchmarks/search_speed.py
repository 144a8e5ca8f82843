"""Search speed: evolutionary search against a real nn-Meter table with the FLOPs proxy.

Prints, for a ~5,000-subnet search (512 initial + 18 generations x 256 children) and for the official 40-generation
search (10,752 subnets): median seconds per search over `--repeats` seeds and seconds per 1,000 candidates; then the
chosen subnet (MFLOPs, predicted ms) for every table phone at 20, 30 and 40 ms with the official settings.

    .venv/bin/python benchmarks/search_speed.py [--tables ../shared/data/nnmeter-hybrid-luts] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from elasticvit_deploy.latency.model import ArchLatencyModel
from elasticvit_deploy.latency.tables import TABLE_DEVICES, TablePredictor, table_file_name
from elasticvit_deploy.search.evolution import Evolution, EvolutionConfig, rank
from elasticvit_deploy.search.objectives import FlopsProxy
from elasticvit_deploy.search.oracles import PredictorOracle
from supernet.space import ELASTICVIT

DEFAULT_TABLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "nnmeter-hybrid-luts"


def oracle(tables: Path, device: str) -> PredictorOracle:
    """The oracle of `device`'s nn-Meter table read from the directory `tables`."""
    return PredictorOracle(ArchLatencyModel(TablePredictor.load(device, tables / table_file_name(device)), ELASTICVIT))


def timed_search(table: PredictorOracle, budget: float, config: EvolutionConfig) -> tuple[float, int, dict]:
    """Seconds, candidates scored and the chosen subnet of one search of `table` within `budget` ms."""
    t0 = time.perf_counter()
    state = Evolution(ELASTICVIT, table, budget, FlopsProxy(ELASTICVIT), config).run()
    seconds = time.perf_counter() - t0
    best = rank(state.scores, state.latency)[0]
    return seconds, len(state.seen), {"mflops": round(float(state.scores[best]), 3),
                                      "predicted_ms": round(float(state.latency[best]), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=Path, default=DEFAULT_TABLES)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not (args.tables / table_file_name("pixel1")).is_file():
        print(f"error: no nn-Meter tables in {args.tables}", file=sys.stderr)
        return 2
    pixel1 = oracle(args.tables, "pixel1")
    figures: dict = {"speed": {}, "winners": []}
    for label, generations in (("5k", 18), ("official", 40)):
        runs = [timed_search(pixel1, 30.0, EvolutionConfig(generations=generations, seed=s))
                for s in range(args.repeats)]
        seconds = [r[0] for r in runs]
        candidates = runs[0][1]
        figures["speed"][label] = {"candidates": candidates, "median_s": float(np.median(seconds)),
                                   "max_s": float(np.max(seconds)),
                                   "s_per_1000": float(np.median(seconds)) / candidates * 1000}
    for device in TABLE_DEVICES:
        table = oracle(args.tables, device)
        for budget in (20.0, 30.0, 40.0):
            _, _, best = timed_search(table, budget, EvolutionConfig())
            figures["winners"].append({"device": device, "budget_ms": budget, **best})
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    for s in figures["speed"].values():
        print(f"search of {s['candidates']} subnets (pixel1 table, FLOPs proxy, {args.repeats} seeds): median "
              f"{s['median_s']:.2f} s (max {s['max_s']:.2f}), {s['s_per_1000']:.3f} s per 1,000 candidates")
    print("chosen subnets (official settings, seed 0):")
    for w in figures["winners"]:
        print(f"  {w['device']:<9} <= {w['budget_ms']:>4.0f} ms: {w['mflops']:8.1f} MFLOPs, "
              f"predicted {w['predicted_ms']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
