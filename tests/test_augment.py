"""The training augmentation (timm semantics, batched): settings, RandAugment, flip, jitter, erasing, mixing, seeds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance, ImageOps

from supernet.training import randaugment as ra
from supernet.training.augment import AUGMENTS, AugmentConfig, augment_config
from supernet.training.batch_augment import (
    AugmentedBatch,
    BatchAugment,
    color_jitter,
    erase,
    erasing_boxes,
    horizontal_flip,
    normalise,
)
from supernet.training.crop import CropSpec
from supernet.training.data import IMAGENET_MEAN, normalize
from supernet.training.mixing import Mixup, cutmix_box, smooth_one_hot
from supernet.training.train_config import ConfigError

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
NUM_CLASSES = 10


def pixels(batch: int = 16, size: int = 32, seed: int = 0, channels: int = 3) -> torch.Tensor:
    """Random, mildly smooth uint8 images (so interpolation differences stay small and no image is symmetric)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 256, (batch, channels, size, size), generator=g).float()
    return F.avg_pool2d(noise, 3, 1, 1, count_include_pad=False).round().to(torch.uint8)


def labels(batch: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, NUM_CLASSES, (batch,), generator=torch.Generator().manual_seed(seed + 1))


def unit(px: torch.Tensor) -> torch.Tensor:
    return px.float().div(255.0)


def to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(image.permute(1, 2, 0).numpy())


def from_pil(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float()


def one(value: float) -> torch.Tensor:
    return torch.tensor([value], dtype=torch.float64)


# --- settings -----------------------------------------------------------------------------------------------------

def test_official_preset_is_the_recipe():
    c = AUGMENTS["official"]
    assert (c.crop, c.crop_scale, c.crop_ratio, c.interpolation) == (True, (0.08, 1.0), (3 / 4, 4 / 3), "bicubic")
    assert (c.hflip, c.randaugment, c.color_jitter) == (0.5, "rand-n1-m1-mstd0.5-inc1", 0.4)
    assert (c.reprob, c.remode, c.recount) == (0.01, "pixel", 1)
    assert (c.mixup, c.cutmix, c.mixup_prob, c.mixup_switch_prob, c.smoothing) == (0.01, 0.01, 1.0, 0.5, 0.1)
    assert c.crop_spec() == CropSpec(scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), interpolation="bicubic")
    assert not c.uses_color_jitter  # timm: no colour jitter under RandAugment
    assert augment_config("official", {"randaugment": ""}).uses_color_jitter


def test_none_preset_switches_everything_off_and_overrides_turn_one_thing_on():
    none = AUGMENTS["none"]
    assert none.crop_spec() is None
    off = (none.hflip, none.randaugment, none.color_jitter, none.reprob, none.mixup, none.cutmix)
    assert off == (0, "", 0, 0, 0, 0)
    assert none.smoothing == 0.1 and not none.mixes
    assert augment_config("none", {"hflip": 0.5}) == dataclasses.replace(none, hflip=0.5)
    assert augment_config("none", {"crop_scale": [0.5, 1]}).crop_scale == (0.5, 1.0)
    # to_dict round-trips through the options
    assert augment_config("none", AUGMENTS["official"].to_dict()) == AUGMENTS["official"]


