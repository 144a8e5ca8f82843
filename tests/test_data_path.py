"""The training data path: seeded RandomResizedCrop (box statistics, batched = per item = PIL), `iterate_pixels`
(same batches whatever the worker count or resume point), and WebDataset tar shards read by offset (checked against
an ImageFolder of the same images and against webdataset's own reader)."""

import io
import math
import tarfile

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

from supernet.training.crop import CropSpec, crop_box, crop_pil, random_resized_crop
from supernet.training.data import (
    DataError,
    ImageFolder,
    TensorImages,
    image_pixels,
    iterate_batches,
    iterate_pixels,
    normalize,
    open_split,
)
from supernet.training.shards import TarShards

torch.set_num_threads(1)
SPEC = CropSpec()


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    """Smooth RGB images of assorted sizes (upscaled noise, so crops of different boxes differ)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        w, h = (48 + 8 * (k % 3), 40 + 6 * (k % 4))
        small = Image.fromarray(rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8))
        out.append(small.resize((w, h), Image.Resampling.BICUBIC))
    return out


def _shards(directory, images, labels, per_shard=4, ext="png", start=0):
    """WebDataset shards written with webdataset's own TarWriter; returns the keys in order."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = []
    for s in range(0, len(images), per_shard):
        with wds.TarWriter(str(directory / f"part-{(start + s) // per_shard:04d}.tar")) as sink:
            for k in range(s, min(s + per_shard, len(images))):
                key = f"sample{start + k:05d}"
                name = ext if isinstance(ext, str) else ext[k]
                sink.write({"__key__": key, name: _encoded(images[k], "WEBP") if name == "webp" else images[k],
                            "cls": labels[k]})
                keys.append(key)
    return keys


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def _folder(root, images, labels, keys):
    for im, label, key in zip(images, labels, keys, strict=True):
        (root / f"c{label}").mkdir(parents=True, exist_ok=True)
        im.save(root / f"c{label}" / f"{key}.png")


def test_crop_box_follows_torchvision_and_is_seeded():
    boxes = [crop_box(300, 400, SPEC, s) for s in range(600)]
    for top, left, h, w in boxes:
        assert 0 <= top and 0 <= left and 0 < h and 0 < w and top + h <= 300 and left + w <= 400
    assert boxes == [crop_box(300, 400, SPEC, s) for s in range(600)]  # seeded
    assert len(set(boxes)) > 590
    areas = np.array([h * w / (300 * 400) for _, _, h, w in boxes])
    assert areas.min() < 0.1 and areas.max() > 0.9 and 0.35 < np.median(areas) < 0.65
    log_ratios = np.array([math.log(w / h) for _, _, h, w in boxes])
    assert log_ratios.min() < -0.2 and log_ratios.max() > 0.2 and abs(log_ratios.mean()) < 0.06

    # fixed area and ratio: a 50 x 50 box placed uniformly
    fixed = CropSpec(scale=(0.25, 0.25), ratio=(1.0, 1.0))
    placed = [crop_box(100, 100, fixed, s) for s in range(400)]
    assert {(h, w) for _, _, h, w in placed} == {(50, 50)}
    tops = np.array([t for t, _, _, _ in placed])
    assert tops.min() <= 2 and tops.max() >= 48 and 20 < tops.mean() < 30

    # no box fits: the central crop clamped to the ratio range
    impossible = CropSpec(scale=(2.0, 3.0))
    assert crop_box(100, 400, impossible, 0) == (0, (400 - 133) // 2, 100, 133)
    assert crop_box(400, 100, impossible, 0) == ((400 - 133) // 2, 0, 133, 100)
    assert crop_box(100, 120, impossible, 0) == (0, 0, 100, 120)
    with pytest.raises(ValueError, match="interpolation"):
        CropSpec(interpolation="lanczos")


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear", "nearest"])
def test_batched_crop_equals_per_item_crops_and_pil(interpolation):
    spec = CropSpec(interpolation=interpolation)
    images = [im.resize((64, 48)) for im in _images(5)]
    pixels = torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in images])
    seeds = [11, 12, 13, 14, 15]
    batch = random_resized_crop(pixels, 40, spec, seeds)
    assert batch.dtype == torch.uint8 and batch.shape == (5, 3, 40, 40)
    for k, (im, seed) in enumerate(zip(images, seeds, strict=True)):
        assert torch.equal(batch[k], random_resized_crop(pixels[k:k + 1], 40, spec, [seed])[0])
        top, left, h, w = crop_box(48, 64, spec, seed)
        assert crop_pil(im, 40, spec, seed).size == (40, 40)
        pil = torch.from_numpy(np.array(crop_pil(im, 40, spec, seed))).permute(2, 0, 1)
        diff = (batch[k].int() - pil.int()).abs()
        assert diff.max() <= (0 if interpolation == "nearest" else 1) and diff.float().mean() < 0.3
        if (h, w) == (40, 40) and interpolation == "nearest":
            assert torch.equal(batch[k], pixels[k, :, top:top + h, left:left + w])
    assert not torch.equal(batch[0], random_resized_crop(pixels[:1], 40, spec, [99])[0])


