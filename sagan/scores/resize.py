"""Resize protocols: how uint8 images become the 299 x 299 input of the FID Inception.

The resize filter moves FID by more than many of the differences papers report (pytorch-fid vs TF
~0.08 on LSUN; clean-fid's legacy vs clean 9.89 vs 10.85 on CIFAR-10), so every reference file and
report names its protocol, and ``evaluate.py metrics`` refuses to compare features made under two
different ones. Each protocol is one entry of :data:`RESIZERS` (:func:`register_resizer`): its name, a
one-line description and the function, in one place.

- ``tf1`` (the default): TF 1.x ``tf.image.resize_bilinear`` on the 0..255 values (no half-pixel
  centres, no antialias), then the graph's own ``(x - 128) / 128``. The protocol of the TF code behind
  the SAGAN paper's numbers and of TTUR, improved-GAN, torch-fidelity and stylegan2-ada, so our numbers
  are comparable with the paper's table and most published ones.
- ``pytorch-fid``: ``x / 255``, ``F.interpolate(bilinear, align_corners=False)``, ``2x - 1``.
- ``clean``: clean-fid's resize: PIL bicubic with antialias, per channel on float values ("mode F"),
  clipped to 0..255, then ``(x - 128) / 128``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import UserError
from ..registry import RESIZERS

INPUT_SIZE = 299  # the Inception graph's input (2015 TF release)


def tf1_bilinear(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """TF 1.x ``resize_bilinear(align_corners=False, half_pixel_centers=False)`` of float (B, C, H, W).

    Output pixel ``i`` samples the input at ``src = i * in / out`` (no half-pixel shift): ``lo =
    floor(src)``, ``hi = min(lo + 1, in - 1)``, weight ``src - lo``; rows first, then columns, each as
    ``a + (b - a) * w`` in the input's dtype, the float32 arithmetic of TF's kernel
    (``resize_bilinear_op.cc``: ``top + (bottom - top) * y_lerp``), so the result is bit-exact on CPU.
    """
    def axis(n_in: int):
        src = torch.arange(size, dtype=x.dtype, device=x.device) * torch.tensor(n_in / size, dtype=x.dtype)
        lo = src.long()  # src >= 0, so truncation is floor
        return lo, (lo + 1).clamp_max(n_in - 1), src - lo.to(x.dtype)

    x_lo, x_hi, x_w = axis(x.shape[3])
    y_lo, y_hi, y_w = axis(x.shape[2])
    left, right = x.index_select(3, x_lo), x.index_select(3, x_hi)
    rows = left + (right - left) * x_w  # every input row resampled along x: (B, C, H, size)
    top, bottom = rows.index_select(2, y_lo), rows.index_select(2, y_hi)
    return top + (bottom - top) * y_w.view(-1, 1)


def _tf1(images: torch.Tensor) -> torch.Tensor:
    # (torch-fidelity / TTUR: float32 0..255, TF1 bilinear, then the graph's (x - 128) / 128)
    return tf1_bilinear(images.float()).sub_(128).div_(128)


def _pytorch_fid(images: torch.Tensor) -> torch.Tensor:
    # (pytorch-fid: ToTensor to [0, 1], bilinear with align_corners=False, then 2x - 1)
    x = F.interpolate(images.float().div_(255), size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return x.mul_(2).sub_(1)


def _clean(images: torch.Tensor) -> torch.Tensor:
    """clean-fid's PIL bicubic (antialiased) resize, on the device.

    PIL resamples a "mode F" image in two passes, horizontal then vertical, each accumulating in double
    and storing float32 (``Resample.c``); torch's antialiased bicubic uses PIL's kernel (a = -0.5) and
    support, so two one-axis float64 passes with a float32 rounding in between reproduce PIL's output
    to the last bit or one float32 step. Float64 keeps it exact on GPU too (no PIL round trip)."""
    x = images.double()
    h = x.shape[2]
    x = F.interpolate(x, size=(h, INPUT_SIZE), mode="bicubic", antialias=True, align_corners=False)
    x = x.float().double()  # PIL stores the horizontal pass as float32
    x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bicubic", antialias=True, align_corners=False)
    return x.float().clamp_(0, 255).sub_(128).div_(128)


@dataclass(frozen=True)
class Resizer:
    name: str
    description: str
    to_input: Callable[[torch.Tensor], torch.Tensor]  # uint8 (B, 3, H, W) -> float32 (B, 3, 299, 299)


# RESIZERS (sagan.registry.RESIZERS) is filled below


def register_resizer(resizer: Resizer) -> Resizer:
    """Add a resize protocol (``--resize NAME``, ``train.fid_resize``)."""
    return RESIZERS.register(resizer.name, resizer)


for _resizer in (
    Resizer("tf1", "TF1 resize_bilinear on 0..255 (no half-pixel centres) -> (x - 128) / 128 "
                   "(the paper's TF code; TTUR, torch-fidelity, stylegan2-ada)", _tf1),
    Resizer("pytorch-fid", "pytorch-fid: uint8 -> [0,1] -> bilinear 299 (align_corners=False) -> [-1,1]", _pytorch_fid),
    Resizer("clean", "clean-fid: PIL bicubic antialiased per channel on 0..255 floats, clipped -> (x - 128) / 128",
            _clean),
):
    register_resizer(_resizer)
RESIZE_MODES = RESIZERS.names  # live: a protocol registered later (a plugin) is in it
DEFAULT_RESIZE = "tf1"


def check_resize(mode: str) -> str:
    if mode not in RESIZERS:
        raise UserError(f"resize protocol {mode!r} is unknown; use one of {RESIZERS.listing()}")
    return mode


def resize_description(mode: str) -> str:
    return RESIZERS[check_resize(mode)].description


def to_inception_input(images: torch.Tensor, mode: str = DEFAULT_RESIZE) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 (B, 3, 299, 299) under the protocol ``mode``."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise TypeError(f"Inception expects uint8 images (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    return RESIZERS[check_resize(mode)].to_input(images)
