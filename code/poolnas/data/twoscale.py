"""The generated `twoscale` dataset, whose classes need both image scales (poolnas.data.datasets caches it).

`make_twoscale` draws it:
    class c = (layout c // 2, texture c % 2): an even number of classes, 2..12; chance = 1 / classes.
    Coarse layout: shapes are drawn on a grid of 2x2-pixel cells (G = size / 2 cells a side): one to four
        shapes, all discs or all squares (probability 1/2 each, same area), placed by the layout: row (2 side by
        side), column (2 stacked), diagonal (2 along either diagonal), single (1 of double area), triangle (3,
        apex up or down), square (4 at the corners of a square). The total shape area is the same for every
        layout (up to the cell grid), so only the arrangement tells them apart. Shape radius r ~ U(0.11, 0.16) * G
        cells (times sqrt(2), sqrt(2/3), sqrt(1/2) for single, triangle, square), centre spacing
        d ~ U(2.2, 2.6) * r, and the layout's centre is uniform over the positions that keep every shape at least
        G / 8 cells (size / 8 pixels, the loader's default crop shift) from the border. So the training
        augmentation never changes the class: a random crop never cuts a shape, and each layout is its own
        mirror image (as a distribution).
    Fine texture: inside the shapes two colours m + a*w and m - a*w alternate pixel by pixel, as a 1-pixel
        checkerboard (texture 0) or 1-pixel stripes (texture 1; horizontal or vertical, probability 1/2), with a
        random phase. Every aligned 2x2 block of a shape averages to exactly m, so 2x2 average pooling erases the
        texture and keeps the layout: a network must look at full resolution for the texture and far for the
        layout. m ~ U(0.3, 0.8) per channel; a ~ U(0.07, 0.14); w ~ U(0.5, 1) per channel.
    Background: flat m - delta (clipped at 0), with delta >= 0 per channel in a random direction and
        |delta| ~ U(0.3, 0.5): always clearly darker than the shapes, which therefore stay visible after pooling.
    Noise: Gaussian, sd ~ U(0.05, 0.09) per image, on every pixel and channel; then clip to [0, 1], round to
        uint8. The noise is a little weaker than the texture, so reading the texture takes averaging over several
        full-resolution pixels: how long a network stays at full resolution then shows in its accuracy.
    Labels are a seeded permutation of a balanced list; train and test come from independent streams of
    numpy's SeedSequence(seed) (spawn keys 0 and 1), so neither depends on the other's size. All draws are
    vectorised; 20,000 32x32 images take about 2 s.
"""

from __future__ import annotations


import numpy as np

from poolnas.data.generated import Generator, split_rng
from poolnas.errors import UsageError

# twoscale layouts: shape centres in units of the spacing d (x, y), and the radius factor that keeps the total
# shape area equal across layouts.
LAYOUTS: dict[str, tuple[tuple[tuple[float, float], ...], float]] = {
    "row": (((-0.5, 0.0), (0.5, 0.0)), 1.0),
    "column": (((0.0, -0.5), (0.0, 0.5)), 1.0),
    "diagonal": (((-0.5 ** 1.5, -0.5 ** 1.5), (0.5 ** 1.5, 0.5 ** 1.5)), 1.0),
    "single": (((0.0, 0.0),), 2 ** 0.5),
    "triangle": (((-0.5, 3 ** 0.5 / 6), (0.5, 3 ** 0.5 / 6), (0.0, -(3 ** 0.5) / 3)), (2 / 3) ** 0.5),
    "square": (((-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5)), 0.5 ** 0.5),
}
TEXTURES = ("checker", "stripes")
# twoscale's uniform ranges (the module docstring explains each). With them every layout fits inside the image
# less its margins: the widest extent, 0.58 * 2.6 r + 0.82 r = 2.32 r (triangle), is below 3/8 G for r <= 0.16 G.
RADIUS = (0.11, 0.16)  # shape radius r, as a fraction of the side G in cells
SPACING = (2.2, 2.6)  # centre spacing d, in radii
SHAPE_COLOUR = (0.3, 0.8)  # m, per channel
AMPLITUDE = (0.07, 0.14)  # a
CHANNEL_WEIGHT = (0.5, 1.0)  # w, per channel
BACKGROUND_DROP = (0.3, 0.5)  # |delta|
NOISE_SD = (0.05, 0.09)  # v3 had (0.10, 0.16): at mini scale half the configs then found the texture
# in some seeds only (median seed SD 16.5 points); pilots at (0.05, 0.09) gave seed SDs of 1-2.5 points
MARGIN = 1 / 8  # of the side kept free of shapes: the loader's default crop shift, so a crop never cuts a shape
TWOSCALE_VERSION = 4  # bump whenever make_twoscale's output changes: it names the cache, so old ones are not reused
TWOSCALE_DEFAULTS = {"seed": 0, "size": 32, "classes": 10, "train": 10000, "test": 2000}


