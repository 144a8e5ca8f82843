"""The supernet training loop, its checkpoints, DDP, data, and the train/evaluate commands (the official recipe).

Everything runs on the tiny space and scikit-learn's digits with val_fraction 0.9, so an epoch is 11 steps of 16
images and a handful of steps crosses epoch boundaries (bank re-scoring, end-of-epoch walk)."""

import gzip
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from click.testing import CliRunner
from PIL import Image

from elasticvit_deploy.cli import main
from supernet.checkpoint import CheckpointError, save_checkpoint
from supernet.model import ElasticViTSupernet
from supernet.sampling import max_arch, min_arch
from supernet.space import TINY
from supernet.training import evaluate as evaluate_module
from supernet.training.data import DataError, epoch_indices, open_split
from supernet.training.teachers import load_teacher
from supernet.training.train_config import ConfigError, TrainConfig, load_config, shipped_configs
from supernet.training.trainer import Trainer

from .conftest import MICRO

torch.set_num_threads(1)

BASE = {"data": "digits", "space": "tiny", "val_fraction": 0.9, "batch_size": 16, "epochs": 4, "warmup_epochs": 1,
        "lr": 0.02, "ema_decay": 0.9, "save_every": 0, "log_every": 1,
        "sampler_options": {"bank_size": 4, "big_bank_size": 2, "q0": 0.5}}


def config(tmp_path, **changes) -> TrainConfig:
    return TrainConfig.from_dict({**BASE, "output_dir": str(tmp_path / "run"), **changes})


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_step_trains_the_planned_subnets_and_changes_the_weights(tmp_path, monkeypatch):
    trainer = Trainer(config(tmp_path, steps=1))
    activated = []
    real = trainer.model.set_active
    monkeypatch.setattr(trainer.model, "set_active", lambda arch: (activated.append(arch), real(arch)))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result = trainer.train_step()
    assert result.plan.roles == ("uniform", "uniform", "uniform", "min")  # official `sampling_mode`: 3 + HSS min
    assert activated == list(result.plan.archs)  # each planned subnet ran once, in plan order (min last)
    assert result.plan.archs[-1] == min_arch(TINY)
    after = trainer.model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert "first_conv.weight" in changed and "classifer.weight" in changed
    assert all(np.isfinite(result.losses)) and trainer.step == 1
    assert trainer.ema.module.state_dict()["classifer.weight"].ne(after["classifer.weight"]).any()  # EMA lags


def _run(trainer: Trainer, n: int) -> list:
    return [trainer.train_step().plan for _ in range(n)]


def test_resume_is_exact(tmp_path):
    n, k = 14, 6  # crosses the epoch boundary at step 11 after the resume
    straight = Trainer(config(tmp_path))
    plans = _run(straight, n)
    assert any(s.from_bank for p in plans for s in p.subnets)  # exploitation happened: banks matter
    first = Trainer(config(tmp_path))
    _run(first, k)
    path = first.save(tmp_path / "ck.pt")
    resumed = Trainer(config(tmp_path), resume=path)
    assert resumed.step == k
    rest = _run(resumed, n - k)
    assert [p.archs for p in rest] == [p.archs for p in plans[k:]]
    assert [p.subnets for p in rest] == [p.subnets for p in plans[k:]]
    assert states_equal(resumed.model.state_dict(), straight.model.state_dict())
    assert states_equal(resumed.ema.state_dict(), straight.ema.state_dict())
    assert resumed.sampler.state_dict() == straight.sampler.state_dict()
    opt_a, opt_b = resumed.optimizer.state_dict()["state"], straight.optimizer.state_dict()["state"]
    assert opt_a.keys() == opt_b.keys() and all(states_equal(opt_a[i], opt_b[i]) for i in opt_a)


