"""Evaluation sharded over torchrun processes (2 gloo ranks on CPU): the same results, in the same order, as one
process, whatever the number of archs; a rank's failure reported on rank 0 without leaving the others waiting; the
accuracy objective's one evaluation call per batch, each result cached as it comes; the `evaluate` and `search`
commands under a real torchrun."""

import json
import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from supernet.arch import Arch, ArchError
from supernet.checkpoint import save_checkpoint
from supernet.errors import ToolkitError
from supernet.model import ElasticViTSupernet
from supernet.sampling import archs as decode_rows
from supernet.sampling import min_arch, sample_uniform
from supernet.space import TINY
from supernet.training.distributed import DistContext
from supernet.training.evaluate import SubnetEvaluator
from supernet.training.sharding import ShardedEvaluationError, ShardedEvaluator

from .conftest import randomize_

# The spawned ranks import this module: the toolkit's CLI and search modules are imported by the tests that use
# them, so the ranks start quickly.

CALIBRATION = {"calib_batches": 2, "calib_batch_size": 16}


@contextmanager
def one_thread():
    """Run the one-process reference on one thread, as every torchrun rank does (OMP_NUM_THREADS=1), so both sides
    do the very same float arithmetic."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny-space supernet with random (non-trivial) weights and EMA weights, saved as our checkpoint."""
    net = ElasticViTSupernet(TINY)
    randomize_(net, seed=3)
    ema = ElasticViTSupernet(TINY)
    randomize_(ema, seed=4)
    path = tmp_path_factory.mktemp("sharded") / "supernet.pt"
    save_checkpoint(path, TINY, net.state_dict(), ema.state_dict())
    return path


def _evaluator(checkpoint) -> SubnetEvaluator:
    return SubnetEvaluator.from_checkpoint(checkpoint, data="digits", **CALIBRATION)


@pytest.fixture(scope="module")
def alone(checkpoint):
    """The one-process evaluator (the reference)."""
    return _evaluator(checkpoint)


def _archs(n: int, seed: int) -> list[Arch]:
    return decode_rows(sample_uniform(TINY, n, seed), TINY)


