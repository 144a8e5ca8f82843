"""The simulated benchmark_model's op profiles and peak memory, read back with the parsers of real outputs: the
classic tool with and without XNNPACK, LiteRT 2's --use_profiler, the node list from the model's real ops, each
run's time split by work, and the timed numbers untouched by profiling."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path

import adbutils
import pytest

from elasticvit_deploy.farm.benchmark_output import parse_benchmark_output
from elasticvit_deploy.farm.profile_output import OpProfile, parse_op_profile
from elasticvit_deploy.simulator import PROFILES, SimulatedFarm
from elasticvit_deploy.simulator.op_profile import profiled_nodes, split_us
from elasticvit_deploy.simulator.tool_stats import ProfileEvent, StatsCalculator

BENCH = "/data/local/tmp/elasticvit-deploy/benchmark_model"
MODEL = "/data/local/tmp/tiny.tflite"
DATA = Path(__file__).resolve().parent / "data" / "benchmark_model"
FAST = f"--graph={MODEL} --warmup_runs=2 --warmup_min_secs=0 --min_secs=0 --num_runs=4"
# runs of a few ms that vary, so every node gets whole microseconds and no stat line is "(all same)"
SLOW = dataclasses.replace(PROFILES["pixel4"], name="slow", speed_factor=400.0, noise_cv=0.2)
# the tiny model's ops (TRANSPOSE, CONV_2D, TRANSPOSE, RESHAPE, FULLY_CONNECTED) as XNNPACK operators
XNNPACK_NAMES = {"TRANSPOSE": "Transpose (ND, X32) Transpose", "CONV_2D": "Convolution (NHWC, F32) IGEMM",
                 "RESHAPE": "Static Reshape (NC)", "FULLY_CONNECTED": "Fully Connected (NC, F32) GEMM"}


@pytest.fixture(autouse=True)
def _no_real_adb_server(monkeypatch):
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/false")


@pytest.fixture(scope="module")
def farm(tiny_tflite):
    with SimulatedFarm([SLOW, SLOW], time_scale=0.01, quirks_by_serial={"sim-slow-2": ("litert2-benchmark",)}) as f:
        for serial in f.serials:
            device(f, serial).sync.push(tiny_tflite, MODEL)
        yield f


@pytest.fixture(scope="module")
def model_ops(tiny_tflite):
    """The tiny model's ops and tensors as the LiteRT interpreter has them, without delegates."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(tiny_tflite),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    names = {d["index"]: d["name"] for d in interpreter.get_tensor_details()}
    return [(op["op_name"], f"[{', '.join(names[t] for t in op['outputs'])}]:{op['index']}")
            for op in interpreter._get_ops_details()]


def device(farm: SimulatedFarm, serial: str) -> adbutils.AdbDevice:
    return adbutils.AdbClient(host="127.0.0.1", port=farm.port).device(serial)


def bench(farm: SimulatedFarm, serial: str, args: str) -> adbutils.ShellReturn:
    r = device(farm, serial).shell2(f"{BENCH} {FAST} {args}", v2=True)
    assert r.returncode == 0, r.stderr
    return r


def timings_line(text: str) -> str:
    """The stat of the profiler's Timings line (of the last profile printed)."""
    return re.findall(r"^Timings \(microseconds\): (.*)$", text, re.M)[-1]


def check_shares(profile: OpProfile) -> None:
    assert sum(node.share for node in profile.nodes) == pytest.approx(1.0, abs=0.002)
    assert sum(t.share for t in profile.types) == pytest.approx(1.0, abs=0.002)
    assert sum(t.count for t in profile.types) == len(profile.nodes)


# --- classic ---------------------------------------------------------------------------------------------------

