"""Training throughput: the data path against one training step, so a user sees which of the two limits a run.

(a) The data path alone: `iterate_pixels` over synthetic JPEGs (ImageNet-like 500 x 375, written to a temp dir as an
ImageFolder tree and as WebDataset tar shards) with the official RandomResizedCrop at the space's crop size, for each
worker count; then the same batches moved to the device and through the official `BatchAugment`. (b) One training
step (forward, cross-entropy and backward) of one subnet on a batch, for the smallest, a middle and the largest
subnet of the space. The last line compares the data path with a step of those three subnets (a trainer step runs
several subnets on one batch).

Run: .venv/bin/python benchmarks/training_throughput.py [--space tiny|elasticvit] [--images 256] [--batch 64]
     [--workers 0,1,2] [--device auto|cpu|cuda] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from supernet.arch import Arch
from supernet.documents import header
from supernet.flops import arch_mflops
from supernet.model import ElasticViTSupernet
from supernet.sampling import archs, flops_range, max_arch, min_arch, sample_in_window
from supernet.space import SearchSpace, get_space
from supernet.training.augment import AUGMENTS
from supernet.training.batch_augment import BatchAugment
from supernet.training.data import ImageData, ImageFolder, iterate_pixels
from supernet.training.shards import TarShards

CLASSES = 10


def write_images(root: Path, n: int, size: tuple[int, int], seed: int = 0) -> None:
    """`n` smooth random JPEGs of `size` (width, height) as class folders under ``root/folder`` and as tar shards
    of 64 samples under ``root/shards`` (same bytes in both)."""
    rng = np.random.default_rng(seed)
    (root / "shards").mkdir(parents=True)
    shard = None
    for k in range(n):
        coarse = rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
        im = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
        folder = root / "folder" / f"c{k % CLASSES}"
        folder.mkdir(parents=True, exist_ok=True)
        im.save(folder / f"{k:06d}.jpg", quality=90)
        if k % 64 == 0:
            if shard is not None:
                shard.close()
            shard = _TarOut(root / "shards" / f"train-{k // 64:04d}.tar")
        assert shard is not None
        shard.add(f"{k:06d}.jpg", (folder / f"{k:06d}.jpg").read_bytes())
        shard.add(f"{k:06d}.cls", str(k % CLASSES).encode())
    if shard is not None:
        shard.close()


class _TarOut:
    """A plain tar file written member by member (the WebDataset layout: key.ext members in sample order)."""

    def __init__(self, path: Path):
        self.tar = tarfile.open(path, "w")

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        self.tar.close()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def data_rate(dataset: ImageData, batch: int, workers: int, device: torch.device,
              augment: BatchAugment | None) -> float:
    """Images/s of one epoch of `iterate_pixels` (official crops), worker start-up included, optionally with the
    batches moved to `device` and augmented there."""
    crop = AUGMENTS["official"].crop_spec()
    start = time.perf_counter()
    n = 0
    for step, (pixels, labels) in enumerate(iterate_pixels(dataset, range(len(dataset)), batch, workers=workers,
                                                           crop=crop, seed=0, epoch=0,
                                                           pin_memory=device.type == "cuda")):
        if augment is not None:
            out = augment(pixels.to(device, non_blocking=True), labels.to(device, non_blocking=True), step)
            out.inputs.sum().item()  # wait for the device
        n += len(labels)
    _sync(device)
    return n / (time.perf_counter() - start)


def middle_arch(space: SearchSpace) -> Arch:
    """A subnet drawn uniformly among those within 5% of the middle of the space's FLOPs range."""
    lo, hi = flops_range(space)
    mid = (lo + hi) / 2
    return archs(sample_in_window(space, mid * 0.95, mid * 1.05, 1, seed=0), space)[0]


