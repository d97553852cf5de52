"""The built-in demo dataset: procedurally generated class-conditional images, no download.

Each class is one design (a shape, a texture or a gradient) in its own colour, drawn with random
position, scale, hue/saturation/value jitter and a random noisy background, so that a small GAN on a
CPU learns within minutes to draw samples that clearly follow their class.

Shapes are drawn from signed distance functions (negative inside) and anti-aliased by a one-pixel
linear ramp across the edge, so the images look the same at every resolution.

Determinism: image ``i`` depends only on ``(seed, i, resolution, num_classes)``, not on ``size``: the
per-image parameters are rows of one uniform array drawn from ``numpy.random.default_rng(seed)`` (a
prefix of a longer draw is the same draw), and the pixel noise of each block of ``_BLOCK`` images comes
from its own generator seeded with ``(seed, block)``. The label of image ``i`` is ``i % num_classes``
(balanced classes).
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from .base import ImageDataset

_BLOCK = 256  # images generated per vectorised step (bounds memory at large resolutions)
_NUM_PARAMS = 10  # uniforms per image, see _draw_block


def _hsv_to_rgb(h, s, v):
    """Vectorised HSV -> RGB, all inputs in [0, 1] with the same shape; returns shape + (3,)."""
    out = []
    for n in (5.0, 3.0, 1.0):  # R, G, B (the standard closed form, as in Wikipedia "HSL and HSV")
        k = (n + h * 6.0) % 6.0
        out.append(v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))
    return np.stack(out, axis=-1)


# --------------------------------------------------------------------------------------------------
# designs: signed distance (in units of image width) of every pixel to the design's edge, < 0 inside.
# Arguments: x, y pixel centres in [0, 1] of shape (1, R, R); per-image parameters of shape (n, 1, 1):
# cx, cy centre, r size, a (angle/phase in [0, 1)), f (frequency jitter in [0, 1)).


def _circle(x, y, cx, cy, r, a, f):
    return np.hypot(x - cx, y - cy) - r


def _square(x, y, cx, cy, r, a, f):
    return np.maximum(np.abs(x - cx), np.abs(y - cy)) - 0.85 * r


def _triangle(x, y, cx, cy, r, a, f):
    # equilateral, apex up (y grows downwards): three half-planes at inradius r/2 with outward
    # normals down, up-right and up-left
    dx, dy = x - cx, y - cy
    edges = [dy, 0.866 * dx - 0.5 * dy, -0.866 * dx - 0.5 * dy]
    return np.maximum(np.maximum(edges[0], edges[1]), edges[2]) - 0.5 * r


def _ring(x, y, cx, cy, r, a, f):
    return np.abs(np.hypot(x - cx, y - cy) - r) - 0.25 * r


def _cross(x, y, cx, cy, r, a, f):
    dx, dy = np.abs(x - cx), np.abs(y - cy)
    w = 0.3 * r
    return np.minimum(np.maximum(dx - w, dy - r), np.maximum(dx - r, dy - w))


def _stripes(coord, a, f):
    freq = 4.0 + 2.0 * f  # 4-6 stripes per image
    # -sin / (2 pi freq) has slope 1 at the zero crossings, so it is a distance near the edges
    return -np.sin(2 * np.pi * (freq * coord + a)) / (2 * np.pi * freq)


def _hstripes(x, y, cx, cy, r, a, f):
    return _stripes(y, a, f)


def _vstripes(x, y, cx, cy, r, a, f):
    return _stripes(x, a, f)


def _checkerboard(x, y, cx, cy, r, a, f):
    freq = 2.5 + f  # 5-7 squares per row
    sx = np.sin(2 * np.pi * (freq * x + a))
    sy = np.sin(2 * np.pi * (freq * y + cx))
    return -sx * sy / (2 * np.pi * freq)


def _dots(x, y, cx, cy, r, a, f):
    period = 1.0 / (4.0 + 2.0 * f)  # 4-6 dots per row
    dx = (x - a * period) % period - period / 2
    dy = (y - cx * period) % period - period / 2
    return np.hypot(dx, dy) - 0.3 * period


def _gradient(x, y, cx, cy, r, a, f):
    # a soft ramp in a random direction: the distance to the line through the centre, divided by the
    # resolution (x.shape[-1]) so that the ramp spans ~2/3 of the image whatever the resolution
    theta = 2 * np.pi * a
    return ((x - cx) * np.cos(theta) + (y - cy) * np.sin(theta)) * 1.5 / x.shape[-1]


def _diamond(x, y, cx, cy, r, a, f):
    return np.abs(x - cx) + np.abs(y - cy) - 1.1 * r


def _x_cross(x, y, cx, cy, r, a, f):
    u, v = (x - cx + y - cy) * 0.7071, (x - cx - (y - cy)) * 0.7071
    return _cross(u, v, 0.0, 0.0, r, a, f)


# (class name, hue, saturation, design); the first ten differ in shape and in colour
DESIGNS = (
    ("red_circle", 0.00, 0.85, _circle),
    ("green_square", 0.33, 0.85, _square),
    ("blue_triangle", 0.62, 0.85, _triangle),
    ("yellow_ring", 0.15, 0.90, _ring),
    ("magenta_cross", 0.83, 0.80, _cross),
    ("cyan_hstripes", 0.50, 0.85, _hstripes),
    ("orange_vstripes", 0.07, 0.90, _vstripes),
    ("white_checkerboard", 0.00, 0.00, _checkerboard),
    ("purple_dots", 0.75, 0.70, _dots),
    ("pink_gradient", 0.93, 0.55, _gradient),
    ("lime_diamond", 0.24, 0.85, _diamond),
    ("brown_x_cross", 0.06, 0.65, _x_cross),
)
CLASS_NAMES = tuple(d[0] for d in DESIGNS)


def _draw_block(params: np.ndarray, labels: np.ndarray, noise_rng: np.random.Generator, resolution: int) -> np.ndarray:
    """Render one block of images: uniforms (n, _NUM_PARAMS), labels (n,) -> uint8 (n, 3, R, R)."""
    n = len(labels)
    u = params.astype(np.float32)[:, :, None, None]  # (n, P, 1, 1) to broadcast against pixels
    cx, cy = 0.5 + 0.3 * (u[:, 0] - 0.5), 0.5 + 0.3 * (u[:, 1] - 0.5)
    r = 0.20 + 0.10 * u[:, 2]
    a, f = u[:, 3], u[:, 4]

    px = (np.arange(resolution, dtype=np.float32) + 0.5) / resolution
    x, y = px[None, None, :], px[None, :, None]

    sdf = np.empty((n, resolution, resolution), np.float32)
    for c in np.unique(labels):
        idx = labels == c
        sdf[idx] = DESIGNS[c][3](x, y, cx[idx], cy[idx], r[idx], a[idx], f[idx])
    alpha = np.clip(0.5 - sdf * resolution, 0.0, 1.0)[:, None]  # one-pixel anti-aliased edge

    hue = np.array([DESIGNS[c][1] for c in labels], np.float32) + 0.08 * (params[:, 5] - 0.5)
    sat = np.array([DESIGNS[c][2] for c in labels], np.float32) * (0.85 + 0.15 * params[:, 6])
    fg = _hsv_to_rgb(hue % 1.0, sat, 0.8 + 0.2 * params[:, 7])  # (n, 3)
    bg = _hsv_to_rgb(params[:, 8], np.full(n, 0.25), 0.10 + 0.25 * params[:, 9])
    img = bg[:, :, None, None] * (1 - alpha) + fg[:, :, None, None] * alpha
    img = img + 0.04 * noise_rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def generate(resolution: int, num_classes: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """All images uint8 (size, 3, R, R) and labels int64 (size,) of the demo dataset."""
    params = np.random.default_rng(seed).random((size, _NUM_PARAMS))
    labels = np.arange(size, dtype=np.int64) % num_classes
    images = np.empty((size, 3, resolution, resolution), np.uint8)
    for b, start in enumerate(range(0, size, _BLOCK)):
        sl = slice(start, min(start + _BLOCK, size))
        noise_rng = np.random.default_rng([seed, b])
        images[sl] = _draw_block(params[sl], labels[sl], noise_rng, resolution)
    return images, labels


class DemoDataset(ImageDataset):
    """Procedurally generated class-conditional images, generated once and cached in memory.

    ``DemoDataset(resolution=32, num_classes=10, size=5000, seed=0, hflip=False, uint8=False)``;
    items are ``(image, label)`` like every sagan dataset (see :class:`ImageDataset`).
    """

    def __init__(self, resolution: int = 32, num_classes: int = 10, size: int = 5000, seed: int = 0,
                 hflip: bool = False, uint8: bool = False):
        if not 1 <= num_classes <= len(DESIGNS):
            raise UserError(f"demo dataset: num_classes={num_classes} but it has {len(DESIGNS)} designs; "
                            f"use 1..{len(DESIGNS)} classes or a real dataset (data.path)")
        if size < 1:
            raise UserError(f"demo dataset: size={size}; use at least 1 image")
        if resolution < 4:
            raise UserError(f"demo dataset: resolution={resolution}; use at least 4 px")
        super().__init__(resolution=resolution, class_names=list(CLASS_NAMES[:num_classes]),
                         hflip=hflip, uint8=uint8, seed=seed)
        self.size = size
        self._images: np.ndarray | None = None
        self._labels: np.ndarray | None = None

    def __len__(self) -> int:
        return self.size

    def _load(self, index: int) -> tuple[np.ndarray, int]:
        if self._images is None:
            self._images, self._labels = generate(self.resolution, self.num_classes, self.size, self.seed)
        return self._images[index], int(self._labels[index])

    @property
    def labels(self) -> np.ndarray:
        """Label of every image (cheap: ``i % num_classes``)."""
        return np.arange(self.size, dtype=np.int64) % self.num_classes

    def __getstate__(self):
        # workers and other processes regenerate the cache (deterministic) rather than receive a copy
        state = super().__getstate__()
        state["_images"] = state["_labels"] = None
        return state