@pytest.mark.parametrize(("name", "options", "needle"), [
    ("fancy", {}, "fancy"),
    ("official", {"hflips": 0.5}, "hflips"),
    ("official", {"hflip": "often"}, "hflip"),
    ("official", {"hflip": True}, "hflip"),
    ("official", {"crop": 1}, "crop"),
    ("official", {"recount": 1.5}, "recount"),
    ("official", {"recount": 0}, "recount"),
    ("official", {"crop_scale": [0.1]}, "crop_scale"),
    ("official", {"crop_scale": [0.5, 0.2]}, "crop_scale"),
    ("official", {"crop_scale": [0.0, 1.0]}, "crop_scale"),
    ("official", {"crop_scale": [0.5, 1.5]}, "crop_scale"),
    ("official", {"crop_ratio": [0, 1]}, "crop_ratio"),
    ("official", {"crop_ratio": "wide"}, "crop_ratio"),
    ("official", {"interpolation": "lanczos"}, "interpolation"),
    ("official", {"remode": "blur"}, "remode"),
    ("official", {"hflip": 1.5}, "hflip"),
    ("official", {"reprob": -0.1}, "reprob"),
    ("official", {"smoothing": 2}, "smoothing"),
    ("official", {"mixup_switch_prob": float("nan")}, "mixup_switch_prob"),
    ("official", {"mixup": -1}, "mixup"),
    ("official", {"cutmix": float("inf")}, "cutmix"),
    ("official", {"color_jitter": -0.4}, "color_jitter"),
    ("official", {"randaugment": "rand-x1"}, "randaugment"),
    ("official", {"randaugment": "auto-n1"}, "randaugment"),
    ("official", {"randaugment": "rand-n1.5"}, "randaugment"),
    ("official", {"randaugment": "rand-p2"}, "randaugment"),
    ("official", {"randaugment": "rand-m"}, "randaugment"),
    ("official", {"randaugment": 7}, "randaugment"),
])
def test_bad_settings_are_config_errors_naming_the_key(name, options, needle):
    with pytest.raises(ConfigError) as err:
        augment_config(name, options)
    message = str(err.value)
    assert needle in message and "\n" not in message and len(message) < 300


def test_long_values_are_shortened_in_messages():
    with pytest.raises(ConfigError) as err:
        augment_config("official", {"remode": "x" * 5000})
    assert "remode" in str(err.value) and len(str(err.value)) < 200


# --- RandAugment: parsing ------------------------------------------------------------------------------------------

def test_parse_official_and_defaults():
    spec = ra.parse_randaugment("rand-n1-m1-mstd0.5-inc1")
    assert spec == ra.RandAugmentSpec(num_ops=1, magnitude=1, prob=0.5, magnitude_std=0.5, increasing=True)
    assert spec.ops == ra.INCREASING_OPS and len(spec.ops) == 15 and spec.upper_bound == 10
    assert ra.parse_randaugment("rand") == ra.RandAugmentSpec()  # timm: n 2, m 10, p 0.5, plain ops
    assert ra.parse_randaugment("rand").ops == ra.PLAIN_OPS
    assert ra.parse_randaugment("rand-m9-mstd101").magnitude_std == float("inf")  # uniform sampling
    other = ra.parse_randaugment("rand-inc0-p0.3-mmax20-n3")
    assert (other.increasing, other.prob, other.upper_bound, other.num_ops) == (False, 0.3, 20.0, 3)


@pytest.mark.parametrize("text", ["", "rand-", "rand-n1-n2", "rand-q3", "rand-mstdx", "rand-tweights", "rand-p0.5x"])
def test_parse_errors(text):
    with pytest.raises(ConfigError, match="randaugment"):
        ra.parse_randaugment(text)


# --- RandAugment: draws and magnitudes -----------------------------------------------------------------------------

def test_draws_are_per_image_with_noise_clipping_and_probability():
    spec = ra.parse_randaugment("rand-n2-m5-mstd2-p0.3-inc1")
    d = ra.draw(spec, 4000, torch.Generator().manual_seed(0))
    assert d.ops.shape == d.levels.shape == (2, 4000)
    assert set(d.ops.flatten().tolist()) == set(range(15))
    assert abs(d.applied.double().mean().item() - 0.3) < 0.03
    assert abs(d.levels.mean().item() - 5.0) < 0.15 and abs(d.levels.std().item() - 2.0) < 0.15
    assert set(d.signs.unique().tolist()) == {-1.0, 1.0}
    clipped = ra.draw(ra.parse_randaugment("rand-m10-mstd1"), 1000, torch.Generator().manual_seed(1)).levels
    assert clipped.max() == 10.0 and clipped.min() >= 5.0 and (clipped == 10.0).float().mean() > 0.4
    fixed = ra.draw(ra.parse_randaugment("rand-m7"), 100, torch.Generator().manual_seed(1)).levels
    assert (fixed == 7.0).all()
    uniform = ra.draw(ra.parse_randaugment("rand-m8-mstd200"), 4000, torch.Generator().manual_seed(2)).levels
    assert uniform.min() >= 0 and uniform.max() <= 8 and abs(uniform.mean().item() - 4.0) < 0.2