def _train_process(*args: str) -> subprocess.Popen:
    """`elasticvit-deploy train ARGS --json` in its own process, one thread (so float results do not depend on
    threading)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "elasticvit_deploy", "train", *args, "--json"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_a_killed_cli_run_resumes_to_the_same_weights(tmp_path):
    """SIGKILL a real `train` process right after its first checkpoint, `train --resume` it, and compare with an
    uninterrupted run: same subnets (metrics), same weights, EMA, optimizer and sampler state."""
    toml = tmp_path / "run.toml"
    toml.write_text('data = "digits"\nspace = "tiny"\nval_fraction = 0.9\nbatch_size = 16\nepochs = 3\n'
                    'warmup_epochs = 1\nlr = 0.02\nema_decay = 0.9\nsteps = 24\nsave_every = 3\nlog_every = 1\n'
                    '[sampler_options]\nbank_size = 4\nbig_bank_size = 2\nq0 = 0.5\n')
    straight = _train_process("--config", str(toml), "--set", f"output_dir={tmp_path / 'straight'}")
    killed_dir = tmp_path / "killed"
    killed = _train_process("--config", str(toml), "--set", f"output_dir={killed_dir}")
    deadline = time.monotonic() + 300
    while not (killed_dir / "checkpoint.pt").exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    at_kill = torch.load(killed_dir / "checkpoint.pt", weights_only=True)["trainer"]["step"]
    assert 3 <= at_kill < 24
    assert straight.wait(timeout=600) == 0, straight.stderr.read()
    resumed = _train_process("--resume", str(killed_dir / "checkpoint.pt"))
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True) for d in ("straight", "killed"))
    assert a["trainer"]["step"] == b["trainer"]["step"] == 24
    assert states_equal(a["model"], b["model"]) and states_equal(a["ema"], b["ema"])
    assert a["trainer"]["sampler"] == b["trainer"]["sampler"]
    opt_a, opt_b = a["trainer"]["optimizer"]["state"], b["trainer"]["optimizer"]["state"]
    assert opt_a.keys() == opt_b.keys() and all(states_equal(opt_a[i], opt_b[i]) for i in opt_a)
    rows = [[json.loads(line) for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
            for d in ("straight", "killed")]
    assert [r["step"] for r in rows[1]] == list(range(24))  # rows logged after the checkpoint were dropped
    assert [r["subnets"] for r in rows[0]] == [r["subnets"] for r in rows[1]]


def test_corrupt_foreign_and_mismatched_checkpoints_fail_clearly(tmp_path):
    cfg = config(tmp_path, steps=1)
    (tmp_path / "junk.pt").write_bytes(b"\x00not a checkpoint" * 64)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        Trainer(cfg, resume=tmp_path / "junk.pt")
    micro = ElasticViTSupernet(MICRO).state_dict()
    save_checkpoint(tmp_path / "micro.pt", MICRO, micro, trainer={"step": 3})
    with pytest.raises(CheckpointError, match="for space 'micro-test'.*not 'tiny'"):
        Trainer(cfg, resume=tmp_path / "micro.pt")
    torch.save(ElasticViTSupernet(TINY).state_dict(), tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="not an elasticvit-deploy supernet checkpoint"):
        Trainer(cfg, resume=tmp_path / "bare.pt")
    save_checkpoint(tmp_path / "weights.pt", TINY, ElasticViTSupernet(TINY).state_dict())
    with pytest.raises(CheckpointError, match="no training state"):
        Trainer(cfg, resume=tmp_path / "weights.pt")
    good = Trainer(cfg).save(tmp_path / "good.pt")
    with pytest.raises(CheckpointError, match=r"trained with lr = 0\.02, this one has 0\.5"):
        Trainer(config(tmp_path, steps=1, lr=0.5), resume=good)
    data = torch.load(good, weights_only=True)
    del data["trainer"]["optimizer"]
    torch.save(data, tmp_path / "damaged.pt")
    with pytest.raises(CheckpointError, match="damaged training state"):
        Trainer(cfg, resume=tmp_path / "damaged.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, port: int, cfg: dict, out: str) -> None:
    """One torchrun-like process: the trainer reads RANK/WORLD_SIZE and joins a gloo group."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    trainer = Trainer(TrainConfig.from_dict(cfg))
    shard = epoch_indices(trainer.train_set, 0, cfg.get("seed", 0), rank, 2)
    plans = [trainer.train_step().plan for _ in range(cfg["steps"])]
    trainer.save()
    torch.save({"archs": [[a.to_json() for a in p.archs] for p in plans], "shard": shard,
                "model": trainer.model.state_dict(), "ema": trainer.ema.module.state_dict()},
               os.path.join(out, f"rank{rank}.pt"))
    trainer.dist.shutdown()


def test_ddp_on_gloo_gives_identical_subnets_and_weights(tmp_path):
    cfg = {**BASE, "batch_size": 8, "steps": 4, "output_dir": str(tmp_path / "run")}
    mp.start_processes(_ddp_worker, args=(_free_port(), cfg, str(tmp_path)), nprocs=2, start_method="spawn")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["archs"] == r1["archs"] and len(r0["archs"]) == 4
    assert not set(r0["shard"]) & set(r1["shard"])  # each rank trained on its own shard
    assert states_equal(r0["model"], r1["model"]) and states_equal(r0["ema"], r1["ema"])
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)  # written by rank 0 only
    assert ck["trainer"]["world_size"] == 2 and ck["trainer"]["step"] == 4
    assert states_equal(ck["model"], r0["model"])


