import pytest
import torch

from supernet.atomic import atomic_output, write_json_atomic
from supernet.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from supernet.documents import header
from supernet.model import ElasticViTSupernet
from supernet.space import TINY

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