@pytest.mark.parametrize(("name", "level", "sign", "expected"), [
    ("Rotate", 5.0, -1.0, -15.0), ("ShearX", 10.0, 1.0, 0.3), ("ShearY", 5.0, -1.0, -0.15),
    ("TranslateXRel", 10.0, 1.0, 0.45), ("PosterizeIncreasing", 0.0, 1.0, 4), ("PosterizeIncreasing", 5.0, 1.0, 2),
    ("PosterizeIncreasing", 10.0, 1.0, 0), ("Posterize", 7.0, 1.0, 2), ("SolarizeIncreasing", 5.0, 1.0, 128),
    ("SolarizeIncreasing", 0.0, 1.0, 256), ("Solarize", 1.0, 1.0, 25), ("SolarizeAdd", 10.0, 1.0, 110),
    ("ColorIncreasing", 10.0, -1.0, 0.1), ("ContrastIncreasing", 10.0, 1.0, 1.9),
    ("BrightnessIncreasing", 5.0, -1.0, 0.55), ("Sharpness", 0.0, 1.0, 0.1), ("Color", 10.0, -1.0, 1.9),
])
def test_level_to_argument_is_timms(name, level, sign, expected):
    assert ra.op_argument(name, one(level), one(sign)).item() == pytest.approx(expected)


def test_invert_posterize_solarize_against_direct_formulas():
    px = pixels(4)
    x, v = unit(px), px.long()
    inverted = ra.apply_op("Invert", x, torch.zeros(4, dtype=torch.float64))
    assert torch.allclose(inverted, 1 - x, atol=1e-6) and torch.equal((inverted * 255).round(), (255 - v).float())
    for level, bits in ((0.0, 4), (2.5, 3), (7.5, 1), (10.0, 0)):
        arg = ra.op_argument("PosterizeIncreasing", torch.full((4,), level), torch.ones(4))
        assert (arg == bits).all()
        keep = ~(2 ** (8 - bits) - 1) & 255
        assert torch.equal(ra.apply_op("PosterizeIncreasing", x, arg) * 255, (v & keep).float())
    for level in (0.0, 3.0, 5.0, 10.0):
        t = ra.op_argument("SolarizeIncreasing", torch.full((4,), level), torch.ones(4))
        expected = torch.where(v < t[0].item(), v, 255 - v).float()
        assert torch.equal((ra.apply_op("SolarizeIncreasing", x, t) * 255).round(), expected)
    add = ra.op_argument("SolarizeAdd", torch.full((4,), 6.0), torch.ones(4))  # 66
    expected = torch.where(v < 128, (v + 66).clamp(max=255), v).float()
    assert torch.equal((ra.apply_op("SolarizeAdd", x, add) * 255).round(), expected)


@pytest.mark.parametrize(("name", "pil_op", "arg"), [
    ("AutoContrast", lambda im, _: ImageOps.autocontrast(im), 0.0),
    ("Equalize", lambda im, _: ImageOps.equalize(im), 0.0),
    ("Color", lambda im, f: ImageEnhance.Color(im).enhance(f), 0.3),
    ("Color", lambda im, f: ImageEnhance.Color(im).enhance(f), 1.7),
    ("Contrast", lambda im, f: ImageEnhance.Contrast(im).enhance(f), 0.4),
    ("Contrast", lambda im, f: ImageEnhance.Contrast(im).enhance(f), 1.8),
    ("Brightness", lambda im, f: ImageEnhance.Brightness(im).enhance(f), 0.5),
    ("Brightness", lambda im, f: ImageEnhance.Brightness(im).enhance(f), 1.6),
    ("Sharpness", lambda im, f: ImageEnhance.Sharpness(im).enhance(f), 0.2),
    ("Sharpness", lambda im, f: ImageEnhance.Sharpness(im).enhance(f), 1.9),
])
def test_pixel_ops_match_pil(name, pil_op, arg):
    """timm's ops are these PIL calls: the batched ops agree to one 8-bit level (PIL rounds its grey image)."""
    px = pixels(3, seed=4)
    px[1] = px[1] // 3 + 40  # a low-contrast image, so autocontrast and equalize have work to do
    out = ra.apply_op(name, unit(px), torch.full((3,), arg, dtype=torch.float64)) * 255
    for i in range(3):
        ref = from_pil(pil_op(to_pil(px[i]), arg))
        assert (out[i] - ref).abs().max() <= 1.0, name
    if name in ("AutoContrast", "Equalize"):
        assert torch.equal(out[1].round(), from_pil(pil_op(to_pil(px[1]), arg)))


