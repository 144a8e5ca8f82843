"""Training and evaluation images at the space's `crop_size` (the model resizes them to the subnet's resolution).

Sources (`open_split`):

- ``digits``: scikit-learn's bundled 8x8 digits (1,797 images), for tests that must run in seconds;
- ``fashion-mnist``: the Debian package `dataset-fashion-mnist` (idx files under /usr/share/datasets/fashion-mnist);
- a directory: MNIST-format idx files (``train-images-idx3-ubyte[.gz]`` ...), else WebDataset ``.tar`` shards
  (`shards.TarShards`), else an ImageFolder tree (one subfolder of images per class). ``train/`` and ``val/`` (and
  ``test/``) subfolders, of shards or of class folders, are used as those splits when present, as on ImageNet.

Splits: "train" and "val" are a seeded split of the training images (``val_fraction`` held out) unless the source has
its own val set; "test" is the idx test files or the ``test/`` subfolder.

Two views of a split:

- `iterate_pixels` (training): uint8 pixels and labels. With a `CropSpec`, every item gets a RandomResizedCrop seeded
  by (run seed, epoch, dataset index), the same whatever the worker count or resume point; image folders and tar
  shards decode and crop in DataLoader workers (PIL), in-memory images crop batched. The uint8 batch goes to the
  device, where the rest of the augmentation and the normalisation run batched (`batch_augment.BatchAugment`).
- `iterate_batches` (evaluation, calibration): normalised float fixed crops, no augmentation (official
  `util/data_loader.py`: resize of the short side to crop x 256/224, bicubic, then a centre crop; ImageNet mean/std).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..errors import BadInput
from .crop import CropSpec, crop_pil, random_resized_crop
from .rng import derive_seed

if TYPE_CHECKING:
    from PIL import Image

    from .shards import TarShards

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_RATIO = 256 / 224  # official `util/data_loader.py`: resize 256, centre crop 224
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")
SPLITS = ("train", "val", "test")
_IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

Batch = tuple[torch.Tensor, torch.Tensor]


class DataError(BadInput):
    """A data source that cannot be read; the message says which file and why, or what to install."""


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 ``(..., 3, H, W)`` (or 1 grey channel, repeated) to float32 normalised with the ImageNet statistics."""
    x = pixels.float().div_(255.0)
    if x.shape[-3] == 1:
        x = x.expand(*x.shape[:-3], 3, *x.shape[-2:])
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def resize_pixels(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``(N, C, h, w)`` images resized to ``size x size`` (bilinear, antialiased when shrinking)."""
    if pixels.shape[-1] == size and pixels.shape[-2] == size:
        return pixels
    out = []
    for chunk in pixels.split(4096):
        y = F.interpolate(chunk.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out.append(y.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


class TensorImages(Dataset):
    """Images held in memory as uint8 ``(N, C, crop, crop)`` (C = 1 grey or 3) with int64 labels."""

    def __init__(self, pixels: torch.Tensor, labels: torch.Tensor, classes: Sequence[str]):
        if len(pixels) != len(labels):
            raise DataError(f"{len(pixels)} images but {len(labels)} labels")
        self.pixels, self.labels, self.classes = pixels, labels.long(), tuple(classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return normalize(self.pixels[i]), int(self.labels[i])

    def take(self, indices: Sequence[int] | torch.Tensor) -> Batch:
        """A whole batch of normalised images by indexing (no per-item collation)."""
        pixels, labels = self.take_pixels(indices)
        return normalize(pixels), labels

    def take_pixels(self, indices: Sequence[int] | torch.Tensor, crop: CropSpec | None = None,
                    seeds: Sequence[int] = ()) -> Batch:
        """uint8 pixels and labels of `indices`; with `crop`, item n randomly cropped with ``seeds[n]`` (batched)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        pixels = self.pixels[idx]
        if crop is not None:
            pixels = random_resized_crop(pixels, pixels.shape[-1], crop, seeds)
        return pixels, self.labels[idx]

    def subset(self, indices: torch.Tensor) -> TensorImages:
        return TensorImages(self.pixels[indices], self.labels[indices], self.classes)


def fixed_crop_pil(image: Image.Image, size: int) -> Image.Image:
    """The evaluation crop: short side resized to size x 256/224 (bicubic), then the centre ``size x size``."""
    from PIL import Image

    w, h = image.size
    scale = round(size * RESIZE_RATIO) / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BICUBIC)
    left, top = (image.size[0] - size) // 2, (image.size[1] - size) // 2
    return image.crop((left, top, left + size, top + size))


def image_pixels(image: Image.Image, size: int, crop: CropSpec | None, seed: int) -> torch.Tensor:
    """A decoded PIL image as uint8 RGB ``(3, size, size)``: the random crop `crop` seeded `seed`, or the fixed
    evaluation crop when `crop` is None."""
    rgb = image.convert("RGB")
    out = crop_pil(rgb, size, crop, seed) if crop is not None else fixed_crop_pil(rgb, size)
    return torch.from_numpy(np.array(out, dtype=np.uint8)).permute(2, 0, 1).contiguous()


