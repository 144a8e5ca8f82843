"""Export an ElasticViT subnet: build it from the supernet (a checkpoint's weights or the seeded initial
weights), describe it (arch, space, MFLOPs, parameters, weights' hash) and hand it to the export pipeline, with a
warning when the weights are not what a deployed model needs.

The exported graph takes the subnet's own resolution, ``1 x 3 x res x res`` (NCHW, or NHWC when channels-last),
so the supernet's in-model resize never appears in it: resize images before feeding the model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from supernet.arch import Arch
from supernet.checkpoint import SupernetWeights, read_checkpoint
from supernet.flops import arch_mflops
from supernet.layers.norms import JointLayerNorm
from supernet.model import ElasticViTSupernet, StaticSubnet, count_parameters
from supernet.space import SearchSpace

from .inputs import SampleSet
from .pipeline import ExportResult, StagedExport, stage_module

INIT_SEED = 0  # without a checkpoint, the supernet is initialised from this seed: same arch, same model bytes
INITIAL_WEIGHTS_WARNING = ("no --checkpoint: the subnet has the supernet's initial weights (seed 0, trained-like "
                           "norm layers): a trained subnet's graph and latency, but meaningless predictions")
NO_EMA_WARNING = "checkpoint has no EMA weights; exported the raw model weights"


def load_weights(path: str | Path, space: SearchSpace, prefer_ema: bool = True) -> SupernetWeights:
    """Read and validate a supernet checkpoint for `space` (keys and shapes checked without building the net)."""
    return read_checkpoint(path).weights(space, prefer_ema)


def trained_like_norms_(net: torch.nn.Module, seed: int) -> None:
    """Give every BatchNorm and LayerNorm a random scale and shift (and BN running statistics), as a trained
    network has."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, JointLayerNorm)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                # the supernet's BNs all track running statistics
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def build_subnet(arch: Arch, space: SearchSpace, weights: SupernetWeights | None = None) -> StaticSubnet:
    """The static subnet of `arch`: from `weights`, or from the supernet's initial weights (seed `INIT_SEED`)
    with trained-like normalisation parameters.

    Training initialises the stride-1 blocks' last BN scale to 0 (each residual branch starts as the identity)
    and the LayerNorm affines to 1 and 0; a converter folds such branches and affines away, so an export of the
    raw initial weights is a smaller, faster graph than any trained subnet. With random norm parameters the
    exported graph matches a trained subnet's op for op, which is what latency work needs."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        net = ElasticViTSupernet(space)
    if weights is not None:
        net.load_state_dict(weights.state_dict)
    else:
        trained_like_norms_(net, INIT_SEED)
    return net.extract(arch)


def arch_digest(arch: Arch) -> str:
    """A short digest of the arch (in default file names)."""
    return hashlib.sha256(arch.to_json().encode()).hexdigest()[:10]


def default_name(arch: Arch, space: SearchSpace) -> str:
    """``SPACE-rRES-MFLOPSmf-ARCHHASH``: the file name stem of an export that is given none."""
    return f"{space.name}-r{arch.resolution}-{arch_mflops(arch, space):.0f}mf-{arch_digest(arch)}"


def subnet_metadata(arch: Arch, space: SearchSpace, subnet: StaticSubnet,
                    weights: SupernetWeights | None) -> dict[str, Any]:
    """What the model file says about itself (embedded) and its manifest repeats. No paths or timestamps, so the
    same arch and weights always give byte-identical files (the results store keys measurements on their hash)."""
    return {"kind": "elasticvit-subnet", "space": space.name, "space_fingerprint": space.fingerprint,
            "arch": arch.to_dict(), "resolution": arch.resolution, "mflops": round(arch_mflops(arch, space), 6),
            "params": count_parameters(subnet),
            "checkpoint": None if weights is None else {"sha256": weights.sha256, "weights": weights.source},
            "init_seed": INIT_SEED if weights is None else None}


def weights_warnings(weights: SupernetWeights | None, prefer_ema: bool) -> list[str]:
    """What to tell the user about the weights an export carries: initial weights, or raw weights where the EMA
    ones were asked for but the checkpoint has none."""
    if weights is None:
        return [INITIAL_WEIGHTS_WARNING]
    return [NO_EMA_WARNING] if prefer_ema and weights.source != "ema" else []


def stage_subnet(arch: Arch, space: SearchSpace, out_dir: str | Path, *, weights: SupernetWeights | None = None,
                 prefer_ema: bool = True, name: str | None = None, samples: SampleSet | None = None,
                 **options: Any) -> StagedExport:
    """Stage the verified export of `arch` with `weights` (loaded preferring the EMA weights if `prefer_ema`; None:
    the initial weights); see `pipeline.stage_module` for `options` (formats, quantizations, channels_last, ...).
    `publish()` it."""
    subnet = build_subnet(arch, space, weights)
    shape = (1, space.in_channels, arch.resolution, arch.resolution)
    staged = stage_module(subnet, shape, out_dir, name or default_name(arch, space),
                          metadata=subnet_metadata(arch, space, subnet, weights), samples=samples, **options)
    staged.warnings[:0] = weights_warnings(weights, prefer_ema)
    return staged


def export_subnet(arch: Arch, space: SearchSpace, out_dir: str | Path, **options: Any) -> ExportResult:
    """Export `arch`, verified (`options` as for `stage_subnet`)."""
    return stage_subnet(arch, space, out_dir, **options).publish()
