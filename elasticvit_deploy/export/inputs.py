"""Sample inputs for verification and int8 calibration: a user's own images or a documented synthetic set.

Synthetic set (``synthetic-v1``): for image-shaped inputs (N, C, H, W), standard-normal noise smoothed by a
5 x 5 box filter and re-standardised to zero mean and unit variance per image and channel, i.e. smooth
"images" with the statistics of mean/std-normalised photos; other shapes get plain standard-normal values.
Calibration draws with seed 0, verification with seed 1, so the two sets never coincide and every run of an
export sees the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from supernet.errors import BadInput

SYNTHETIC = "synthetic-v1"
CALIBRATION_SEED = 0
VERIFICATION_SEED = 1


class InputDataError(BadInput):
    """A user-supplied sample file that cannot serve as model inputs."""


@dataclass(frozen=True)
class SampleSet:
    """Inputs in the module's own layout (batch 1 each), and where they came from."""

    calibration: np.ndarray  # (n, *input_shape[1:]) float32
    verification: np.ndarray
    source: str

    def describe(self) -> dict[str, object]:
        return {"source": self.source, "calibration": len(self.calibration), "verification": len(self.verification)}


def to_layout(x: np.ndarray | torch.Tensor, channels_last: bool) -> Any:
    """NCHW -> NHWC for 4-D inputs when `channels_last`; other inputs unchanged."""
    if not channels_last or x.ndim != 4:
        return x
    return x.permute(0, 2, 3, 1).contiguous() if isinstance(x, torch.Tensor) else np.ascontiguousarray(
        x.transpose(0, 2, 3, 1))


def synthetic_inputs(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    """`n` synthetic inputs of `shape` (batch dimension first, batch 1); see the module docstring."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *shape[1:]), generator=g)
    if len(shape) == 4:
        x = F.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = x.std(dim=(2, 3), keepdim=True).clamp_min(1e-6)
        x = (x - mean) / std
    return x.numpy().astype(np.float32)


def synthetic_sample_set(shape: tuple[int, ...], n: int) -> SampleSet:
    """The synthetic set for `shape`: `n` calibration and `n` verification inputs."""
    return SampleSet(synthetic_inputs(shape, n, CALIBRATION_SEED), synthetic_inputs(shape, n, VERIFICATION_SEED),
                     SYNTHETIC)


def load_image_samples(path: str | Path, shape: tuple[int, int, int, int], n: int) -> SampleSet:
    """Images from a .npy file (or the first array of a .npz): float32, already normalised as in training,
    NCHW or NHWC. Resized (bicubic, as the model itself does) to `shape`'s side when they differ. The first half
    calibrates, the second half verifies (at most `n` each)."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            data = data[data.files[0]] if data.files else np.empty((0,))
    except (OSError, ValueError) as e:
        raise InputDataError(f"{path}: not a readable .npy/.npz array ({e})") from None
    _, c, h, w = shape
    if data.ndim != 4:
        raise InputDataError(f"{path}: expected images of shape (N, {c}, H, W) or (N, H, W, {c}), got {data.shape}")
    if data.shape[1] != c and data.shape[3] == c:
        data = data.transpose(0, 3, 1, 2)
    if data.shape[1] != c:
        raise InputDataError(f"{path}: images have {data.shape[1]} channels, the model takes {c}")
    if not np.issubdtype(data.dtype, np.floating):
        raise InputDataError(f"{path}: images are {data.dtype}; give float images normalised as for training")
    if 0 in data.shape[2:]:
        raise InputDataError(f"{path}: images are empty (shape {data.shape})")
    if len(data) < 2:
        raise InputDataError(f"{path}: need at least 2 images (half calibrate, half verify), found {len(data)}")
    x = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    if x.shape[-2:] != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bicubic")
    if not torch.isfinite(x).all():
        raise InputDataError(f"{path}: images contain NaN or infinite values")
    half = len(x) // 2
    return SampleSet(x[:half][:n].numpy(), x[half:][:n].numpy(), f"file:{path.name}")
