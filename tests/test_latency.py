"""Latency predictors: block decomposition, the real nn-Meter tables, vectorised prediction, learned regressors,
persistence, the CLI's errors."""

import json
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.utils.flop_counter import FlopCounterMode

from elasticvit_deploy.cli import main
from elasticvit_deploy.latency.block_modules import block_module
from elasticvit_deploy.latency.blocks import Block, decompose
from elasticvit_deploy.latency.features import block_cost
from elasticvit_deploy.latency.learned import LearnedPredictor, PredictorFileError
from elasticvit_deploy.latency.measurements import parse_table_key
from elasticvit_deploy.latency.measurer import default_statistic
from elasticvit_deploy.latency.model import ArchLatencyModel, universe
from elasticvit_deploy.latency.selection import choose_and_measure, family_quotas
from elasticvit_deploy.latency.tables import (
    TABLE_DEVICES,
    TableError,
    TablePredictor,
    fetch_tables,
    import_tables,
    table_file_name,
)
from supernet import encoding as enc
from supernet.model import graph_sides
from supernet.sampling import archs, max_arch, min_arch, sample_uniform
from supernet.space import ELASTICVIT, TINY

TABLES_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "nnmeter-hybrid-luts"
pytestmark = pytest.mark.skipif(not TABLES_DIR.is_dir(),
                                reason="../shared/data/nnmeter-hybrid-luts is not beside the repo")


@pytest.fixture(scope="module")
def tables():
    return {d: TablePredictor.load(d, TABLES_DIR / table_file_name(d)) for d in TABLE_DEVICES}


@pytest.fixture(scope="module")
def some_archs():
    return [min_arch(ELASTICVIT), max_arch(ELASTICVIT)] + archs(sample_uniform(ELASTICVIT, 500, seed=4), ELASTICVIT)


def test_every_block_of_every_arch_is_in_every_table(tables, some_archs):
    for arch in some_archs:
        keys = [b.table_key for _, b in decompose(arch, ELASTICVIT)]
        for t in tables.values():
            assert all(k in t.entries for k in keys), arch.to_json()


def test_decomposition_counts_and_conventions():
    arch = archs(sample_uniform(ELASTICVIT, 1, seed=9), ELASTICVIT)[0]
    parts = decompose(arch, ELASTICVIT)
    cnn = sum(s.depth for s, sp in zip(arch.stages, ELASTICVIT.stages, strict=True) if not sp.is_transformer)
    trans = [s.depth for s, sp in zip(arch.stages, ELASTICVIT.stages, strict=True) if sp.is_transformer]
    assert len(parts) == 1 + arch.stem.depth + cnn + sum(1 + 2 * d for d in trans) + 1
    assert parts[0][0] == "first_conv" and parts[-1][0] == "head"
    # the nn-Meter convention writes the stem input as 16 and floors sides; the graph one is the real model
    small = min_arch(ELASTICVIT).to_dict()
    small.update(resolution=160, first_conv=24, stem={"width": 24, "depth": 1, "kernel": 3})
    small["stages"][0]["width"] = 24
    from supernet.arch import parse_arch
    a = parse_arch(small, ELASTICVIT)
    nn_blocks = dict((p, b) for p, b in decompose(a, ELASTICVIT, "nnmeter"))
    graph = decompose(a, ELASTICVIT, "graph")
    assert nn_blocks["stem"].cin == 16 and dict(graph)["stem"].cin == 24
    assert nn_blocks["head"].hw == 2 and dict(graph)["head"].hw == graph_sides(ELASTICVIT, 160)[-1] == 3


def test_table_keys_round_trip(tables):
    for key in tables["pixel1"].entries:
        assert parse_table_key(key).table_key == key