def _collect(batches):
    out = [(x.clone(), y.clone()) for x, y in batches]
    return torch.cat([x for x, _ in out]), torch.cat([y for _, y in out]), [len(y) for _, y in out]


def test_iterate_pixels_is_the_same_for_any_worker_count_and_resume_point(tmp_path):
    images, labels = _images(10), [k % 3 for k in range(10)]
    _folder(tmp_path / "folder", images, labels, [f"im{k}" for k in range(10)])
    folder = ImageFolder.scan(tmp_path / "folder", 32)
    order = [7, 2, 9, 0, 4, 5, 1, 8, 3, 6]
    state = torch.get_rng_state()
    x0, y0, sizes = _collect(iterate_pixels(folder, order, 4, crop=SPEC, seed=3, epoch=1))
    assert torch.equal(torch.get_rng_state(), state)  # the global torch RNG is not used
    assert x0.dtype == torch.uint8 and x0.shape == (10, 3, 32, 32) and sizes == [4, 4, 2]
    assert y0.tolist() == [folder.labels[i] for i in order]
    x2, y2, _ = _collect(iterate_pixels(folder, order, 4, workers=2, crop=SPEC, seed=3, epoch=1))
    assert torch.equal(x0, x2) and torch.equal(y0, y2)
    resumed, _, _ = _collect(iterate_pixels(folder, order[4:], 4, crop=SPEC, seed=3, epoch=1))
    assert torch.equal(resumed, x0[4:])
    single = torch.stack([folder.read(i, SPEC, 0)[0] for i in order])  # not the batch's seeds
    assert not torch.equal(single, x0)
    other_epoch, _, _ = _collect(iterate_pixels(folder, order, 4, crop=SPEC, seed=3, epoch=2))
    assert all(not torch.equal(a, b) for a, b in zip(other_epoch, x0, strict=True))
    _, _, dropped = _collect(iterate_pixels(folder, order, 4, drop_last=True, crop=SPEC, seed=3, epoch=1))
    assert dropped == [4, 4]

    fixed, _, _ = _collect(iterate_pixels(folder, order, 4))  # no crop: the evaluation crops, normalised there
    evaluation = torch.cat([x for x, _ in iterate_batches(folder, order, 4)])
    assert torch.equal(normalize(fixed), evaluation) and torch.equal(normalize(folder.read(7)[0]), folder[7][0])


def test_in_memory_images_crop_batched_with_the_same_seeds():
    digits = open_split("digits", "train", 32, seed=0)
    assert isinstance(digits, TensorImages)
    order = list(range(40, 0, -3))
    x, y, _ = _collect(iterate_pixels(digits, order, 5, crop=SPEC, seed=1, epoch=0))
    assert x.dtype == torch.uint8 and x.shape == (len(order), 1, 32, 32)  # grey stays one channel
    assert y.tolist() == digits.labels[order].tolist()
    resumed, _, _ = _collect(iterate_pixels(digits, order[5:], 5, crop=SPEC, seed=1, epoch=0))
    assert torch.equal(resumed, x[5:])
    from supernet.training.rng import derive_seed

    one = random_resized_crop(digits.pixels[order[3]:order[3] + 1], 32, SPEC, [derive_seed(1, 0, order[3])])
    assert torch.equal(x[3:4], one)
    other, _, _ = _collect(iterate_pixels(digits, order, 5, crop=SPEC, seed=1, epoch=1))
    assert not torch.equal(other, x)
    plain, _, _ = _collect(iterate_pixels(digits, order, 5))
    assert torch.equal(plain, digits.pixels[order]) and torch.equal(normalize(plain), digits.take(order)[0])


