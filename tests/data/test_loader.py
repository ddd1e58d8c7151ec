"""The batched loader: shapes, normalisation, augmentation semantics, determinism across resumes, subsets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from poolnas.data.datasets import load, prepare
from poolnas.errors import UsageError
from poolnas.data.loader import Loader, epoch_generator, pad_crop_flip, resize_crops, resized_crop_boxes

MEAN, STD = (0.49139968, 0.48215827, 0.44653124), (0.24703233, 0.24348505, 0.26158768)


def coordinate_images(n: int, size: int) -> np.ndarray:
    """Pixels that say where they are (red = row, green = column, blue = image), never 0 so padding shows."""
    images = np.empty((n, size, size, 3), np.uint8)
    images[..., 0] = 10 + 20 * np.arange(size)[None, :, None]
    images[..., 1] = 10 + 20 * np.arange(size)[None, None, :]
    images[..., 2] = 1 + np.arange(n)[:, None, None] % 250
    return images


def normalised(images: np.ndarray, mean=MEAN, std=STD) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).double() / 255
    return ((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)).float()


def to_uint8(x: torch.Tensor, mean=MEAN, std=STD) -> np.ndarray:
    """Undo the normalisation of a batch: NCHW float -> NHWC uint8."""
    x = x.double() * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    return (x * 255).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def make_loader(images, labels=None, **kwargs):
    labels = np.arange(len(images)) if labels is None else labels
    return Loader(images, labels, mean=MEAN, std=STD, **{"batch_size": 16, **kwargs})


def test_batches_have_the_right_shapes_types_and_memory_format():
    images = coordinate_images(50, 8)
    loader = make_loader(images, augment=True, shuffle=True)
    batches = list(loader)
    assert len(loader) == len(batches) == 4 and [len(y) for _, y in batches] == [16, 16, 16, 2]
    for x, y in batches:
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 8, 8) and y.dtype == torch.int64
        assert x.is_contiguous(memory_format=torch.channels_last)
    assert len(make_loader(images, drop_last=True)) == len(list(make_loader(images, drop_last=True))) == 3


def test_eval_batches_are_the_normalised_images_in_order():
    images = np.random.default_rng(0).integers(0, 256, (37, 8, 8, 3), dtype=np.uint8)
    x, y = zip(*make_loader(images, labels=np.arange(37) * 3))
    assert torch.allclose(torch.cat(x), normalised(images), atol=1e-5)
    assert torch.equal(torch.cat(y), torch.arange(37) * 3)


def test_pad_crop_flip_is_a_crop_of_the_zero_padded_image_maybe_mirrored():
    images = coordinate_images(200, 8)
    x, y = next(iter(make_loader(images, batch_size=200, augment=True, shuffle=True, pad=4)))
    out = to_uint8(x)
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))  # black, before normalisation
    seen = set()
    for i, row in enumerate(y.numpy()):
        matches = [(dy, dx, flip) for dy, dx, flip in itertools.product(range(9), range(9), (False, True))
                   if np.array_equal(out[i], padded[row, dy: dy + 8, dx: dx + 8][:, ::-1 if flip else 1])]
        assert len(matches) == 1, (i, matches)
        seen.add(matches[0])
    shifts = {(dy, dx) for dy, dx, _ in seen}
    assert {0, 8} <= {dy for dy, _ in shifts} and {0, 8} <= {dx for _, dx in shifts}
    assert {flip for *_, flip in seen} == {False, True}
    assert len(shifts) > 40  # of 81 possible crops, 200 draws hit most


def test_zero_padding_is_black_in_normalised_units():
    white = np.full((1, 6, 6, 3), 255, np.uint8)
    out = pad_crop_flip(torch.from_numpy(white), torch.tensor([[0, 4]]), torch.tensor([False]), pad=4)
    assert out[0, :4].eq(0).all() and out[0, 4:].eq(255).all()  # top 4 rows come from the padding
    loader = make_loader(white.repeat(64, 0), batch_size=64, augment=True, shuffle=True, pad=4)
    x, _ = next(iter(loader))
    black = ((0 - torch.tensor(MEAN)) / torch.tensor(STD)).view(1, 3, 1, 1)
    is_black = torch.isclose(x, black, atol=1e-5).all(dim=1)
    is_white = torch.isclose(x, (1 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1),
                             atol=1e-5).all(dim=1)
    assert (is_black | is_white).all() and is_black.any() and is_white.all(dim=(1, 2)).any()


def test_pad_defaults_to_an_eighth_of_the_side():
    assert make_loader(coordinate_images(2, 32)).pad == 4 and make_loader(coordinate_images(2, 16)).pad == 2


def test_an_epoch_depends_only_on_seed_and_epoch_so_resumes_match():
    images = coordinate_images(70, 8)
    uninterrupted = make_loader(images, augment=True, shuffle=True, seed=3)
    epochs = [[(x.clone(), y.clone()) for x, y in uninterrupted] for _ in range(3)]
    resumed = make_loader(images, augment=True, shuffle=True, seed=3)
    for e in (2, 0):
        again = list(resumed.epoch(e))
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(epochs[e], again))
    assert not torch.equal(epochs[0][0][1], epochs[1][0][1])  # another epoch, another order
    other_seed = next(make_loader(images, augment=True, shuffle=True, seed=4).epoch(0))
    assert not torch.equal(other_seed[1], epochs[0][0][1])
    stream = make_loader(images, augment=True, shuffle=True, seed=3).stream(start_epoch=1)
    flat = [b for epoch in epochs[1:] for b in epoch]
    assert all(torch.equal(x, fx) for (x, _), (fx, _) in zip(itertools.islice(stream, len(flat)), flat))


def test_epoch_generators_differ_for_neighbouring_pairs():
    draws = {tuple(torch.rand(4, generator=epoch_generator(s, e)).tolist()) for s in range(5) for e in range(5)}
    assert len(draws) == 25


def test_subset_indices_each_appear_once_per_epoch():
    subset = np.array([3, 5, 8, 13, 21, 34, 55])
    loader = make_loader(coordinate_images(60, 8), batch_size=3, indices=subset, shuffle=True, augment=True)
    for e in range(3):
        labels = torch.cat([y for _, y in loader.epoch(e)])
        assert sorted(labels.tolist()) == subset.tolist()
    in_order = torch.cat([y for _, y in make_loader(coordinate_images(60, 8), indices=subset[::-1].copy())])
    assert in_order.tolist() == subset[::-1].tolist()
    with pytest.raises(UsageError, match="subset indices"):
        make_loader(coordinate_images(5, 8), indices=[1, 5])


def test_loader_from_a_prepared_dataset_uses_its_statistics(tmp_path):
    data = load(prepare("twoscale", None, tmp_path, seed=1, size=16, classes=4, train=40, test=10))
    train = Loader.from_prepared(data, "train", 8)
    assert train.augment and train.shuffle and train.pad == 2
    test = Loader.from_prepared(data, "test", 8)
    assert not test.augment and not test.shuffle
    x = torch.cat([x for x, _ in test])
    assert torch.allclose(x, normalised(data.test.images, data.mean, data.std), atol=1e-5)
    assert abs(torch.cat([x for x, _ in Loader.from_prepared(data, "train", 40, augment=False)]).mean()) < 0.05


# --- the Food101 recipe -------------------------------------------------------------------------------------


def test_resized_crop_boxes_follow_torchvision_rules():
    boxes = resized_crop_boxes(5000, 256, 200, epoch_generator(0, 0))
    left, top, w, h = boxes.T.double()
    assert (left >= 0).all() and (top >= 0).all() and (left + w <= 200).all() and (top + h <= 256).all()
    area = w * h / (256 * 200)
    assert area.min() > 0.075 and area.max() <= 1 and (area < 0.3).any() and (area > 0.8).any()
    assert (w / h).min() > 0.72 and (w / h).max() < 1.38  # 3/4..4/3 up to rounding to whole pixels
    # When no draw fits (here: every area is too big), the centred whole image clipped to the ratio range.
    fallback = resized_crop_boxes(3, 100, 300, epoch_generator(0, 0), scale=(2.0, 3.0))
    assert fallback.tolist() == [[83, 0, 133, 100]] * 3


def test_resize_crops_samples_the_box_like_interpolate_and_flips():
    ramp_x = torch.arange(64.0).view(1, 1, 1, 64).expand(1, 1, 48, 64)
    ramp_y = torch.arange(48.0).view(1, 1, 48, 1).expand(1, 1, 48, 64)
    image = torch.cat([ramp_x, ramp_y], dim=1).repeat(2, 1, 1, 1)
    boxes = torch.tensor([[10, 5, 40, 30], [10, 5, 40, 30]])
    out = resize_crops(image, boxes, torch.tensor([False, True]), 16)
    # Output pixel j samples the box at left - 0.5 + (j + 0.5) * width / 16 (align_corners=False geometry).
    centres_x = 10 - 0.5 + (torch.arange(16) + 0.5) * 40 / 16
    centres_y = 5 - 0.5 + (torch.arange(16) + 0.5) * 30 / 16
    assert torch.allclose(out[0, 0], centres_x.expand(16, 16), atol=1e-4)
    assert torch.allclose(out[0, 1], centres_y[:, None].expand(16, 16), atol=1e-4)
    assert torch.allclose(out[1, 0], centres_x.flip(0).expand(16, 16), atol=1e-4)
    noise = torch.rand(1, 3, 48, 64)
    inner = resize_crops(noise, boxes[:1], torch.tensor([False]), 20)
    reference = F.interpolate(noise[:, :, 5:35, 10:50], size=20, mode="bilinear", align_corners=False)
    # Identical except at the outermost output pixels, where we read the true neighbours outside the box
    # instead of repeating its edge.
    assert torch.allclose(inner[..., 1:-1, 1:-1], reference[..., 1:-1, 1:-1], atol=1e-5)


def test_food_recipe_from_a_memory_mapped_array(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "images.npy", rng.integers(0, 256, (10, 256, 256, 3), dtype=np.uint8))
    images = np.load(tmp_path / "images.npy", mmap_mode="r")
    mean, std = (0.561, 0.440, 0.312), (0.252, 0.256, 0.259)

    def food_loader(**kwargs):
        return Loader(images, np.arange(10), batch_size=4, mean=mean, std=std, recipe="resized-crop-flip",
                      **kwargs)

    assert food_loader().on_host
    x, y = next(iter(food_loader()))
    assert x.shape == (4, 3, 224, 224) and x.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(x, normalised(images[:4, 16:240, 16:240], mean, std), atol=1e-5)  # centre crop
    first = [(x.clone(), y.clone()) for x, y in food_loader(augment=True, shuffle=True, seed=1).epoch(5)]
    again = list(food_loader(augment=True, shuffle=True, seed=1).epoch(5))
    assert [b[1].tolist() for b in first] == [b[1].tolist() for b in again] and len(first) == 3
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again))
    assert first[0][0].shape == (4, 3, 224, 224) and first[-1][0].shape == (2, 3, 224, 224)
    assert not torch.allclose(first[0][0], normalised(images[first[0][1].numpy(), 16:240, 16:240], mean, std))


def test_resized_crops_at_a_smaller_crop_side():
    images = np.random.default_rng(1).integers(0, 256, (6, 36, 36, 3), dtype=np.uint8)
    loader = make_loader(images, recipe="resized-crop-flip", crop=32)
    x, _ = next(iter(loader))
    assert loader.side == 32 and x.shape == (6, 3, 32, 32)
    assert torch.allclose(x, normalised(images[:, 2:34, 2:34]), atol=1e-5)  # the centre crop
    train = make_loader(images, recipe="resized-crop-flip", crop=32, augment=True, shuffle=True, seed=3)
    x, _ = next(iter(train))
    assert x.shape == (6, 3, 32, 32) and x.is_contiguous(memory_format=torch.channels_last)
    assert make_loader(images).side == 36  # pad-crop-flip keeps the stored side
    with pytest.raises(UsageError, match="crop 224 must be 1..36"):  # the default crop is Food101's 224
        make_loader(images, recipe="resized-crop-flip")


def test_bad_arguments_are_usage_errors():
    with pytest.raises(UsageError, match="unknown augmentation recipe"):
        make_loader(coordinate_images(4, 8), recipe="mixup")
    with pytest.raises(UsageError, match="batch size"):
        make_loader(coordinate_images(4, 8), batch_size=0)
    with pytest.raises(UsageError, match="resized-crop-flip recipe only"):
        make_loader(coordinate_images(4, 8), crop=8)
    with pytest.raises(UsageError, match=r"crop 9 must be 1..8"):
        make_loader(coordinate_images(4, 8), recipe="resized-crop-flip", crop=9)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_equal_cpu_batches():
    images = coordinate_images(40, 8)
    cpu = list(make_loader(images, augment=True, shuffle=True, seed=2).epoch(1))
    gpu = list(make_loader(images, augment=True, shuffle=True, seed=2, device="cuda").epoch(1))
    assert len(cpu) == len(gpu) == 3
    assert all(torch.equal(c[1], g[1].cpu()) and torch.allclose(c[0], g[0].cpu()) for c, g in zip(cpu, gpu))
