"""WebDataset ``.tar`` shards as a map-style dataset (random access, so exact resume and `DistributedSampler` work).

A shard source is a directory of ``*.tar`` files (read in name order). Members group into samples by WebDataset's
rule: consecutive regular files with the same key, the key being the member path up to the first '.' of its basename
and the rest its extension (lower-cased); ``__*__`` metadata members are skipped. A sample's image is its first
``jpg``/``jpeg``/``png``/``webp``/``ppm``/``bmp`` member, its label the ASCII integer in ``cls``.

The tars are read here with Python's `tarfile`, headers only: `scan` records each image's (shard, offset, size)
and reads the small ``cls`` members; items are read later by offset. Nothing is extracted to disk and nothing is
unpickled (webdataset's default decoders unpickle ``.pyd``/``.pth`` members).
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..arch import shorten
from .crop import CropSpec
from .data import DataError, image_pixels, normalize

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "ppm", "bmp")
LABEL_EXTENSION = "cls"
_KEY_RULE = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext
_META = re.compile(r"__[^/]*__($|/)")
MAX_LABEL_BYTES = 32  # a `cls` member holds one integer; a longer one is refused
MAX_OPEN_SHARDS = 64  # per process: thousands of shards must not exhaust the file-descriptor limit


def has_shards(directory: Path) -> bool:
    """Whether `directory` holds ``.tar`` files (then it is a shard source)."""
    return any(p.is_file() for p in directory.glob("*.tar"))


@dataclass(frozen=True)
class ShardSample:
    """Where one sample's image lies: shard number, byte offset and size of the image member, and the label."""

    shard: int
    key: str
    offset: int
    size: int
    label: int


def _split_key(name: str) -> tuple[str, str] | None:
    if ("/" not in name and name.startswith("__") and name.endswith("__")) or _META.match(name):
        return None
    match = _KEY_RULE.match(name)
    return (match.group(1), match.group(2).lower()) if match else None