def test_tar_shards_read_as_the_same_images_as_a_folder_and_as_webdataset(tmp_path, monkeypatch):
    images, labels = _images(9, seed=1), [k % 4 for k in range(9)]
    keys = _shards(tmp_path / "shards", images, labels)
    _folder(tmp_path / "folder", images, labels, keys)
    shards, folder = TarShards.scan(tmp_path / "shards", 32), ImageFolder.scan(tmp_path / "folder", 32)
    assert len(shards) == 9 and len(shards.shards) == 3 and shards.num_classes == 4
    assert shards.classes == ("0", "1", "2", "3") and shards.labels == labels
    assert [s.key for s in shards.samples] == keys
    by_name = {f.stem: i for i, f in enumerate(folder.files)}
    for i, key in enumerate(keys):
        j = by_name[key]
        for crop, seed in ((None, 0), (SPEC, 5), (CropSpec(interpolation="bilinear"), 6)):
            a, la = shards.read(i, crop, seed)
            b, lb = folder.read(j, crop, seed)
            assert torch.equal(a, b) and la == lb == labels[i]
        assert torch.equal(shards[i][0], folder[j][0])

    oracle = list(wds.WebDataset(sorted(str(p) for p in (tmp_path / "shards").glob("*.tar")), shardshuffle=False))
    assert [s["__key__"] for s in oracle] == keys
    assert [int(s["cls"]) for s in oracle] == labels
    for i, s in enumerate(oracle):
        decoded = image_pixels(Image.open(io.BytesIO(s["png"])), 32, SPEC, 9)
        assert torch.equal(decoded, shards.read(i, SPEC, 9)[0])

    monkeypatch.setattr("supernet.training.shards.MAX_OPEN_SHARDS", 2)
    again = TarShards.scan(tmp_path / "shards", 32)
    for i in (0, 5, 8, 1, 4):  # shards 0, 1, 2, 0, 1: the least recently used handle closes
        assert torch.equal(again.read(i)[0], shards.read(i)[0])
        assert len(again._fds) <= 2
    assert list(again._fds) == [0, 1]
    again.close()
    assert not again._fds

    sub = shards.subset(torch.tensor([8, 0]))
    assert sub.labels == [labels[8], labels[0]] and sub.classes == shards.classes
    assert torch.equal(sub.read(0, SPEC, 2)[0], shards.read(8, SPEC, 2)[0])
    x, y, _ = _collect(iterate_pixels(shards, [3, 1, 7, 5], 2, workers=2, crop=SPEC, seed=4, epoch=0))
    x0, y0, _ = _collect(iterate_pixels(shards, [3, 1, 7, 5], 2, crop=SPEC, seed=4, epoch=0))
    assert torch.equal(x, x0) and y.tolist() == y0.tolist() == [labels[i] for i in (3, 1, 7, 5)]


def test_jpeg_shards_and_mixed_member_names(tmp_path):
    images = _images(4, seed=2)
    keys = _shards(tmp_path, images, [1, 0, 1, 0], per_shard=4, ext=["jpg", "JPEG", "png", "webp"])
    shards = TarShards.scan(tmp_path, 32)
    oracle = list(wds.WebDataset([str(tmp_path / "part-0000.tar")], shardshuffle=False))
    assert [s["__key__"] for s in oracle] == [s.key for s in shards.samples] == keys
    for i, (sample, ext) in enumerate(zip(oracle, ["jpg", "jpeg", "png", "webp"], strict=True)):
        assert torch.equal(shards.read(i)[0], image_pixels(Image.open(io.BytesIO(sample[ext])), 32, None, 0))


