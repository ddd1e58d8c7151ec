"""The generated `glyphs` set (poolnas.data.glyphs) and the `flip` recipe it is loaded with."""

from __future__ import annotations

import helpers
import numpy as np
import pytest
import torch

from poolnas.data import glyphs
from poolnas.data.datasets import cache_path, load, prepare
from poolnas.data.glyphs import make_glyphs, render_strokes
from poolnas.data.loader import Loader
from poolnas.errors import UsageError


def test_glyphs_are_byte_identical_for_a_seed_and_independent_per_split():
    a, la = make_glyphs(400, seed=3)
    b, lb = make_glyphs(400, seed=3)
    c, lc = make_glyphs(400, seed=4)
    assert a.dtype == np.uint8 and a.shape == (400, 16, 16, 3) and la.dtype == np.int64
    assert a.tobytes() == b.tobytes() and np.array_equal(la, lb)
    assert (a != c).mean() > 0.5 and not np.array_equal(la, lc)
    test, _ = make_glyphs(400, seed=3, split="test")
    assert (a != test).mean() > 0.5
    # a split's first images do not depend on how many are drawn after them within a chunk's draws
    small, _ = make_glyphs(400, seed=3, chunk=100)
    assert small.shape == a.shape


def test_glyphs_labels_are_balanced_digits():
    _, labels = make_glyphs(1003, seed=0, classes=7)
    counts = np.bincount(labels, minlength=7)
    assert len(counts) == 7 and counts.max() - counts.min() <= 1 and counts.sum() == 1003
    assert glyphs.glyphs_classes(3) == ["0", "1", "2"]


def test_render_strokes_covers_a_line_by_its_width():
    # a horizontal segment on the line y = 8 between pixel centres: the two rows it touches are half covered
    segment = np.array([[[2.0, 8.0, 14.0, 8.0]]])
    cover = render_strokes(segment, np.array([1.0]), 16)[0]
    assert cover[7, 4] == pytest.approx(0.5) and cover[8, 4] == pytest.approx(0.5)
    assert cover[5].max() == 0 and cover[10].max() == 0
    assert cover[7, 0] == 0  # 1.5 px beyond the end, the line does not reach
    absent = render_strokes(np.full((1, 2, 4), np.nan), np.array([1.0]), 16)
    assert absent.max() == 0


def test_glyph_ink_is_brighter_than_its_background(monkeypatch):
    """Without noise and clutter, every image's ink pixels are brighter in every channel than its background."""
    monkeypatch.setattr(glyphs, "NOISE", (0.0, 0.0))
    monkeypatch.setattr(glyphs, "CLUTTER_STRENGTH", (0.0, 0.0))
    monkeypatch.setattr(glyphs, "GRADIENT", 0.0)
    images, _ = make_glyphs(50, seed=1)
    for img in images.astype(int):
        flat = img.reshape(-1, 3)
        background = np.median(flat, axis=0)  # most pixels are background
        assert (flat.max(axis=0) > background + 40).all()  # contrast >= 0.3 * tint 0.6 ~ 46 levels
        assert (flat.min(axis=0) >= background - 1).all()  # nothing is darker than the background


def test_glyphs_scale_with_the_image_size():
    images, _ = make_glyphs(200, seed=0, size=32)
    assert images.shape == (200, 32, 32, 3)


@pytest.mark.parametrize("params, message", [({"size": 10}, "--size must be >= 12"),
                                             ({"classes": 11}, "--classes must be 2..10"),
                                             ({"classes": 1}, "--classes must be 2..10"),
                                             ({"train": 0}, "--train and --test must be >= 1"),
                                             ({"colour": 1}, "unknown glyphs parameter")])
def test_glyphs_parameters_are_checked(params, message):
    with pytest.raises(UsageError, match=message):
        glyphs.GLYPHS.params(params)


def test_prepared_glyphs_are_named_by_version_and_loaded_with_flips_only(tmp_path):
    params = {"seed": 2, "size": 16, "classes": 4, "train": 64, "test": 32}
    path = prepare("glyphs", None, tmp_path, **params)
    assert path == cache_path("glyphs", tmp_path, **params)
    assert path.name == f"glyphs-v{glyphs.GLYPHS_VERSION}-seed2-size16-classes4-train64-test32"
    data = load(path)
    assert data.recipe == "flip" and data.classes == ["0", "1", "2", "3"]
    loader = Loader.from_prepared(data, "train", 64, shuffle=False)
    assert loader.pad == 0
    x, y = next(iter(loader))
    plain, plain_y = next(iter(Loader.from_prepared(data, "train", 64, shuffle=False, augment=False)))
    # every augmented image is its unaugmented self or that mirrored: no shift, no border
    for aug, ref in zip(x, plain):
        assert torch.equal(aug, ref) or torch.equal(aug, ref.flip(-1))
    assert sum(not torch.equal(a, r) for a, r in zip(x, plain)) > 16  # about half are mirrored
    assert torch.equal(y, plain_y)


@pytest.mark.slow
def test_glyphs_are_learnable_and_need_the_fine_scale(tmp_path):
    full, coarse = helpers.fine_and_coarse_accuracy("glyphs", tmp_path)
    # Chance is 0.1; a 2x2-averaged view loses the thin strokes' detail and so much of the class.
    assert full > 0.6, (full, coarse)
    assert coarse < full - 0.1, (full, coarse)
