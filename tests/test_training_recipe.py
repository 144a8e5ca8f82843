"""The paper's training recipe in the loop: augmentation on (exact resume, soft targets through the losses, the
un-mixed batch for the memory banks), mixed precision, channels_last and torch.compile on CPU.

Everything runs on the tiny space and scikit-learn's digits with val_fraction 0.9 (11 steps of 16 images an epoch).
"""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from elasticvit_deploy.cli import main
from supernet.training import trainer as trainer_module
from supernet.training.train_config import ConfigError, TrainConfig
from supernet.training.trainer import Trainer

torch.set_num_threads(1)

BASE = {"data": "digits", "space": "tiny", "val_fraction": 0.9, "batch_size": 16, "epochs": 4, "warmup_epochs": 1,
        "lr": 0.02, "ema_decay": 0.9, "save_every": 0, "log_every": 1,
        "sampler_options": {"bank_size": 4, "big_bank_size": 2, "q0": 0.5}}
# The whole recipe, with probabilities raised so a few steps exercise every part.
STRONG = {"augment": "official", "augment_options": {"reprob": 0.5, "mixup": 0.4, "cutmix": 0.4}}


def config(tmp_path, **changes) -> TrainConfig:
    return TrainConfig.from_dict({**BASE, "output_dir": str(tmp_path / "run"), **changes})


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _run(trainer: Trainer, n: int) -> list:
    return [trainer.train_step() for _ in range(n)]


def test_resume_with_augmentation_is_exact(tmp_path):
    n, k = 13, 5  # crosses the epoch boundary at step 11 after the resume: new crops, re-scored banks
    straight = Trainer(config(tmp_path, **STRONG))
    results = _run(straight, n)
    first = Trainer(config(tmp_path, **STRONG))
    _run(first, k)
    resumed = Trainer(config(tmp_path, **STRONG), resume=first.save(tmp_path / "ck.pt"))
    rest = _run(resumed, n - k)
    assert [r.plan.subnets for r in rest] == [r.plan.subnets for r in results[k:]]
    assert [r.losses for r in rest] == [r.losses for r in results[k:]]  # the same augmentations, bit for bit
    assert states_equal(resumed.model.state_dict(), straight.model.state_dict())
    assert states_equal(resumed.ema.state_dict(), straight.ema.state_dict())


def test_augmentation_changes_training_and_none_keeps_it(tmp_path):
    plain = _run(Trainer(config(tmp_path / "a")), 3)
    explicit = _run(Trainer(config(tmp_path / "b", augment="none")), 3)
    augmented = _run(Trainer(config(tmp_path / "c", **STRONG)), 3)
    assert [r.losses for r in plain] == [r.losses for r in explicit]
    assert [r.losses for r in plain] != [r.losses for r in augmented]
    assert all(np.isfinite(r.losses).all() for r in augmented)


def test_soft_targets_reach_the_label_loss_and_banks_see_the_clean_batch(tmp_path, monkeypatch):
    """Without teachers, mixup's soft targets are the label loss's targets; the memory banks' CE is measured on
    the un-mixed batch (official `bank_arch_update`)."""
    seen_targets = []
    real_label_loss = trainer_module.label_loss

    def label_loss(logits, targets):
        seen_targets.append(targets)
        return real_label_loss(logits, targets)

    monkeypatch.setattr(trainer_module, "label_loss", label_loss)
    trainer = Trainer(config(tmp_path, augment="official", augment_options={"mixup": 0.5, "cutmix": 0.0}))
    shown, inputs = [], []
    real_augment, real_forward = trainer.augment, trainer.forward
    monkeypatch.setattr(trainer, "augment", lambda *a: shown.append(real_augment(*a)) or shown[-1])
    monkeypatch.setattr(trainer, "forward", lambda x: inputs.append(x) or real_forward(x))
    result = trainer.train_step()
    batch = shown[0]
    assert batch.mixed and seen_targets and all(t.is_floating_point() and t.shape == (16, 10) for t in seen_targets)
    assert all(torch.allclose(t.sum(1), torch.ones(16)) for t in seen_targets)
    assert all(t.min() > 0 for t in seen_targets)  # label smoothing 0.1 inside the mixed targets
    clean = sum(x is batch.clean for x in inputs)
    mixed = sum(x is batch.inputs for x in inputs)
    assert mixed == len(result.plan.subnets)  # every subnet trains on the mixed batch
    # each explored subnet's CE for its memory bank: on the clean batch (the banks are still empty at step 0, so
    # the first batch's re-scoring runs nothing)
    assert clean == len(result.plan.feedback) > 0 and mixed + clean == len(inputs)