def test_batch_prediction_equals_per_block_sum(tables, some_archs):
    for t in tables.values():
        model = ArchLatencyModel(t, ELASTICVIT)
        batch = model.predict_batch(enc.encode_many(some_archs))
        single = [model.predict(a) for a in some_archs[:60]]
        np.testing.assert_allclose(batch[:60], single, rtol=1e-12)
        assert np.all(batch > 0)
    # the largest subnet is slower than the smallest on every phone, and Pixel 1 is the slowest phone
    p1 = ArchLatencyModel(tables["pixel1"], ELASTICVIT).predict_batch(enc.encode_many(some_archs))
    p6 = ArchLatencyModel(tables["pixel6"], ELASTICVIT).predict_batch(enc.encode_many(some_archs))
    assert p1[1] > p1[0] and np.all(p1 > p6)


def test_block_costs_match_torch_flop_counter():
    blocks = [Block("firstconv", 32, 16, 3, 16, 2, kernel=3),
              Block("conv", 16, 8, 16, 24, 2, 4, 5, True), Block("conv", 8, 8, 24, 24, 1, 3, 3, False),
              Block("transffn", 4, 4, 64, 64, mlp_ratio=3),
              Block("mbpool", 4, 1, 64, 10, expansion=6, head_width=256, classes=10),
              Block("transattn", 4, 4, 64, 64, v_scale=2)]
    for b in blocks:
        module, shape = block_module(b)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(torch.zeros(shape))
        macs, _, _ = block_cost(b)
        counted = counter.get_total_flops() // 2
        # torch counts matmuls and convs only; our count adds the shortcut/SE/DW-V terms torch also sees
        assert counted == pytest.approx(macs, rel=0.02), b


def test_universe_covers_sampled_archs():
    blocks = set(universe(TINY, "graph"))
    for arch in archs(sample_uniform(TINY, 200, seed=1), TINY):
        assert {b for _, b in decompose(arch, TINY, "graph")} <= blocks


def test_selection_rule_budget_quotas_and_determinism(tables):
    table = tables["pixel4"]
    candidates = [b for b in universe(ELASTICVIT, "nnmeter") if b.table_key in table.entries]
    quotas = family_quotas(candidates, 120)
    assert sum(quotas.values()) <= 120 and all(q >= 1 for q in quotas.values())
    calls = []

    def measure(blocks):
        calls.extend(blocks)
        return table.predict_blocks(blocks)

    blocks, ms = choose_and_measure(candidates, 120, measure, seed=3)
    assert len(blocks) == len(set(blocks)) == len(calls) <= 120
    np.testing.assert_array_equal(ms, table.predict_blocks(blocks))
    again, _ = choose_and_measure(candidates, 120, table.predict_blocks, seed=3)
    assert again == blocks
    with pytest.raises(ValueError):
        family_quotas(candidates, 3)


