"""The generated `glyphs` dataset: small stroke digits in clutter and noise, the mini study's data.

Why it exists: on `twoscale` the 36 ResNet20 configs were indistinguishable beyond seed noise, because its
class cues were either readable by the (never pooled) stem or found after a plateau whose length depended on
the seed (issue 18). Digit recognition has neither: it is learned from the first epochs on, and how well a
network reads a thin, distorted, cluttered digit of 5-8 pixels depends on how long it stays at full resolution
and how much it computes at the coarse ones, as on CIFAR.

`make_glyphs` draws, per image (all sizes are for 16x16 and scale with size / 16):
    Class c in 0..classes-1 is the digit c, a fixed polyline font (`STROKES`: lines and elliptic arcs in a box
        0.6 wide and 1 high). Every stroke end point is jittered by N(0, JITTER) box units, so no two 3s are alike.
    Pose: height h ~ U(HEIGHT) pixels, aspect ~ U(ASPECT), shear ~ U(+-SHEAR), rotation ~ U(+-ROTATION) degrees,
        centre at the image centre + U(+-SHIFT) pixels in x and y.
    Strokes are rendered as anti-aliased lines: coverage = clip(w / 2 + 0.5 - distance, 0, 1) per pixel centre,
        width w ~ U(WIDTH) pixels per image.
    Clutter: 0..CLUTTER random straight strokes (uniform count) anywhere in the image, length ~ U(CLUTTER_LENGTH)
        pixels, uniform direction, a width of its own ~ U(WIDTH), drawn at a fraction U(CLUTTER_STRENGTH) of the
        glyph's contrast: a reader must tell the digit from lines of the same kind by their arrangement.
    Colour: background b ~ U(BACKGROUND) per channel plus a linear gradient of U(+-GRADIENT) across the image per
        channel and axis; ink = background + contrast * tint, contrast ~ U(CONTRAST), tint ~ U(TINT) per channel,
        so the ink is always brighter than its background (with ink of either polarity or backgrounds over the
        whole range, the late-pooling configs sat at chance for several epochs: the seed then decided when they
        started). Gaussian noise, sd ~ U(NOISE) per image, on every pixel and channel; clip to [0, 1]; uint8.
    Horizontal flips (the loader's augmentation) only add mirrored digits to training: no mirrored digit is
        another class's glyph. A random crop (shift <= size / 8) may cut a pixel off the tallest rotated glyphs.
    Labels are a seeded permutation of a balanced list; train and test come from independent streams
    (poolnas.data.generated.split_rng). The draws are vectorised over chunks of 1,000 images.
"""

from __future__ import annotations

import numpy as np

from poolnas.data.generated import Generator, split_rng
from poolnas.errors import UsageError


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float, pieces: int) -> list:
    """An elliptic arc from `start` to `stop` degrees (counter-clockwise from the right; y points down)."""
    t = np.radians(np.linspace(start, stop, pieces + 1))
    return list(zip(cx + rx * np.cos(t), cy - ry * np.sin(t)))


# The font: per digit, its polylines in the box x in [0, 0.6], y in [0, 1] (top to bottom).
STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [_arc(0.3, 0.5, 0.28, 0.48, 0, 360, 12)],
    1: [[(0.12, 0.22), (0.32, 0.0), (0.32, 1.0)]],
    2: [_arc(0.3, 0.28, 0.27, 0.26, 160, -30, 6) + [(0.03, 1.0), (0.6, 1.0)]],
    3: [_arc(0.3, 0.26, 0.25, 0.24, 150, -90, 6), _arc(0.3, 0.74, 0.28, 0.26, 90, -150, 6)],
    4: [[(0.45, 1.0), (0.45, 0.0), (0.0, 0.68), (0.6, 0.68)]],
    5: [[(0.55, 0.0), (0.1, 0.0), (0.06, 0.45)] + _arc(0.3, 0.68, 0.27, 0.3, 140, -150, 7)],
    6: [_arc(0.32, 0.5, 0.26, 0.48, 60, 180, 4) + _arc(0.3, 0.7, 0.27, 0.29, 180, 540, 10)],
    7: [[(0.0, 0.0), (0.6, 0.0), (0.22, 1.0)]],
    8: [_arc(0.3, 0.25, 0.22, 0.24, 0, 360, 10), _arc(0.3, 0.73, 0.28, 0.27, 0, 360, 10)],
    9: [_arc(0.3, 0.3, 0.27, 0.29, 0, 360, 10), _arc(0.28, 0.5, 0.26, 0.48, 0, -120, 4)],
}
# Each digit as (segments, 4): x0, y0, x1, y1 in box units, padded with NaN (no segment) to the longest.
_SEGMENTS = [np.array([a + b for line in STROKES[d] for a, b in zip(line[:-1], line[1:])]) for d in range(10)]
MAX_SEGMENTS = max(len(s) for s in _SEGMENTS)
FONT = np.full((10, MAX_SEGMENTS, 4), np.nan)
for _digit, _segments in enumerate(_SEGMENTS):
    FONT[_digit, : len(_segments)] = _segments

# The draws' ranges (the module docstring explains each); pixel lengths are for 16x16 images.
JITTER = 0.04
HEIGHT = (5.0, 8.0)  # v1: (6, 10); smaller digits separate the configs more (issue 18 pilot)
ASPECT = (0.8, 1.25)
SHEAR = 0.3
ROTATION = 15.0
SHIFT = 1.0
WIDTH = (0.8, 1.3)  # v1: (0.9, 1.6)
CLUTTER = 4
CLUTTER_LENGTH = (2.0, 6.0)
CLUTTER_STRENGTH = (0.6, 1.0)
BACKGROUND = (0.35, 0.65)
GRADIENT = 0.1
CONTRAST = (0.3, 0.7)
TINT = (0.6, 1.0)
NOISE = (0.05, 0.16)
GLYPHS_VERSION = 2  # bump whenever make_glyphs's output changes: it names the cache
GLYPHS_DEFAULTS = {"seed": 0, "size": 16, "classes": 10, "train": 12500, "test": 10000}