class _Recorder(torch.nn.Module):
    """A teacher that records what it is shown."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 32 * 32, 10)
        self.inputs: list[torch.Tensor] = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return self.fc(x.flatten(1))


def test_teachers_see_the_mixed_inputs_and_give_the_targets(tmp_path, monkeypatch):
    teacher = _Recorder()
    monkeypatch.setattr(trainer_module, "load_teacher", lambda spec, device: teacher)
    trainer = Trainer(config(tmp_path, augment="official", teachers=("t.pt",),
                             augment_options={"mixup": 0.5, "cutmix": 0.0}))
    shown = []
    real = trainer.augment.__call__

    def augment(pixels, labels, seed):
        batch = real(pixels, labels, seed)
        shown.append(batch)
        return batch

    monkeypatch.setattr(trainer, "augment", augment)
    trainer.train_step()
    assert len(teacher.inputs) == 1 and shown[0].mixed
    assert torch.equal(teacher.inputs[0], shown[0].inputs)  # official: teachers see the student's mixed inputs
    assert not torch.equal(teacher.inputs[0], shown[0].clean)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_runs_on_cpu_close_to_fp32(tmp_path, precision):
    reference = _run(Trainer(config(tmp_path / "fp32", steps=2)), 2)
    trainer = Trainer(config(tmp_path / precision, steps=2, precision=precision))
    mixed = _run(trainer, 2)
    assert trainer.precision.dtype is not None
    for a, b in zip(reference, mixed, strict=True):
        assert a.plan.subnets == b.plan.subnets
        np.testing.assert_allclose(b.losses, a.losses, rtol=0.05, atol=0.02)
    params = dict(trainer.model.named_parameters())
    assert all(p.dtype == torch.float32 for p in params.values())  # master weights stay float32
    if precision == "fp16":
        assert trainer.precision.scaler.is_enabled() and trainer.precision.scaler.get_scale() > 0
        saved = torch.load(trainer.save(), weights_only=True)
        assert saved["trainer"]["scaler"]["scale"] == trainer.precision.scaler.get_scale()
    else:
        assert not trainer.precision.scaler.is_enabled()


def test_fp16_resume_is_exact(tmp_path):
    straight = Trainer(config(tmp_path, precision="fp16"))
    results = _run(straight, 3)
    first = Trainer(config(tmp_path, precision="fp16"))
    _run(first, 1)
    resumed = Trainer(config(tmp_path, precision="fp16"), resume=first.save(tmp_path / "ck.pt"))
    assert [r.losses for r in _run(resumed, 2)] == [r.losses for r in results[1:]]
    assert resumed.precision.scaler.state_dict() == straight.precision.scaler.state_dict()
    assert states_equal(resumed.model.state_dict(), straight.model.state_dict())


def test_channels_last_gives_the_same_numbers(tmp_path):
    reference = _run(Trainer(config(tmp_path / "a")), 2)
    trainer = Trainer(config(tmp_path / "b", channels_last=True))
    convs = [p for p in trainer.model.parameters() if p.dim() == 4 and p.shape[-1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    for a, b in zip(reference, _run(trainer, 2), strict=True):
        np.testing.assert_allclose(b.losses, a.losses, rtol=1e-4, atol=1e-5)


def test_compiled_forward_gives_the_same_numbers(tmp_path, monkeypatch):
    """The forwards go through torch.compile and give the eager numbers (backend "eager" here: TorchDynamo's graph
    capture, the part that could change the computation, without the minutes of inductor code generation)."""
    real_compile = torch.compile
    compiled = []

    def compile_with_aot_eager(model, **kwargs):
        compiled.append(model)
        return real_compile(model, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", compile_with_aot_eager)
    reference = _run(Trainer(config(tmp_path / "a")), 1)
    trainer = Trainer(config(tmp_path / "b", compile=True))
    assert compiled == [trainer.model] and trainer.forward is not trainer.model
    for a, b in zip(reference, _run(trainer, 1), strict=True):
        np.testing.assert_allclose(b.losses, a.losses, rtol=1e-4, atol=1e-5)


def test_recipe_settings_are_validated(tmp_path):
    for changes, message in [
        ({"augment": "fancy"}, "augment"),
        ({"augment": "official", "augment_options": {"hflip": 2.0}}, "hflip"),
        ({"augment_options": {"rotate": 1}}, "rotate"),
        ({"precision": "fp8"}, "precision must be one of fp32, bf16, fp16"),
        ({"channels_last": "yes"}, "channels_last must be true or false"),
    ]:
        with pytest.raises(ConfigError, match=message):
            config(tmp_path, **changes)
    toml = tmp_path / "c.toml"
    toml.write_text('data = "digits"\nspace = "tiny"\naugment = "official"\n[augment_options]\nmixup = -1\n')
    result = CliRunner().invoke(main, ["train", "--config", str(toml)])
    assert result.exit_code == 2 and result.output.startswith("error: ") and "mixup" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bn_calibration_follows_the_runs_augmentation(tmp_path):
    """As the official `bn_cal`: the calibration batches of an augmented run are augmented (and mixed), seeded, so
    two evaluations agree; `calib_augment="none"` calibrates on the fixed crops."""
    from supernet.sampling import min_arch
    from supernet.space import TINY
    from supernet.training.evaluate import SubnetEvaluator

    trainer = Trainer(config(tmp_path, **STRONG, steps=2))
    _run(trainer, 2)
    path = trainer.save()
    options = {"calib_batches": 2, "calib_batch_size": 16}
    augmented = SubnetEvaluator.from_checkpoint(path, **options)
    fixed = SubnetEvaluator.from_checkpoint(path, calib_augment="none", **options)
    assert augmented.augment is not None and fixed.augment is None
    a1 = [x.clone() for x in augmented._calibration()]
    a2 = list(augmented._calibration())
    f = list(fixed._calibration())
    assert len(a1) == len(f) == 2 and all(torch.equal(x, y) for x, y in zip(a1, a2, strict=True))
    assert not torch.equal(a1[0], f[0])
    assert augmented.source() != fixed.source()  # cached accuracies of one never answer for the other
    assert augmented.evaluate(min_arch(TINY)).total == fixed.evaluate(min_arch(TINY)).total