@pytest.mark.parametrize(("name", "arg"), [
    ("Rotate", 17.0), ("Rotate", -25.0), ("ShearX", 0.2), ("ShearY", -0.25), ("TranslateXRel", 0.3),
    ("TranslateYRel", -0.21),
])
def test_geometric_ops_match_pil_away_from_the_border(name, arg):
    """Same direction, centre and fill as PIL's transforms (compared with bilinear, which both define alike)."""
    px = pixels(1, seed=5)
    fill = tuple(round(255 * m) for m in IMAGENET_MEAN)
    kw = {"resample": Image.Resampling.BILINEAR, "fillcolor": fill}
    data = {"ShearX": (1, arg, 0, 0, 1, 0), "ShearY": (1, 0, 0, arg, 1, 0), "TranslateXRel": (1, 0, arg * 32, 0, 1, 0),
            "TranslateYRel": (1, 0, 0, 0, 1, arg * 32)}

    def pil(image: Image.Image, **kwargs) -> Image.Image:
        if name == "Rotate":
            return image.rotate(arg, **kwargs)
        return image.transform(image.size, Image.Transform.AFFINE, data[name], **kwargs)

    ref = from_pil(pil(to_pil(px[0]), **kw))
    white = Image.new("L", (32, 32), 255)
    mask = torch.from_numpy(np.array(pil(white, resample=Image.Resampling.BILINEAR, fillcolor=0)))
    # PIL samples the edge pixels where kornia blends in the fill: compare two pixels off the fill's border
    inside = -F.max_pool2d(-(mask == 255).float()[None, None], 5, 1, 2)[0, 0] > 0
    outside = -F.max_pool2d(-(mask == 0).float()[None, None], 3, 1, 1)[0, 0] > 0
    out = ra.apply_op(name, unit(px), one(arg), interpolation="bilinear")[0] * 255
    assert inside.float().mean() > 0.4 and outside.any()
    assert (out - ref).abs()[:, inside].max() <= 1.0
    assert torch.equal(out[:, outside].round(), torch.tensor(fill).float().view(3, 1).expand(3, int(outside.sum())))


def test_geometric_exact_cases_bicubic():
    px = pixels(2, seed=6)
    x = unit(px)
    shifted = ra.apply_op("TranslateXRel", x, torch.full((2,), 0.25, dtype=torch.float64)) * 255  # 8 pixels left
    assert torch.equal(shifted[..., :24].round(), px[..., 8:].float())
    fill = torch.tensor([round(255 * m) for m in IMAGENET_MEAN]).float().view(1, 3, 1, 1)
    assert torch.equal(shifted[..., 25:].round(), fill.expand(2, 3, 32, 7))
    rotated = ra.apply_op("Rotate", x, torch.full((2,), 90.0, dtype=torch.float64)) * 255
    assert torch.equal(rotated[0].round(), from_pil(to_pil(px[0]).rotate(90)))  # counter-clockwise, as PIL


def test_randaugment_batched_equals_per_image_and_differs_within_a_batch():
    aug = ra.RandAugment(ra.parse_randaugment("rand-n2-m9-mstd0.5-inc1"))
    x = unit(pixels(32, seed=7))
    drawn = aug.draw(32, torch.Generator().manual_seed(3))
    out = aug.apply(x, drawn)
    applied_ops = {int(k) for layer in range(2) for k in drawn.ops[layer][drawn.applied[layer]].tolist()}
    assert len(applied_ops) >= 5  # each image draws its own ops
    untouched = ~drawn.applied.any(dim=0)
    assert untouched.any() and torch.equal(out[untouched], x[untouched])
    changed = (out != x).flatten(1).any(dim=1)
    assert changed.float().mean() > 0.5
    for i in range(32):  # the batched grouping does exactly what applying each image's ops one by one does
        y = x[i:i + 1]
        for layer in range(2):
            if drawn.applied[layer, i]:
                name = aug.spec.ops[int(drawn.ops[layer, i])]
                arg = ra.op_argument(name, drawn.levels[layer, i:i + 1], drawn.signs[layer, i:i + 1])
                y = ra.apply_op(name, y, arg)
        assert torch.allclose(out[i], y[0], atol=1 / 255 + 1e-6), i
    assert ((out * 255).round() == out * 255).all()  # 8-bit levels, as PIL


