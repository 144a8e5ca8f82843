"""Selectable quirks of real phones and real benchmark_model builds that a simulated phone can be given.

Each quirk changes what the phone shows through adb the way a real phone with that quirk shows it; the package
docstring says where each comes from. A phone has no quirk unless asked (``SimulatedFarm(..., quirks=...)``).
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import SimulationError

QUIRKS: dict[str, str] = {
    "bcl-soc-zone": "thermal_zone0 is a Qualcomm BCL zone named 'soc' reading the battery percent; the SM8250 "
                    "zones (cpu-0-0-usr, cpuss-0-usr, pm8150b-bcl-lvl0, battery, ...) come after it",
    "offline-core": "cpu4 is offline: no cpu4/cpufreq directory, so its cpuinfo_max_freq cannot be read; taskset "
                    "refuses a mask of offline cores only",
    "shell-v1": "no shell_v2 adb feature (Android 6 and older); getprop reports Android 6.0.1, SDK 23",
    "litert2-benchmark": "benchmark_model is LiteRT 2's CompiledModel tool (benchmark_litert_model): "
                         "--use_cpu/--use_gpu/--use_npu, a BENCHMARK RESULTS block in ms",
    "tf1-benchmark": "benchmark_model is TF Lite 1.12's: --num_runs/--warmup_runs/--num_threads only, "
                     "'Average inference timings in us: Warmup: ..., Init: ..., no stats: ...'",
    "op-profiling": "the classic benchmark_model was built with op profiling on by default: its profiler tables "
                    "follow the timings unless --enable_op_profiling=false",
    "background-load": "another app competes for the CPU during a quarter of the benchmark_model runs, slowing "
                       "each such run throughout by 1.1-1.6x: a shared phone whose rounds scatter",
    "idle-freq-drop": "scaling_cur_freq read while no benchmark runs shows the cores at their idle frequency, "
                      "not throttled",
}

_EXCLUSIVE = (("litert2-benchmark", "tf1-benchmark"), ("op-profiling", "litert2-benchmark"),
              ("op-profiling", "tf1-benchmark"))


def check_quirks(names: Iterable[str]) -> frozenset[str]:
    """The quirk names as a set; SimulationError naming an unknown one (and listing the known ones) or two that
    cannot go together (one benchmark_model per phone; op profiling is a classic-build option)."""
    if isinstance(names, str):
        names = [names]
    chosen = frozenset(names)
    for name in sorted(chosen):
        if name not in QUIRKS:
            raise SimulationError(f"unknown quirk {name[:80]!r}; known: {', '.join(QUIRKS)}")
    for a, b in _EXCLUSIVE:
        if a in chosen and b in chosen:
            raise SimulationError(f"quirks {a} and {b} cannot be combined")
    return chosen
