import json

import pytest
import torch
from click.testing import CliRunner

from elasticvit_deploy.archio import load_archs
from elasticvit_deploy.cli import main
from elasticvit_deploy.errors import UserError
from supernet.arch import ArchError
from supernet.arch_spec import resolve_arch
from supernet.atomic import atomic_output, write_json_atomic
from supernet.checkpoint import CheckpointError, read_checkpoint, save_checkpoint, sha256_file
from supernet.documents import header
from supernet.flops import arch_mflops
from supernet.model import ElasticViTSupernet
from supernet.published import PUBLISHED
from supernet.sampling import max_arch, min_arch
from supernet.space import ELASTICVIT, TINY

from .conftest import MICRO, randomize_


@pytest.fixture(scope="module")
def tiny_state():
    net = ElasticViTSupernet(TINY)
    randomize_(net, seed=1)
    return net.state_dict()


def load_supernet_weights(path, space, prefer_ema=True):
    """The one loader: read the file once, then ask it for the weights of `space`."""
    return read_checkpoint(path).weights(space, prefer_ema)


def test_roundtrip_prefers_ema_and_records_hash(tmp_path, tiny_state):
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in tiny_state.items()}
    path = tmp_path / "ck.pt"
    save_checkpoint(path, TINY, tiny_state, ema, step=7)
    w = load_supernet_weights(path, TINY)
    assert w.source == "ema" and len(w.sha256) == 64 and w.space == "tiny"
    assert torch.equal(w.state_dict["first_conv.weight"], ema["first_conv.weight"])
    raw = load_supernet_weights(path, TINY, prefer_ema=False)
    assert raw.source == "model" and torch.equal(raw.state_dict["first_conv.weight"], tiny_state["first_conv.weight"])
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temp file


def test_official_style_state_dicts_are_accepted(tmp_path, tiny_state):
    path = tmp_path / "official.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in tiny_state.items()}, "epoch": 3}, path)
    w = load_supernet_weights(path, TINY)
    assert w.source == "model" and set(w.state_dict) == set(tiny_state)
    bare = tmp_path / "bare.pth"
    torch.save(tiny_state, bare)
    assert load_supernet_weights(bare, TINY).state_dict.keys() == tiny_state.keys()