def twoscale_classes(classes: int) -> list[str]:
    return [f"{layout}-{texture}" for layout in list(LAYOUTS)[: classes // 2] for texture in TEXTURES]


def make_twoscale(n: int, *, seed: int, size: int = 32, classes: int = 10, split: str = "train",
                  chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """`n` images (uint8, NHWC) and labels (int64) of the twoscale set; the module docstring defines it."""
    TWOSCALE.params({"seed": seed, "size": size, "classes": classes, "train": max(n, 1), "test": 1})
    rng = split_rng(seed, split)
    labels = rng.permutation(np.arange(n) % classes).astype(np.int64)
    layout, texture = labels // 2, labels % 2

    # Coarse geometry, on the grid of 2x2-pixel cells.
    cells = size // 2
    unit_offsets = np.zeros((len(LAYOUTS), 4, 2))
    present = np.zeros((len(LAYOUTS), 4), bool)
    radius_factor = np.array([factor for _, factor in LAYOUTS.values()])
    for k, (centres, _) in enumerate(LAYOUTS.values()):
        unit_offsets[k, : len(centres)], present[k, : len(centres)] = centres, True
    r = rng.uniform(*RADIUS, n) * cells
    offsets = unit_offsets[layout] * (r * rng.uniform(*SPACING, n))[:, None, None]
    offsets[..., 1] *= rng.choice([-1.0, 1.0], n)[:, None]  # the other diagonal; the triangle upside down
    shape_radius = r * radius_factor[layout]
    present = present[layout]
    extent = np.abs(np.where(present[..., None], offsets, 0.0)).max(axis=1) + shape_radius[:, None]  # (n, 2)
    margin = MARGIN * cells
    centre = margin + extent + rng.random((n, 2)) * (cells - 2 * (extent + margin))
    squares = rng.random(n) < 0.5

    # Colours, texture draws and noise level. The texture is a (tinted) luminance pattern and the background is
    # clearly darker than the shapes in every channel: with colour-opponent textures, backgrounds of either
    # polarity or half this contrast, CNNs (ResNet20 included) sat at chance for many epochs before finding a cue.
    mean = rng.uniform(*SHAPE_COLOUR, (n, 3))
    amplitude = rng.uniform(*AMPLITUDE, (n, 1)) * rng.uniform(*CHANNEL_WEIGHT, (n, 3))
    drop = np.abs(rng.normal(size=(n, 3)))
    drop *= rng.uniform(*BACKGROUND_DROP, (n, 1)) / np.linalg.norm(drop, axis=1, keepdims=True)
    phase = rng.integers(0, 2, n)
    horizontal = rng.random(n) < 0.5
    noise_sd = rng.uniform(*NOISE_SD, n)

    images = np.empty((n, size, size, 3), np.uint8)
    cell_centres = np.arange(cells) + 0.5
    y, x = np.arange(size)[:, None], np.arange(size)[None, :]
    for lo in range(0, n, chunk):
        s = slice(lo, min(lo + chunk, n))
        dx = cell_centres[None, None, None, :] - (centre[s, None, 0] + offsets[s, :, 0])[..., None, None]
        dy = cell_centres[None, None, :, None] - (centre[s, None, 1] + offsets[s, :, 1])[..., None, None]
        rad = shape_radius[s, None, None, None]
        # A square of half side sqrt(pi)/2 * r has the area of the disc of radius r.
        inside = np.where(squares[s, None, None, None], np.maximum(abs(dx), abs(dy)) <= 0.886 * rad,
                          dx ** 2 + dy ** 2 <= rad ** 2)
        mask = (inside & present[s, :, None, None]).any(axis=1).repeat(2, axis=1).repeat(2, axis=2)
        stripes = np.where(horizontal[s, None, None], y, x)
        parity = (np.where(texture[s, None, None] == 0, x + y, stripes) + phase[s, None, None]) % 2
        sign = (2 * parity - 1).astype(np.float32)[..., None]
        shape_colour = mean[s, None, None].astype(np.float32) + amplitude[s, None, None].astype(np.float32) * sign
        background = (mean[s] - drop[s]).astype(np.float32)[:, None, None]
        img = np.where(mask[..., None], shape_colour, background)
        img += rng.standard_normal(img.shape, dtype=np.float32) * noise_sd[s, None, None, None].astype(np.float32)
        images[s] = np.rint(np.clip(img, 0.0, 1.0) * 255.0)
    return images, labels


def _check(p: dict[str, int]) -> None:
    if p["size"] < 8 or p["size"] % 2:
        raise UsageError(f"--size must be an even number >= 8 (shapes sit on 2x2-pixel cells), got {p['size']}")
    if p["classes"] % 2 or not 2 <= p["classes"] <= 2 * len(LAYOUTS):
        raise UsageError(f"--classes must be even, 2..{2 * len(LAYOUTS)} (layouts x 2 textures), "
                         f"got {p['classes']}")


# The source text names make_twoscale's old home: kept, so that caches' meta.json stays the same.
TWOSCALE = Generator("twoscale", TWOSCALE_VERSION, TWOSCALE_DEFAULTS, make_twoscale, twoscale_classes, _check,
                     f"generated by poolnas.datasets.make_twoscale (version {TWOSCALE_VERSION})")
