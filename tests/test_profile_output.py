"""Op-profiling tables of benchmark_model, read from real published outputs (tests/data/benchmark_model). The
fixtures' memory and model-size figures are checked with their timings, from expected.json, in
test_benchmark_output.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from elasticvit_deploy.errors import BadInput
from elasticvit_deploy.farm.profile_output import OpNode, OpProfile, OpTypeTime, parse_op_profile

DATA = Path(__file__).parent / "data" / "benchmark_model"
FIXTURES = sorted(p for p in DATA.iterdir() if p.is_file() and p.name != "expected.json")


def _body(path: Path) -> str:
    """The tool output of a fixture: everything after its two header lines."""
    return path.read_text(encoding="utf-8").split("\n", 2)[2]


# Read by hand off each fixture: node and type counts (the tool's own "Number of nodes executed" where printed),
# the first row of "Summary by node type", total_ms from the regular runs' "Timings (microseconds): ... avg=",
# the first and last "Run Order" rows (type, name, avg ms, %/100) and the row with the largest "[%]".
EXPECTED = {
    "tf1-mobilenet-v1-quant-zedboard-op-profiling.txt": dict(
        nodes=31, types=5, top_type=("CONV_2D", 15, 322.055, 0.81730), total_ms=394.059,
        first=("CONV_2D", "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]", 22.697, 0.05760),
        last=("SOFTMAX", "[MobilenetV1/Predictions/Reshape_1]", 0.077, 0.00019),
        top_node=("CONV_2D", "[MobilenetV1/MobilenetV1/Conv2d_1_pointwise/Relu6]")),
    "classic-mobilenet-v1-float-x86-avx-op-profiling.txt": dict(
        nodes=31, types=5, top_type=("CONV_2D", 15, 18.207, 0.80801), total_ms=22.5457,
        first=("CONV_2D", "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0", 0.679, 0.03012),
        last=("SOFTMAX", "[MobilenetV1/Predictions/Reshape_1]:30", 0.003, 0.00012),
        top_node=("CONV_2D", "[MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Relu6]:26")),
    "classic-deeplabv3-imx8mp-cpu-sci-notation.txt": dict(
        nodes=43, types=4, top_type=("TfLiteXNNPackDelegate", 22, 982.881, 0.93588), total_ms=1050.24,
        first=("TfLiteXNNPackDelegate", None, 143.027, 0.13618),  # its name lists 81 ops, checked apart
        last=("TfLiteXNNPackDelegate", "[ResizeBilinear_2]:254", 156.943, 0.14943),
        top_node=("TfLiteXNNPackDelegate", "[ResizeBilinear_2]:254")),
    "classic-inception-v4-imx8mp-vx-delegate-max-secs.txt": dict(
        nodes=1, types=1, top_type=("Vx Delegate", 1, 4428.328, 1.0), total_ms=4428.33,
        first=("Vx Delegate", "[InceptionV4/Logits/Predictions]:195", 4428.329, 1.0),
        last=("Vx Delegate", "[InceptionV4/Logits/Predictions]:195", 4428.329, 1.0),
        top_node=("Vx Delegate", "[InceptionV4/Logits/Predictions]:195")),
    "classic-mobilenet-v1-quant-imx8mp-vx-delegate-vendor-warnings.txt": dict(
        nodes=1, types=1, top_type=("Vx Delegate", 1, 163.312, 1.0), total_ms=163.313,
        first=("Vx Delegate", "[MobilenetV1/Predictions/Reshape_1]:31", 163.313, 1.0),
        last=("Vx Delegate", "[MobilenetV1/Predictions/Reshape_1]:31", 163.313, 1.0),
        top_node=("Vx Delegate", "[MobilenetV1/Predictions/Reshape_1]:31")),
    "litert2-fc-fp32-sme2-use-profiler.txt": dict(
        nodes=5, types=5, top_type=("Fully Connected (NC, PF32) GEMM", 1, 0.382, 0.93171), total_ms=0.411071,
        first=("LiteRT::Run[buffer registration]", "LiteRT::Run[buffer registration]/0", 0.014, 0.03309),
        last=("LiteRT::Run[Buffer sync]", "LiteRT::Run[Buffer sync]/0", 0.012, 0.02982),
        top_node=("Fully Connected (NC, PF32) GEMM", "Delegate/Fully Connected (NC, PF32) GEMM:1")),
    "classic-yolov5s-xiaomi-mi11-nnapi-op-profiling-excerpt.txt": dict(
        nodes=11, types=3, top_type=("TfLiteNnapiDelegate", 3, 149.483, 0.94187), total_ms=158.715,
        first=("STRIDED_SLICE", "[model/tf.strided_slice/StridedSlice]:0", 2.118, 0.01335),
        last=("TfLiteNnapiDelegate", "[Identity, Identity_1, Identity_2]:233", 56.058, 0.35320),
        top_node=("TfLiteNnapiDelegate",
                  "[model/tf.nn.silu_16/mul, model/tf.nn.silu_26/mul, model/tf.nn.silu_35/mul]:231")),
    "classic-mobilenet-v1-float-qemu-riscv64-op-profiling.txt": dict(
        nodes=31, types=5, top_type=("CONV_2D", 15, 2651.853, 0.89897), total_ms=2949.9,
        first=("CONV_2D", "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0", 60.957, 0.02066),
        last=("SOFTMAX", "[MobilenetV1/Predictions/Reshape_1]:30", 0.233, 0.00008),
        top_node=("CONV_2D", "[MobilenetV1/MobilenetV1/Conv2d_5_pointwise/Relu6]:10")),
    "classic-mobile-object-localizer-arm-tc2-xnnpack-op-profiling.txt": dict(
        nodes=115, types=8, top_type=("Convolution (NHWC, QU8) GEMM", 54, 3.340, 0.45622), total_ms=7.36009,
        first=("Convolution (NHWC, QU8) IGEMM", "Delegate/Convolution (NHWC, QU8) IGEMM:0", 0.278, 0.03783),
        last=("TFLite_Detection_PostProcess", "[TFLite_Detection_PostProcess, TFLite_Detection_PostProcess:1, "
              "TFLite_Detection_PostProcess:2, TFLite_Detection_PostProcess:3]:114", 1.339, 0.18197),
        top_node=("TFLite_Detection_PostProcess", "[TFLite_Detection_PostProcess, TFLite_Detection_PostProcess:1, "
                  "TFLite_Detection_PostProcess:2, TFLite_Detection_PostProcess:3]:114")),
    "classic-deeplabv3-nnapi-run-order-excerpt.txt": dict(
        nodes=8, types=0, top_type=None, total_ms=None,
        first=("TfLiteNnapiDelegate", "[MobilenetV2/expanded_conv_16/project/add_fold, aspp0/Relu]:71", 11.422,
               0.21939),
        last=("ARG_MAX", "[ArgMax]:70", 15.326, 0.29438),
        top_node=("RESIZE_BILINEAR", "[ResizeBilinear_2]:69")),
}
PROFILED = [DATA / name for name in sorted(EXPECTED)]
INIT_HEADER = "Profiling Info for Benchmark Initialization:"
REGULAR_HEADER = "Operator-wise Profiling Info for Regular Benchmark Runs:"


def _row(node: OpNode) -> tuple[str, str, float, float]:
    return node.type, node.name, node.avg_ms, node.share


def test_every_fixture_with_profile_tables_has_an_expectation():
    printed = {p.name for p in FIXTURES if "Run Order ==" in _body(p)}
    assert printed == set(EXPECTED)
    assert len(EXPECTED) >= 10


@pytest.mark.parametrize("path", PROFILED, ids=lambda p: p.name)
def test_fixture_profile_as_read_by_hand(path):
    want = EXPECTED[path.name]
    profile = parse_op_profile(_body(path))
    assert profile is not None
    assert (len(profile.nodes), len(profile.types)) == (want["nodes"], want["types"])
    assert profile.total_ms == (None if want["total_ms"] is None else pytest.approx(want["total_ms"], rel=1e-9))
    first_type, first_name, first_avg, first_share = want["first"]
    first = profile.nodes[0]
    assert (first.type, first.avg_ms, first.share) == (first_type, first_avg, pytest.approx(first_share))
    if first_name is not None:
        assert first.name == first_name
    assert _row(profile.nodes[-1])[:3] == want["last"][:3]
    assert profile.nodes[-1].share == pytest.approx(want["last"][3])
    top = profile.top_nodes(1)[0]
    assert (top.type, top.name) == want["top_node"]
    if want["top_type"] is None:
        assert profile.types == () and profile.top_types() == []
    else:
        kind, count, avg, share = want["top_type"]
        for leader in (profile.types[0], profile.top_types(1)[0]):
            assert (leader.type, leader.count, leader.avg_ms) == (kind, count, avg)
            assert leader.share == pytest.approx(share)
        # the summary covers every node once, and its shares (like the nodes') add up to the whole
        assert sum(t.count for t in profile.types) == len(profile.nodes)
        assert sum(t.share for t in profile.types) == pytest.approx(1.0, abs=2e-3)
    assert sum(n.share for n in profile.nodes) == pytest.approx(1.0, abs=2e-3)
    assert all(0.0 <= n.share <= 1.0 and n.avg_ms >= 0.0 for n in profile.nodes)


def test_names_keep_their_commas_spaces_and_brackets():
    profile = parse_op_profile(_body(DATA / "classic-deeplabv3-imx8mp-cpu-sci-notation.txt"))
    assert profile is not None
    name = profile.nodes[0].name
    assert name.startswith("[tfl.conv_2d13, tfl.conv_2d14, std.constant19_dequantize, ")
    assert name.endswith(", std.constant79_dequantize, std.constant62_dequantize]:233")
    assert name.count(", ") == 80   # 81 ops, counted in the fixture with grep
    litert = parse_op_profile(_body(DATA / "litert2-fc-fp32-sme2-use-profiler.txt"))
    assert litert is not None
    assert [n.name for n in litert.nodes] == [
        "LiteRT::Run[buffer registration]/0", "AllocateTensors/0", "Delegate/Static Reshape (NC):0",
        "Delegate/Fully Connected (NC, PF32) GEMM:1", "LiteRT::Run[Buffer sync]/0"]
    assert [t.type for t in litert.types] == [
        "Fully Connected (NC, PF32) GEMM", "LiteRT::Run[buffer registration]", "LiteRT::Run[Buffer sync]",
        "Static Reshape (NC)", "AllocateTensors"]


def test_share_ranks_nodes_not_the_per_call_mean():
    # LiteRT's AllocateTensors row: 0.291 ms for one call during set-up, 0.022% of the runs' time
    litert = parse_op_profile(_body(DATA / "litert2-fc-fp32-sme2-use-profiler.txt"))
    assert litert is not None
    allocate = next(n for n in litert.nodes if n.type == "AllocateTensors")
    assert (allocate.avg_ms, allocate.share) == (0.291, pytest.approx(0.00022))
    assert [n.type for n in litert.top_nodes(3)] == [
        "Fully Connected (NC, PF32) GEMM", "LiteRT::Run[buffer registration]", "LiteRT::Run[Buffer sync]"]
    assert litert.top_nodes(0) == [] and len(litert.top_nodes(50)) == 5


@pytest.mark.parametrize("path", [p for p in PROFILED if INIT_HEADER in _body(p)], ids=lambda p: p.name)
def test_the_initialization_profile_is_never_taken(path):
    body = _body(path)
    profile = parse_op_profile(body)
    assert profile is not None
    assert not {"AllocateTensors", "ModifyGraphWithDelegate"} & {n.type for n in profile.nodes}
    assert not {"AllocateTensors", "ModifyGraphWithDelegate"} & {t.type for t in profile.types}
    # the initialization tables alone are no profile of the runs
    assert parse_op_profile(body.split(REGULAR_HEADER)[0]) is None
    # nor are the runs' tables when their header was lost: they would read as more of the initialization
    assert parse_op_profile(body.replace(REGULAR_HEADER, "")) is None


@pytest.mark.parametrize("path", PROFILED, ids=lambda p: p.name)
def test_truncated_output_gives_what_it_printed(path):
    lines = _body(path).splitlines(keepends=True)
    whole = parse_op_profile("".join(lines))
    assert whole is not None
    for cut in range(len(lines)):
        for part in ("".join(lines[:cut]), "".join(lines[:cut]) + lines[cut][:len(lines[cut]) // 2]):
            got = parse_op_profile(part)
            if got is None:
                continue
            # every row read is a row of the whole (a row cut in its name keeps the start of the name)
            assert len(got.nodes) <= len(whole.nodes) and len(got.types) <= len(whole.types)
            for mine, full in zip(got.nodes, whole.nodes, strict=False):
                assert (mine.type, mine.avg_ms, mine.share) == (full.type, full.avg_ms, full.share)
                assert full.name.startswith(mine.name)
            assert list(got.types) == list(whole.types[:len(got.types)])
            assert got.total_ms in (None, whole.total_ms)


@pytest.mark.parametrize("path", PROFILED, ids=lambda p: p.name)
def test_tabs_turned_into_spaces_read_the_same(path):
    # a table pasted into a page or an issue often loses its tabs
    whole = parse_op_profile(_body(path))
    for spaced in (_body(path).expandtabs(8), _body(path).replace("\t", " ")):
        assert parse_op_profile(spaced) == whole


def test_logcat_prefixes_on_every_line_are_stripped():
    body = _body(DATA / "classic-yolov5s-xiaomi-mi11-nnapi-op-profiling-excerpt.txt")
    logcat = "".join(f"08-17 12:54:41.000 21767 21767 I tflite  : {line}\n" for line in body.splitlines())
    assert parse_op_profile(logcat) == parse_op_profile(body)


def test_other_subgraphs_and_delegate_internals_are_not_taken():
    # Layout of ProfileSummaryDefaultFormatter::GenerateReport (LiteRT @ f67457790c9c,
    # tflite/profiling/profile_summary_formatter.cc) for a model with a second subgraph and a delegate's own
    # breakdown, built from the primary graph of a real output.
    body = _body(DATA / "classic-yolov5s-xiaomi-mi11-nnapi-op-profiling-excerpt.txt")
    regular = body.split(REGULAR_HEADER)[1].strip("\n")
    other = regular.replace("STRIDED_SLICE", "WHILE").replace("Timings (microseconds)",
                                                                 "Subgraph (index: 1, name: body) Timings "
                                                                 "(microseconds)")
    text = (f"{INIT_HEADER}\n{body.split(REGULAR_HEADER)[0]}{REGULAR_HEADER}\n"
            f"Primary graph (name: main) profile:\n{regular}\n\n"
            f"Subgraph (index: 1, name: body) profile:\n{other}\n\n"
            f"Delegate internal: \n{other}\n")
    assert parse_op_profile(text) == parse_op_profile(body)
    only_primary = parse_op_profile(text)
    assert only_primary is not None and "WHILE" not in {n.type for n in only_primary.nodes}
    # the older spelling without names
    older = text.replace("Primary graph (name: main) profile:", "Primary graph profile:")
    assert parse_op_profile(older.replace("(index: 1, name: body)", "(index: 1)")) == parse_op_profile(body)


def test_a_run_where_every_node_took_no_time():
    # StatsCalculator divides by the summed time: 0/0 prints nan%, which is no share of nothing
    text = ("============================== Run Order ==============================\n"
            "\t[node type]\t[first]\t[avg ms]\t[%]\t[cdf%]\t[mem KB]\t[times called]\t[Name]\n"
            "\tRESHAPE\t0.000\t0.000\t-nan%\t-nan%\t0.000\t1\t[r]:0\n"
            "\n1 nodes observed\n")
    assert parse_op_profile(text) == OpProfile((OpNode("RESHAPE", "[r]:0", 0.0, 0.0),), (), None)


@pytest.mark.parametrize("junk", ["", "\n\n", "\x00\xff garbage", "=" * 10000,
                                  "============================== Run Order ==============================\n",
                                  "============================== Run Order ==============================\n"
                                  "\t[node type]\t[avg ms]\t[%]\t[Name]\n" + "1 " * 3000 + "\n",
                                  "============================== Summary by node type =====================\n"
                                  "\t[Node type]\t[count]\t[avg ms]\t[avg %]\n\tCONV_2D\t1.5\t2\t3%\n",
                                  "Timings (microseconds): count=50 avg=100\n50 nodes observed\n",
                                  "[node type]\t[avg ms]\t[%]\t[Name]\n\tCONV_2D\t1\t2%\tx\n"])
def test_junk_gives_no_profile(junk):
    assert parse_op_profile(junk) is None


@pytest.mark.parametrize("path", [p for p in FIXTURES if p.name not in EXPECTED], ids=lambda p: p.name)
def test_outputs_without_profiling_give_none(path):
    assert parse_op_profile(_body(path)) is None


@pytest.mark.parametrize("path", PROFILED, ids=lambda p: p.name)
def test_to_dict_round_trip(path):
    profile = parse_op_profile(_body(path))
    assert profile is not None
    stored = json.loads(json.dumps(profile.to_dict()))
    assert set(stored) == {"nodes", "types", "total_ms"}
    assert all(set(n) == {"type", "name", "avg_ms", "share"} for n in stored["nodes"])
    assert all(set(t) == {"type", "count", "avg_ms", "share"} for t in stored["types"])
    assert OpProfile.from_dict(stored) == profile


@pytest.mark.parametrize("bad", [{}, {"nodes": [], "types": []}, {"nodes": [{"type": "X"}], "types": [],
                                                                   "total_ms": None},
                                 {"nodes": [], "types": [{"type": "X", "count": "many", "avg_ms": 1, "share": 1}],
                                  "total_ms": 1.0}, {"nodes": None, "types": [], "total_ms": None}])
def test_from_dict_refuses_what_is_not_a_profile_in_one_line(bad):
    with pytest.raises(BadInput) as info:
        OpProfile.from_dict(bad)
    assert "\n" not in str(info.value) and "not an op profile" in str(info.value)


def test_top_types_keep_the_printed_order_among_equals():
    profile = OpProfile((), (OpTypeTime("A", 1, 1.0, 0.5), OpTypeTime("B", 1, 1.0, 0.5), OpTypeTime("C", 2, 0.5, 0.0)),
                        1.0)
    assert [t.type for t in profile.top_types(2)] == ["A", "B"]
    assert [t.type for t in profile.top_types()] == ["A", "B", "C"]