def _bad() -> dict:
    """An arch outside the tiny space (its evaluation fails on whichever rank gets it)."""
    return {**min_arch(TINY).to_dict(), "resolution": 64}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shard_worker(rank: int, port: int, checkpoint: str, jobs: list, out: str) -> None:
    """One torchrun-like rank: rank 0 runs each job (a list of arch dicts) through the ShardedEvaluator and writes what
    it got (results and the progress calls, or the error); rank 1 serves."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    dist = DistContext.from_env("cpu")
    try:
        sharded = ShardedEvaluator(_evaluator(checkpoint), dist)
        if not dist.is_main:
            sharded.serve()
            return
        report = []
        try:
            for archs in jobs:
                seen: list = []
                try:
                    results = sharded.evaluate_many([Arch.from_dict(a) for a in archs],
                                                    progress=lambda r, seen=seen: seen.append(r.arch.to_dict()))
                    report.append({"results": [r.to_dict() for r in results], "progress": seen})
                except ToolkitError as e:
                    report.append({"error": f"{type(e).__name__}: {e}"})
        finally:
            sharded.close()
            sharded.close()  # idempotent
        Path(out).write_text(json.dumps(report))
    finally:
        dist.shutdown()


def test_two_ranks_give_the_results_of_one_process_in_order(checkpoint, alone, tmp_path):
    five = [min_arch(TINY), *_archs(4, seed=5)]
    jobs = [[a.to_dict() for a in five], [five[2].to_dict()], [], [five[0].to_dict(), _bad()],
            [_bad(), five[1].to_dict()], [five[4].to_dict()]]
    mp.start_processes(_shard_worker, args=(_free_port(), str(checkpoint), jobs, str(tmp_path / "r.json")),
                       nprocs=2, start_method="spawn")
    report = json.loads((tmp_path / "r.json").read_text())
    with one_thread():
        expected = [r.to_dict() for r in alone.evaluate_many(five)]
    assert len({r["correct"] for r in expected}) > 1  # the archs score differently, so a mix-up would show
    assert report[0] == {"results": expected, "progress": [a.to_dict() for a in five]}  # 5 archs: rounds of 2, 2, 1
    assert report[1]["results"] == [expected[2]] and report[2] == {"results": [], "progress": []}
    assert report[3]["error"].startswith(f"{ShardedEvaluationError.__name__}: rank 1 could not evaluate")
    assert "resolution" in report[3]["error"] and "ArchError" in report[3]["error"]
    assert report[4]["error"].startswith("ArchError: resolution: 64")  # rank 0's own failure, raised as is
    assert report[5]["results"] == [expected[4]]  # after the failures the ranks still work together


def test_in_one_process_it_is_the_evaluator(alone):
    sharded = ShardedEvaluator(alone, DistContext())
    archs = [min_arch(TINY), *_archs(1, seed=2), min_arch(TINY)]
    seen = []
    with one_thread():
        results = sharded.evaluate_many(archs, progress=seen.append)
    assert [r.arch for r in results] == archs and seen == results and results[0] == results[2]
    assert sharded.source() == sharded.evaluator.source() and sharded.space is TINY
    sharded.close()
    with pytest.raises(ArchError, match="resolution: 64"):
        sharded.evaluate_many([Arch.from_dict(_bad())])


class Recording:
    """An evaluator that evaluates for real (with `alone`) and records each `evaluate_many` call; with `fail_after`,
    dies after that many results, like a killed search."""

    def __init__(self, alone, fail_after=None):
        self.alone, self.fail_after, self.calls = alone, fail_after, []
        self.space = alone.space

    def source(self):
        return self.alone.source()

    def evaluate_many(self, archs, progress=None):
        self.calls.append(list(archs))
        results = []
        for arch in archs:
            if len(results) == self.fail_after:
                raise RuntimeError("killed")
            results.append(self.alone.evaluate(arch))
            progress(results[-1])
        return results


def test_the_accuracy_objective_evaluates_a_batch_in_one_call_and_caches_each_result_as_it_comes(alone, tmp_path):
    from elasticvit_deploy.search.objectives import supernet_accuracy

    rows = sample_uniform(TINY, 4, 11)
    cache = tmp_path / "accuracy.jsonl"
    dying = Recording(alone, fail_after=2)
    with one_thread(), pytest.raises(RuntimeError, match="killed"):
        supernet_accuracy(dying, cache).evaluate_rows(rows[:3])
    assert [len(c) for c in dying.calls] == [3] and len(cache.read_text().splitlines()) == 2  # kept what it had
    again = Recording(alone)
    objective = supernet_accuracy(again, cache)
    with one_thread():
        objective.evaluate_rows(rows)  # the two cached rows are not evaluated again; the other two in one call
    assert again.calls == [decode_rows(rows[2:], TINY)]
    assert objective.evaluated == [",".join(map(str, r)) for r in rows] and len(cache.read_text().splitlines()) == 4


# ---------------------------------------------------------------- the commands under a real torchrun

def _cli(*args):
    from click.testing import CliRunner

    from elasticvit_deploy.cli import main

    with one_thread():
        return CliRunner().invoke(main, [str(a) for a in args])


def _torchrun(*args) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "elasticvit-deploy"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--no-python",
           str(script), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_cli_evaluate_under_torchrun_prints_what_one_process_prints(checkpoint, tmp_path):
    (tmp_path / "two.jsonl").write_text("".join(a.to_json() + "\n" for a in _archs(2, seed=9)))
    args = ["evaluate", "--checkpoint", checkpoint, "--data", "digits", "--arch", "min", "--arch",
            tmp_path / "two.jsonl", "--calib-batches", "2", "--calib-batch-size", "16", "--device", "cpu", "--json"]
    alone = _cli(*args)
    assert alone.exit_code == 0, alone.output
    sharded = _torchrun(*args)
    assert sharded.returncode == 0, sharded.stderr[-2000:]
    assert json.loads(sharded.stdout) == json.loads(alone.stdout)  # rank 0 alone printed it
    assert len(json.loads(alone.stdout)["results"]) == 3


def _install_fake_phone(home: Path) -> None:
    """A learned latency predictor "fakephone" of the tiny space (ms proportional to MACs, plus a constant)."""
    from elasticvit_deploy.latency.features import block_cost
    from elasticvit_deploy.latency.learned import LearnedPredictor
    from elasticvit_deploy.latency.model import universe

    blocks = universe(TINY, "graph")[::4]
    ms = [(2000 + block_cost(b)[0]) * 1e-6 for b in blocks]
    predictor = LearnedPredictor.fit("fakephone", "graph", blocks, ms, info={"device": "fakephone", "space": "tiny"})
    predictor.save(home / "predictors" / "fakephone@tiny")


def test_cli_search_under_torchrun_finds_what_one_process_finds(checkpoint, tmp_path):
    _install_fake_phone(Path(os.environ["ELASTICVIT_DEPLOY_HOME"]))
    common = ["search", "--checkpoint", checkpoint, "--data", "digits", "--target", "fakephone", "--ms", "1000",
              "--population", "8", "--parents", "4", "--mutations", "2", "--crossovers", "2", "--generations", "1",
              "--eval-initial", "3", "--eval-per-generation", "1", "--eval-final", "2", "--calib-batches", "2",
              "--eval-device", "cpu", "--json", "--out"]
    alone = _cli(*common, tmp_path / "alone")
    assert alone.exit_code == 0, alone.output
    sharded = _torchrun(*common, tmp_path / "sharded")
    assert sharded.returncode == 0, sharded.stderr[-2000:]
    one, two = (json.loads((tmp_path / d / "result.json").read_text()) for d in ("alone", "sharded"))
    assert one["objective"]["evaluated"] >= 3 and one["choices"][0]["accuracy_source"] == "supernet"
    assert {k: v for k, v in two.items() if k != "timing"} == {k: v for k, v in one.items() if k != "timing"}
    rows = [(tmp_path / d / "accuracy.jsonl").read_text().splitlines() for d in ("alone", "sharded")]
    assert rows[0] == rows[1] and len(rows[0]) == one["objective"]["evaluated"]  # cached alike, in one order
