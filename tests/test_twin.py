"""Simulated phones as twins of the table phones: a model carrying an ElasticViT arch or block is timed by the
phone's nn-Meter table whatever the host does, anything else falls back on host-scaled timing, and the basis
reaches every result (benchmark output, rounds, summary, report)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import adbutils
import pytest
from click.testing import CliRunner

from elasticvit_deploy.cli import main
from elasticvit_deploy.export import tflite_format
from elasticvit_deploy.farm.adb import AdbServer, Phone
from elasticvit_deploy.farm.benchmark_output import parse_benchmark_output
from elasticvit_deploy.farm.measure import LocalModel, MeasureOptions, PhoneDevice, measure_model
from elasticvit_deploy.farm.runner_protocol import BENCHMARK_PATH, RoundResult, RunnerSettings
from elasticvit_deploy.farm.store import ResultsStore
from elasticvit_deploy.farm.summary import MeasurementSummary, summarize_rounds
from elasticvit_deploy.latency.blocks import decompose
from elasticvit_deploy.latency.model import ArchLatencyModel
from elasticvit_deploy.latency.tables import TABLE_SHA256, TablePredictor, import_tables, installed_table_path
from elasticvit_deploy.reports.inputs import ModelResult, ReportInputs, read_results
from elasticvit_deploy.reports.render import device_header
from elasticvit_deploy.reports.report import build_report
from elasticvit_deploy.reports.verdicts import judge
from elasticvit_deploy.simulator import PROFILES, SimulatedFarm
from elasticvit_deploy.simulator.twin import cached_twin_timing, twin_table, twin_timing
from supernet.documents import header
from supernet.sampling import min_arch
from supernet.space import ELASTICVIT, TINY

TABLES_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "nnmeter-hybrid-luts"
needs_tables = pytest.mark.skipif(not TABLES_DIR.is_dir(),
                                  reason="../shared/data/nnmeter-hybrid-luts is not beside the repo")
DATA = Path(__file__).resolve().parent / "data"
TS = 0.02
MODELS = "/data/local/tmp"
# a pixel1 twin that does not heat up, so one run's duration is its timing basis's and nothing else
STEADY = dataclasses.replace(PROFILES["pixel1"], heat_mc_per_busy_s=0.0)
ABSURD_HOST_S = 2.0      # a host "latency" for the tiny models, a thousand times what they take
FOREIGN_HOST_S = 0.05
FAST = RunnerSettings(warmup=1, runs=3, cool_timeout_s=1, cores="auto")
BENCH_CMD = f"{BENCHMARK_PATH} --warmup_runs=1 --warmup_min_secs=0 --min_secs=0"


@pytest.fixture(autouse=True)
def _no_real_adb_server(monkeypatch):
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/false")
    for var in ("ADB_SERVER_SOCKET", "ANDROID_ADB_SERVER_PORT"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def models(tiny_tflite, tmp_path_factory) -> dict[str, Path]:
    """The tiny conv net as itself (foreign), and carrying the metadata of ElasticViT's smallest subnet, of one of
    its blocks, of a subnet of another space and of a block no table has."""
    out = tmp_path_factory.mktemp("twin-models")
    tiny = tiny_tflite.read_bytes()
    arch = min_arch(ELASTICVIT)
    block = decompose(arch, ELASTICVIT)[-1][1]
    infos = {"subnet": {"kind": "elasticvit-subnet", "space_fingerprint": ELASTICVIT.fingerprint,
                        "arch": arch.to_dict()},
             "block": {"kind": "elasticvit-block", "block": block.to_dict()},
             "other-space": {"kind": "elasticvit-subnet", "space_fingerprint": TINY.fingerprint,
                             "arch": min_arch(TINY).to_dict()},
             "odd-block": {"kind": "elasticvit-block", "block": dataclasses.replace(block, cin=999).to_dict()}}
    paths = {"foreign": tiny_tflite}
    for name, info in infos.items():
        paths[name] = out / f"{name}.tflite"
        paths[name].write_bytes(tflite_format.embed_metadata(tiny, info))
    return paths


@pytest.fixture(scope="module")
def host_timings(models, tmp_path_factory) -> Path:
    """Host timings the fallback reads, shared by the farms: absurd for the ElasticViT models, known for the
    foreign one (both XNNPACK settings)."""
    cache = tmp_path_factory.mktemp("host-timings")
    for name, path in models.items():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        latency = FOREIGN_HOST_S if name == "foreign" else ABSURD_HOST_S
        for suffix in ("", "-no-xnnpack"):
            (cache / f"{digest}{suffix}.json").write_text(json.dumps({"init_s": 0.001, "latency_s": latency}))
    return cache


@pytest.fixture
def tables() -> Path:
    """The four tables installed into this test's home."""
    import_tables(TABLES_DIR)
    path = installed_table_path("pixel1")
    assert path is not None
    return path.parent


def table_ms(device: str = "pixel1") -> float:
    return ArchLatencyModel(TablePredictor.load(device), ELASTICVIT).predict(min_arch(ELASTICVIT))


