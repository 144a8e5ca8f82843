"""Export fidelity: the min, the max and N random ElasticViT subnets spread over the FLOPs range, exported to
every registered format (TFLite, ONNX) in fp32 and dynamic-int8 through the product's export path (each file
verified on the host).

Without a checkpoint the subnets carry the supernet's seeded initial weights with trained-like normalisation
parameters (see `elasticvit_deploy.export.subnet.build_subnet`), so the graphs are those of trained subnets.

Prints the pass rate (goal 100%, no Flex/custom ops), the worst fp32 parity, the dynamic-int8 agreement, median
conversion time and file sizes per format, and the union op histogram of the first (default) format, TFLite.

    .venv/bin/python benchmarks/export_fidelity.py [--n-random 20] [--seed 0] [--keep DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from elasticvit_deploy.export import ExportError, export_subnet, format_names
from supernet.sampling import archs, flops_range, max_arch, min_arch, sample_in_window
from supernet.space import get_space

QUANTIZATIONS = ("none", "dynamic-int8")
FORMATS = format_names()  # every registered format


def spread_archs(space_name: str, n_random: int, seed: int) -> list:
    """min, max, and one arch drawn uniformly inside each of `n_random` equal FLOPs windows between them."""
    space = get_space(space_name)
    lo, hi = flops_range(space)
    edges = np.linspace(lo, hi, n_random + 1)
    picked = [min_arch(space), max_arch(space)]
    for i in range(n_random):
        picked += archs(sample_in_window(space, edges[i], edges[i + 1], 1, seed=seed + i), space)
    return picked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="elasticvit")
    parser.add_argument("--n-random", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="keep the exported models here (default: deleted)")
    parser.add_argument("--json", action="store_true", help="print the raw per-arch records as JSON too")
    args = parser.parse_args()

    space = get_space(args.space)
    records, failures = [], []
    ops: Counter[str] = Counter()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for i, arch in enumerate(tqdm(spread_archs(args.space, args.n_random, args.seed), desc="archs", unit="arch")):
            out = (args.keep or Path(scratch)) / f"arch{i:02d}"
            try:
                models = export_subnet(arch, space, out, formats=FORMATS, quantizations=QUANTIZATIONS).models
            except ExportError as e:
                failures.append({"arch": arch.to_dict(), "error": str(e)})
                continue
            for m in models:
                man = m.manifest
                records.append({"i": i, "mflops": man["mflops"], "format": m.format, "quantization": m.quantization,
                                "size_mb": man["size_bytes"] / 1e6, "convert_s": man["timing_s"]["convert"],
                                "max_abs_diff": man["verification"]["parity"]["max_abs_diff"],
                                "reference_max_abs": man["verification"]["parity"]["reference_max_abs"],
                                "top1": man["verification"]["parity"]["top1_agreement"],
                                "builtin_only": man["graph"].get("builtin_only", True)})
                if m.format == FORMATS[0] and m.quantization == "none":
                    ops.update(man["graph"]["ops"])
            if args.keep is None:
                for f in out.iterdir():
                    f.unlink()
                out.rmdir()
    total = args.n_random + 2
    passed = total - len(failures)
    print(f"space {space.name}: {total} archs ({min(r['mflops'] for r in records):.1f}.."
          f"{max(r['mflops'] for r in records):.1f} MFLOPs), formats {', '.join(FORMATS)}, "
          f"quantizations {', '.join(QUANTIZATIONS)}; wall time {time.perf_counter() - started:.0f} s")
    print(f"pass rate: {passed}/{total} archs ({passed / total:.0%}); files with Flex/custom ops: "
          f"{sum(not r['builtin_only'] for r in records)}")
    for f in failures:
        print(f"  FAILED {f['error']}")
    for fmt in FORMATS:
        fp32 = [r for r in records if r["format"] == fmt and r["quantization"] == "none"]
        dyn = [r for r in records if r["format"] == fmt and r["quantization"] == "dynamic-int8"]
        worst = max(fp32, key=lambda r: r["max_abs_diff"])
        convert = [r["convert_s"] for r in fp32]
        print(f"{fmt}: worst fp32 max abs diff {worst['max_abs_diff']:.2e} (outputs up to "
              f"{worst['reference_max_abs']:.2e}); median conversion {statistics.median(convert):.1f} s "
              f"(max {max(convert):.1f} s)")
        for label, rows in (("fp32", fp32), ("dynamic-int8", dyn)):
            sizes = [r["size_mb"] for r in rows]
            print(f"  {label:<13} size median {statistics.median(sizes):7.2f} MB (min {min(sizes):.2f}, max "
                  f"{max(sizes):.2f})")
        rel = [r["max_abs_diff"] / max(r["reference_max_abs"], 1e-12) for r in dyn]
        diffs = [r["max_abs_diff"] for r in dyn]
        print(f"  dynamic-int8 vs PyTorch fp32: max abs diff median {statistics.median(diffs):.2e}"
              f" (relative to output scale: median {statistics.median(rel):.2%}, worst {max(rel):.2%}); top-1 "
              f"agreement mean {statistics.mean(r['top1'] for r in dyn):.1%}")
    print(f"union {FORMATS[0]} op histogram (fp32 graphs, all archs): "
          + ", ".join(f"{k} {v}" for k, v in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))))
    if args.json:
        print(json.dumps({"records": records, "failures": failures}, indent=1))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