def test_learned_predictor_from_5pct_of_a_table_is_accurate_and_persists(tables, tmp_path):
    table = tables["pixel1"]
    candidates = [b for b in universe(ELASTICVIT, "nnmeter") if b.table_key in table.entries]
    blocks, ms = choose_and_measure(candidates, 400, table.predict_blocks, seed=0)
    learned = LearnedPredictor.fit("p1", "nnmeter", blocks, ms)
    rows = sample_uniform(ELASTICVIT, 300, seed=5)
    truth = ArchLatencyModel(table, ELASTICVIT).predict_batch(rows)
    got = ArchLatencyModel(learned, ELASTICVIT).predict_batch(rows)
    assert np.mean(np.abs(got / truth - 1) <= 0.05) >= 0.95
    learned.save(tmp_path / "p1")
    loaded = LearnedPredictor.load(tmp_path / "p1")
    np.testing.assert_allclose(ArchLatencyModel(loaded, ELASTICVIT).predict_batch(rows), got)
    shutil.copytree(tmp_path / "p1", tmp_path / "moved")  # identity by content, not by where the files lie
    assert LearnedPredictor.load(tmp_path / "moved").content_id() == loaded.content_id() == learned.content_id()
    loaded.scale = 1.1
    assert loaded.content_id() != learned.content_id()
    meta = json.loads((tmp_path / "p1" / "predictor.json").read_text())
    meta["version"] = 99
    (tmp_path / "p1" / "predictor.json").write_text(json.dumps(meta))
    with pytest.raises(PredictorFileError, match="version 99"):
        LearnedPredictor.load(tmp_path / "p1")
    meta["version"] = 1
    assert meta["format"] == "elasticvit-deploy.latency-predictor" and list(meta)[:2] == ["format", "version"]
    # the calibration: one scale and offset (as files without per-family scales have it), or per-family scales
    assert meta["calibration"] == {"scale": 1.0, "offset_ms": 0.0} and loaded.family_scales == {}
    meta["calibration"] = {"scale": 1.2, "offset_ms": -0.5}
    (tmp_path / "p1" / "predictor.json").write_text(json.dumps(meta))
    old = LearnedPredictor.load(tmp_path / "p1")
    assert (old.scale, old.offset_ms, old.family_scales, old.calibration_fit) == (1.2, -0.5, {}, None)
    np.testing.assert_allclose(ArchLatencyModel(old, ELASTICVIT, old.scale, old.offset_ms).predict_batch(rows),
                               got * 1.2 - 0.5)
    meta["calibration"] = {"scale": 1.0, "offset_ms": 0.0, "family_scales": {"transattn": 0.5}}
    (tmp_path / "p1" / "predictor.json").write_text(json.dumps(meta))
    halved = LearnedPredictor.load(tmp_path / "p1")
    attention = [b for b in candidates if b.family == "transattn"][:20]
    np.testing.assert_allclose(halved.predict_blocks(attention), learned.predict_blocks(attention) * 0.5)
    others = [b for b in candidates if b.family == "transffn"][:20]
    np.testing.assert_allclose(halved.predict_blocks(others), learned.predict_blocks(others))
    assert halved.content_id() != learned.content_id()
    meta["calibration"]["family_scales"] = {"attention": 0.5}
    (tmp_path / "p1" / "predictor.json").write_text(json.dumps(meta))
    with pytest.raises(PredictorFileError, match="unreadable calibration"):
        LearnedPredictor.load(tmp_path / "p1")
    meta["calibration"] = {"scale": 1.0, "offset_ms": 0.0}
    (tmp_path / "p1" / "predictor.json").write_text(json.dumps(dict(meta, format="elasticvit-deploy.search-state")))
    with pytest.raises(PredictorFileError, match="expected an elasticvit-deploy.latency-predictor document"):
        LearnedPredictor.load(tmp_path / "p1")
    (tmp_path / "p1" / "predictor.json").write_text(json.dumps(meta))
    (tmp_path / "p1" / "regressors.skops").write_bytes(b"not a zip")
    with pytest.raises(PredictorFileError, match="cannot read its regressors"):
        LearnedPredictor.load(tmp_path / "p1")


def test_transfer_from_another_phone(tables):
    phone, base = tables["pixel1"], tables["pixel4"]
    candidates = [b for b in universe(ELASTICVIT, "nnmeter") if b.table_key in phone.entries]
    blocks, ms = choose_and_measure(candidates, 121, phone.predict_blocks, seed=0)
    learned = LearnedPredictor.fit("p1", "nnmeter", blocks, ms, base=base)
    rows = sample_uniform(ELASTICVIT, 300, seed=6)
    truth = ArchLatencyModel(phone, ELASTICVIT).predict_batch(rows)
    got = ArchLatencyModel(learned, ELASTICVIT).predict_batch(rows)
    assert np.mean(np.abs(got / truth - 1) <= 0.05) >= 0.9


