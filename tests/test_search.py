"""Search: vectorised operators, the evolution's constraint, determinism and resume (identities by content, the
settings that differ named, --fresh), Pareto fronts, the oracle and objective protocols, the accuracy objective, the
twins of the table phones, and the `search` command (real Pixel1 table; a learned predictor of the tiny space; host
measurement)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from elasticvit_deploy.cli import main
from elasticvit_deploy.farm.measure import HostDevice, MeasureOptions
from elasticvit_deploy.farm.runner_protocol import RunnerSettings
from elasticvit_deploy.farm.store import ResultsStore
from elasticvit_deploy.latency.features import block_cost
from elasticvit_deploy.latency.learned import LearnedPredictor
from elasticvit_deploy.latency.measurer import Measurer
from elasticvit_deploy.latency.model import ArchLatencyModel, universe
from elasticvit_deploy.latency.predictors import load_predictor
from elasticvit_deploy.latency.tables import TABLE_DEVICES, TablePredictor, table_file_name
from elasticvit_deploy.search.errors import BudgetError, StateMismatchError
from elasticvit_deploy.search.evolution import Evolution, EvolutionConfig
from elasticvit_deploy.search.measuring import MeasuringSetup
from elasticvit_deploy.search.objectives import FlopsProxy, supernet_accuracy
from elasticvit_deploy.search.oracles import ORACLES, InstalledPredictors, PredictorOracle
from elasticvit_deploy.search.protocols import LatencyOracle, Objective
from elasticvit_deploy.search.run import pareto_front
from elasticvit_deploy.search.state import SearchState
from elasticvit_deploy.simulator.profiles import PROFILES, TABLE_TWINS
from supernet import encoding as enc
from supernet.documents import check_header
from supernet.sampling import crossover_many, max_arch, min_arch, mutate_many, sample_uniform
from supernet.space import ELASTICVIT, TINY
from supernet.training.evaluate import SubnetEvaluator
from supernet.validation import validate

TABLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "nnmeter-hybrid-luts"
needs_tables = pytest.mark.skipif(not TABLES.is_dir(),
                                  reason="../shared/data/nnmeter-hybrid-luts is not beside the repo")
# searches that measure on this host: small (every measured candidate is exported), and one shape for all of them,
# so they ask for the same subnets and share exports
HOST_SEARCH = ["--population", "2", "--parents", "2", "--mutations", "1", "--crossovers", "0", "--generations", "1"]
SMALL = EvolutionConfig(population=64, parents=32, mutations=16, crossovers=16, generations=4, seed=3)


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def pixel1():
    return PredictorOracle(ArchLatencyModel(TablePredictor.load("pixel1", TABLES / table_file_name("pixel1")),
                                            ELASTICVIT))


def _fake_phone(home: Path, name: str, ns_per_mac: float) -> ArchLatencyModel:
    """A learned predictor of the tiny space fitted on synthetic block latencies (ms proportional to MACs plus a
    per-block constant), installed in `home`."""
    blocks = universe(TINY, "graph")[::4]
    ms = [(2000 + block_cost(b)[0]) * ns_per_mac * 1e-6 for b in blocks]
    predictor = LearnedPredictor.fit(name, "graph", blocks, ms, info={"device": name, "space": TINY.name})
    predictor.save(home / "predictors" / f"{name}@{TINY.name}")
    return ArchLatencyModel(predictor, TINY)


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    """One user-data dir for the tiny-space tests: two synthetic phones installed once ("fakephone", about host
    speed, and "fastphone", far faster than this host), and subnets exported once for all of them."""
    home = tmp_path_factory.mktemp("home")
    _fake_phone(home, "fakephone", 1.0)
    _fake_phone(home, "fastphone", 1e-4)
    _fake_phone(home, "pixel1", 3.0)  # a learned pixel1 predictor of the tiny space, for --simulate
    return home


def test_vectorised_operators_stay_legal_and_reach_every_choice():
    rng = np.random.default_rng(0)
    start = np.concatenate([enc.encode(min_arch(ELASTICVIT))[None], enc.encode(max_arch(ELASTICVIT))[None]])
    rows = np.repeat(start, 1000, axis=0)
    kids = mutate_many(rows, ELASTICVIT, rng, prob=0.5, depth_prob=0.5)
    mates = sample_uniform(ELASTICVIT, len(rows), rng)
    crossed = crossover_many(kids, mates, ELASTICVIT, rng)
    for m in (kids, crossed):
        for arch in enc.decode_many(m[::37], ELASTICVIT):
            assert validate(arch, ELASTICVIT) == []
        widths = m[:, [enc.FIRST] + [enc.stage_col(i, enc.WIDTH) for i in range(len(ELASTICVIT.stages))]]
        assert (np.diff(widths, axis=1) >= 0).all()
    want = [set(ELASTICVIT.resolutions), set(ELASTICVIT.first_conv_widths), set(ELASTICVIT.stem.depths),
            set(ELASTICVIT.stem.kernels)]
    for s in ELASTICVIT.stages:
        want += [set(s.widths), set(s.depths), *map(set, s.micro_choices())]
    walk = rows[:200].copy()
    seen = [set() for _ in want]
    for _ in range(60):
        walk = mutate_many(walk, ELASTICVIT, rng)
        for col in range(len(want)):
            seen[col].update(walk[:, col].tolist())
    assert seen == want
    # each crossover child takes its resolution, widths and depths each whole from one parent
    for child, a, b in zip(crossed[:300], kids[:300], mates[:300], strict=True):
        assert child[enc.RES] in (a[enc.RES], b[enc.RES])
        assert any((child[c] == p[c]).all() for p in (a, b) for c in [[enc.STEM_DEPTH] + [
            enc.stage_col(i, enc.DEPTH) for i in range(len(ELASTICVIT.stages))]])


def test_pareto_front():
    lat = np.array([5.0, 3.0, 4.0, 3.0, 6.0, 1.0])
    score = np.array([9.0, 4.0, 8.0, 6.0, 9.0, 1.0])
    assert pareto_front(lat, score).tolist() == [5, 3, 2, 0]


@needs_tables
def test_evolution_respects_budget_improves_and_is_deterministic(pixel1, tmp_path):
    objective = FlopsProxy(ELASTICVIT)
    state = Evolution(ELASTICVIT, pixel1, 30.0, objective, SMALL).run(tmp_path / "a.npz")
    assert (state.latency <= 30.0).all() and (state.seen_latency <= 30.0).all()
    assert np.allclose(pixel1.latency_ms(state.population), state.latency)
    assert len(np.unique(state.seen, axis=0)) == len(state.seen) == 64 + 4 * 32
    first_best = np.sort(state.seen_scores[:64])[-1]
    assert state.scores[0] >= first_best and state.scores[0] == state.seen_scores.max()
    again = Evolution(ELASTICVIT, pixel1, 30.0, objective, SMALL).run(tmp_path / "b.npz")
    assert (again.seen == state.seen).all() and (again.population == state.population).all()
    other = Evolution(ELASTICVIT, pixel1, 30.0, objective, EvolutionConfig(**{**SMALL.__dict__, "seed": 4})).run()
    assert not np.array_equal(other.seen, state.seen)


@needs_tables
def test_interrupted_search_resumes_to_the_same_result(pixel1, tmp_path):
    objective = FlopsProxy(ELASTICVIT)
    whole = Evolution(ELASTICVIT, pixel1, 25.0, objective, SMALL).run(tmp_path / "whole.npz")

    def stop_at_2(g):
        if g == 2:
            raise KeyboardInterrupt

    path = tmp_path / "cut.npz"
    with pytest.raises(KeyboardInterrupt):
        Evolution(ELASTICVIT, pixel1, 25.0, objective, SMALL).run(path, stop_at_2)
    resumed = Evolution(ELASTICVIT, pixel1, 25.0, objective, SMALL).run(path)
    assert resumed.generation == 4
    assert (resumed.seen == whole.seen).all() and (resumed.population == whole.population).all()
    with pytest.raises(StateMismatchError, match=r"other settings.*: budget_ms 25\.0 != 26\.0; .*--fresh"):
        Evolution(ELASTICVIT, pixel1, 26.0, objective, SMALL).run(path)
    fresh = Evolution(ELASTICVIT, pixel1, 26.0, objective, SMALL).run(path, fresh=True)
    assert SearchState.load(path).settings["budget_ms"] == 26.0 and (fresh.seen_latency <= 26.0).all()


@needs_tables
def test_tight_budget_walks_from_the_smallest_and_impossible_budget_says_what_is_reachable(pixel1):
    smallest = float(pixel1.latency_ms(enc.encode(min_arch(ELASTICVIT))[None])[0])
    state = Evolution(ELASTICVIT, pixel1, smallest * 1.02, FlopsProxy(ELASTICVIT), SMALL).run()
    assert len(state.population) >= 1 and (state.seen_latency <= smallest * 1.02).all()
    with pytest.raises(BudgetError, match=f"{smallest:.2f} ms"):
        Evolution(ELASTICVIT, pixel1, smallest * 0.9, FlopsProxy(ELASTICVIT), SMALL).run()


@needs_tables
def test_cli_search_pixel1_tables_many_targets_and_budgets(tmp_path):
    assert _cli("predictor", "import-tables", TABLES).exit_code == 0
    args = ["search", "--target", "pixel1,pixel4", "--ms", "20,30", "--population", "64", "--parents", "32",
            "--mutations", "16", "--crossovers", "16", "--generations", "3", "--out", tmp_path / "s", "--json"]
    r = _cli(*args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert check_header(out, "search-result", 1) == 1
    assert out["oracles"]["pixel1"]["kind"] == "table" and len(out["oracles"]["pixel1"]["content"]) == 16
    assert "proxy" in out["warning"] and "FLOPs" in r.stderr
    assert [(c["device"], c["budget_ms"]) for c in out["choices"]] == [
        ("pixel1", 20), ("pixel1", 30), ("pixel4", 20), ("pixel4", 30)]
    for c in out["choices"]:
        assert c["predicted_ms"] <= c["budget_ms"] and c["measured_ms"] is None and c["oracle"] == "table"
        assert c["proxy"]["value"] == pytest.approx(c["mflops"], abs=1e-3)
        assert set(c) >= {"device", "budget_ms", "arch", "mflops", "predicted_ms", "measured_ms"}
    assert out["choices"][1]["mflops"] >= out["choices"][0]["mflops"]
    for front in out["pareto"].values():
        lat = [p["latency_ms"] for p in front]
        score = [p["score"] for p in front]
        assert lat == sorted(lat) and score == sorted(score) and len(front) >= 2
    assert json.loads((tmp_path / "s" / "result.json").read_text())["choices"] == out["choices"]
    again = json.loads(_cli(*args).stdout)  # resumed from the saved states: same answer
    assert again["choices"] == out["choices"]


@needs_tables
def test_cli_search_bad_input_is_one_line(tmp_path):
    r = _cli("search", "--target", "pixel1", "--ms", "30")
    assert r.exit_code == 2 and "import-tables" in r.output and r.output.count("error:") == 1
    assert _cli("predictor", "import-tables", TABLES).exit_code == 0
    r = _cli("search", "--target", "pixel1", "--ms", "1", "--out", tmp_path / "x")
    assert r.exit_code == 2 and "smallest subnet" in r.stderr and "ms on this oracle" in r.stderr
    r = _cli("search", "--target", "nosuchphone", "--ms", "30")
    assert r.exit_code == 2 and "predictor build --device nosuchphone" in r.stderr
    for bad in ("0", "x", "30,30", ""):
        r = _cli("search", "--target", "pixel1", "--ms", bad)
        assert r.exit_code == 2 and r.stderr.startswith("error: --ms")
    assert "'x' is not a comma list of budgets in ms (positive numbers)" in _cli("search", "--target", "pixel1",
                                                                              "--ms", "x").stderr
    r = _cli("search", "--target", "pixel1", "--ms", "30", "--verify", "--out", tmp_path / "y",
             "--generations", "0", "--population", "8", "--parents", "4")
    assert r.exit_code == 2 and "farm add pixel1" in r.stderr and not (tmp_path / "y" / "state").exists()
    r = _cli("search", "--target", "../x", "--ms", "30")
    assert r.exit_code == 2 and r.stderr.startswith("error: --target")
    r = _cli("search", "--target", "pixel1", "--ms", "30.0000001,30.0000002")
    assert r.exit_code == 2 and "6 significant digits" in r.stderr
    small = ["--population", "8", "--parents", "4", "--generations", "1", "--mutations", "2", "--crossovers", "2"]
    assert _cli("search", "--target", "pixel1", "--ms", "30", *small, "--out", tmp_path / "z").exit_code == 0
    (tmp_path / "z" / "state" / "pixel1@30ms.npz").write_bytes(b"not a state")
    r = _cli("search", "--target", "pixel1", "--ms", "30", *small, "--out", tmp_path / "z")
    assert r.exit_code == 2 and "not a readable search state" in r.stderr and r.stderr.count("error:") == 1


@pytest.mark.slow  # about 80 s on 2 cores (with its setup): live verification on this host
def test_cli_search_verify_on_host_measures_and_falls_back_honestly(tmp_path, shared_home, monkeypatch):
    monkeypatch.setenv("ELASTICVIT_DEPLOY_HOME", str(shared_home))
    common = ["--target", "fakephone", "--space", "tiny", "--device", "host", *HOST_SEARCH, "--verify-tries", "1"]
    r = _cli("search", *common, "--ms", "1000", "--verify", "--out", tmp_path / "ok", "--json")
    assert r.exit_code == 0, r.output
    c = json.loads(r.stdout)["choices"][0]
    assert c["measured_ms"] is not None and 0 < c["measured_ms"] <= 1000 and c["measured_on"]["kind"] == "host"
    assert Path(c["model"]).is_file() and c["model"].endswith(".tflite")
    smallest = load_predictor("fastphone", TINY).predict(min_arch(TINY))
    common[1] = "fastphone"
    r = _cli("search", *common, "--ms", f"{smallest * 1.5:.6f}", "--verify", "--out", tmp_path / "tight", "--json")
    assert r.exit_code == 1
    c = json.loads(r.stdout)["choices"][0]
    assert c["arch"] is None and any("measured" in n and "falling back" in n for n in c["notes"])


@pytest.mark.slow  # about 2 min on 2 cores: live host measurements inside the search
def test_cli_search_hybrid_and_live_on_host(tmp_path, shared_home, monkeypatch):
    monkeypatch.setenv("ELASTICVIT_DEPLOY_HOME", str(shared_home))
    common = ["--target", "fakephone", "--space", "tiny", "--device", "host", "--ms", "1000", *HOST_SEARCH, "--json"]
    r = _cli("search", *common, "--oracle", "hybrid", "--hybrid-k", "1", "--out", tmp_path / "h")
    assert r.exit_code == 0, r.output
    c = json.loads(r.stdout)["choices"][0]
    assert c["measured_ms"] is not None and c["predicted_ms"] is not None and c["measured_on"]["kind"] == "host"
    r = _cli("search", *common, "--oracle", "live", "--out", tmp_path / "l")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    c = out["choices"][0]
    assert c["oracle"] == "live" and c["measured_ms"] is not None and c["measured_on"]["kind"] == "host"
    assert all(p["latency_source"] == "live" for p in out["pareto"]["fakephone"])
    r = _cli("search", *common[2:], "--target", "host", "--oracle", "live", "--out", tmp_path / "l2")
    assert r.exit_code == 0, r.output  # live needs no predictor: none installed for host, predicted_ms is null
    c = json.loads(r.stdout)["choices"][0]
    assert c["predicted_ms"] is None and c["measured_ms"] is not None


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny-space supernet trained for a few steps on scikit-learn's digits (label loss, no teacher)."""
    tmp = tmp_path_factory.mktemp("ckpt")
    (tmp / "run.toml").write_text(
        'data = "digits"\nspace = "tiny"\nval_fraction = 0.5\nbatch_size = 16\nepochs = 1\nwarmup_epochs = 0\n'
        f'steps = 4\nlog_every = 2\nsave_every = 4\noutput_dir = "{tmp / "out"}"\n[sampler_options]\nbank_size = 4\n')
    r = _cli("train", "--config", tmp / "run.toml", "--json")
    assert r.exit_code == 0, r.output
    return tmp / "out" / "checkpoint.pt"