def _label(shard: Path, key: str, raw: bytes | None) -> int:
    if raw is None:
        raise DataError(f"{shard.name}: sample {shorten(key)} has no {LABEL_EXTENSION} label")
    if len(raw) > MAX_LABEL_BYTES:
        raise DataError(f"{shard.name}: sample {shorten(key)}: the {LABEL_EXTENSION} member is longer than "
                        f"{MAX_LABEL_BYTES} bytes, not one integer")
    try:
        label = int(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise DataError(f"{shard.name}: sample {shorten(key)}: label {raw[:20]!r} is not an integer") from None
    if label < 0:
        raise DataError(f"{shard.name}: sample {shorten(key)}: label {label} is negative")
    return label


def scan_shard(path: Path, number: int) -> list[ShardSample]:
    """The samples of one shard in member order (headers and ``cls`` members read; images located, not read)."""
    size = path.stat().st_size
    samples: list[ShardSample] = []
    key: str | None = None
    members: dict[str, tarfile.TarInfo] = {}
    label_raw: bytes | None = None

    def close_sample() -> None:
        if key is None:
            return
        image = next((members[e] for e in members if e in IMAGE_EXTENSIONS), None)
        if image is None:
            raise DataError(f"{path.name}: sample {shorten(key)} has no image ({'/'.join(IMAGE_EXTENSIONS)})")
        samples.append(ShardSample(number, key, image.offset_data, image.size, _label(path, key, label_raw)))

    try:
        with tarfile.open(path, mode="r:") as tar:
            for info in tar:
                parts = _split_key(info.name) if info.isreg() else None
                if parts is None:
                    continue
                name, ext = parts
                if info.offset_data + info.size > size:
                    raise DataError(f"{path.name}: member {shorten(info.name)} runs past the end of the file "
                                    "(truncated)")
                if name != key:
                    close_sample()
                    key, members, label_raw = name, {}, None
                if ext in members:
                    raise DataError(f"{path.name}: sample {shorten(key)} has two {ext!r} members")
                members[ext] = info
                if ext == LABEL_EXTENSION:
                    handle = tar.extractfile(info)
                    assert handle is not None  # a regular file
                    label_raw = handle.read(MAX_LABEL_BYTES + 1)  # a label is a short integer: read no more
            close_sample()
    except (tarfile.TarError, EOFError) as e:
        raise DataError(f"{path}: not a readable tar file ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    return samples


class TarShards(Dataset):
    """WebDataset shards read by offset. Items (`__getitem__`) are normalised fixed crops, as `ImageFolder`'s;
    `read` gives uint8 pixels with the fixed or a random crop. File handles open lazily in each process."""

    def __init__(self, shards: Sequence[Path], samples: Sequence[ShardSample], crop: int,
                 classes: Sequence[str] | None = None):
        self.shards, self.samples, self.crop = list(shards), list(samples), crop
        self.labels = [s.label for s in self.samples]
        self.classes = tuple(classes) if classes is not None else tuple(
            str(i) for i in range(max(self.labels, default=-1) + 1))  # num_classes = max label + 1
        self._fds: OrderedDict[int, int] = OrderedDict()  # shard number -> descriptor, least recently used first
        self._pid = os.getpid()

    @classmethod
    def scan(cls, directory: Path, crop: int) -> TarShards:
        """Every ``*.tar`` file of `directory`, in name order."""
        shards = sorted(p for p in directory.glob("*.tar") if p.is_file())
        if not shards:
            raise DataError(f"{directory}: no .tar shards found")
        samples = [s for number, path in enumerate(shards) for s in scan_shard(path, number)]
        if not samples:
            raise DataError(f"{directory}: the .tar shards hold no samples")
        return cls(shards, samples, crop)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        pixels, label = self.read(i)
        return normalize(pixels), label

    def read(self, i: int, crop: CropSpec | None = None, seed: int = 0) -> tuple[torch.Tensor, int]:
        """uint8 ``(3, crop, crop)`` pixels of sample `i` (random crop `crop` seeded `seed`, else the fixed crop)
        and its label."""
        from PIL import Image

        sample = self.samples[i]
        data = self._read_bytes(sample)
        try:
            with Image.open(io.BytesIO(data)) as opened:
                pixels = image_pixels(opened, self.crop, crop, seed)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"{self.shards[sample.shard].name}: sample {shorten(sample.key)}: cannot decode image "
                            f"({e})") from None
        return pixels, sample.label

    def _read_bytes(self, sample: ShardSample) -> bytes:
        if self._pid != os.getpid():  # a forked worker opens its own handles (the parent's stay the parent's)
            self._fds, self._pid = OrderedDict(), os.getpid()
        path = self.shards[sample.shard]
        try:
            fd = self._fds.get(sample.shard)
            if fd is None:
                if len(self._fds) >= MAX_OPEN_SHARDS:
                    os.close(self._fds.popitem(last=False)[1])
                fd = self._fds[sample.shard] = os.open(path, os.O_RDONLY)
            else:
                self._fds.move_to_end(sample.shard)
            data = os.pread(fd, sample.size, sample.offset)
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e})") from None
        if len(data) != sample.size:
            raise DataError(f"{path.name}: sample {shorten(sample.key)} is truncated")
        return data

    def subset(self, indices: torch.Tensor) -> TarShards:
        return TarShards(self.shards, [self.samples[i] for i in indices.tolist()], self.crop, self.classes)

    def close(self) -> None:
        """Close the file handles this process opened (they reopen on the next read)."""
        if self._pid == os.getpid():
            for fd in self._fds.values():
                os.close(fd)
        self._fds = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_fds"] = OrderedDict()  # no open handles travel to spawned workers
        return state

    def __del__(self) -> None:
        try:
            self.close()
        except (OSError, TypeError, AttributeError):  # at interpreter exit `os` may be gone already
            pass