# --- flip, colour jitter -------------------------------------------------------------------------------------------

def test_hflip_flips_exactly_the_chosen_images():
    x = unit(pixels(32))
    out, flipped = horizontal_flip(x, 0.5, torch.Generator().manual_seed(0))
    assert 0 < flipped.sum() < 32
    assert torch.equal(out[flipped], torch.flip(x[flipped], dims=[-1]))
    assert torch.equal(out[~flipped], x[~flipped])
    batch = BatchAugment(augment_config("none", {"hflip": 0.5}), NUM_CLASSES)(pixels(32), labels(32), seed=5)
    straight, mirrored = normalize(pixels(32)), normalize(pixels(32).flip(-1))
    is_mirrored = (batch.inputs == mirrored).flatten(1).all(dim=1)
    is_straight = (batch.inputs == straight).flatten(1).all(dim=1)
    assert (is_mirrored ^ is_straight).all() and 0 < is_mirrored.sum() < 32


def test_colour_jitter_only_without_randaugment():
    px, y = pixels(16), labels(16)
    official = BatchAugment(AUGMENTS["official"], NUM_CLASSES)(px, y, seed=1)
    no_jitter = BatchAugment(augment_config("official", {"color_jitter": 0.0}), NUM_CLASSES)(px, y, seed=1)
    assert torch.equal(official.inputs, no_jitter.inputs)  # RandAugment set: jitter has no effect (timm)
    jittered = BatchAugment(augment_config("none", {"color_jitter": 0.4}), NUM_CLASSES)(px, y, seed=1)
    assert not torch.equal(jittered.inputs, normalize(px))
    assert (jittered.inputs != normalize(px)).flatten(1).any(dim=1).all()


def test_colour_jitter_factors_and_identity():
    x = unit(pixels(8))
    assert torch.equal(color_jitter(x, 0.0, torch.Generator().manual_seed(0)), x)
    grey = torch.full((64, 3, 8, 8), 0.5)  # brightness is the only factor that moves a flat grey image
    out = color_jitter(grey, 0.4, torch.Generator().manual_seed(0))
    scale = out[:, 0, 0, 0] / 0.5
    assert scale.min() >= 0.6 - 1 / 255 and scale.max() <= 1.4 + 1 / 255 and scale.std() > 0.1


# --- random erasing ------------------------------------------------------------------------------------------------

def flat(batch: int, value: int = 128) -> torch.Tensor:
    return torch.full((batch, 3, 32, 32), value, dtype=torch.uint8)


def test_erasing_puts_exactly_one_noise_rectangle_in_every_image():
    config = augment_config("none", {"reprob": 1.0, "remode": "pixel"})
    batch = BatchAugment(config, NUM_CLASSES)(flat(32), labels(32), seed=2)
    base = normalize(flat(32))
    changed = (batch.inputs != base).any(dim=1)  # (B, H, W)
    noise = []
    for i in range(32):
        ys, xs = torch.nonzero(changed[i], as_tuple=True)
        assert len(ys) > 0
        top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        assert changed[i, top:bottom, left:right].all() and changed[i].sum() == (bottom - top) * (right - left)
        assert 0.01 <= changed[i].float().mean() <= 0.4  # area (0.02, 1/3) of the image, up to rounding the sides
        aspect = (bottom - top).item() / (right - left).item()
        assert 0.3 / 1.5 <= aspect <= 1.5 / 0.3
        noise.append(batch.inputs[i][:, top:bottom, left:right].flatten())
    values = torch.cat(noise)
    assert abs(values.mean().item()) < 0.1 and 0.9 < values.std().item() < 1.1  # N(0, 1) per pixel
    assert torch.equal(batch.clean, batch.inputs) and not batch.mixed