def measure(farm: SimulatedFarm, model: Path, tmp_path: Path):
    device = PhoneDevice(Phone(AdbServer("127.0.0.1", farm.port, explicit=True), farm.serials[0]), None, FAST,
                         MeasureOptions(rounds=2))
    device.prepare()
    return measure_model(device, LocalModel.load(model), ResultsStore(tmp_path / "r.sqlite"), MeasureOptions(rounds=2))


# --- what a twin knows ---------------------------------------------------------------------------------------

@needs_tables
def test_twin_timing_is_the_table_for_subnets_and_blocks(models, tables, tmp_path):
    for device in ("pixel1", "pixel4", "pixel6", "xiaomi11"):
        profile = PROFILES[device]
        timing = twin_timing(models["subnet"].read_bytes(), profile, twin_table(profile))
        assert (timing.ms, timing.basis) == (table_ms(device), f"table {device}")
    block = decompose(min_arch(ELASTICVIT), ELASTICVIT)[-1][1]
    timing = twin_timing(models["block"].read_bytes(), PROFILES["pixel6"], twin_table(PROFILES["pixel6"]))
    assert (timing.ms, timing.basis) == (TablePredictor.load("pixel6").entries[block.table_key], "table pixel6")
    data = models["subnet"].read_bytes()
    cached = cached_twin_timing(data, hashlib.sha256(data).hexdigest(), PROFILES["pixel1"], twin_table(STEADY),
                                tmp_path)
    assert cached.ms == table_ms() and len([p for p in tmp_path.iterdir() if p.name.startswith("twin-")]) == 1
    assert cached_twin_timing(data, hashlib.sha256(data).hexdigest(), PROFILES["pixel1"], twin_table(STEADY),
                              tmp_path) == cached


@needs_tables
def test_twin_timing_falls_back_and_says_why(models, tables):
    table = twin_table(PROFILES["pixel1"])

    def basis(name: str, profile=PROFILES["pixel1"], table=table) -> str:
        timing = twin_timing(models[name].read_bytes(), profile, table)
        assert timing.ms is None
        return timing.basis

    assert basis("foreign") == "host-scaled (no ElasticViT arch embedded)"
    assert basis("other-space") == "host-scaled (arch of another search space embedded)"
    assert basis("odd-block") == "host-scaled (the pixel1 table has no entry for this block)"
    assert basis("subnet", table=None) == "host-scaled (no pixel1 table installed)"
    assert basis("subnet", dataclasses.replace(STEADY, name="plain", tables=None)) == \
        "host-scaled (plain is no table phone's twin)"


def test_twin_table_is_the_installed_one_or_none(tmp_path):
    assert twin_table(PROFILES["pixel4"]) is None  # this test's home has no tables
    assert twin_table(PROFILES["pixel4"], tmp_path) is None
    (tmp_path / "pixel4_lut_ln_v3.json").write_text("{}")
    assert twin_table(PROFILES["pixel4"], tmp_path) == (tmp_path / "pixel4_lut_ln_v3.json").resolve()
    assert twin_table(dataclasses.replace(STEADY, tables=None), tmp_path) is None


# --- twins measured through the farm ---------------------------------------------------------------------------

@needs_tables
def test_a_twin_measures_its_table_whatever_the_host_while_the_fallback_follows_it(models, host_timings, tables,
                                                                                  tmp_path):
    with SimulatedFarm([STEADY], time_scale=TS, host_timings=host_timings) as farm:
        tool = (farm.phone(farm.serials[0]).sandbox / BENCHMARK_PATH.lstrip("/")).read_text()
        assert f"# Simulated timing: twin-1 table pixel1 sha256 {TABLE_SHA256['pixel1']}\n" in tool
        twin = measure(farm, models["subnet"], tmp_path)
        foreign = measure(farm, models["foreign"], tmp_path)
    expected = table_ms() + STEADY.invoke_overhead_us / 1000
    assert twin.summary.median_ms == pytest.approx(expected, rel=0.1)  # not the 2 s x 4.0 of the host timing
    assert twin.summary.simulated == "table pixel1" and twin.summary.to_dict()["simulated"] == "table pixel1"
    assert foreign.summary.median_ms == pytest.approx(FOREIGN_HOST_S * STEADY.speed_factor * 1000, rel=0.1)
    assert foreign.to_dict()["simulated"] == "host-scaled (no ElasticViT arch embedded)"
    with SimulatedFarm([STEADY], time_scale=TS, host_timings=host_timings, tables=tmp_path / "none") as farm:
        fallback = measure(farm, models["subnet"], tmp_path)
    assert fallback.summary.simulated == "host-scaled (no pixel1 table installed)"
    assert fallback.summary.median_ms == pytest.approx(ABSURD_HOST_S * STEADY.speed_factor * 1000, rel=0.1)
    assert fallback.runtime != twin.runtime and not fallback.cached  # the twin's result is not taken for it
    doc = {**header("measurements", 1), "results": [r.to_dict() for r in (twin, foreign)]}
    (tmp_path / "m.json").write_text(json.dumps(doc))
    results = read_results([tmp_path / "m.json"]).results
    assert sorted(r.simulated for r in results) == ["host-scaled (no ElasticViT arch embedded)", "table pixel1"]
    head = device_header(judge(results[:1], [], [], 5))
    assert head["title"] == f"sim-pixel1-1 (simulated: {results[0].simulated})" and head["name"] == "sim-pixel1-1"