def test_import_checks_sha256_and_installs(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(TABLES_DIR / table_file_name("pixel6"), src)
    assert set(import_tables(src)) == {"pixel6"}
    installed = TablePredictor.load("pixel6")
    assert installed.source != str(TABLES_DIR / table_file_name("pixel6"))
    assert installed.content_id() == TablePredictor.load("pixel6", TABLES_DIR / table_file_name("pixel6")).content_id()
    assert installed.content_id() != TablePredictor.load("pixel4", TABLES_DIR / table_file_name("pixel4")).content_id()
    data = bytearray((TABLES_DIR / table_file_name("pixel4")).read_bytes())
    data[100] ^= 1
    (src / table_file_name("pixel4")).write_bytes(bytes(data))
    with pytest.raises(TableError, match="sha256"):
        import_tables(src)
    with pytest.raises(TableError, match="none of the tables"):
        import_tables(tmp_path)


def test_fetch_verifies_and_reports_offline():
    class Response:
        def __init__(self, data):
            self.data = data

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def read(self):
            return self.data

    served = []

    def opener(url, timeout):
        served.append(url)
        return Response((TABLES_DIR / table_file_name("xiaomi11")).read_bytes())

    assert set(fetch_tables(["xiaomi11"], opener=opener)) == {"xiaomi11"}
    assert "9c31e190e78d6ac558213c68b41575fe545c0533" in served[0]
    with pytest.raises(TableError, match="sha256"):
        fetch_tables(["pixel1"], opener=opener)  # the wrong file for pixel1

    def offline(url, timeout):
        raise urllib.error.URLError("Temporary failure in name resolution")

    with pytest.raises(TableError, match="offline"):
        fetch_tables(["pixel1"], opener=offline)


def _cli(*args, stdin=None):
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def _arch_file(tmp_path, space=ELASTICVIT, seed=2):
    path = tmp_path / "arch.json"
    path.write_text(archs(sample_uniform(space, 1, seed=seed), space)[0].to_json())
    return path


def test_cli_latency_and_errors(tmp_path):
    arch = _arch_file(tmp_path)
    r = _cli("latency", "--target", "pixel1", str(arch))
    assert r.exit_code == 2 and "import-tables" in r.output and r.output.count("\n") == 1
    assert _cli("predictor", "import-tables", str(TABLES_DIR)).exit_code == 0
    r = _cli("latency", "--target", "pixel1", str(arch), "--json")
    out = json.loads(r.output)
    assert r.exit_code == 0 and out["ms"] == pytest.approx(sum(b["ms"] for b in out["blocks"]), rel=1e-6)
    assert out["format"] == "elasticvit-deploy.latency-prediction" and out["version"] == 1
    r = _cli("latency", "--target", "host", str(arch))
    assert r.exit_code == 2 and "predictor build --device host" in r.output
    r = _cli("latency", "--target", "pixel1", "--space", "tiny", str(_arch_file(tmp_path, TINY)))
    assert r.exit_code == 2 and "no latency predictor" in r.output
    tiny_arch = _arch_file(tmp_path, TINY)
    r = _cli("latency", "--target", "pixel1", str(tiny_arch))
    assert r.exit_code == 2 and r.output.startswith("error:")
    installed = Path(json.loads(_cli("predictor", "list", "--json").output)["predictors"][0]["path"])
    installed.write_text("{\"conv_bad\": -1}")
    r = _cli("latency", "--target", installed.name.split("_")[0], str(arch))
    assert r.exit_code == 2 and "not a" in r.output and r.output.count("\n") == 1


def test_cli_fit_and_eval(tmp_path):
    table = json.loads((TABLES_DIR / table_file_name("pixel4")).read_text())
    chosen = [b.table_key for b in universe(ELASTICVIT, "nnmeter")][::12]
    part = tmp_path / "blocks.jsonl"
    part.write_text("".join(json.dumps({"key": k, "ms": table[k]}) + "\n" for k in chosen))
    r = _cli("predictor", "fit", "--device", "mine", "--from", str(part))
    assert r.exit_code == 0, r.output
    r = _cli("predictor", "eval", "--device", "mine", "--from", str(TABLES_DIR / table_file_name("pixel4")),
             "--n", "200", "--json")
    report = json.loads(r.output)
    assert report["format"] == "elasticvit-deploy.predictor-evaluation"
    assert report["held_out_blocks"]["all"]["n"] == len(table) - len(set(chosen))
    assert report["models"]["within_10pct"] >= 0.9
    models = tmp_path / "models.jsonl"
    models.write_text(json.dumps({"arch": archs(sample_uniform(ELASTICVIT, 1, seed=3), ELASTICVIT)[0].to_dict(),
                                  "ms": 12.5}) + "\n" + json.dumps({"arch": {"resolution": 7}, "ms": 1}) + "\n")
    r = _cli("predictor", "eval", "--device", "mine", "--from", str(TABLES_DIR / table_file_name("pixel4")),
             "--models", str(models))
    assert r.exit_code == 2 and f"{models}:2: expected" in r.output and r.output.count("\n") == 1
    models.write_text(models.read_text().splitlines()[0] + "\n")
    r = _cli("predictor", "eval", "--device", "mine", "--from", str(TABLES_DIR / table_file_name("pixel4")),
             "--models", str(models), "--json")
    assert r.exit_code == 0 and json.loads(r.output)["models"]["n"] == 1
    r = _cli("predictor", "eval", "--device", "mine", "--from", str(part))
    assert r.exit_code == 2 and "nothing is held out" in r.output
    r = _cli("latency", "--target", "mine", str(_arch_file(tmp_path)), "--json")
    assert r.exit_code == 0 and json.loads(r.output)["predictor"]["kind"] == "learned"
    no_head = tmp_path / "nohead.jsonl"
    no_head.write_text("".join(json.dumps({"key": k, "ms": table[k]}) + "\n" for k in chosen if "mbpool" not in k))
    r = _cli("predictor", "fit", "--device", "x", "--from", str(no_head))
    assert r.exit_code == 2 and "mbpool" in r.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": "conv_1", "ms": 1}\n')
    r = _cli("predictor", "fit", "--device", "x", "--from", str(bad))
    assert r.exit_code == 2 and "not an nn-Meter block key" in r.output


def test_old_table_command_names_still_work_but_are_not_listed(tmp_path):
    help_text = _cli("predictor", "--help").output
    assert "import-tables" in help_text and "fetch-tables" in help_text
    assert "import-luts" not in help_text and "fetch-luts" not in help_text
    r = _cli("predictor", "import-luts", str(TABLES_DIR))
    assert r.exit_code == 0 and r.output.count("installed ") == len(TABLE_DEVICES)
    listed = json.loads(_cli("predictor", "list", "--json").output)["predictors"]
    assert {p["device"] for p in listed if p["kind"] == "table"} == set(TABLE_DEVICES)
    r = _cli("predictor", "fetch-luts", "--device", "nokia")
    assert r.exit_code == 2 and "nokia" in r.output


def test_statistic_default_is_best_on_host_and_median_on_phones():
    assert default_statistic("host") == "best"
    assert {default_statistic(d) for d in ("pixel4", "0123456789ABCDEF", "lab-phone")} == {"median"}


@pytest.mark.slow  # about 2.5 min on 2 cores: the whole build on real host measurements
def test_build_fit_validate_on_host_and_resume(tmp_path, monkeypatch):
    """The whole builder on this host (tiny space, small budget): blocks exported through the export pipeline,
    measured through the farm harness, fitted, calibrated; a second run measures nothing again."""
    from elasticvit_deploy.farm.store import ResultsStore

    args = ["predictor", "build", "--device", "host", "--space", "tiny", "--budget", "12", "--calibrate", "2",
            "--runs", "5", "--warmup", "1", "--rounds", "1", "--json"]
    r = _cli(*args)
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert sum(f["samples"] for f in info["families"].values()) == 12
    log = Path(info["path"]) / "build" / "blocks.jsonl"
    assert len(log.read_text().splitlines()) == 12
    assert len((log.parent / "models.jsonl").read_text().splitlines()) == 2 == len(info["calibration_subnets"])
    assert info["calibration"]["choice"] == "scale"  # two subnets: too few for an offset
    stored = len(ResultsStore().all())
    assert stored == 12 + 2
    r = _cli(*args)  # everything is cached: nothing measured again, same predictor
    assert r.exit_code == 0 and len(ResultsStore().all()) == stored
    assert json.loads(r.output)["calibration"] == info["calibration"]
    r = _cli("latency", "--target", "host", "--space", "tiny", str(_arch_file(tmp_path, TINY)), "--json")
    assert r.exit_code == 0 and json.loads(r.output)["ms"] > 0
    r = _cli("predictor", "validate", "--device", "host", "--space", "tiny", "--n", "1", "--runs", "5", "--warmup",
             "1", "--rounds", "1", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["n"] == 1 and Path(report["files"]["plot"]).stat().st_size > 1000