def _raw_tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _png() -> bytes:
    return _encoded(_images(1)[0], "PNG")


def _error(directory) -> str:
    with pytest.raises(DataError) as info:
        TarShards.scan(directory, 32)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_shards_fail_with_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no .tar shards" in _error(tmp_path / "empty")
    with pytest.raises(DataError, match="no images found"):
        open_split(str(tmp_path / "empty"), "train", 32)

    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "a.tar").write_bytes(b"this is not a tar file" * 40)
    assert "a.tar: not a readable tar file" in _error(tmp_path / "corrupt")

    (tmp_path / "truncated").mkdir()
    _raw_tar(tmp_path / "truncated" / "a.tar", [("k1.png", _png()), ("k1.cls", b"1")])
    whole = (tmp_path / "truncated" / "a.tar").read_bytes()
    (tmp_path / "truncated" / "a.tar").write_bytes(whole[:700])
    assert "a.tar" in _error(tmp_path / "truncated")

    for name, members, expected in (
            ("nolabel", [("k1.png", _png()), ("k1.cls", b"0"), ("k2.png", _png())], "a.tar: sample 'k2' has no cls"),
            ("badlabel", [("k1.png", _png()), ("k1.cls", b"cat")], "sample 'k1': label b'cat' is not an integer"),
            ("noimage", [("k1.txt", b"hello"), ("k1.cls", b"3")], "sample 'k1' has no image"),
            ("twice", [("k1.png", _png()), ("k1.PNG", _png()), ("k1.cls", b"3")], "two 'png' members")):
        (tmp_path / name).mkdir()
        _raw_tar(tmp_path / name / "a.tar", members)
        assert expected in _error(tmp_path / name)

    (tmp_path / "undecodable").mkdir()
    _raw_tar(tmp_path / "undecodable" / "a.tar", [("k1.jpg", b"\xff\xd8 not really a jpeg"), ("k1.cls", b"2"),
                                                 ("__meta__", b"skipped"), ("k2.png", _png()), ("k2.cls", b" 1\n")])
    shards = TarShards.scan(tmp_path / "undecodable", 32)
    assert shards.labels == [2, 1] and shards.read(1)[0].shape == (3, 32, 32)
    with pytest.raises(DataError, match=r"^a\.tar: sample 'k1': cannot decode image") as info:
        shards.read(0)
    assert "\n" not in str(info.value)


def test_shard_sources_in_open_split_and_a_training_run(tmp_path):
    images = _images(16, seed=3)
    labels = [k % 10 for k in range(16)]
    root = tmp_path / "imagenet"
    _shards(root / "train", images[:12], labels[:12], per_shard=5)
    _shards(root / "val", images[12:], labels[12:], per_shard=5, start=12)
    train, val = open_split(str(root), "train", 32), open_split(str(root), "val", 32)
    assert isinstance(train, TarShards) and isinstance(val, TarShards)
    assert (len(train), len(val), train.num_classes) == (12, 4, 10)
    with pytest.raises(DataError, match="no test/ subfolder"):
        open_split(str(root), "test", 32)

    flat = open_split(str(root / "train"), "train", 32, seed=0, val_fraction=0.25)
    held = open_split(str(root / "train"), "val", 32, seed=0, val_fraction=0.25)
    assert isinstance(flat, TarShards) and (len(flat), len(held)) == (9, 3)
    assert flat.classes == held.classes == tuple(str(i) for i in range(10))

    from supernet.training.train_config import TrainConfig
    from supernet.training.trainer import Trainer

    config = TrainConfig.from_dict({"data": str(root), "space": "tiny", "batch_size": 4, "epochs": 1,
                                    "warmup_epochs": 0, "steps": 2, "save_every": 0, "log_every": 1,
                                    "output_dir": str(tmp_path / "run"),
                                    "sampler_options": {"bank_size": 4, "big_bank_size": 2, "q0": 0.5}})
    trainer = Trainer(config)
    assert isinstance(trainer.train_set, TarShards)
    results = [trainer.train_step() for _ in range(2)]
    assert trainer.step == 2 and all(np.isfinite(r.losses).all() for r in results)