# ---------------------------------------------------------------- the commands

def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 5-step run of `train --config FILE.toml --set ...` with a teacher (a pickled module, trusted)."""
    tmp = tmp_path_factory.mktemp("cli")
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    torch.save(teacher, tmp / "teacher.pt")
    (tmp / "run.toml").write_text(
        'data = "digits"\nspace = "tiny"\nval_fraction = 0.9\nbatch_size = 16\nepochs = 2\nwarmup_epochs = 0\n'
        f'steps = 3\nlog_every = 2\nsave_every = 2\noutput_dir = "{tmp / "out"}"\n'
        f'teachers = [{{path = "{tmp / "teacher.pt"}", trust_pickle = true}}]\n'
        '[sampler_options]\nbank_size = 4\n')
    result = run("train", "--config", tmp / "run.toml", "--set", "steps=5", "--set", "sampler_options.q0=0.5",
                 "--json")
    return tmp, result


def test_cli_train_writes_checkpoint_and_metrics(trained):
    tmp, result = trained
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["format"], summary["version"]) == ("elasticvit-deploy.training-run", 1)
    assert summary["steps"] == 5 and summary["checkpoint"] == str(tmp / "out" / "checkpoint.pt")
    rows = [json.loads(line) for line in (tmp / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 3, 4]  # every log_every steps and the last
    assert all(r["loss"] > 0 and r["imgs_per_s"] > 0 and len(r["subnets"]) == 4 for r in rows)
    ck = torch.load(tmp / "out" / "checkpoint.pt", weights_only=True)
    assert ck["trainer"]["step"] == 5 and ck["trainer"]["config"]["steps"] == 5
    assert ck["trainer"]["config"]["sampler_options"] == {"bank_size": 4, "q0": 0.5}
    assert ck["trainer"]["config"]["teachers"] == [{"path": str(tmp / "teacher.pt"), "trust_pickle": True}]

    again = run("train", "--resume", tmp / "out" / "checkpoint.pt", "--set", "steps=6", "--json")
    assert again.exit_code == 0, again.output
    rows = [json.loads(line) for line in (tmp / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 3, 4, 5]


def test_evaluate_two_archs_with_one_checkpoint_read(trained, monkeypatch):
    tmp, _ = trained
    reads = []
    real = evaluate_module.read_checkpoint
    monkeypatch.setattr(evaluate_module, "read_checkpoint", lambda p: (reads.append(p), real(p))[1])
    (tmp / "max.json").write_text(max_arch(TINY).to_json())
    r = run("evaluate", "--checkpoint", tmp / "out" / "checkpoint.pt", "--arch", "min", "--arch", tmp / "max.json",
            "--calib-batches", "2", "--calib-batch-size", "32", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert (out["format"], out["version"]) == ("elasticvit-deploy.evaluation", 1)
    assert len(reads) == 1 and out["checkpoint"]["weights"] == "ema" and out["split"] == "val"
    assert [res["arch"] for res in out["results"]] == [min_arch(TINY).to_dict(), max_arch(TINY).to_dict()]
    for res in out["results"]:
        assert 0.0 <= res["top1"] <= 1.0 and res["total"] == 1617  # digits' held-out 90% (val_fraction 0.9)


def test_cli_errors_are_one_line_exit_2(tmp_path):
    (tmp_path / "bad.toml").write_text('data = "digits"\nlearning_rate = 0.1\n')
    (tmp_path / "good.toml").write_text('data = "digits"\nspace = "tiny"\n')
    torch.save(ElasticViTSupernet(TINY).state_dict(), tmp_path / "bare.pt")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "checkpoint.pt").write_bytes(b"")
    cases = [] if importlib.util.find_spec("tensorboard") else [
        (("train", "--config", tmp_path / "good.toml", "--set", "tensorboard=true", "--set", f"output_dir={tmp_path}"),
         "needs the tensorboard package")]
    for args, message in cases + [
        (("train", "--config", tmp_path / "good.toml", "--set", f"output_dir={tmp_path / 'old'}"),
         "already holds a run: continue it with --resume"),
        (("train", "--config", tmp_path / "bad.toml"), "unknown config key 'learning_rate'"),
        (("train", "--config", tmp_path / "good.toml", "--set", "batch_size=x"), "batch_size must be an integer"),
        (("train", "--config", tmp_path / "good.toml", "--set", "space=nope"), "unknown search space 'nope'"),
        (("train", "--config", tmp_path / "missing.yaml"), "no such config file"),
        (("train",), "give --config FILE"),
        (("train", "--resume", tmp_path / "missing.pt"), "no such checkpoint file"),
        (("evaluate", "--checkpoint", tmp_path / "bare.pt", "--arch", "min"), "not our checkpoint format"),
    ]:
        r = run(*args)
        assert r.exit_code == 2, (args, r.output)
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.output


# ---------------------------------------------------------------- config, data, teachers

def test_yaml_config_with_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("data: digits\nspace: tiny\nlr: 1e-3\nsampler_options:\n  q0: 0.3\n")
    cfg = load_config(tmp_path / "c.yaml", ["batch_size=8", "sampler_options.n_uniform=2", "teachers=[a.pt]"])
    assert (cfg.lr, cfg.batch_size, cfg.teachers) == (1e-3, 8, ("a.pt",))
    assert cfg.sampler_options == {"q0": 0.3, "n_uniform": 2}
    with pytest.raises(ConfigError, match="batch_size must be an integer"):
        load_config(tmp_path / "c.yaml", ["batch_size=eight"])
    with pytest.raises(ConfigError, match="unknown sampler_options key 'q'"):
        Trainer(config(tmp_path, sampler_options={"q": 1}))


def test_shipped_configs_are_valid_and_read_by_name():
    assert shipped_configs() == ["tiny-demo", "tiny-fashion-mnist"]
    for name in shipped_configs():
        assert load_config(name) == load_config(f"{name}.toml") and load_config(name).space == "tiny"
    demo = load_config("tiny-demo", ["data=digits", "steps=5", "output_dir=d/train"])
    assert (demo.data, demo.steps, demo.output_dir) == ("digits", 5, "d/train")
    assert (demo.epochs, demo.warmup_epochs, demo.batch_size, demo.lr, demo.ema_decay) == (1, 0, 64, 4e-3, 0.99)
    assert (demo.save_every, demo.log_every, demo.sampler_options) == (100, 20, {"bank_size": 20, "big_bank_size": 10})
    with pytest.raises(ConfigError, match="no such config file.*tiny-demo, tiny-fashion-mnist"):
        load_config("tiny-nope")


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_data_sources_give_fixed_normalised_crops(tmp_path, monkeypatch):
    train, val = open_split("digits", "train", 32, seed=1), open_split("digits", "val", 32, seed=1)
    assert len(train) + len(val) == 1797 and len(val) == 180
    assert not set(train.labels.tolist()) ^ set(range(10))
    x, y = train.take([0, 1, 2])
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32 and -3 < x.min() < x.max() < 3
    assert torch.equal(open_split("digits", "val", 32, seed=1).labels, val.labels)  # seeded split

    rng = np.random.default_rng(0)
    for part, n in (("train", 20), ("t10k", 10)):
        _write_idx(tmp_path / f"{part}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{part}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    idx_train, idx_test = open_split(str(tmp_path), "train", 32), open_split(str(tmp_path), "test", 32)
    assert (len(idx_train), len(idx_test), idx_test.num_classes) == (18, 10, 10)
    assert idx_test[0][0].shape == (3, 32, 32)

    monkeypatch.setattr("supernet.training.data.FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        open_split("fashion-mnist", "train", 32)

    folder = tmp_path / "imagenet"
    for split in ("train", "val"):
        for cls, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            (folder / split / cls).mkdir(parents=True)
            Image.new("RGB", (60, 40), colour).save(folder / split / cls / "a.png")
    images = open_split(str(folder), "val", 32)
    assert images.classes == ("cat", "dog") and len(images) == 2
    red, label = images[0]
    assert red.shape == (3, 32, 32) and label == 0 and red[0].mean() > red[2].mean()


def test_teacher_from_a_supernet_checkpoint(tmp_path):
    net = ElasticViTSupernet(TINY)
    save_checkpoint(tmp_path / "s.pt", TINY, net.state_dict(), net.state_dict())
    teacher = load_teacher({"path": str(tmp_path / "s.pt"), "arch": "min"}, torch.device("cpu"))
    assert teacher.arch == min_arch(TINY) and not teacher.training
    assert teacher(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert all(not p.requires_grad for p in teacher.parameters())
