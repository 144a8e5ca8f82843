"""benchmark_model output parsing against real published outputs, and the two tools' command lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from elasticvit_deploy.farm.benchmark_output import BenchmarkRun, ToolMemory, parse_benchmark_output
from elasticvit_deploy.farm.benchmark_tool import (
    DELEGATES,
    HELP_ARGV,
    BenchmarkTool,
    UnknownBenchmarkTool,
    UnsupportedDelegate,
    detect_tool,
)

DATA = Path(__file__).parent / "data" / "benchmark_model"
FIXTURES = sorted(p for p in DATA.iterdir() if p.is_file() and p.name != "expected.json")
EXPECTED = json.loads((DATA / "expected.json").read_text(encoding="utf-8"))
NUMBERS = ("avg_us", "min_us", "max_us", "std_us", "init_us", "first_us", "warmup_avg_us")


def _body(path: Path) -> str:
    """The tool output of a fixture: everything after its two header lines."""
    return path.read_text(encoding="utf-8").split("\n", 2)[2]


def test_there_are_enough_fixtures_and_each_has_an_expectation():
    assert len(FIXTURES) >= 12
    assert sorted(EXPECTED) == [p.name for p in FIXTURES]


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixture_header_names_its_public_source(path):
    first, second = path.read_text(encoding="utf-8").splitlines()[:2]
    assert first.startswith("# source: http")
    assert second.startswith("# ") and len(second) > 10


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixture_parses_as_expected(path):
    expected = EXPECTED[path.name]
    run = parse_benchmark_output(_body(path))
    assert run.family == expected["family"]
    assert run.version == expected["version"]
    assert run.count == expected["count"]
    for name in NUMBERS:
        want = expected[name]
        assert getattr(run, name) == (None if want is None else pytest.approx(want, rel=1e-9)), name
    assert list(run.errors) == expected["errors"]
    assert run.ok is expected["ok"]
    assert (run.memory.to_dict() if run.memory is not None else None) == expected["memory"]
    assert run.model_mb == expected["model_mb"]
    if not expected["ok"] and expected["count"] == 0 and expected["family"] != "unknown":
        assert run.errors, "a failed run must say why"


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_truncated_output_never_claims_more_than_the_whole(path):
    # a phone can drop the connection mid-run: every cut of a real output must still parse
    lines = _body(path).splitlines(keepends=True)
    whole = parse_benchmark_output("".join(lines))
    for cut in range(len(lines)):
        part = parse_benchmark_output("".join(lines[:cut]))
        assert part.count in (0, whole.count)
        assert not part.ok or whole.ok


def test_profiler_timings_after_the_results_are_not_taken():
    run = parse_benchmark_output(_body(DATA / "litert2-fc-fp32-sme2-use-profiler.txt"))
    assert (run.count, run.avg_us) == (2112, pytest.approx(464.545))   # not the profiler's count=3166
    run = parse_benchmark_output(_body(DATA / "classic-mobilenet-v1-float-x86-avx-op-profiling.txt"))
    assert (run.count, run.avg_us) == (50, pytest.approx(22549.2))     # not the profiler's avg=22545.7


def test_peak_memory_lines_as_the_sources_print_them():
    # No published output with a peak figure was found; these lines follow the sources (LiteRT @ f67457790c9c:
    # tflite/tools/benchmark/benchmark_model.cc with --report_peak_memory_footprint, and
    # litert/tools/benchmark_litert_model.h when the monitor measured a peak).
    classic = parse_benchmark_output(
        "INFO: The input model file size (MB): 4.27635\n"
        "INFO: Memory footprint delta from the start of the tool (MB): init=7.16016 overall=35.4844\n"
        "INFO: Overall peak memory footprint (MB) via periodic monitoring: 38.1992\n"
        "INFO: Memory status at the end of exeution:\nINFO: - VmRSS              : 38 MB\n")
    assert classic.memory == ToolMemory(init_mb=7.16016, overall_mb=35.4844, peak_mb=38.1992)
    assert classic.model_mb == 4.27635
    litert = parse_benchmark_output(
        "INFO: [./litert/tools/benchmark_litert_model.h:124] \nMemory Usage:\n"
        "INFO: [./litert/tools/benchmark_litert_model.h:125] Init footprint:       8.94 MB\n"
        "INFO: [./litert/tools/benchmark_litert_model.h:127] Overall footprint:    11.51 MB\n"
        "INFO: [./litert/tools/benchmark_litert_model.h:132] Peak memory:          12.25 MB\n")
    assert litert.memory == ToolMemory(init_mb=8.94, overall_mb=11.51, peak_mb=12.25)
    assert litert.memory.to_dict() == {"init_mb": 8.94, "overall_mb": 11.51, "peak_mb": 12.25}
    assert ToolMemory.from_dict(litert.memory.to_dict()) == litert.memory


def test_memory_lines_that_say_nothing_give_no_figures():
    run = parse_benchmark_output("INFO: Peak memory usage not available. (peak_mem_mb <= 0)\n"
                                 "INFO: Memory footprint delta from the start of the tool (MB): init=9e999 "
                                 "overall=12.5\nWARN: Failed to get the input model file size.\n")
    assert run.memory == ToolMemory(overall_mb=12.5) and run.memory.to_dict() == {"overall_mb": 12.5}
    assert run.model_mb is None
    assert parse_benchmark_output("count=1 curr=5\n").memory is None
    assert ToolMemory().to_dict() == {}


def test_stat_line_forms_as_tensorflow_stat_prints_them():
    # tensorflow::Stat::OutputToStream (tensorflow/core/util/stats_calculator.h): one run prints count/curr only,
    # several identical runs add "(all same)", none prints "count=0".
    same = parse_benchmark_output("count=1 curr=900\n\ncount=3 curr=1200(all same)\n")
    assert (same.count, same.avg_us, same.min_us, same.max_us, same.std_us) == (3, 1200.0, 1200.0, 1200.0, 0.0)
    assert (same.first_us, same.warmup_avg_us) == (900.0, 900.0)
    nothing = parse_benchmark_output("INFO: count=0\n\nINFO: count=0\n")
    assert (nothing.count, nothing.avg_us, nothing.ok) == (0, None, False)
    warmup_only = parse_benchmark_output("INFO: count=2 first=10 curr=12 min=10 max=12 avg=11 std=1\n")
    assert (warmup_only.count, warmup_only.warmup_avg_us, warmup_only.ok) == (0, 11.0, False)


def test_log_prefixes_of_real_logs_are_stripped():
    # Lines as published: Android logcat (tensorflow/tensorflow#56301) and absl (LiteRT build instructions).
    text = ("05-31 10:31:13.023 21767 21767 I tflite  : Log parameter values verbosely: [0]\n"
            "I0000 00:00:1758455104.504065   62590 accelerator_registry.cc:51] "
            "RegisterAccelerator: ptr=0x559f093a7dd0\n"
            "05-31 10:38:42.607 22206 22206 E tflite  : Following operations are not supported by GPU delegate:\n"
            "05-31 10:31:13.023 21767 21767 I tflite  : count=1 curr=4000\n"
            "05-31 10:31:13.023 21767 21767 I tflite  : "
            "count=2 first=3000 curr=3100 min=3000 max=3100 avg=3050 std=50\n")
    run = parse_benchmark_output(text)
    assert (run.family, run.count, run.avg_us) == ("classic", 2, 3050.0)
    assert run.errors == ("Following operations are not supported by GPU delegate:",)
    assert run.ok      # a delegate that leaves ops on the CPU is not a failed run


def test_invoke_failure_after_timings_is_not_ok():
    # BenchmarkModel::Run keeps timing when Invoke fails and the tool then reports "Benchmarking failed."
    text = ("INFO: count=1 curr=10\n\nERROR: Node number 3 (CONV_2D) failed to invoke.\n"
            "INFO: count=5 first=9 curr=9 min=9 max=9 avg=9 std=0\n\nERROR: Benchmarking failed.\n")
    run = parse_benchmark_output(text)
    assert run.count == 5 and not run.ok
    assert run.errors == ("Node number 3 (CONV_2D) failed to invoke.", "Benchmarking failed.")


@pytest.mark.parametrize("junk", ["", "\n\n", "\x00\xff garbage", "count=abc avg=", "Inference (avg): ms (runs)",
                                  "ERROR: something broke", b"\xff\xfe bytes", None, 12345,
                                  "count=" + "9" * 400, "count=9e999\ncount=9e999 avg=1 min=1 max=1 std=0",
                                  "Inference (avg): 1.0 ms (" + "9" * 400 + " runs)", "=" * 10000])
def test_junk_never_raises(junk):
    run = parse_benchmark_output(junk)
    assert isinstance(run, BenchmarkRun)
    assert run.family == "unknown" and not run.ok
    if isinstance(junk, str) and junk.startswith("ERROR: "):
        assert run.errors == ("something broke",)


# --- the tools' command lines --------------------------------------------------------------------------------

def _usage(flags: list[str]) -> str:
    """A flag listing as tflite::Flags::Usage lays it out (tflite/tools/command_line_flags.cc), logged by
    BenchmarkModel::ParseFlags with TFLITE_LOG(ERROR)."""
    rows = "".join(f"\t--{name}=\tstring\toptional\t{name}\n" for name in flags)
    return f"ERROR: usage: /data/local/tmp/benchmark_model <flags>\nFlags:\n{rows}"


# Flag names as the sources define them (LiteRT @ f67457790c9c: tflite/tools/benchmark/benchmark_model.cc,
# benchmark_tflite_model.cc, tflite/tools/delegates/*_provider.cc; litert/tools/benchmark_litert_model.h).
CLASSIC_SOURCE_FLAGS = ["num_runs", "min_secs", "max_secs", "run_delay", "num_threads", "warmup_runs",
                        "warmup_min_secs", "graph", "enable_op_profiling", "help", "use_xnnpack", "use_gpu",
                        "use_nnapi"]
LITERT2_SOURCE_FLAGS = ["num_runs", "min_secs", "max_secs", "num_threads", "warmup_runs", "warmup_min_secs",
                        "graph", "use_cpu", "use_gpu", "use_npu", "require_full_delegation", "use_profiler",
                        "dispatch_library_path"]
LITERT2_HELP = ("\n  NPU Vendor Flags from LiteRT:\n    --qualcomm_log_level (Log level); default: info;\n\n"
                "INFO: STARTING!\n" + _usage(LITERT2_SOURCE_FLAGS))


def test_help_argv_is_help():
    assert HELP_ARGV == ["--help"]


def test_detect_tool_on_the_published_tf1_listing():
    tool = detect_tool(_body(DATA / "help-tf1-tflite1.12-am57x.txt"))
    assert tool.family == "classic" and tool.version is None
    assert tool.flags == {"num_runs", "run_delay", "num_threads", "benchmark_name", "output_prefix", "warmup_runs",
                          "graph", "input_layer", "input_layer_shape", "use_nnapi"}
    assert tool.delegates() == ("cpu", "nnapi")
    # 1.12 has no time limits nor op-profiling flag: only what it lists is passed
    assert tool.args("/d/m.tflite", warmup=2, runs=7, threads=4, delegate="cpu", max_secs=60) == [
        "--graph=/d/m.tflite", "--warmup_runs=2", "--num_runs=7", "--num_threads=4"]


def test_detect_tool_on_listings_rendered_from_the_sources():
    classic = detect_tool(_usage(CLASSIC_SOURCE_FLAGS))
    assert classic.family == "classic" and classic.flags == set(CLASSIC_SOURCE_FLAGS)
    litert2 = detect_tool(LITERT2_HELP)
    assert litert2.family == "litert2" and "qualcomm_log_level" in litert2.flags
    assert set(LITERT2_SOURCE_FLAGS) <= litert2.flags
    assert detect_tool("\n  NPU Vendor Flags from LiteRT:\n\n").flags == frozenset()


@pytest.mark.parametrize("junk", ["", "sh: /data/local/tmp/benchmark_model: not executable: 64-bit ELF file",
                                  "STARTING!\nSegmentation fault", None])
def test_detect_tool_refuses_what_is_not_a_listing(junk):
    with pytest.raises(UnknownBenchmarkTool, match="not a benchmark_model flag listing"):
        detect_tool(junk)


EXPECTED_ARGS = {
    ("classic", "cpu"): ["--use_xnnpack=false"],
    ("classic", "xnnpack"): ["--use_xnnpack=true"],
    ("classic", "gpu"): ["--use_gpu=true"],
    ("classic", "nnapi"): ["--use_nnapi=true"],
    ("litert2", "xnnpack"): ["--use_cpu=true", "--use_gpu=false", "--use_npu=false"],
    ("litert2", "gpu"): ["--use_cpu=false", "--use_gpu=true", "--use_npu=false"],
    ("litert2", "npu"): ["--use_cpu=false", "--use_gpu=false", "--use_npu=true"],
}
LOOP = ["--graph=/data/local/tmp/m.tflite", "--warmup_runs=3", "--warmup_min_secs=0", "--num_runs=20",
        "--min_secs=0", "--max_secs=90", "--num_threads=2"]
TOOLS = {"classic": detect_tool(_usage(CLASSIC_SOURCE_FLAGS)), "litert2": detect_tool(LITERT2_HELP)}


@pytest.mark.parametrize("family", ["classic", "litert2"])
@pytest.mark.parametrize("listed", [True, False], ids=["listed-flags", "known-flags"])
@pytest.mark.parametrize("delegate", DELEGATES)
def test_args_for_every_family_and_delegate(family, listed, delegate):
    tool = TOOLS[family] if listed else BenchmarkTool(family, None, frozenset())
    call = dict(warmup=3, runs=20, threads=2, delegate=delegate, max_secs=90)
    if (family, delegate) not in EXPECTED_ARGS:
        with pytest.raises(UnsupportedDelegate) as info:
            tool.args("/data/local/tmp/m.tflite", **call)
        message = str(info.value)
        assert "\n" not in message and repr(delegate) in message and tool.name in message
        assert ", ".join(tool.delegates()) in message
        assert delegate not in tool.delegates()
        return
    profiling = "--use_profiler=false" if family == "litert2" else "--enable_op_profiling=false"
    assert tool.args("/data/local/tmp/m.tflite", **call) == LOOP + [profiling] + EXPECTED_ARGS[family, delegate]
    assert delegate in tool.delegates()


def test_delegates_follow_what_the_tool_lists():
    cpu_only = detect_tool(_usage(["graph", "num_runs", "warmup_runs", "num_threads", "use_xnnpack"]))
    assert cpu_only.delegates() == ("cpu", "xnnpack")
    with pytest.raises(UnsupportedDelegate, match="it can do: cpu, xnnpack"):
        cpu_only.args("m.tflite", warmup=1, runs=1, threads=1, delegate="gpu", max_secs=10)
    assert TOOLS["litert2"].delegates() == ("xnnpack", "gpu", "npu")


@pytest.mark.parametrize("bad", [dict(runs=0), dict(warmup=-1), dict(threads=0), dict(max_secs=0),
                                 dict(runs=True), dict(runs="5"), dict(graph="")])
def test_args_refuses_bad_values_in_one_line(bad):
    call = dict(graph="m.tflite", warmup=1, runs=5, threads=1, delegate="xnnpack", max_secs=10) | bad
    graph = call.pop("graph")
    with pytest.raises(ValueError) as info:
        TOOLS["classic"].args(graph, **call)
    assert "\n" not in str(info.value)


def test_unknown_family_and_unknown_delegate_are_refused():
    with pytest.raises(ValueError, match="classic or litert2"):
        BenchmarkTool("tf9", None, frozenset())
    with pytest.raises(UnsupportedDelegate, match="'hexagon'"):
        TOOLS["classic"].args("m.tflite", warmup=1, runs=1, threads=1, delegate="hexagon", max_secs=10)