def test_classic_profile_with_xnnpack_lists_its_operators(farm, model_ops):
    out = bench(farm, "sim-slow-1", "--enable_op_profiling=true").stdout
    profile = parse_op_profile(out)
    assert profile is not None and profile.total_ms is not None
    # TF 2.18's XNNPACK delegate profiles its operators: no delegate node, one row per operator, in op order
    assert [node.type for node in profile.nodes] == [XNNPACK_NAMES[kind] for kind, _ in model_ops]
    assert [node.name for node in profile.nodes] == [f"Delegate/{XNNPACK_NAMES[kind]}:{i}"
                                                     for i, (kind, _) in enumerate(model_ops)]
    assert "TfLiteXNNPackDelegate" not in out
    check_shares(profile)
    assert profile.top_nodes(1)[0].type == "Convolution (NHWC, F32) IGEMM"  # the most multiply-accumulates
    assert profile.top_types(1)[0].type == "Convolution (NHWC, F32) IGEMM"
    # each run's time is split over the operators: the profiler's runs are the timed runs
    run = parse_benchmark_output(out)
    assert run.ok and run.count == 4
    assert timings_line(out) == re.findall(r"^INFO: (count=4 .*)$", out, re.M)[0]
    assert profile.total_ms == pytest.approx(run.avg_us / 1000)
    assert sum(node.avg_ms for node in profile.nodes) == pytest.approx(profile.total_ms, abs=0.001 * 5)
    init = out[out.index("Profiling Info for Benchmark Initialization:"):out.index("Operator-wise")]
    assert "ModifyGraphWithDelegate/0" in init and "AllocateTensors/0" in init


def test_classic_profile_without_xnnpack_is_the_models_ops(farm, model_ops):
    out = bench(farm, "sim-slow-1", "--enable_op_profiling=true --use_xnnpack=false").stdout
    profile = parse_op_profile(out)
    assert profile is not None
    assert [(node.type, node.name) for node in profile.nodes] == model_ops
    assert {t.type: t.count for t in profile.types} == Counter(kind for kind, _ in model_ops)
    check_shares(profile)
    shares = {node.type: node.share for node in profile.nodes}
    assert shares["CONV_2D"] > shares["FULLY_CONNECTED"] > shares["RESHAPE"]
    init = out[out.index("Profiling Info for Benchmark Initialization:"):out.index("Operator-wise")]
    assert "ModifyGraphWithDelegate" not in init and "AllocateTensors/0" in init


def test_classic_layout_follows_the_recorded_tables(farm):
    out = bench(farm, "sim-slow-1", "--enable_op_profiling=true").stdout
    real = (DATA / "litert2-fc-fp32-sme2-use-profiler.txt").read_text(encoding="utf-8").splitlines()
    headers = [line for line in real if "[node type]" in line or "[Node type]" in line]
    assert out.count(headers[0] + "\n") == 4 and out.count(headers[-1] + "\n") == 2
    regular = out[out.index("INFO: Operator-wise"):]
    run_order = regular[regular.index(headers[0]):].split("\n\n")[0].splitlines()[1:]
    assert len(run_order) == 5 and all(len(row.split("\t")) == 9 and row.startswith("\t") for row in run_order)
    # three blank lines end each section, as the recorded TF Lite 2.x output shows
    assert regular.endswith("nodes observed\n\n\n\n")