def render_strokes(segments: np.ndarray, width: np.ndarray, size: int) -> np.ndarray:
    """Anti-aliased coverage (n, size, size) in [0, 1] of line segments (n, s, 4) in pixels (NaN: none)."""
    centres = np.arange(size) + 0.5
    points = np.stack(np.meshgrid(centres, centres, indexing="xy"), -1).reshape(1, 1, -1, 2)  # x, y per pixel
    start, stop = segments[:, :, None, 0:2], segments[:, :, None, 2:4]
    along = stop - start
    t = ((points - start) * along).sum(-1) / np.maximum((along * along).sum(-1), 1e-12)
    nearest = start + np.clip(t, 0.0, 1.0)[..., None] * along
    distance = np.linalg.norm(points - nearest, axis=-1)
    distance = np.where(np.isnan(distance), np.inf, distance).min(axis=1)
    return np.clip(width[:, None] / 2 + 0.5 - distance, 0.0, 1.0).reshape(-1, size, size)


def _pose(segments: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Digit segments in box units -> pixels: scale, aspect, shear, rotation, shift about the image centre."""
    n, scale = len(segments), size / 16
    height = rng.uniform(*HEIGHT, n)[:, None, None] * scale
    x = (segments[..., 0::2] - 0.3) * height * rng.uniform(*ASPECT, n)[:, None, None]
    y = (segments[..., 1::2] - 0.5) * height
    x = x + rng.uniform(-SHEAR, SHEAR, n)[:, None, None] * y
    angle = np.radians(rng.uniform(-ROTATION, ROTATION, n))[:, None, None]
    shift = rng.uniform(-SHIFT, SHIFT, (n, 2)) * scale + size / 2
    px = np.cos(angle) * x - np.sin(angle) * y + shift[:, None, None, 0]
    py = np.sin(angle) * x + np.cos(angle) * y + shift[:, None, None, 1]
    return np.stack([px[..., 0], py[..., 0], px[..., 1], py[..., 1]], -1)


def _clutter(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """0..CLUTTER random straight segments per image, in pixels (absent ones NaN)."""
    scale = size / 16
    start = rng.uniform(0, size, (n, CLUTTER, 2))
    direction = rng.uniform(0, 2 * np.pi, (n, CLUTTER))
    length = rng.uniform(*CLUTTER_LENGTH, (n, CLUTTER)) * scale
    stop = start + length[..., None] * np.stack([np.cos(direction), np.sin(direction)], -1)
    segments = np.concatenate([start, stop], -1)
    segments[np.arange(CLUTTER)[None] >= rng.integers(0, CLUTTER + 1, n)[:, None]] = np.nan
    return segments


def make_glyphs(n: int, *, seed: int, size: int = 16, classes: int = 10, split: str = "train",
                chunk: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """`n` images (uint8, NHWC) and labels (int64) of the glyphs set; the module docstring defines it."""
    GLYPHS.params({"seed": seed, "size": size, "classes": classes, "train": max(n, 1), "test": 1})
    rng = split_rng(seed, split)
    labels = rng.permutation(np.arange(n) % classes).astype(np.int64)
    images = np.empty((n, size, size, 3), np.uint8)
    ramp = np.arange(size) / size - 0.5
    for lo in range(0, n, chunk):  # chunks bound the (chunk, segments, pixels) distance arrays
        m = min(chunk, n - lo)
        strokes = FONT[labels[lo: lo + m]] + rng.normal(0.0, JITTER, (m, MAX_SEGMENTS, 4))
        width = rng.uniform(*WIDTH, m) * size / 16
        glyph = render_strokes(_pose(strokes, rng, size), width, size)
        clutter = render_strokes(_clutter(rng, m, size), rng.uniform(*WIDTH, m) * size / 16, size)
        clutter *= rng.uniform(*CLUTTER_STRENGTH, (m, 1, 1))
        ink = np.maximum(glyph, clutter)[..., None]
        background = rng.uniform(*BACKGROUND, (m, 1, 1, 3))
        background = (background + rng.uniform(-GRADIENT, GRADIENT, (m, 1, 1, 3)) * ramp[None, None, :, None]
                      + rng.uniform(-GRADIENT, GRADIENT, (m, 1, 1, 3)) * ramp[None, :, None, None])
        contrast = rng.uniform(*CONTRAST, (m, 1, 1, 1)) * rng.uniform(*TINT, (m, 1, 1, 3))
        img = background + contrast * ink
        img += rng.standard_normal(img.shape) * rng.uniform(*NOISE, (m, 1, 1, 1))
        images[lo: lo + m] = np.rint(np.clip(img, 0.0, 1.0) * 255.0)
    return images, labels


def glyphs_classes(classes: int) -> list[str]:
    return [str(d) for d in range(classes)]


def _check(p: dict[str, int]) -> None:
    if p["size"] < 12:
        raise UsageError(f"--size must be >= 12 (a digit needs about 7 pixels and a margin), got {p['size']}")
    if not 2 <= p["classes"] <= 10:
        raise UsageError(f"--classes must be 2..10 (the digits 0..classes-1), got {p['classes']}")


GLYPHS = Generator("glyphs", GLYPHS_VERSION, GLYPHS_DEFAULTS, make_glyphs, glyphs_classes, _check,
                   f"generated by poolnas.data.glyphs.make_glyphs (version {GLYPHS_VERSION})")
