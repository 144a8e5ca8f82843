"""How a training step computes: float32, or mixed precision (autocast to bfloat16, or to float16 with a gradient
scaler), and the memory format of the model and its inputs (`channels_last` suits tensor cores and most GPU
convolutions).

Mixed precision is meant for CUDA, where it roughly halves memory traffic; it also runs on CPU (autocast on CPU
supports both dtypes), which is how it is tested here. Parameters, gradients, the optimizer and the EMA stay float32;
logits are cast back to float32 before any loss, so the soft-target and alpha-divergence losses are computed in full
precision. With fp16 the loss is scaled before backward and the gradients unscaled before clipping; a step whose
gradients overflowed is skipped and the scale lowered (`torch.amp.GradScaler`), its state saved in the checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import TypeVar

import torch
import torch.nn as nn

from .batch_augment import AugmentedBatch

M = TypeVar("M", bound=nn.Module)
DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """The numeric settings of a run: `name` ("fp32", "bf16" or "fp16") on `device`, and the memory format."""

    def __init__(self, name: str, device: torch.device, channels_last: bool = False):
        if name not in DTYPES:
            raise ValueError(f"unknown precision {name!r} (known: {', '.join(DTYPES)})")
        self.name, self.device, self.dtype = name, device, DTYPES[name]
        self.channels_last = channels_last
        self.scaler = torch.amp.GradScaler(device.type, enabled=name == "fp16")

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Autocast to the run's dtype (nothing under fp32)."""
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            yield

    def prepare(self, model: M) -> M:
        """`model` in the run's memory format (in place)."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return model

    def inputs(self, batch: AugmentedBatch) -> AugmentedBatch:
        """`batch` with its images in the run's memory format."""
        if not self.channels_last:
            return batch
        fmt = torch.channels_last
        return dataclasses.replace(batch, inputs=batch.inputs.contiguous(memory_format=fmt),
                                   clean=batch.clean.contiguous(memory_format=fmt))