def test_timed_numbers_come_before_the_tables_and_do_not_change(farm):
    on = bench(farm, "sim-slow-1", "--enable_op_profiling=true").stdout
    off = bench(farm, "sim-slow-1", "--enable_op_profiling=false").stdout

    def skeleton(text: str) -> list[str]:
        lines = [re.sub(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?", "N", line) for line in text.splitlines()]
        return [line for line in lines if "Enable op profiling" not in line]

    tables = on.index("INFO: Profiling Info for Benchmark Initialization:")
    assert on.index("INFO: Inference timings in us: ") < tables
    assert skeleton(on[:tables]) == skeleton(off)
    assert parse_op_profile(off) is None
    run_on, run_off = parse_benchmark_output(on), parse_benchmark_output(off)
    assert (run_on.count, run_on.ok) == (run_off.count, run_off.ok) == (4, True)
    assert run_on.avg_us == pytest.approx(float(re.search(r"Inference \(avg\): ([\d.e+]+)", on).group(1)))


def test_classic_peak_memory_footprint(farm):
    r = bench(farm, "sim-slow-1", "--report_peak_memory_footprint=true")
    memory = parse_benchmark_output(r.stdout).memory
    assert memory is not None and memory.peak_mb is not None and memory.overall_mb is not None
    assert memory.peak_mb >= memory.overall_mb >= memory.init_mb
    assert "INFO: Report the peak memory footprint: [1]\n" in r.stdout
    assert re.search(r"^INFO: Memory status at the end of exeution:\nINFO: - VmRSS              : (\d+) MB\n"
                     r"INFO: \+ RssAnnon           : \d+ MB\nINFO: \+ RssFile \+ RssShmem : \d+ MB$", r.stdout, re.M)
    assert parse_benchmark_output(bench(farm, "sim-slow-1", "").stdout).memory.peak_mb is None
    r = bench(farm, "sim-slow-1", "--report_peak_memory_footprint=true --memory_footprint_check_interval_ms=0")
    assert r.stdout.index("WARN: --memory_footprint_check_interval_ms is set to 0 (ms), This value is invalid, and "
                          "it will be set to the default value 50 (ms).") < r.stdout.index("INFO: Log parameter")
    assert "INFO: Memory footprint check interval (ms): [50]\n" in r.stdout


# --- LiteRT 2 --------------------------------------------------------------------------------------------------

def test_litert2_use_profiler_prints_the_tables_after_the_results(farm, model_ops):
    r = bench(farm, "sim-slow-2", "--use_cpu=true --use_profiler=true")
    err = r.stderr
    assert err.index("======================================\n") < err.index("============================== Run Order")
    assert "[start]" not in err and "Profiling Info" not in err
    profile = parse_op_profile(err)
    assert profile is not None
    names = [node.name for node in profile.nodes]
    assert names[:2] == ["LiteRT::Run[buffer registration]/0", "AllocateTensors/0"]
    assert names[-1] == "LiteRT::Run[Buffer sync]/0"
    assert names[2:-1] == [f"Delegate/{XNNPACK_NAMES[kind]}:{i}" for i, (kind, _) in enumerate(model_ops)]
    check_shares(profile)
    # every run is profiled, warm-ups included; allocating the tensors happened once, in the first
    assert re.match(r"count=6 ", timings_line(err))
    allocate = next(line for line in err.splitlines() if line.endswith("\tAllocateTensors/0"))
    assert allocate.split("\t")[7].strip() == "0"  # times called per run
    run = parse_benchmark_output(r.stdout + err)
    assert (run.family, run.count, run.ok) == ("litert2", 4, True)
    real = (DATA / "litert2-fc-fp32-sme2-use-profiler.txt").read_text(encoding="utf-8").splitlines()
    headers = [line for line in real if "[node type]" in line or "[Node type]" in line]
    assert [line for line in err.splitlines() if "[node type]" in line or "[Node type]" in line] == headers


def test_litert2_peak_memory_and_no_profile_by_default(farm):
    r = bench(farm, "sim-slow-2", "--report_peak_memory_footprint=true")
    memory = parse_benchmark_output(r.stdout + r.stderr).memory
    assert memory is not None and memory.peak_mb is not None and memory.peak_mb >= memory.overall_mb
    assert "Peak memory:          " in r.stderr and "Peak memory usage not available" not in r.stderr
    assert parse_op_profile(r.stdout + r.stderr) is None
    r = bench(farm, "sim-slow-2", "")
    assert "Peak memory usage not available. (peak_mem_mb <= 0)" in r.stderr
    assert parse_benchmark_output(r.stdout + r.stderr).memory.peak_mb is None


# --- the profile model, on graphs of its own -------------------------------------------------------------------

def _tensor(index: int, name: str, shape: tuple[int, ...], dtype: str = "float32") -> dict:
    import numpy as np

    return {"index": index, "name": name, "shape": np.array(shape), "dtype": np.dtype(dtype),
            "quantization_parameters": {"scales": np.array([])}}


def _op(index: int, name: str, inputs: list[int], outputs: list[int]) -> dict:
    return {"index": index, "op_name": name, "inputs": inputs, "outputs": outputs}


def test_partitions_fused_clamps_and_ops_left_to_the_interpreter():
    tensors = [_tensor(0, "in", (1, 8, 8, 4)), _tensor(1, "w", (16, 3, 3, 4)), _tensor(2, "conv", (1, 8, 8, 16)),
               _tensor(3, "relu", (1, 8, 8, 16)), _tensor(4, "ids", (3,), "int32"), _tensor(5, "gather", (3, 8, 16)),
               _tensor(6, "add", (3, 8, 16)), _tensor(7, "w2", (16, 16)), _tensor(8, "fc", (24, 16))]
    ops = [_op(0, "CONV_2D", [0, 1, -1], [2]), _op(1, "RELU", [2], [3]), _op(2, "GATHER", [3, 4], [5]),
           _op(3, "ADD", [5, 5], [6]), _op(4, "FULLY_CONNECTED", [6, 7, -1], [8]),
           _op(5, "DELEGATE", [0, 1], [3]), _op(6, "DELEGATE", [5, 7], [8])]  # GATHER left to the interpreter
    nodes = profiled_nodes(ops, tensors)
    assert [(n.name, n.type) for n in nodes] == [
        ("Delegate/Convolution (NHWC, F32) IGEMM:0", "Convolution (NHWC, F32) IGEMM"),  # the RELU fused into it
        ("[gather]:2", "GATHER"),
        ("Delegate/Add (ND):0", "Add (ND)"),   # counted per partition
        ("Delegate/Fully Connected (NC, F32) GEMM:1", "Fully Connected (NC, F32) GEMM")]
    conv, gather, add, fc = (n.work for n in nodes)
    assert conv - fc == pytest.approx(8 * 8 * 16 * (3 * 3 * 4 + 4) - 24 * 16 * 16)  # MACs, plus the fused clamp's
    assert gather - add == pytest.approx(4 * (8 * 8 * 16 - 3 * 8 * 16))  # 4 per element of its larger tensor
    plain = profiled_nodes([op for op in ops if op["op_name"] != "DELEGATE"], tensors)
    assert [n.name for n in plain] == ["[conv]:0", "[relu]:1", "[gather]:2", "[add]:3", "[fc]:4"]


def test_int8_and_depthwise_names():
    tensors = [_tensor(0, "in", (1, 8, 8, 4), "int8"), _tensor(1, "w", (1, 3, 3, 4), "int8"),
               _tensor(2, "dw", (1, 8, 8, 4), "int8"), _tensor(3, "pw", (8, 1, 1, 4), "int8"),
               _tensor(4, "out", (1, 8, 8, 8), "int8")]
    tensors[3]["quantization_parameters"]["scales"] = [0.1] * 8
    ops = [_op(0, "DEPTHWISE_CONV_2D", [0, 1, -1], [2]), _op(1, "CONV_2D", [2, 3, -1], [4]),
           _op(2, "DELEGATE", [0, 1, 3], [4])]
    assert [n.type for n in profiled_nodes(ops, tensors)] == ["Convolution (NHWC, QS8) DWConv",
                                                              "Convolution (NHWC, QC8) GEMM"]


def test_split_us_sums_to_the_run():
    assert split_us(10, [1, 1, 1]) == [4, 3, 3]
    parts = split_us(1234, [0.5, 3.0, 0.0, 7.25])
    assert sum(parts) == 1234 and parts[2] == 0 and parts[3] > parts[1] > parts[0]
    assert split_us(5, [0, 0]) == [3, 2] and split_us(7, []) == []


def test_stats_calculator_merges_equal_names_as_the_real_one():
    calc = StatsCalculator()
    for us in (100, 140):
        calc.add_run([ProfileEvent("Delegate/Add (ND):0", "Add (ND)", us // 4),
                      ProfileEvent("[x]:3", "GATHER", us // 2),
                      ProfileEvent("Delegate/Add (ND):0", "Add (ND)", us // 4)])
    calc.add_run([])  # no events: no run
    text = calc.report()
    profile = parse_op_profile(text)
    assert profile is not None and [n.name for n in profile.nodes] == ["Delegate/Add (ND):0", "[x]:3"]
    row = next(line for line in text.splitlines() if line.endswith("\tDelegate/Add (ND):0"))
    assert row.split("\t")[7].strip() == "2"  # called twice per run
    assert profile.nodes[0].avg_ms == pytest.approx(0.030)  # per call
    assert {t.type: t.count for t in profile.types} == {"Add (ND)": 1, "GATHER": 1}
    assert "Timings (microseconds): count=2 first=100 curr=140 " in text and text.endswith("2 nodes observed\n\n")
