"""FLOPs counter and sampler throughput (the goal: at least 20,000 archs/s in one process).

Prints archs/s for the one-arch counter (`arch_mflops`), the vectorised batch counter (`batch_mflops`), uniform
sampling, and FLOPs-window sampling at the paper's training levels (first call, which builds the window's boxes,
and a repeat call). Run: .venv/bin/python benchmarks/flops_speed.py
"""

from __future__ import annotations

import argparse
import statistics
import time

from supernet.flops import arch_mflops, batch_mflops
from supernet.sampling import archs, sample_in_window, sample_uniform
from supernet.space import get_space


def _rate(fn, n: int, repeats: int = 5) -> float:
    """Median archs/s over `repeats` timed runs of `fn` (which handles `n` archs)."""
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="elasticvit")
    ap.add_argument("--n", type=int, default=20_000)
    args = ap.parse_args()
    space = get_space(args.space)
    rows = sample_uniform(space, args.n, seed=0)
    arch_list = archs(rows, space)
    scalar = _rate(lambda: [arch_mflops(a, space) for a in arch_list], args.n)
    big = sample_uniform(space, 1_000_000, seed=1)
    batch = _rate(lambda: batch_mflops(big, space), len(big))
    uniform = _rate(lambda: sample_uniform(space, 100_000, seed=2), 100_000)
    print(f"space {space.name}")
    print(f"arch_mflops (one arch per call)   {scalar:12,.0f} archs/s   (goal >= 20,000)")
    print(f"batch_mflops (1M-row batches)     {batch:12,.0f} archs/s")
    print(f"sample_uniform                    {uniform:12,.0f} archs/s")
    levels = [100, 200, 300, 400, 500, 700, 900, 1200] if space.name == "elasticvit" else []
    for level in levels:
        t = time.perf_counter()
        sample_in_window(space, level, level + 20, 1000, seed=3)
        first = time.perf_counter() - t
        again = _rate(lambda level=level: sample_in_window(space, level, level + 20, 1000, seed=4), 1000, repeats=3)
        print(f"sample_in_window [{level},{level + 20}]  first 1000 in {first:6.3f} s, then {again:10,.0f} archs/s")


if __name__ == "__main__":
    main()