@needs_tables
def test_every_tool_family_prints_the_timing_basis(models, host_timings, tables):
    quirks = {"sim-pixel1-2": ["litert2-benchmark"], "sim-pixel1-3": ["tf1-benchmark"]}
    with SimulatedFarm([STEADY] * 3, time_scale=TS, host_timings=host_timings, quirks_by_serial=quirks) as farm:
        client = adbutils.AdbClient(host="127.0.0.1", port=farm.port)
        for serial, family in zip(farm.serials, ("classic", "litert2", "tf1"), strict=True):
            phone = client.device(serial)
            phone.sync.push(models["subnet"], f"{MODELS}/subnet.tflite")
            r = phone.shell2(f"{BENCH_CMD} --graph={MODELS}/subnet.tflite --num_runs=3", v2=True)
            assert r.returncode == 0, r.stderr
            run = parse_benchmark_output(r.stdout + r.stderr)
            assert (run.family, run.simulated, run.ok) == (family, "table pixel1", True)
            assert run.avg_us / 1000 == pytest.approx(table_ms() + STEADY.invoke_overhead_us / 1000, rel=0.1)
            assert (r.stdout + r.stderr).count("Simulator timing: ") == 1


# --- the label in outputs, rounds and summaries ----------------------------------------------------------------

def test_the_label_is_read_in_each_family_style_and_never_from_a_real_tool():
    lines = {"classic": "INFO: Simulator timing: table pixel4",
             "litert2": "INFO: [simulator:0] Simulator timing: table pixel4",
             "tf1": "Simulator timing: table pixel4"}
    for line in lines.values():
        assert parse_benchmark_output(f"STARTING!\n{line}\ncount=3 curr=5\n").simulated == "table pixel4"
    real = sorted((DATA / "benchmark_model").glob("*.txt"))
    assert len(real) > 10
    assert [p.name for p in real if parse_benchmark_output(p.read_text(encoding="utf-8")).simulated] == []


def test_rounds_and_summaries_keep_the_basis():
    plain = RoundResult(0, count=3, avg_us=1000.0)
    assert "simulated" not in plain.info()
    rounds = [RoundResult(i, count=3, avg_us=1000.0 + i, simulated=basis).info()
              for i, basis in enumerate(("table pixel1", "table pixel1", "host-scaled (no pixel1 table installed)"))]
    assert rounds[0]["simulated"] == "table pixel1"
    summary = summarize_rounds(rounds, [1.0, 1.001, 1.002], {}, 3)
    assert summary.simulated == "table pixel1; host-scaled (no pixel1 table installed)"
    stored = json.loads(json.dumps(summary.to_dict()))
    assert stored["simulated"] == summary.simulated and MeasurementSummary.from_dict(stored) == summary
    real = summarize_rounds([plain.info()], [1.0], {}, 3)
    assert real.simulated is None and "simulated" not in real.to_dict()
    assert MeasurementSummary.from_dict(real.to_dict()) == real


def test_the_report_shows_every_timing_basis_of_a_device(tmp_path):
    def result(model: str, basis: str | None) -> ModelResult:
        return ModelResult("fp", {"fingerprint": "fp", "serial": "sim-pixel1-1", "simulated": True}, "rt", model,
                           10.0, None, None, simulated=basis)

    both = [result("a.tflite", "table pixel1"), result("b.tflite", "host-scaled (no ElasticViT arch embedded)")]
    head = device_header(judge(both, [], [], 5))
    assert head["title"] == "sim-pixel1-1 (simulated: table pixel1; host-scaled (no ElasticViT arch embedded))"
    assert (head["name"], head["simulated"]) == ("sim-pixel1-1", "table pixel1; host-scaled (no ElasticViT arch "
                                                                 "embedded)")
    assert device_header(judge([result("c.tflite", None)], [], [], 5))["title"] == "sim-pixel1-1"
    summary = build_report(ReportInputs(both[:1]), [], [], 5, tmp_path / "report")
    assert summary["phones"][0]["simulated"] == "table pixel1" and summary["results"][0]["simulated"] == \
        "table pixel1"
    assert "### sim-pixel1-1 (simulated: table pixel1):" in (tmp_path / "report" / "summary.md").read_text()
    again = read_results([tmp_path / "report" / "summary.json"]).results  # the next report's baseline
    assert [r.simulated for r in again] == ["table pixel1"]


def test_farm_simulate_refuses_a_missing_tables_directory(tmp_path):
    r = CliRunner().invoke(main, ["farm", "simulate", "--tables", str(tmp_path / "none")])
    assert r.exit_code == 2 and "--tables: no such directory" in r.output
