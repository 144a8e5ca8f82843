import pytest
import torch

from supernet.space import CNNStageSpace, SearchSpace, StemSpace, TransformerStageSpace


@pytest.fixture(scope="session", autouse=True)
def _session_data_home(tmp_path_factory):
    """Session- and module-scoped fixtures (simulated farms) start before the per-test `_data_home`: they write
    user data into a temp dir too, never into the user's own (whose installed tables would change what a
    simulated phone does)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ELASTICVIT_DEPLOY_HOME", str(tmp_path_factory.mktemp("session-home")))
        yield


@pytest.fixture(autouse=True)
def _data_home(tmp_path, monkeypatch):
    """Every test writes user data into its own temp dir."""
    monkeypatch.setenv("ELASTICVIT_DEPLOY_HOME", str(tmp_path / "home"))


# A space small enough to enumerate every subnet (about 1e5), same structure as the real one.
MICRO = SearchSpace(
    name="micro-test", resolutions=(32, 48), first_conv_widths=(8, 16), stem=StemSpace((1, 2), (3, 5)),
    stages=(CNNStageSpace("C0", "mbv2", 2, (16, 24), (1, 2), (3,), (3, 4)),
            CNNStageSpace("C1", "mbv3", 2, (16, 24), (1,), (3, 5), (3,)),
            TransformerStageSpace("T0", 2, (32, 48), (1, 2), (2, 3), (2,)),
            TransformerStageSpace("T1", 1, (48,), (1,), (2,), (2, 3)),
            TransformerStageSpace("T2", 2, (48, 64), (1, 2), (2,), (2,)),
            TransformerStageSpace("T3", 1, (64,), (1, 2), (2, 3), (2,))),
    num_classes=10, crop_size=32, head_width=64)


def randomize_(module: torch.nn.Module, seed: int = 0) -> None:
    """Give every parameter and BN statistic non-trivial values, so equality tests can fail."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.1 if p.dim() > 1 else 0.5))
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory):
    """A small, quickly converted conv net as a .tflite file (for measuring, not for export tests)."""
    from elasticvit_deploy.export import tflite_format

    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                 torch.nn.Linear(8 * 8 * 8, 4)).eval()
    path = tmp_path_factory.mktemp("tiny_tflite") / "tiny.tflite"
    path.write_bytes(tflite_format.convert_module(module, torch.zeros(1, 3, 8, 8), False))
    return path
