"""`analyze conflict` (the paper's Table 4): gradient cosines between subnets of one FLOPs level, on the tiny space
and scikit-learn's digits, with a randomised supernet saved as a checkpoint."""

import itertools
import json

import pytest
import torch
from click.testing import CliRunner

from elasticvit_deploy.cli import main
from supernet.checkpoint import save_checkpoint
from supernet.model import ElasticViTSupernet
from supernet.sampling import archs, max_arch, min_arch, sample_in_window
from supernet.space import TINY
from supernet.training.conflict import draw_level, fixed_batch, gradient_conflict, subnet_gradients
from supernet.training.data import open_split
from supernet.training.evaluate import load_supernet

from .conftest import randomize_

torch.set_num_threads(1)

LEVEL = 5.0  # tiny spans about 2.4-27.7 MFLOPs; its default window is 0.16


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    net = ElasticViTSupernet(TINY)
    randomize_(net, seed=3)
    path = tmp_path_factory.mktemp("conflict") / "supernet.pt"
    run = {"data": "digits", "seed": 0, "val_fraction": 0.9}
    save_checkpoint(path, TINY, net.state_dict(), net.state_dict(), trainer={"config": run})
    return path


@pytest.fixture(scope="module")
def batch():
    return fixed_batch(open_split("digits", "train", TINY.crop_size, 0, 0.9), 16, 0)


def test_self_cosine_is_one_and_all_cosines_lie_in_range(checkpoint, batch):
    net = load_supernet(checkpoint).supernet
    a, b, c = archs(sample_in_window(TINY, LEVEL, LEVEL + 0.5, 3, seed=1), TINY)
    result = gradient_conflict(net, [a, b, a, c], batch, top=2, level=LEVEL, window=0.5)
    sim = result.similarity
    assert torch.allclose(sim.diagonal(), torch.ones(4, dtype=torch.float64))
    assert sim[0, 2] == pytest.approx(1.0, abs=1e-9)  # the same subnet drawn twice
    assert torch.equal(sim, sim.T) and bool(((sim >= -1) & (sim <= 1)).all())
    assert result.losses[0] == result.losses[2]


def test_touched_entries_are_exact_and_cover_the_gradient(checkpoint, batch):
    net = load_supernet(checkpoint).supernet
    small, large = subnet_gradients(net, [min_arch(TINY), max_arch(TINY)], batch)
    for g in (small, large):
        assert not bool(((g.grad != 0) & ~g.touched).any())
        first = g.touched[:net.first_conv.weight.numel()]  # the first parameter: rows [:first_conv] are read
        assert int(first.sum()) == g.arch.first_conv * 3 * 3 * 3
    assert not bool((small.touched & ~large.touched).any())  # the min subnet's slices lie inside the max's
    assert int(small.touched.sum()) < int(large.touched.sum())


def test_top_k_are_the_lowest_losses_and_the_means_are_pairwise(checkpoint):
    loaded = load_supernet(checkpoint)
    subnets, batch, window = draw_level(loaded, LEVEL, n=6, batch_size=16, seed=2)
    result = gradient_conflict(loaded.supernet, subnets, batch, 3, LEVEL, window)
    assert result.n == 6 and result.window == 0.16 and result.batch_size == 16
    assert all(LEVEL <= f <= LEVEL + 0.16 for f in result.mflops)
    assert sorted(result.losses[i] for i in result.top_indices) == sorted(result.losses)[:3]
    pairs = lambda idx: [float(result.similarity[i, j]) for i, j in itertools.combinations(idx, 2)]  # noqa: E731
    assert result.random == pytest.approx(sum(pairs(range(6))) / 15)
    assert result.top_k == pytest.approx(sum(pairs(result.top_indices)) / 3)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_prints_table4_fields(checkpoint):
    r = run("analyze", "conflict", "--checkpoint", checkpoint, "--level", LEVEL, "--n", 4, "--top", 2,
            "--batch-size", 16, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert {"random", "top_2", "n", "level", "batch_size", "window", "loss", "subnets", "similarity",
            "top_indices", "checkpoint"} <= out.keys()
    assert (out["format"], out["version"]) == ("elasticvit-deploy.gradient-conflict", 1)
    assert out["n"] == 4 and out["level"] == LEVEL and out["batch_size"] == 16 and out["checkpoint"]["weights"] == "ema"
    assert -1 <= out["random"] <= 1 and -1 <= out["top_2"] <= 1 and len(out["subnets"]) == 4


@pytest.mark.parametrize("args, message", [
    (("--level", 500), "no subnet of space 'tiny' has 500-500.16 MFLOPs"),
    (("--level", 5, "--n", 3, "--top", 5), "--top 5 exceeds --n 3"),
])
def test_cli_errors_are_one_line_exit_2(checkpoint, args, message):
    r = run("analyze", "conflict", "--checkpoint", checkpoint, *args)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.output


def test_cli_missing_checkpoint_is_one_line_exit_2(tmp_path):
    r = run("analyze", "conflict", "--checkpoint", tmp_path / "missing.pt", "--level", 5)
    assert r.exit_code == 2 and r.output.strip().count("\n") == 0 and "no such checkpoint file" in r.output, r.output
