"""Few-shot onboarding (transfer predictors on the real phone tables), the shared linear fits, per-family
calibration of the block builder, and `predictor build --method transfer` end to end on a fake device (whole
ElasticViT subnets cost tens of seconds each to export, so the device and the exports are faked here: a subnet's
latency is a table's sum, as a phone following that table would measure it)."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from elasticvit_deploy.cli import main
from elasticvit_deploy.errors import BadInput
from elasticvit_deploy.farm.adb import FarmError
from elasticvit_deploy.farm.runner_protocol import RunnerSettings
from elasticvit_deploy.latency import builder
from elasticvit_deploy.latency.blocks import FAMILIES, decompose
from elasticvit_deploy.latency.builder import BuildStopped, fit_calibration
from elasticvit_deploy.latency.combination import choose, cv_splits, fit_nonnegative, fixed
from elasticvit_deploy.latency.features import block_cost
from elasticvit_deploy.latency.learned import LearnedPredictor, PredictorFileError
from elasticvit_deploy.latency.model import ArchLatencyModel, universe
from elasticvit_deploy.latency.predictors import installed_predictors, learned_dir, load_predictor, resolve_base
from elasticvit_deploy.latency.subnets import SubnetLog, covering_subnets, family_sums
from elasticvit_deploy.latency.tables import TABLE_DEVICES, TablePredictor, import_tables, table_file_name
from elasticvit_deploy.latency.transfer import TransferPredictor, build_transfer, fit_transfer
from elasticvit_deploy.latency.validation import validation_archs
from supernet import encoding as enc
from supernet.arch import Arch
from supernet.sampling import archs, max_arch, min_arch, sample_uniform
from supernet.space import ELASTICVIT, TINY

TABLES_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "nnmeter-hybrid-luts"
needs_tables = pytest.mark.skipif(not TABLES_DIR.is_dir(),
                                  reason="../shared/data/nnmeter-hybrid-luts is not beside the repo")
BASES = ("pixel1", "pixel4", "xiaomi11")  # the new phone of the end-to-end tests follows pixel6's table


@pytest.fixture(scope="module")
def tables():
    if not TABLES_DIR.is_dir():
        pytest.skip("../shared/data/nnmeter-hybrid-luts is not beside the repo")
    return {d: TablePredictor.load(d, TABLES_DIR / table_file_name(d)) for d in TABLE_DEVICES}


# ---- a fake device: exports are tokens, latencies come from a function of the subnet or block ---------------
class FakeDevice:
    name = "fake"
    settings = RunnerSettings(threads=1)

    def device_info(self):
        return {"model": "fake phone"}

    def runtime_version(self):
        return "fake-runtime"


class FakeMeasurer:
    """Measures an exported token as `subnet_ms(arch)` or `block_ms(block)`; raises FarmError after `fail_after`
    measurements (a phone that vanished); counts what it measured."""

    statistic = "median"

    def __init__(self, exported, subnet_ms, block_ms=None, fail_after=None):
        self.device = FakeDevice()
        self.exported, self.subnet_ms, self.block_ms, self.fail_after = exported, subnet_ms, block_ms, fail_after
        self.calls = []

    def latency_ms(self, path):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise FarmError("fake phone: device not found")
        item = self.exported[path]
        self.calls.append(item)
        ms = self.subnet_ms(item) if isinstance(item, Arch) else self.block_ms(item)
        return float(ms), SimpleNamespace(cv=0.01)


@pytest.fixture
def exported(monkeypatch):
    """Exports replaced by tokens (path -> the subnet or block it stands for)."""
    tokens = {}

    def token(item, space):
        path = Path(f"/fake/{len(tokens)}-{hash(item) & 0xFFFF}.tflite")
        tokens[path] = item
        return path

    monkeypatch.setattr("elasticvit_deploy.latency.measurer.export_arch", token)
    monkeypatch.setattr("elasticvit_deploy.latency.builder.export_block", token)
    return tokens


def table_ms(table, space=ELASTICVIT):
    model = ArchLatencyModel(table, space)
    return lambda arch: model.predict(arch)


# ---- the shared linear fits -----------------------------------------------------------------------------------
def test_nonnegative_fit_on_relative_error_with_a_free_offset():
    rng = np.random.default_rng(0)
    X = rng.uniform(1, 50, size=(12, 3))
    y = X @ np.array([0.5, 0.0, 1.5]) - 1.0
    fit = fit_nonnegative(X, y)
    np.testing.assert_allclose(fit.weights, [0.5, 0.0, 1.5], atol=1e-8)
    assert fit.offset_ms == pytest.approx(-1.0, abs=1e-6)  # negative: overhead counted once per block
    fit = fit_nonnegative(X, X @ np.array([-1.0, 2.0, 0.0]) + 200, offset=False)
    assert min(fit.weights) >= 0 and fit.offset_ms == 0.0
    with pytest.raises(BadInput, match="positive"):
        fit_nonnegative(X, -y)


def test_cv_keeps_the_extremes_in_training_and_rules_out_small_sets():
    y = np.array([5.0, 1.0, 3.0, 9.0, 4.0, 2.0])
    splits = cv_splits(y)
    assert sorted(int(t[0]) for _, t in splits) == [0, 2, 4, 5]  # the fastest (1) and slowest (3) never held out
    assert all(1 in train and 3 in train for train, _ in splits)
    X = np.column_stack([y, y ** 2])
    rich = fixed("rich", np.eye(2), min_rows=30)
    choice = choose(X, y, [fixed("one", np.ones((1, 2))), rich])
    assert choice.name == "one" and "rich" in choice.left_out and set(choice.cv) == {"one"}
    assert choice.to_dict()["choice"] == "one" and choice.to_dict()["cv_within_10pct"] == choice.figures.within_10pct


# ---- covering subnets ------------------------------------------------------------------------------------------
@needs_tables
def test_covering_subnets_span_the_latency_range(tables):
    bases = [ArchLatencyModel(tables[d], ELASTICVIT) for d in BASES]
    picks = covering_subnets(ELASTICVIT, bases, 10)
    assert len(set(picks)) == 10
    geo = np.exp(np.mean([np.log(b.predict_batch(enc.encode_many(picks))) for b in bases], axis=0))
    assert (np.diff(geo) > 0).all()  # ordered along the range, from the fastest to the slowest
    assert picks[0] == min_arch(ELASTICVIT) and picks[-1] == max_arch(ELASTICVIT)
    sums = family_sums(tables["pixel1"], ELASTICVIT, picks)  # the fits' features: per-family sums of the blocks
    assert sums.shape == (10, len(FAMILIES)) and (sums > 0).all()
    np.testing.assert_allclose(sums.sum(axis=1), bases[0].predict_batch(enc.encode_many(picks)), rtol=1e-12)
    uniform = np.exp(np.mean([np.log(b.predict_batch(sample_uniform(ELASTICVIT, 10, seed=0))) for b in bases], 0))
    assert geo.max() / geo.min() > uniform.max() / uniform.min()  # wider than 10 drawn at random
    assert covering_subnets(ELASTICVIT, bases, 10) == picks
    assert covering_subnets(ELASTICVIT, bases, 10, seed=1)[1:-1] != picks[1:-1]
    assert not set(covering_subnets(ELASTICVIT, bases, 10, exclude=picks[3:5])) & set(picks[3:5])


# ---- the transfer fit on the real tables ---------------------------------------------------------------------
@needs_tables
@pytest.mark.parametrize("held", TABLE_DEVICES)
def test_leave_one_phone_out_ten_subnets_predict_the_held_out_table(tables, held):
    """Correctness of the fit: 10 subnets of the held-out phone (its table's sums) and the other three tables
    predict its table's sum within 10% for >= 99% of random subnets."""
    bases = [tables[d] for d in TABLE_DEVICES if d != held]
    picks = covering_subnets(ELASTICVIT, [ArchLatencyModel(b, ELASTICVIT) for b in bases], 10)
    measured = ArchLatencyModel(tables[held], ELASTICVIT).predict_batch(enc.encode_many(picks))
    predictor = fit_transfer(f"new-{held}", ELASTICVIT, bases, picks, measured)
    rows = sample_uniform(ELASTICVIT, 300, seed=11)
    truth = ArchLatencyModel(tables[held], ELASTICVIT).predict_batch(rows)
    got = ArchLatencyModel(predictor, ELASTICVIT, predictor.scale, predictor.offset_ms).predict_batch(rows)
    assert np.mean(np.abs(got / truth - 1) <= 0.10) >= 0.99
    fit = predictor.describe()["fit"]
    assert predictor.choice == fit["choice"] in fit["candidates"]
    assert {f"single:{b.name}" for b in bases} | {"combined"} == set(fit["candidates"])
    assert set(fit["left_out"]) == {"per-family:combined"} | {f"per-family:{b.name}" for b in bases}  # N = 10 < 21
    assert 0 < fit["cv_rmse_pct"] < 10 and 0 <= fit["cv_within_5pct"] <= fit["cv_within_10pct"] <= 1


@needs_tables
def test_per_family_weights_once_enough_subnets_show_one_family_differs(tables):
    odd = TablePredictor("odd", {k: v * (2.0 if k.startswith("transattn") else 1.0)
                                 for k, v in tables["pixel4"].entries.items()})
    bases = [tables[d] for d in ("pixel1", "pixel6", "xiaomi11")]
    picks = covering_subnets(ELASTICVIT, [ArchLatencyModel(b, ELASTICVIT) for b in bases], 30)
    predictor = fit_transfer("odd", ELASTICVIT, bases, picks,
                             ArchLatencyModel(odd, ELASTICVIT).predict_batch(enc.encode_many(picks)))
    assert predictor.choice.startswith("per-family:")
    per_family = dict(zip(FAMILIES, predictor.weights.sum(axis=0), strict=True))  # over the bases
    assert per_family["transattn"] > 1.5 * max(per_family["conv"], per_family["transffn"])  # the big families
    rows = sample_uniform(ELASTICVIT, 300, seed=3)
    got = ArchLatencyModel(predictor, ELASTICVIT, 1.0, predictor.offset_ms).predict_batch(rows)
    assert np.mean(np.abs(got / ArchLatencyModel(odd, ELASTICVIT).predict_batch(rows) - 1) <= 0.05) >= 0.99


def _learned(name, space, ns_per_mac=1.0):
    """A learned predictor (graph convention) fitted on synthetic block latencies (a constant plus MACs) of five
    blocks per family (its linear cost priors alone: quick to fit)."""
    every = universe(space, "graph")
    blocks = [b for f in FAMILIES for b in [x for x in every if x.family == f][::7][:5]]
    ms = [(2000 + block_cost(b)[0]) * ns_per_mac * 1e-6 for b in blocks]
    return LearnedPredictor.fit(name, "graph", blocks, ms, info={"device": name, "space": space.name})


@needs_tables
def test_bases_must_share_the_space_and_one_convention(tables):
    picks = archs(sample_uniform(ELASTICVIT, 5, seed=1), ELASTICVIT)
    ms = [10.0, 20.0, 30.0, 40.0, 50.0]
    with pytest.raises(BadInput, match=r"^base 'host' is a predictor of space 'tiny', not 'elasticvit'$"):
        fit_transfer("new", ELASTICVIT, [tables["pixel1"], _learned("host", TINY)], picks, ms)
    graph = _learned("mine", ELASTICVIT)
    with pytest.raises(BadInput, match="base 'mine' follows the graph block convention and base 'pixel1' the "
                                       "nnmeter one"):
        fit_transfer("new", ELASTICVIT, [tables["pixel1"], graph], picks, ms)
    with pytest.raises(BadInput, match="base 'mine' is the predictor being built"):
        fit_transfer("mine", ELASTICVIT, [graph], picks, ms)
    with pytest.raises(BadInput, match="given twice"):
        fit_transfer("new", ELASTICVIT, [tables["pixel1"], tables["pixel1"]], picks, ms)
    with pytest.raises(BadInput, match="at least 3"):
        fit_transfer("new", ELASTICVIT, [tables["pixel1"]], picks[:2], ms[:2])


@needs_tables
def test_saved_transfer_predictor_round_trips_and_is_installed(tables, tmp_path):
    import_tables(TABLES_DIR)
    bases = [TablePredictor.load(d) for d in BASES]
    picks = covering_subnets(ELASTICVIT, [ArchLatencyModel(b, ELASTICVIT) for b in bases], 8)
    measured = ArchLatencyModel(tables["pixel6"], ELASTICVIT).predict_batch(enc.encode_many(picks)) * 1.05
    predictor = fit_transfer("newphone", ELASTICVIT, bases, picks, measured)
    out = predictor.save(learned_dir("newphone", ELASTICVIT))
    doc = json.loads((out / "predictor.json").read_text())
    assert list(doc)[:2] == ["format", "version"] and doc["format"] == "elasticvit-deploy.transfer-predictor"
    assert [r["ms"] for r in doc["subnets"]] == pytest.approx(list(measured))
    loaded = TransferPredictor.load(out, resolve_base)
    rows = sample_uniform(ELASTICVIT, 200, seed=2)
    before = ArchLatencyModel(predictor, ELASTICVIT, 1.0, predictor.offset_ms).predict_batch(rows)
    np.testing.assert_array_equal(ArchLatencyModel(loaded, ELASTICVIT, 1.0, loaded.offset_ms).predict_batch(rows),
                                  before)
    assert loaded.content_id() == predictor.content_id() and loaded.choice == predictor.choice
    assert [r.arch for r in loaded.measured_subnets] == picks
    model = load_predictor("newphone", ELASTICVIT)
    assert model.predictor.kind == "transfer" and model.offset_ms == predictor.offset_ms
    np.testing.assert_array_equal(model.predict_batch(rows), before)
    assert {(p.device, p.kind) for p in installed_predictors()} >= {("newphone", "transfer"), ("pixel1", "table")}
    listed = json.loads(_cli("predictor", "list", "--json").stdout)["predictors"]
    assert {"device": "newphone", "space": "elasticvit", "kind": "transfer", "path": str(out)} in listed
    # validation never measures a subnet the predictor was fitted on
    assert not set(validation_archs(ELASTICVIT, 20, exclude=picks)) & set(picks)
    assert validation_archs(ELASTICVIT, 20, exclude=picks) == validation_archs(ELASTICVIT, 20)
    # a base that changed since the fit, or a document of another version, is refused by name
    doc["bases"][0]["content_id"] = "0" * 64
    (out / "predictor.json").write_text(json.dumps(doc))
    with pytest.raises(PredictorFileError, match="base 'pixel1' changed since it was fitted"):
        load_predictor("newphone", ELASTICVIT)
    (out / "predictor.json").write_text(json.dumps(dict(doc, version=9)))
    with pytest.raises(PredictorFileError, match="version 9"):
        load_predictor("newphone", ELASTICVIT)
    (out / "predictor.json").write_text(json.dumps(dict(doc, format="elasticvit-deploy.search-state")))
    with pytest.raises(PredictorFileError, match="not a saved predictor"):
        load_predictor("newphone", ELASTICVIT)
    assert ("newphone", "unreadable") in {(p.device, p.kind) for p in installed_predictors()}


# ---- building: measured subnets logged, resumed after a failure ----------------------------------------------
@needs_tables
def test_interrupted_transfer_build_resumes_and_fits_the_same(tables, exported, tmp_path):
    bases = [tables[d] for d in BASES]
    truth = table_ms(tables["pixel6"])
    whole = build_transfer("newphone", ELASTICVIT, FakeMeasurer(exported, truth), bases, 8, tmp_path / "whole")
    cut = FakeMeasurer(exported, truth, fail_after=3)
    with pytest.raises(BuildStopped, match="run again to resume.*device not found"):
        build_transfer("newphone", ELASTICVIT, cut, bases, 8, tmp_path / "cut")
    log = tmp_path / "cut" / "models.jsonl"
    assert len(log.read_text().splitlines()) == 3
    with open(log, "a") as f:  # a kill while writing the next line leaves it torn
        f.write('{"arch": {"resolution"')
    rest = FakeMeasurer(exported, truth)
    resumed = build_transfer("newphone", ELASTICVIT, rest, bases, 8, tmp_path / "cut")
    assert len(rest.calls) == 5 and not set(rest.calls) & set(cut.calls)
    assert len(log.read_text().splitlines()) == 8 and log.read_text().endswith("\n")
    assert len(SubnetLog(log, ELASTICVIT).rows) == 8
    np.testing.assert_array_equal(resumed.weights, whole.weights)
    assert resumed.offset_ms == whole.offset_ms and resumed.choice == whole.choice
    assert resumed.content_id() == whole.content_id()
    again = FakeMeasurer(exported, truth)
    build_transfer("newphone", ELASTICVIT, again, bases, 8, tmp_path / "cut")
    assert again.calls == []  # everything measured is in the log


# ---- per-family calibration of the block builder -------------------------------------------------------------
def _block_ms(block):
    return (2000 + block_cost(block)[0]) * 1e-6


def _device_where(attention_in_models, overhead_ms, noise_pct=1.0):
    """A fake device: blocks measured alone take `_block_ms`; a whole subnet takes the sum of its blocks with
    attention blocks weighing `attention_in_models`, plus `overhead_ms`, times lognormal noise."""
    rng = np.random.default_rng(0)

    def subnet_ms(arch):
        total = sum(_block_ms(b) * (attention_in_models if b.family == "transattn" else 1.0)
                    for _, b in decompose(arch, TINY, "graph"))
        return (total + overhead_ms) * rng.lognormal(0.0, noise_pct / 100)

    return subnet_ms


@pytest.mark.parametrize(("attention", "per_family"), [(0.4, True), (1.0, False)])
def test_block_builder_calibrates_per_family_only_when_the_subnets_show_it(exported, tmp_path, attention,
                                                                           per_family):
    measurer = FakeMeasurer(exported, _device_where(attention, -0.002), _block_ms)
    predictor = builder.build("fake", TINY, measurer, 40, tmp_path / "build", calibration_subnets=30)
    cal = predictor.describe()["calibration"]
    assert (cal["choice"] == "per-family+offset") is per_family
    assert set(cal["candidates"]) == {"scale", "scale+offset", "per-family+offset"}
    assert ("family_scales" in cal) is per_family and (predictor.scale == 1.0) is per_family
    if per_family:
        scales = predictor.family_scales
        assert scales["transattn"] < 0.6 * min(scales["conv"], scales["transffn"])  # the big families
    subnets = [r.arch for r in predictor.measured_subnets]
    assert len(set(subnets)) == 30 and len((tmp_path / "build" / "models.jsonl").read_text().splitlines()) == 30
    assert not set(subnets) & set(validation_archs(TINY, 50))
    # calibrated predictions follow the device; saved and loaded, they are the same
    rows = sample_uniform(TINY, 100, seed=5)
    truth = np.array([_device_where(attention, -0.002, 0.0)(a) for a in archs(rows, TINY)])
    model = ArchLatencyModel(predictor, TINY, predictor.scale, predictor.offset_ms)
    assert np.mean(np.abs(model.predict_batch(rows) / truth - 1) <= 0.05) >= 0.95
    predictor.save(tmp_path / "saved")
    loaded = LearnedPredictor.load(tmp_path / "saved")
    assert loaded.family_scales == predictor.family_scales and loaded.content_id() == predictor.content_id()
    assert loaded.describe()["calibration"] == cal and [r.arch for r in loaded.measured_subnets] == subnets
    np.testing.assert_array_equal(ArchLatencyModel(loaded, TINY, loaded.scale, loaded.offset_ms).predict_batch(rows),
                                  model.predict_batch(rows))


def test_calibration_with_few_subnets_keeps_one_scale():
    sums = np.abs(np.random.default_rng(1).normal(5, 2, size=(10, len(FAMILIES)))) + 0.1
    measured = sums @ np.array([1.0, 1.0, 1.0, 0.3, 1.0, 1.0]) + 0.5
    fit = fit_calibration(sums, measured)
    assert fit.name in ("scale", "scale+offset") and "per-family+offset" in fit.left_out
    assert fit_calibration(sums[:2], measured[:2]).name == "scale"


# ---- the command line -----------------------------------------------------------------------------------------
def _cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def fake_phone(monkeypatch, exported, tables):
    """`predictor build/validate --device ...` measure on a fake phone following `.truth` (pixel6's table
    unless a test sets another); `.made` lists the measurers the commands made."""
    phone = SimpleNamespace(truth=table_ms(tables["pixel6"]), made=[])

    def measurer(device, adb, warmup, runs, rounds, statistic):
        phone.made.append(FakeMeasurer(exported, lambda arch: phone.truth(arch)))
        return phone.made[-1]

    monkeypatch.setattr("elasticvit_deploy.commands.predictor._measurer", measurer)
    assert _cli("predictor", "import-tables", str(TABLES_DIR)).exit_code == 0
    return phone


@needs_tables
def test_cli_transfer_build_then_validate(fake_phone, tmp_path):
    r = _cli("predictor", "build", "--device", "newphone", "--method", "transfer", "--models", "6", "--base",
             ",".join(BASES), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["format"] == "elasticvit-deploy.predictor-summary" and out["kind"] == "transfer"
    assert [b["name"] for b in out["bases"]] == list(BASES) and len(out["subnets"]) == 6
    assert out["choice"] == out["fit"]["choice"] and len(fake_phone.made[0].calls) == 6
    listed = json.loads(_cli("predictor", "list", "--json").stdout)["predictors"]
    assert {(p["device"], p["kind"]) for p in listed} >= {("newphone", "transfer"), ("pixel6", "table")}
    arch = tmp_path / "arch.json"
    arch.write_text(archs(sample_uniform(ELASTICVIT, 1, seed=8), ELASTICVIT)[0].to_json())
    r = _cli("latency", "--target", "newphone", str(arch), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["predictor"]["kind"] == "transfer"
    r = _cli("predictor", "validate", "--device", "newphone", "--n", "5", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["n"] == 5 and report["within_10pct"] == 1.0 and 0 <= report["within_5pct"] <= 1
    assert not {a.to_json() for a in fake_phone.made[1].calls} & {json.dumps(s["arch"], separators=(",", ":"))
                                                             for s in out["subnets"]}
    r = _cli("predictor", "build", "--device", "newphone", "--method", "transfer", "--models", "6", "--base",
             ",".join(BASES))  # measured already: nothing measured again; a readable report
    assert r.exit_code == 0 and len(fake_phone.made[2].calls) == 0
    assert "transfer from pixel1, pixel4, xiaomi11; 6 subnets measured" in r.stdout and "fit: " in r.stdout
    # without --base: every installed table but the device's own
    r = _cli("predictor", "build", "--device", "pixel6", "--method", "transfer", "--models", "4", "--json")
    assert r.exit_code == 0 and [b["name"] for b in json.loads(r.stdout)["bases"]] == list(BASES)


@needs_tables
def test_cli_transfer_on_learned_bases_in_another_space(fake_phone):
    for name, speed in (("slowphone", 3.0), ("fastphone", 0.5)):
        _learned(name, TINY, ns_per_mac=speed).save(learned_dir(name, TINY))
    slow = ArchLatencyModel(load_predictor("slowphone", TINY).predictor, TINY)
    fake_phone.truth = lambda arch: 0.7 * slow.predict(arch) + 0.01
    r = _cli("predictor", "build", "--device", "host", "--space", "tiny", "--method", "transfer", "--models", "5",
             "--base", "slowphone,fastphone", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["space"] == "tiny" and out["convention"] == "graph"
    model = load_predictor("host", TINY)
    rows = sample_uniform(TINY, 50, seed=1)
    np.testing.assert_allclose(model.predict_batch(rows), 0.7 * slow.predict_batch(rows) + 0.01, rtol=0.02)


@needs_tables
@pytest.mark.parametrize(("args", "message"), [
    (["--base", "nokia"], "no latency predictor installed for nokia in space elasticvit"),
    (["--base", "pixel1,pixel1"], "base 'pixel1' is given twice"),
    (["--base", "pixel1,host"], "base 'host' is a predictor of space 'tiny', not 'elasticvit'"),
    (["--base", "pixel1,mine"], "base 'mine' follows the graph block convention"),
    (["--models", "2"], "--models 2: --method transfer measures at least 3 subnets"),
    (["--models", "many"], "'many' is not a valid integer"),
    (["--budget", "50"], "--budget counts blocks"),
    (["--space", "tiny"], "pass --base with learned predictors of that space"),
])
def test_cli_transfer_bad_input_is_one_line(fake_phone, args, message):
    _learned("host", TINY).save(learned_dir("host", TINY))
    _learned("mine", ELASTICVIT).save(learned_dir("mine", ELASTICVIT))
    r = _cli("predictor", "build", "--device", "newphone", "--method", "transfer", *args)
    assert r.exit_code == 2 and r.output.count("\n") == 1 and message in r.output, r.output
    assert r.output.startswith("error: ") and fake_phone.made == []  # refused before any device is held


def test_cli_blocks_method_refuses_base_and_keeps_calibrate_alias(monkeypatch, exported, tmp_path):
    r = _cli("predictor", "build", "--device", "host", "--space", "tiny", "--base", "pixel1")
    assert r.exit_code == 2 and "--base names the predictors of --method transfer" in r.output
    made = []

    def measurer(device, adb, warmup, runs, rounds, statistic):
        made.append(FakeMeasurer(exported, _device_where(1.0, 0.0), _block_ms))
        return made[-1]

    monkeypatch.setattr("elasticvit_deploy.commands.predictor._measurer", measurer)
    r = _cli("predictor", "build", "--device", "fake", "--space", "tiny", "--budget", "12", "--calibrate", "3",
             "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["kind"] == "learned" and len(out["calibration_subnets"]) == 3
    assert out["calibration"]["choice"] in ("scale", "scale+offset")
    assert sum(isinstance(c, Arch) for c in made[0].calls) == 3


@pytest.mark.slow  # about 2.5 min on 2 cores: real exports, measured on this host
def test_transfer_build_and_validate_on_host_for_real():
    """`predictor build --method transfer` on this host (tiny space, learned bases), real exports and farm
    measurements; a rerun measures nothing again; then `predictor validate` of the result."""
    from elasticvit_deploy.farm.store import ResultsStore

    for name, speed in (("slowphone", 3.0), ("fastphone", 0.5)):
        _learned(name, TINY, ns_per_mac=speed).save(learned_dir(name, TINY))
    measure = ["--runs", "5", "--warmup", "1", "--rounds", "1"]
    args = ["predictor", "build", "--device", "host", "--space", "tiny", "--method", "transfer", "--models", "3",
            "--base", "slowphone,fastphone", *measure, "--json"]
    r = _cli(*args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["kind"] == "transfer" and len(out["subnets"]) == 3 and out["statistic"] == "best"
    assert len(ResultsStore().all()) == 3
    r = _cli(*args)
    assert r.exit_code == 0 and len(ResultsStore().all()) == 3 and json.loads(r.stdout)["weights"] == out["weights"]
    r = _cli("predictor", "validate", "--device", "host", "--space", "tiny", "--n", "1", *measure, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["n"] == 1 and json.loads(r.stdout)["predictor"] == "host"