def test_foreign_corrupt_and_wrong_checkpoints_fail_clearly(tmp_path, tiny_state):
    micro = ElasticViTSupernet(MICRO).state_dict()
    save_checkpoint(tmp_path / "micro.pt", MICRO, micro)
    with pytest.raises(CheckpointError, match="for space 'micro-test'.*not 'tiny'"):
        load_supernet_weights(tmp_path / "micro.pt", TINY)
    torch.save(micro, tmp_path / "micro_bare.pt")  # no header: caught by keys/shapes
    with pytest.raises(CheckpointError, match="not a supernet checkpoint of space 'tiny'"):
        load_supernet_weights(tmp_path / "micro_bare.pt", TINY)
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_supernet_weights(tmp_path / "junk.pt", TINY)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_supernet_weights(tmp_path / "missing.pt", TINY)
    broken = dict(tiny_state)
    broken["first_conv.weight"] = torch.zeros(3, 3)
    torch.save(broken, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match=r"first_conv.weight has shape \(3, 3\)"):
        load_supernet_weights(tmp_path / "shape.pt", TINY)
    torch.save({"format": "elasticvit-deploy.supernet", "version": 99, "model": tiny_state}, tmp_path / "v99.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        load_supernet_weights(tmp_path / "v99.pt", TINY)


def test_one_reader_answers_space_weights_and_training_state(tmp_path, tiny_state):
    path = tmp_path / "run.pt"
    save_checkpoint(path, TINY, tiny_state, trainer={"config": {"data": "digits"}, "step": 2})
    ck = read_checkpoint(path)
    assert {k: ck.entries[k] for k in ("format", "version")} == header("supernet", 1)
    assert ck.is_ours and ck.space() is TINY and ck.space(TINY) is TINY
    assert ck.run_config == {"data": "digits"} and ck.training_state()["step"] == 2
    assert torch.equal(ck.weights(TINY).state_dict["first_conv.weight"], tiny_state["first_conv.weight"])
    torch.save(tiny_state, tmp_path / "bare.pt")
    bare = read_checkpoint(tmp_path / "bare.pt")
    assert not bare.is_ours and bare.run_config == {} and bare.space(TINY) is TINY
    with pytest.raises(CheckpointError, match="not our checkpoint format, so name its search space"):
        bare.space()
    with pytest.raises(CheckpointError, match="not an elasticvit-deploy supernet checkpoint"):
        bare.training_state()
    save_checkpoint(tmp_path / "weights.pt", TINY, tiny_state)
    with pytest.raises(CheckpointError, match="no training state"):
        read_checkpoint(tmp_path / "weights.pt").training_state()


def test_atomic_output_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "a.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text().strip().replace(" ", "").replace("\n", "") == '{"v":1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_an_official_training_checkpoint_loads_as_is_and_evaluates(tmp_path, tiny_state):
    """The file the official `util/checkpoint.py` `save_checkpoint` writes: weights under `state_dict` and
    `model_ema` (with DDP's `module.` prefixes), a real AdamW state, the memory banks, the epoch and extras."""
    net = ElasticViTSupernet(TINY)
    net.load_state_dict(tiny_state)
    optimizer = torch.optim.AdamW(net.parameters(), lr=5e-4, weight_decay=0.05)
    for p in net.parameters():
        p.grad = torch.full_like(p, 0.01)
    optimizer.step()
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in tiny_state.items()}
    banks = [[[min_arch(TINY).to_official(TINY), 2.31]], [[max_arch(TINY).to_official(TINY), 1.87]]]
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({"epoch": 599, "state_dict": {f"module.{k}": v for k, v in net.state_dict().items()},
                "optimizer": optimizer.state_dict(), "bank": banks, "arch": "supernet",
                "extras": {"top1": 67.2, "top5": 87.4}, "model_ema": {f"module.{k}": v for k, v in ema.items()}},
               path)
    ck = read_checkpoint(path)  # torch.load(weights_only=True): nothing in the file runs
    assert not ck.is_ours and ck.run_config == {} and ck.entries["bank"] == banks
    w = ck.weights(TINY)
    assert w.source == "ema" and set(w.state_dict) == set(tiny_state)
    assert torch.equal(w.state_dict["first_conv.weight"], ema["first_conv.weight"])
    raw = ck.weights(TINY, prefer_ema=False)
    assert raw.source == "model" and torch.equal(raw.state_dict["first_conv.weight"], net.state_dict()[
        "first_conv.weight"])
    r = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(path), "--space", "tiny", "--data", "digits",
                                  "--arch", "min", "--calib-batches", "2", "--calib-batch-size", "16", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["checkpoint"]["weights"] == "ema" and out["checkpoint"]["sha256"] == sha256_file(path)
    assert [res["arch"] for res in out["results"]] == [min_arch(TINY).to_dict()]


def test_published_models_resolve_by_name_in_the_elasticvit_space():
    archs = {name: resolve_arch(name, ELASTICVIT) for name in PUBLISHED}
    mflops = [arch_mflops(a, ELASTICVIT) for a in archs.values()]
    assert mflops == sorted(mflops) and 60 < mflops[0] < 65 and 810 < mflops[-1] < 820  # "from 60M to 800M FLOPs"
    for name, arch in archs.items():  # the official lists, read stage-wise, are written back the same
        assert arch.to_official(ELASTICVIT) == PUBLISHED[name]
    assert load_archs("elastic_M", ELASTICVIT) == [archs["elastic_M"]] and archs["elastic_M"].resolution == 224
    with pytest.raises(ArchError, match="published model of the elasticvit space, not of 'tiny'"):
        resolve_arch("elastic_M", TINY)
    with pytest.raises(UserError, match="published model of the elasticvit space"):
        load_archs("elastic_T1", TINY)