def step_seconds(model: ElasticViTSupernet, arch: Arch, batch: int, device: torch.device, steps: int) -> float:
    """Median seconds of one forward + cross-entropy + backward of `arch` on a random batch (after one warm-up)."""
    space = model.space
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, space.crop_size, space.crop_size, generator=g).to(device)
    y = torch.randint(0, space.num_classes, (batch,), generator=g).to(device)
    model.set_active(arch)
    model.train()
    times = []
    for k in range(steps + 1):
        _sync(device)
        start = time.perf_counter()
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        _sync(device)
        if k:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _report(label: str, value: float, quiet: bool) -> float:
    if not quiet:
        print(f"  {label:<44} {value:10,.1f} images/s", flush=True)
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="tiny", help="search space (tiny: crop 32; elasticvit: crop 224)")
    ap.add_argument("--images", type=int, default=256, help="synthetic JPEGs in the data-path epoch")
    ap.add_argument("--image-size", default="500x375", help="width x height of the synthetic JPEGs")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", default="0,1,2", help="comma-separated DataLoader worker counts")
    ap.add_argument("--steps", type=int, default=3, help="timed training steps per subnet")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: CUDA is not available")
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    space = get_space(args.space)
    width, height = (int(v) for v in args.image_size.lower().split("x"))
    worker_counts = [int(w) for w in args.workers.split(",")]
    quiet = args.json
    augment = BatchAugment(AUGMENTS["official"], space.num_classes)

    data_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_images(root, args.images, (width, height))
        sources: dict[str, ImageData] = {"folder": ImageFolder.scan(root / "folder", space.crop_size),
                                         "shards": TarShards.scan(root / "shards", space.crop_size)}
        if not quiet:
            print(f"space {space.name}, crop {space.crop_size}, device {device}, batch {args.batch}, "
                  f"{args.images} JPEGs of {width}x{height}, {torch.get_num_threads()} torch threads")
            print("(a) data path, one epoch (official crops; + BatchAugment on the device)")
        for name, dataset in sources.items():
            for workers in worker_counts:
                crops = _report(f"{name:<7} workers {workers}  decode + crop",
                                data_rate(dataset, args.batch, workers, device, None), quiet)
                full = _report(f"{name:<7} workers {workers}  + to {device.type} + augment",
                               data_rate(dataset, args.batch, workers, device, augment), quiet)
                data_rows.append({"source": name, "workers": workers, "crop_images_per_s": crops,
                                  "augmented_images_per_s": full})
        for dataset in sources.values():
            if isinstance(dataset, TarShards):
                dataset.close()

    if not quiet:
        print(f"(b) one training step (forward + backward) of one subnet, batch {args.batch}")
    model = ElasticViTSupernet(space).to(device)
    step_rows: list[dict[str, Any]] = []
    for role, arch in (("min", min_arch(space)), ("middle", middle_arch(space)), ("max", max_arch(space))):
        seconds = step_seconds(model, arch, args.batch, device, args.steps)
        mflops = arch_mflops(arch, space)
        step_rows.append({"subnet": role, "mflops": mflops, "resolution": arch.resolution, "step_s": seconds,
                          "images_per_s": args.batch / seconds})
        if not quiet:
            print(f"  {role:<7} {mflops:8.1f} MFLOPs at {arch.resolution:3d}px  {seconds * 1000:9.1f} ms/step"
                  f"  {args.batch / seconds:10,.1f} images/s", flush=True)

    best = max(data_rows, key=lambda r: r["augmented_images_per_s"])
    plan_rate = args.batch / sum(r["step_s"] for r in step_rows)
    limit = "the data path" if best["augmented_images_per_s"] < plan_rate else "the training step"
    verdict = {"best_data": best, "min_middle_max_step_images_per_s": plan_rate, "limited_by": limit}
    if args.json:
        print(json.dumps({**header("training-throughput", 1), "space": space.name, "device": str(device),
                          "batch": args.batch, "images": args.images, "image_size": [width, height],
                          "data": data_rows, "steps": step_rows, **verdict}, indent=2))
        return
    print(f"best data path: {best['augmented_images_per_s']:,.1f} images/s ({best['source']}, {best['workers']} "
          f"workers); a step of min+middle+max subnets: {plan_rate:,.1f} images/s -> limited by {limit}")


if __name__ == "__main__":
    main()