def test_erasing_boxes_follow_timm_and_modes():
    boxes = erasing_boxes(4000, 32, 32, 0.5, 3, torch.Generator().manual_seed(0))
    erased = boxes.active.any(dim=1)
    assert abs(erased.float().mean().item() - 0.5) < 0.03
    counts = boxes.active.sum(dim=1)[erased]
    assert set(counts.tolist()) == {1, 2, 3}
    area = (boxes.height * boxes.width).float() / 1024
    assert area[boxes.active].max() <= 0.4  # 1/3 of the image / count, up to rounding the sides
    single = boxes.active.sum(dim=1) == 1
    assert area[single, 0].min() >= 0.01 and area[single, 0].max() > 0.25
    assert ((boxes.top + boxes.height)[boxes.active] <= 32).all() and (boxes.left[boxes.active] >= 0).all()
    x = normalize(flat(8))
    few = erasing_boxes(8, 32, 32, 1.0, 1, torch.Generator().manual_seed(1))
    const = erase(x, few, "const", torch.Generator().manual_seed(0))
    rand = erase(x, few, "rand", torch.Generator().manual_seed(0))
    for i in range(8):
        t, lft, h, w = (int(v[i, 0]) for v in (few.top, few.left, few.height, few.width))
        assert (const[i, :, t:t + h, lft:lft + w] == 0).all()
        patch = rand[i, :, t:t + h, lft:lft + w].flatten(1)
        assert (patch == patch[:, :1]).all()  # one colour per channel
        mask = torch.ones(32, 32, dtype=torch.bool)
        mask[t:t + h, lft:lft + w] = False
        assert torch.equal(const[i][:, mask], x[i][:, mask])


def test_no_erasing_with_reprob_zero():
    px = pixels(16)
    batch = BatchAugment(augment_config("none", {"reprob": 0.0, "remode": "rand", "recount": 3}), NUM_CLASSES)(
        px, labels(16), seed=9)
    assert torch.equal(batch.inputs, normalize(px))


# --- mixup / cutmix ------------------------------------------------------------------------------------------------

def test_smooth_one_hot_values():
    t = smooth_one_hot(torch.tensor([3, 0]), 10, 0.1)
    assert t[0, 3].item() == pytest.approx(0.91) and t[0, 0].item() == pytest.approx(0.01)
    assert torch.allclose(t.sum(dim=1), torch.ones(2))


def test_mixup_blends_with_the_flipped_batch():
    x = normalize(pixels(8))
    y = labels(8)
    mix = Mixup(1.0, 0.0, 1.0, 0.5, 0.1, NUM_CLASSES)
    out = mix(x, y, seed=4)
    assert not out.cutmix and 0 < out.lam < 1
    assert torch.allclose(out.inputs, x * out.lam + x.flip(0) * (1 - out.lam))
    s = smooth_one_hot(y, NUM_CLASSES, 0.1)
    assert torch.allclose(out.targets, out.lam * s + (1 - out.lam) * s.flip(0))
    assert torch.allclose(out.targets.sum(dim=1), torch.ones(8))
    odd = mix(normalize(pixels(7)), labels(7), seed=4)  # any batch size: the middle image pairs with itself
    assert torch.allclose(odd.inputs[3], normalize(pixels(7))[3], atol=1e-6)


def test_cutmix_lambda_is_the_area_not_pasted():
    mix = Mixup(0.0, 1.0, 1.0, 0.5, 0.1, NUM_CLASSES)
    x = normalize(pixels(8))
    y = labels(8)
    seen = 0
    for seed in range(20):
        out = mix(x, y, seed=seed)
        assert out.cutmix and out.box is not None
        pasted = (out.inputs != x).any(dim=1).float().mean(dim=(1, 2))  # per image
        assert torch.allclose(pasted, torch.full((8,), 1 - out.lam), atol=1e-6)
        top, bottom, left, right = out.box
        assert torch.equal(out.inputs[:, :, top:bottom, left:right], x.flip(0)[:, :, top:bottom, left:right])
        s = smooth_one_hot(y, NUM_CLASSES, 0.1)
        assert torch.allclose(out.targets, out.lam * s + (1 - out.lam) * s.flip(0))
        seen += out.lam < 1
    assert seen >= 15
    rng = np.random.Generator(np.random.PCG64(0))
    for _ in range(50):  # sides int(32 * sqrt(1 - 0.75)) = 16 around the centre, clipped to the image
        top, bottom, left, right = cutmix_box(32, 32, 0.75, rng)
        assert 8 <= bottom - top <= 16 and 8 <= right - left <= 16 and 0 <= top and bottom <= 32


