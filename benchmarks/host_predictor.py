"""Reality on this machine: build a `host` latency predictor by measuring blocks, then compare its predictions with
end-to-end measurements of random exported subnets.

Steps (the same code as `predictor build --device host` and `predictor validate --device host`):
1. the builder measures `--budget` blocks (exported as tiny TFLite models, measured with the farm harness's
   host device: 3 rounds x (10 warm-ups + 50 runs), 1 thread, XNNPACK), fits, and calibrates on 8 subnets;
2. `--n` random subnets (seeded, none of the calibration ones) are exported and measured end to end;
   Latencies are the fastest inference of each measurement by default (`--statistic best`, see
   measurer.default_statistic).
3. printed: share within +-10% / +-5% (goal: >= 95% within +-10%), RMSE, bias, worst; and the noise floor:
   the median CV of a measurement's rounds, how much a subnet's latency moves when measured again, and how often
   that second measurement agrees with the first within 10% (no predictor can agree with measurements more often
   than they agree with themselves).

Slow (about 45-60 min on 2 cores: every subnet export converts a whole graph). Exports and measurements are
cached under the user-data dir (set ELASTICVIT_DEPLOY_HOME), so a second run only re-does what is missing.

    ELASTICVIT_DEPLOY_HOME=/tmp/evd-bench .venv/bin/python benchmarks/host_predictor.py [--budget 200] [--n 50]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace

import numpy as np
from tqdm import tqdm

from elasticvit_deploy.farm.measure import HostDevice, MeasureOptions
from elasticvit_deploy.farm.runner_protocol import RunnerSettings
from elasticvit_deploy.farm.store import ResultsStore
from elasticvit_deploy.latency import builder
from elasticvit_deploy.latency.evaluation import compare
from elasticvit_deploy.latency.exports import export_arch
from elasticvit_deploy.latency.measurer import STATISTICS, Measurer, measure_archs
from elasticvit_deploy.latency.model import ArchLatencyModel
from elasticvit_deploy.latency.predictors import learned_dir
from elasticvit_deploy.latency.validation import plot_validation, validation_archs
from supernet import encoding as enc
from supernet.space import get_space


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="elasticvit")
    parser.add_argument("--budget", type=int, default=200, help="blocks the builder measures")
    parser.add_argument("--calibrate", type=int, default=8, help="whole subnets for the model-level calibration")
    parser.add_argument("--n", type=int, default=50, help="random subnets to validate on")
    parser.add_argument("--repeat", type=int, default=10, help="validation subnets measured a second time")
    parser.add_argument("--statistic", choices=list(STATISTICS), default="best",
                        help="latency figure of a measurement (best: robust to other tenants of a shared machine)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    space = get_space(args.space)
    options = MeasureOptions()
    measurer = Measurer(HostDevice(RunnerSettings()), ResultsStore(), options, args.statistic)
    bar = tqdm(total=args.budget + args.calibrate + args.n, desc="host predictor", unit="model", file=sys.stderr)

    def tick(message: str) -> None:
        bar.set_postfix_str(message, refresh=False)
        bar.update(1)

    t0 = time.perf_counter()
    out = learned_dir("host", space)
    predictor = builder.build("host", space, measurer, args.budget, out / "build",
                              calibration_subnets=args.calibrate, tick=tick)
    predictor.save(out)
    build_s = time.perf_counter() - t0
    arch_list = validation_archs(space, args.n)
    rows = measure_archs(arch_list, space, measurer, tick)
    bar.close()
    measured = np.array([r.ms for r in rows])
    model = ArchLatencyModel(predictor, space, predictor.scale, predictor.offset_ms)
    predicted = model.predict_batch(enc.encode_many(arch_list))
    raw = ArchLatencyModel(predictor, space).predict_batch(enc.encode_many(arch_list))
    figures = {"calibrated": compare(predicted, measured).to_dict(), "sum_of_blocks": compare(raw, measured).to_dict()}
    again = Measurer(measurer.device, measurer.store, replace(options, fresh=True), args.statistic)
    repeated = np.array([again.latency_ms(export_arch(a, space))[0] for a in arch_list[:args.repeat]])
    figures["noise"] = {
        "median_round_cv_pct": float(np.median([r.cv for r in rows if r.cv is not None]) * 100),
        "repeat_median_abs_change_pct": float(np.median(np.abs(repeated / measured[:args.repeat] - 1)) * 100),
        "repeat_max_abs_change_pct": float(np.max(np.abs(repeated / measured[:args.repeat] - 1)) * 100),
        "repeat_within_10pct": float(np.mean(np.abs(repeated / measured[:args.repeat] - 1) <= 0.10)),
        "repeat_within_5pct": float(np.mean(np.abs(repeated / measured[:args.repeat] - 1) <= 0.05))}
    figures.update(budget=args.budget, statistic=args.statistic,
                   calibration={"scale": predictor.scale, "offset_ms": predictor.offset_ms},
                   regressors={f: m.choice for f, m in predictor.families.items()}, build_s=build_s,
                   measured_ms_range=[float(measured.min()), float(measured.max())],
                   plot=str(plot_validation(predicted, measured, "host predictor vs measured",
                                            out / "validation.png")))
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    c, s, n = figures["calibrated"], figures["sum_of_blocks"], figures["noise"]
    print(f"host predictor ({space.name}, statistic {args.statistic}): {args.budget} blocks + {args.calibrate} "
          f"calibration subnets, built in {build_s / 60:.1f} min; regressors {figures['regressors']}; "
          f"calibration x{predictor.scale:.4f} "
          f"{predictor.offset_ms:+.3f} ms")
    print(f"{args.n} random exported subnets ({measured.min():.1f}..{measured.max():.1f} ms measured):")
    print(f"  calibrated   : {c['within_10pct']:.1%} within 10% (goal >= 95%), {c['within_5pct']:.1%} within 5%, "
          f"RMSE {c['rmse_pct']:.2f}%, bias {c['bias_pct']:+.2f}%, worst {c['worst_pct']:.1f}%")
    print(f"  sum of blocks: {s['within_10pct']:.1%} within 10%, {s['within_5pct']:.1%} within 5%, "
          f"RMSE {s['rmse_pct']:.2f}%, bias {s['bias_pct']:+.2f}%")
    print(f"  noise floor  : median CV of a measurement's rounds {n['median_round_cv_pct']:.2f}%; measured again, "
          f"{args.repeat} subnets' medians moved {n['repeat_median_abs_change_pct']:.2f}% (median), "
          f"{n['repeat_max_abs_change_pct']:.2f}% (max); a second measurement agreed with the first within 10% for "
          f"{n['repeat_within_10pct']:.0%} of them (within 5%: {n['repeat_within_5pct']:.0%}), the ceiling any "
          f"predictor can reach here")
    print(f"  plot: {figures['plot']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