class ImageFolder(Dataset):
    """Class subfolders of image files, read lazily with PIL. Items (`__getitem__`) are normalised fixed crops;
    `read` gives uint8 pixels with the fixed or a random crop."""

    def __init__(self, files: Sequence[Path], labels: Sequence[int], classes: Sequence[str], crop: int):
        self.files, self.labels, self.classes, self.crop = list(files), list(labels), tuple(classes), crop

    @classmethod
    def scan(cls, root: Path, crop: int) -> ImageFolder:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        files, labels = [], []
        for label, name in enumerate(classes):
            for f in sorted((root / name).rglob("*")):
                if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
                    files.append(f)
                    labels.append(label)
        if not files:
            raise DataError(f"{root}: no images found (expected one subfolder of images per class, "
                            "or WebDataset .tar shards)")
        return cls(files, labels, classes, crop)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        pixels, label = self.read(i)
        return normalize(pixels), label

    def read(self, i: int, crop: CropSpec | None = None, seed: int = 0) -> tuple[torch.Tensor, int]:
        """uint8 ``(3, crop, crop)`` pixels of image `i` (random crop `crop` seeded `seed`, else the fixed crop) and
        its label."""
        from PIL import Image

        try:
            with Image.open(self.files[i]) as opened:
                pixels = image_pixels(opened, self.crop, crop, seed)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"{self.files[i]}: cannot read image ({e})") from None
        return pixels, self.labels[i]

    def subset(self, indices: torch.Tensor) -> ImageFolder:
        idx = indices.tolist()
        return ImageFolder([self.files[i] for i in idx], [self.labels[i] for i in idx], self.classes, self.crop)


ImageData: TypeAlias = "TensorImages | ImageFolder | TarShards"


