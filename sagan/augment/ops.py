"""Differentiable image operations shared by the augmentations, on batches (B, C, H, W) in [-1, 1].

Every operation takes its random parameters per image as tensors (drawn by the caller from the step's
seeded generator), so the same parameters give the same images, and gradients flow to the input
through every operation (additions, products, index gathers, masks).
"""

from __future__ import annotations

import torch


def uniform(gen: torch.Generator | None, n: int, device, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """``n`` values from U(low, high), shaped (n, 1, 1, 1) to broadcast over images."""
    u = torch.rand(n, 1, 1, 1, generator=gen, device=device)
    return u * (high - low) + low


def add_brightness(x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``x + b``: ``b`` (B, 1, 1, 1) shifts every pixel of an image alike."""
    return x + b.to(x.dtype)


def saturate(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Scale each pixel's distance from its grey value (the mean over channels, the luma axis) by ``s``."""
    m = x.mean(dim=1, keepdim=True)
    return (x - m) * s.to(x.dtype) + m


def contrast(x: torch.Tensor, c: torch.Tensor, around_mean: bool = True) -> torch.Tensor:
    """Scale an image's distance from its mean value (``around_mean``) or from 0 (mid-grey in [-1, 1])."""
    if not around_mean:
        return x * c.to(x.dtype)
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - m) * c.to(x.dtype) + m


def _axis_index(size: int, shift: torch.Tensor, reflect: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Source index (B, size) of each output position of a shift by ``shift`` (B,) pixels, and whether the
    source lies inside the image (the zero-fill mask; a mirrored shift covers every pixel and ignores it).
    Output position ``i`` shows input ``i - shift``."""
    src = torch.arange(size, device=shift.device).unsqueeze(0) - shift.view(-1, 1)
    inside = (src >= 0) & (src < size)
    if reflect:  # mirror without repeating the edge pixel (torch's "reflect" padding)
        src = torch.where(src < 0, -src, src)
        src = torch.where(src > size - 1, 2 * (size - 1) - src, src)
    return src.clamp(0, size - 1), inside


def shift(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, reflect: bool = False) -> torch.Tensor:
    """Translate each image by integer pixels ``dx`` (right) and ``dy`` (down), both (B,); the uncovered
    border is zero (``reflect=False``) or mirrored (``reflect=True``, shifts below the image size)."""
    b, c, h, w = x.shape
    rows, row_ok = _axis_index(h, dy.long(), reflect)
    cols, col_ok = _axis_index(w, dx.long(), reflect)
    out = x.gather(2, rows.view(b, 1, h, 1).expand(b, c, h, w))
    out = out.gather(3, cols.view(b, 1, 1, w).expand(b, c, h, w))
    if reflect:
        return out
    mask = (row_ok.view(b, 1, h, 1) & col_ok.view(b, 1, 1, w)).to(x.dtype)
    return out * mask


def cut_square(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size_h: int, size_w: int) -> torch.Tensor:
    """Zero the rectangle of ``size_h`` x ``size_w`` pixels at (``top``, ``left``) (B,) of each image,
    clipped at the border (the corner may lie outside the image)."""
    b, _, h, w = x.shape
    r = torch.arange(h, device=x.device).unsqueeze(0)
    c = torch.arange(w, device=x.device).unsqueeze(0)
    in_rows = (r >= top.view(-1, 1)) & (r < top.view(-1, 1) + size_h)
    in_cols = (c >= left.view(-1, 1)) & (c < left.view(-1, 1) + size_w)
    keep = ~(in_rows.view(b, 1, h, 1) & in_cols.view(b, 1, 1, w))
    return x * keep.to(x.dtype)


def flip_x(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror the images where ``flip`` (B,) is true."""
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def rotate90(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Rotate each (square) image by ``k`` (B,) quarter turns counter-clockwise."""
    out = x
    for turns in (1, 2, 3):
        out = torch.where((k == turns).view(-1, 1, 1, 1), torch.rot90(x, turns, dims=(2, 3)), out)
    return out
