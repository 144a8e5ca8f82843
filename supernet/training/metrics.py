"""Training metrics: JSON lines appended to ``metrics.jsonl`` and, optionally, TensorBoard scalars (rank 0 only).

Each line is one logged step: ``{"step", "epoch", "level", "lr", "loss", "losses", "subnets", "imgs_per_s",
"time"}`` (`step` is the 0-based step index, `loss` the sum over the step's subnets averaged over ranks, `subnets`
the role, MFLOPs and bank origin of each trained subnet). A run starting at step s first drops the lines of steps
>= s (a resumed run's steps after its checkpoint), so the file reads as one uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..atomic import atomic_output
from .train_config import ConfigError


class MetricsLog:
    """Appends metric rows of a run starting at `start_step` to `path` (and to TensorBoard under `tensorboard_dir`)."""

    def __init__(self, path: Path, start_step: int, tensorboard_dir: Path | None = None):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file():
            self._truncate(start_step)
        self.writer = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError("tensorboard = true needs the tensorboard package: pip install tensorboard") from None
            self.writer = SummaryWriter(str(tensorboard_dir))

    def _truncate(self, step: int) -> None:
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line)["step"] < step:
                    kept.append(line)
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut by the kill that stopped the run
        with atomic_output(self.path) as tmp:
            tmp.write_text("".join(k + "\n" for k in kept), encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
        if self.writer is not None:
            for key in ("loss", "lr", "level", "imgs_per_s"):
                if row.get(key) is not None:
                    self.writer.add_scalar(f"train/{key}", row[key], row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