def test_switch_probability_and_prob_zero():
    mix = Mixup(1.0, 1.0, 1.0, 0.5, 0.1, NUM_CLASSES)
    cut = [mix.draw(np.random.Generator(np.random.PCG64(s)))[1] for s in range(400)]
    assert 0.4 < np.mean(cut) < 0.6
    always = Mixup(1.0, 1.0, 1.0, 1.0, 0.1, NUM_CLASSES)
    assert all(always.draw(np.random.Generator(np.random.PCG64(s)))[1] for s in range(50))
    config = augment_config("official", {"mixup_prob": 0.0})
    px, y = pixels(8), labels(8)
    for seed in range(5):
        batch = BatchAugment(config, NUM_CLASSES)(px, y, seed=seed)
        assert not batch.mixed and batch.inputs is batch.clean
        assert torch.allclose(batch.targets, smooth_one_hot(y, NUM_CLASSES, 0.1))  # soft even when not mixed


def test_official_mixing_is_sometimes_a_no_op():
    """Beta(0.01, 0.01) is often exactly 1 (and tiny cutmix boxes are empty): those batches are left unmixed."""
    px, y = pixels(8), labels(8)
    aug = BatchAugment(AUGMENTS["official"], NUM_CLASSES)
    flags = []
    for seed in range(40):
        batch = aug(px, y, seed=seed)
        assert batch.targets.dtype == torch.float32 and batch.targets.shape == (8, NUM_CLASSES)
        assert torch.allclose(batch.targets.sum(dim=1), torch.ones(8))
        assert batch.mixed == (not torch.equal(batch.inputs, batch.clean))
        flags.append(batch.mixed)
    assert any(flags) and not all(flags)


# --- the whole batch -----------------------------------------------------------------------------------------------

def same(a: AugmentedBatch, b: AugmentedBatch) -> bool:
    return (a.mixed == b.mixed and all(torch.equal(getattr(a, f), getattr(b, f))
                                       for f in ("inputs", "targets", "clean", "labels")))


@pytest.mark.parametrize("device", DEVICES)
def test_seeded_and_leaves_global_rng_alone(device):
    config = augment_config("official", {"reprob": 0.5, "mixup": 1.0, "cutmix": 1.0})
    aug = BatchAugment(config, NUM_CLASSES)
    px, y = pixels(16).to(device), labels(16)
    torch.manual_seed(123)
    np.random.seed(5)
    before, np_before = torch.get_rng_state(), np.random.get_state()[1].copy()
    a, b = aug(px, y, seed=11), aug(px, y, seed=11)
    assert torch.equal(torch.get_rng_state(), before) and np.array_equal(np.random.get_state()[1], np_before)
    assert same(a, b)
    assert a.inputs.device.type == device and a.targets.device.type == device and a.labels.dtype == torch.int64
    c = aug(px, y, seed=12)
    assert not torch.equal(a.clean, c.clean)


@pytest.mark.parametrize("device", DEVICES)
def test_none_is_exactly_normalize(device):
    px, y = pixels(8), labels(8)
    batch = BatchAugment(AUGMENTS["none"], NUM_CLASSES)(px.to(device), y, seed=3)
    assert torch.equal(batch.inputs.cpu(), normalize(px)) and batch.inputs is batch.clean
    assert batch.targets.dtype == torch.int64 and torch.equal(batch.targets.cpu(), y) and not batch.mixed
    grey = pixels(8, channels=1)
    grey_batch = BatchAugment(AUGMENTS["none"], NUM_CLASSES)(grey.to(device), y, seed=3)
    assert grey_batch.inputs.shape == (8, 3, 32, 32) and torch.equal(grey_batch.inputs.cpu(), normalize(grey))
    assert torch.equal(normalise(unit(px).to(device)).cpu(), normalize(px))


def test_official_on_grey_images_and_bad_inputs():
    batch = BatchAugment(AUGMENTS["official"], NUM_CLASSES)(pixels(8, channels=1), labels(8), seed=0)
    assert batch.inputs.shape == batch.clean.shape == (8, 3, 32, 32) and batch.inputs.dtype == torch.float32
    aug = BatchAugment(AugmentConfig(), NUM_CLASSES)
    with pytest.raises(ValueError, match="uint8"):
        aug(unit(pixels(4)), labels(4), seed=0)
    with pytest.raises(ValueError, match="labels"):
        aug(pixels(4), labels(5), seed=0)
