"""Image figures composed with PIL: sample grids with a caption strip, and the attention-map figure (SAGAN
fig. 1/5), whose heat overlay takes its colours from matplotlib (:mod:`sagan.plots`).

All functions take uint8 images (B, H, W, 3) as :func:`sagan.sampling.draw.to_uint8` returns them and return
or save RGB PIL images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from ..io import atomic_write
from ..plots import colormap

# distinct, colour-blind-friendly query colours (Okabe & Ito 2008)
QUERY_COLOURS = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0), (204, 121, 167)]
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)


def _font(size: int = 12) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


PNG_SOFTWARE = "sagan"  # the PNG's Software text: how sample.py knows a PNG it may replace is one of ours


def save_png(img: Image.Image, path: str | Path, durable: bool = True) -> Path:
    """Write a PNG atomically (``durable=False``: without fsync, for bulk sample folders), tagged as ours."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Software", PNG_SOFTWARE)
    with atomic_write(path, durable=durable) as f:
        img.save(f, format="PNG", pnginfo=info)
    return Path(path)


def upscale_factor(resolution: int, target: int = 96) -> int:
    """Integer nearest-neighbour zoom so that small images (the 32px demo) stay readable."""
    return max(1, target // resolution)


def _caption_font(tile_height: int) -> ImageFont.ImageFont:
    return _font(max(10, min(16, tile_height // 3)))


def caption_strip_width(captions: Sequence[str] | None, tile_height: int, pad: int = 2) -> int:
    """Width of the caption strip :func:`image_grid` puts left of its tiles (0 without captions)."""
    if not captions:
        return 0
    font = _caption_font(tile_height)
    return int(max(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(c, font=font) for c in captions) + 2 * pad + 6)


def image_grid(images: torch.Tensor, nrow: int, captions: Sequence[str] | None = None, pad: int = 2, zoom: int = 1) -> Image.Image:
    """Images (N, H, W, 3) uint8 in rows of ``nrow``; optional caption per row in a strip on the left.
    The one grid of the codebase: sample.py's grids, the training loop's grids (PNG and TensorBoard)."""
    n, h, w, _ = images.shape
    h, w = h * zoom, w * zoom
    rows = (n + nrow - 1) // nrow
    font = _caption_font(h)
    strip = caption_strip_width(captions, h, pad)
    canvas = Image.new("RGB", (strip + nrow * (w + pad) + pad, rows * (h + pad) + pad), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    arr = images.numpy()
    for i in range(n):
        r, c = divmod(i, nrow)
        tile = Image.fromarray(arr[i])
        if zoom > 1:
            tile = tile.resize((w, h), Image.NEAREST)
        canvas.paste(tile, (strip + pad + c * (w + pad), pad + r * (h + pad)))
    for r, caption in enumerate(captions or []):
        draw.text((pad + 2, pad + r * (h + pad) + h // 2), caption, fill=TEXT, font=font, anchor="lm")
    return canvas


def attention_overlay(image: np.ndarray, attn: torch.Tensor, size: int, alpha: float = 0.65) -> Image.Image:
    """One query's weights over the key grid (Hk, Wk), upsampled to ``size`` and blended over the image
    in grey; normalised by its maximum so that where the query looks stands out."""
    a = attn.float()[None, None]
    a = F.interpolate(a, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()
    a = a / max(a.max(), 1e-12)
    grey = np.asarray(Image.fromarray(image).convert("L").resize((size, size), Image.BICUBIC), dtype=np.float32)
    blend = (1 - alpha) * grey[..., None] + alpha * colormap(a)  # matplotlib's perceptually uniform map
    return Image.fromarray(np.clip(blend, 0, 255).astype(np.uint8))


def default_query_points(n: int) -> list[tuple[float, float]]:
    """``n`` query points spread over the image, as fractions (row, col) of its size."""
    spread = [(0.3, 0.3), (0.7, 0.7), (0.3, 0.7), (0.7, 0.3), (0.5, 0.5), (0.15, 0.5), (0.85, 0.5)]
    return spread[:n]


def attention_figure(
    images: torch.Tensor,
    maps: dict[int, torch.Tensor],
    points: Sequence[tuple[float, float]],
    captions: Sequence[str] | None = None,
    size: int = 128,
    pad: int = 4,
) -> Image.Image:
    """The paper's figure: per image, the image with its query points marked in distinct colours, then
    for every attention layer the map of each query point, framed in that point's colour.

    ``maps`` is what ``G(z, y, return_attn=True)`` returns: {resolution: (B, H, W, Hk, Wk)}.
    """
    if not maps:
        raise ValueError("the generator has no attention layer (model.g_attn is empty)")
    B = images.shape[0]
    layers = sorted(maps)
    font = _font(12)
    header = 34
    cols = 1 + len(layers) * len(points)
    W = cols * (size + pad) + pad
    H = header + B * (size + pad + (14 if captions else 0)) + pad
    canvas = Image.new("RGB", (W, H), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, 4), "image + queries", fill=TEXT, font=font)
    for li, res in enumerate(layers):
        x0 = pad + (1 + li * len(points)) * (size + pad)
        draw.text((x0, 4), f"{res}x{res} attention: where each query looks", fill=TEXT, font=font)
        for qi in range(len(points)):
            x = x0 + qi * (size + pad)
            draw.rectangle([x, 20, x + 14, 30], fill=QUERY_COLOURS[qi % len(QUERY_COLOURS)])
            draw.text((x + 18, 20), f"query {qi + 1}", fill=TEXT, font=font)
    arr = images.numpy()
    r = max(3, size // 32)
    for b in range(B):
        y = header + b * (size + pad + (14 if captions else 0))
        if captions:
            draw.text((pad, y), captions[b], fill=TEXT, font=font)
            y += 14
        img = Image.fromarray(arr[b]).resize((size, size), Image.NEAREST if arr.shape[1] < size else Image.BICUBIC)
        d = ImageDraw.Draw(img)
        for qi, (py, px) in enumerate(points):
            cy, cx = py * size, px * size
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=QUERY_COLOURS[qi % len(QUERY_COLOURS)], outline=(0, 0, 0))
        canvas.paste(img, (pad, y))
        for li, res in enumerate(layers):
            m = maps[res][b]  # (H, W, Hk, Wk)
            for qi, (py, px) in enumerate(points):
                qh, qw = min(int(py * m.shape[0]), m.shape[0] - 1), min(int(px * m.shape[1]), m.shape[1] - 1)
                tile = attention_overlay(arr[b], m[qh, qw], size)
                td = ImageDraw.Draw(tile)
                colour = QUERY_COLOURS[qi % len(QUERY_COLOURS)]
                td.rectangle([0, 0, size - 1, size - 1], outline=colour, width=3)
                cy, cx = py * size, px * size
                td.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, width=2)
                canvas.paste(tile, (pad + (1 + li * len(points) + qi) * (size + pad), y))
    return canvas