def load_digits_images(crop: int) -> TensorImages:
    """scikit-learn's 8x8 digits (values 0-16) as grey uint8 images resized to `crop`."""
    from sklearn.datasets import load_digits

    d = load_digits()
    grey = torch.from_numpy(np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    return TensorImages(resize_pixels(grey, crop), torch.from_numpy(d.target), [str(i) for i in range(10)])


def _idx_path(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _read_idx(path: Path, dims: int) -> np.ndarray:
    """An idx file (MNIST format: big-endian magic 0x08 0x<dims>, the sizes, then uint8 data)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    header = 4 + 4 * dims
    if len(raw) < header or raw[:3] != b"\x00\x00\x08" or raw[3] != dims:
        raise DataError(f"{path}: not an idx file of {dims}-dimensional uint8 data")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    if len(raw) - header != int(np.prod(shape)):
        raise DataError(f"{path}: truncated ({len(raw) - header} data bytes for shape {shape})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def has_idx_files(directory: Path) -> bool:
    return _idx_path(directory, _IDX_FILES["train"][0]) is not None


def load_idx_images(directory: Path, part: str, crop: int, classes: Sequence[str] | None = None) -> TensorImages:
    """The "train" or "test" part of an MNIST-format directory as grey images resized to `crop`."""
    paths = [_idx_path(directory, stem) for stem in _IDX_FILES[part]]
    image_path, label_path = paths
    if image_path is None or label_path is None:
        missing = [s for s, p in zip(_IDX_FILES[part], paths, strict=True) if p is None]
        raise DataError(f"{directory}: missing {', '.join(missing)}[.gz]")
    images, labels = _read_idx(image_path, 3), _read_idx(label_path, 1)
    names = tuple(classes) if classes else tuple(str(i) for i in range(int(labels.max()) + 1))
    grey = torch.from_numpy(images.copy()).unsqueeze(1)
    return TensorImages(resize_pixels(grey, crop), torch.from_numpy(labels.astype(np.int64)), names)


def seeded_split(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) index tensors: a permutation seeded by `seed`, the first round(n x val_fraction) held out."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(n * val_fraction))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def _pool(source: str, part: str, crop: int) -> ImageData:
    """The images of a source before the train/val split (`part` "train" or "test")."""
    if source == "digits":
        if part == "test":
            raise DataError("digits has no test split (use val)")
        return load_digits_images(crop)
    if source == "fashion-mnist":
        if not has_idx_files(FASHION_MNIST_DIR):
            raise DataError(f"Fashion-MNIST not found in {FASHION_MNIST_DIR}: install it with "
                            "`apt-get install dataset-fashion-mnist` (or give the directory of its idx files)")
        return load_idx_images(FASHION_MNIST_DIR, part, crop, FASHION_MNIST_CLASSES)
    root = Path(source)
    if not root.is_dir():
        raise DataError(f"{source}: not digits, fashion-mnist or a directory")
    if has_idx_files(root):
        return load_idx_images(root, part, crop)
    if part == "test":
        if not (root / "test").is_dir():
            raise DataError(f"{root}: no test/ subfolder")
        return scan_directory(root / "test", crop)
    return scan_directory(root / "train" if (root / "train").is_dir() else root, crop)


def scan_directory(directory: Path, crop: int) -> ImageFolder | TarShards:
    """WebDataset shards when `directory` holds ``.tar`` files, else an ImageFolder tree."""
    from .shards import TarShards, has_shards

    return TarShards.scan(directory, crop) if has_shards(directory) else ImageFolder.scan(directory, crop)


def open_split(source: str, split: str, crop: int, seed: int = 0, val_fraction: float = 0.1) -> ImageData:
    """One split of a source as fixed `crop` x `crop` images (see the module docstring)."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
    root = Path(source)
    own_val = source not in ("digits", "fashion-mnist") and (root / "train").is_dir() and (root / "val").is_dir()
    if split == "test" or (own_val and split == "train"):
        return _pool(source, split if split == "test" else "train", crop)
    if own_val:
        return scan_directory(root / "val", crop)
    pool = _pool(source, "train", crop)
    train, val = seeded_split(len(pool), val_fraction, seed)
    return pool.subset(train if split == "train" else val)


def epoch_indices(dataset: ImageData, epoch: int, seed: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """This rank's shuffled indices for `epoch` (torch's DistributedSampler: seed + epoch, tail dropped so every rank
    gets the same count)."""
    sampler: DistributedSampler[int] = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                                          seed=seed, drop_last=True)
    sampler.set_epoch(epoch)
    return list(sampler)


def iterate_batches(dataset: ImageData, indices: Sequence[int], batch_size: int, workers: int = 0,
                    drop_last: bool = False) -> Iterator[Batch]:
    """Batches of (normalised images, labels) in the order of `indices`: in-memory images by direct indexing,
    image folders through a DataLoader with `workers` processes."""
    if isinstance(dataset, TensorImages):
        stop = len(indices) - len(indices) % batch_size if drop_last else len(indices)
        for i in range(0, stop, batch_size):
            yield dataset.take(indices[i:i + batch_size])
        return
    yield from _loaded(DataLoader(dataset, batch_size=batch_size, sampler=list(indices), num_workers=workers,
                                  drop_last=drop_last))


def _loaded(loader: DataLoader) -> Iterator[Batch]:
    """`loader`'s batches; a `DataError` raised in a worker process (which torch re-raises with the worker's
    traceback in its message) comes out as the worker's own one-line error."""
    try:
        yield from loader
    except DataError as e:
        text = str(e.args[0]) if e.args else ""
        last = text.strip().splitlines()[-1] if text.strip() else "a data-loading worker failed"
        raise DataError(last.removeprefix(f"{DataError.__module__}.DataError: ").removeprefix("DataError: ")) \
            from None


class _Reader(Dataset):
    """A file-backed dataset read as uint8 pixels; keys are (dataset index, run seed, epoch), so a DataLoader worker
    derives the item's crop seed itself and needs no per-epoch state."""

    def __init__(self, dataset: ImageFolder | TarShards, crop: CropSpec | None):
        self.dataset, self.crop = dataset, crop

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[torch.Tensor, int]:
        i, seed, epoch = key
        return self.dataset.read(i, self.crop, derive_seed(seed, epoch, i) if self.crop is not None else 0)


def iterate_pixels(dataset: ImageData, indices: Sequence[int], batch_size: int, *, workers: int = 0,
                   drop_last: bool = False, crop: CropSpec | None = None, seed: int = 0, epoch: int = 0,
                   pin_memory: bool = False) -> Iterator[Batch]:
    """Batches of (uint8 ``(B, C, crop, crop)`` pixels, int64 labels) in the order of `indices` (dataset indices;
    C = 1 grey or 3). With `crop`, item i of `epoch` is randomly cropped with seed ``derive_seed(seed, epoch, i)``;
    without, the fixed crops. In-memory images crop batched here; image folders and tar shards decode and crop in a
    DataLoader with `workers` processes. `pin_memory` pins the batches for a fast copy to CUDA."""
    pin = pin_memory and torch.cuda.is_available()
    if isinstance(dataset, TensorImages):
        stop = len(indices) - len(indices) % batch_size if drop_last else len(indices)
        for start in range(0, stop, batch_size):
            chunk = [int(i) for i in indices[start:start + batch_size]]
            seeds = [derive_seed(seed, epoch, i) for i in chunk] if crop is not None else []
            pixels, labels = dataset.take_pixels(chunk, crop, seeds)
            yield (pixels.pin_memory(), labels.pin_memory()) if pin else (pixels, labels)
        return
    keys: list[Any] = [(int(i), seed, epoch) for i in indices]
    # an own generator: the DataLoader draws its workers' base seed from it, not from the global torch RNG
    generator = torch.Generator().manual_seed(derive_seed(seed, epoch))
    yield from _loaded(DataLoader(_Reader(dataset, crop), batch_size=batch_size, sampler=keys, num_workers=workers,
                                  drop_last=drop_last, pin_memory=pin, generator=generator))