def test_cli_search_with_checkpoint_ranks_by_accuracy(tiny_checkpoint, tmp_path, shared_home, monkeypatch):
    monkeypatch.setenv("ELASTICVIT_DEPLOY_HOME", str(shared_home))
    args = ["search", "--checkpoint", tiny_checkpoint, "--target", "fakephone", "--ms", "1000", "--population", "12",
            "--parents", "6", "--mutations", "3", "--crossovers", "3", "--generations", "2", "--eval-initial", "4",
            "--eval-per-generation", "1", "--eval-final", "2", "--calib-batches", "2", "--out", tmp_path / "s",
            "--json"]
    r = _cli(*args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["warning"] is None and "proxy" not in r.stderr
    c = out["choices"][0]
    assert c["accuracy_source"] == "supernet" and 0.0 <= c["accuracy"] <= 1.0 and "proxy" not in c
    evaluated = [json.loads(line) for line in (tmp_path / "s" / "accuracy.jsonl").read_text().splitlines()]
    assert 4 + 3 <= len(evaluated) <= 4 + 3 + 3 * 2  # initial, one per selection (3), final top 2 (refits)
    assert c["accuracy"] == pytest.approx(max(e["top1"] for e in evaluated if e["arch"] == c["arch"]), abs=1e-6)
    assert out["objective"]["evaluated"] == len(evaluated)
    again = _cli(*args)  # resumed: nothing evaluated twice, same answer
    assert again.exit_code == 0 and json.loads(again.stdout)["choices"] == out["choices"]
    assert len((tmp_path / "s" / "accuracy.jsonl").read_text().splitlines()) == len(evaluated)
    r = _cli("search", "--checkpoint", tiny_checkpoint, "--space", "elasticvit", "--target", "fakephone", "--ms", "9")
    assert r.exit_code == 2 and "space" in r.stderr and r.stderr.count("\n") == 1


def test_cli_search_verifies_on_the_simulated_twin(tmp_path, shared_home, monkeypatch):
    monkeypatch.setenv("ELASTICVIT_DEPLOY_HOME", str(shared_home))
    r = _cli("search", "--target", "pixel1", "--space", "tiny", "--ms", "1000", *HOST_SEARCH, "--verify",
             "--simulate", "--out", tmp_path / "s", "--json")
    assert r.exit_code == 0, r.output
    c = json.loads(r.stdout)["choices"][0]
    assert c["oracle"] == "learned" and c["measured_ms"] is not None and Path(c["model"]).is_file()
    assert c["measured_on"]["alias"] == "simulated-pixel1" and c["measured_on"]["simulated"] is True
    r = _cli("search", "--target", "fakephone", "--space", "tiny", "--ms", "1000", *HOST_SEARCH, "--verify",
             "--simulate", "--out", tmp_path / "x")
    assert r.exit_code == 2 and "no simulated twin of fakephone" in r.stderr and "pixel1" in r.stderr


def test_every_table_phone_has_one_simulated_twin():
    assert set(TABLE_TWINS) == set(TABLE_DEVICES)
    for phone, profile in TABLE_TWINS.items():
        assert PROFILES[profile.name] is profile and profile.tables == phone
    assert {p.tables for p in PROFILES.values() if p.tables is not None} <= set(TABLE_DEVICES)


def _host_setup() -> MeasuringSetup:
    """Measuring on this host, as `search --device host` does (best inference, the farm's default settings)."""
    return MeasuringSetup(Measurer(HostDevice(RunnerSettings()), ResultsStore(), MeasureOptions(), "best"))


def _json_roundtrip(value):
    return json.loads(json.dumps(value))


@pytest.mark.parametrize("kind", ["table", "learned", "live"])
def test_oracles_keep_the_latency_oracle_protocol(kind, shared_home, monkeypatch, request):
    monkeypatch.setenv("ELASTICVIT_DEPLOY_HOME", str(shared_home))
    if kind == "table":
        if not TABLES.is_dir():
            pytest.skip("../shared/data/nnmeter-hybrid-luts is not beside the repo")
        oracle, space = request.getfixturevalue("pixel1"), ELASTICVIT
    else:
        space = TINY
        oracle = ORACLES[kind if kind == "live" else "learned"].build(TINY, "fakephone", InstalledPredictors(TINY),
                                                                      lambda _device: _host_setup())
    assert isinstance(oracle, LatencyOracle) and oracle.kind == kind and oracle.expensive == (kind == "live")
    rows = enc.encode(min_arch(space))[None] if oracle.expensive else \
        sample_uniform(space, 5, np.random.default_rng(0))
    lat = oracle.latency_ms(rows)
    assert lat.shape == (len(rows),) and np.isfinite(lat).all() and (lat > 0).all()
    predicted, measured = oracle.predicted_ms(rows), oracle.measured_ms(lat)
    if kind == "live":  # measured; the device's installed predictor gives the predictions beside them
        assert measured == lat.tolist()
        assert predicted == pytest.approx(load_predictor("fakephone", TINY).predict_batch(rows).tolist())
    else:
        assert measured == [None] * len(rows) and predicted == pytest.approx(lat.tolist())
    identity, described = oracle.identity(), oracle.describe()
    assert _json_roundtrip(identity) == identity == oracle.identity()
    assert _json_roundtrip(described) == described and described["kind"] == kind
    assert str(shared_home) not in json.dumps(identity) and str(TABLES) not in json.dumps(identity)


@pytest.fixture(params=["mflops", "accuracy"])
def make_objective(request, tmp_path):
    """A factory of fresh objectives of one kind (the accuracy one on the tiny trained supernet, its real
    accuracies cached in one file; as few real evaluations as it allows, each takes seconds)."""
    if request.param == "mflops":
        return lambda: FlopsProxy(TINY)
    checkpoint = request.getfixturevalue("tiny_checkpoint")
    return lambda: supernet_accuracy(SubnetEvaluator.from_checkpoint(checkpoint, calib_batches=2),
                                     tmp_path / "accuracy.jsonl", initial=2, per_generation=0, final=1)


def test_objectives_keep_the_objective_protocol(make_objective, shared_home, monkeypatch, tmp_path):
    monkeypatch.setenv("ELASTICVIT_DEPLOY_HOME", str(shared_home))
    objective = make_objective()
    assert isinstance(objective, Objective) and (objective.warning is None) == (objective.name == "accuracy")
    oracle = PredictorOracle(load_predictor("fakephone", TINY))
    config = EvolutionConfig(population=5, parents=3, mutations=2, crossovers=1, generations=1, seed=2)
    state = Evolution(TINY, oracle, 1000, objective, config).run(tmp_path / "s.npz")  # begin, score, refine
    pop = state.population
    scores = objective.score(pop)
    refined = objective.refine(pop, scores)
    final = objective.finalize(pop, refined)
    assert scores.shape == refined.shape == final.shape == (len(pop),) and np.isfinite(final).all()
    sources = {objective.score_source(row) for row in pop}
    assert sources <= ({"supernet", "predicted"} if objective.name == "accuracy" else {objective.name})
    best = int(np.argmax(final))
    if objective.name == "accuracy":  # the final top carries a real evaluation, not a prediction
        assert objective.score_source(pop[best]) == "supernet"
    fields = objective.score_fields(pop[best], float(final[best]))
    assert fields and _json_roundtrip(fields) == fields
    for document in (objective.describe(), objective.identity(), objective.state_dict()):
        assert _json_roundtrip(document) == document
    assert str(tmp_path) not in json.dumps(objective.identity())
    again = make_objective()  # a resumed search loads the saved state_dict: it learns and scores the same
    resumed = Evolution(TINY, oracle, 1000, again, config).run(tmp_path / "s.npz")
    assert (resumed.population == state.population).all() and resumed.scores == pytest.approx(state.scores)
    again.load_state_dict(_json_roundtrip(objective.state_dict()))
    assert again.score(pop) == pytest.approx(objective.score(pop))


@needs_tables
def test_predictor_identity_is_its_content_not_where_it_lies(pixel1, shared_home, tmp_path):
    moved = tmp_path / "elsewhere" / table_file_name("pixel1")
    moved.parent.mkdir()
    shutil.copyfile(TABLES / table_file_name("pixel1"), moved)
    same = PredictorOracle(ArchLatencyModel(TablePredictor.load("pixel1", moved), ELASTICVIT))
    assert same.identity() == pixel1.identity()
    table = TablePredictor.load("pixel1", moved)
    key = next(iter(table.entries))
    table.entries[key] *= 1.5
    assert PredictorOracle(ArchLatencyModel(table, ELASTICVIT)).identity() != pixel1.identity()
    same.model.scale = 1.1  # another calibration of the same table
    assert same.identity() != pixel1.identity()
    installed = shared_home / "predictors" / f"fakephone@{TINY.name}"
    shutil.copytree(installed, tmp_path / "moved")
    learned = [PredictorOracle(ArchLatencyModel(p, TINY, p.scale, p.offset_ms))
               for p in (LearnedPredictor.load(installed), LearnedPredictor.load(tmp_path / "moved"))]
    assert learned[0].identity() == learned[1].identity()


@needs_tables
def test_cli_search_resumes_after_the_tables_move_names_other_settings_and_starts_fresh(tmp_path, monkeypatch):
    args = ["search", "--target", "pixel1", "--ms", "30", "--population", "8", "--parents", "4", "--generations",
            "1", "--mutations", "2", "--crossovers", "2", "--out", tmp_path / "s"]
    monkeypatch.setenv("ELASTICVIT_DEPLOY_HOME", str(tmp_path / "a"))
    assert _cli("predictor", "import-tables", TABLES).exit_code == 0
    first = _cli(*args, "--json")
    assert first.exit_code == 0, first.output
    state = tmp_path / "s" / "state" / "pixel1@30ms.npz"
    written = state.stat().st_mtime_ns
    monkeypatch.setenv("ELASTICVIT_DEPLOY_HOME", str(tmp_path / "b"))  # the same tables, in another user-data dir
    assert _cli("predictor", "import-tables", TABLES).exit_code == 0
    again = _cli(*args, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["choices"] == json.loads(first.stdout)["choices"]
    assert state.stat().st_mtime_ns == written  # resumed from the finished state, not searched again
    r = _cli(*args, "--seed", "1")
    assert r.exit_code == 2 and r.stderr.count("error:") == 1 and "saved by a search with other settings" in r.stderr
    assert "config.seed 0 != 1" in r.stderr and "budget_ms" not in r.stderr and "--fresh" in r.stderr
    r = _cli(*args, "--seed", "1", "--fresh")
    assert r.exit_code == 0, r.output
    assert SearchState.load(state).settings["config"]["seed"] == 1
    assert _cli(*args, "--seed", "1").exit_code == 0  # the new state resumes


def test_a_state_of_the_headerless_layout_is_refused_naming_fresh(tmp_path):
    path = tmp_path / "old.npz"
    empty = np.zeros((0, enc.n_columns(TINY)), np.int64)
    np.savez(path, population=empty, scores=np.zeros(0), latency=np.zeros(0), seen=empty, seen_scores=np.zeros(0),
             seen_latency=np.zeros(0), header=np.array(json.dumps({"version": 1, "generation": 0, "rng_state": {},
                                                                   "meta": {}})))
    with pytest.raises(StateMismatchError, match="no format header.*--fresh"):
        SearchState.load(path)

