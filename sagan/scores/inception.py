"""The 2015 TensorFlow Inception graph used by FID and IS, as ported to PyTorch by pytorch-fid.

Layer names, shapes and registration order follow pytorch-fid's ``fid_inception_v3`` (torchvision's
Inception3 layout with the FID-specific A/C/E blocks), so the state dict of
``pt_inception-2015-12-05-6726825d.pth`` loads unchanged. What differs from torchvision's Inception v3:

- BatchNorm eps 1e-3 (TF's default),
- the pool branches of the A, C and first E blocks average without the zero padding
  (``count_include_pad=False``, as TF's avg_pool does),
- the last E block's pool branch is a max-pool (a quirk of the 2015 graph, kept by pytorch-fid),
- a 1008-way classifier (1000 ImageNet classes + 8 unused).

``forward`` takes uint8 RGB images (B, 3, H, W), resizes them to 299 under the network's resize
protocol (``resize``: ``tf1``, ``pytorch-fid`` or ``clean``, :mod:`sagan.scores.resize`) and returns
the 2048-d pool features (FID) and the bias-free 1008-way logits ``pool @ fc.weight.T`` (IS, as
improved-GAN's TF code and torch-fidelity compute it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .resize import DEFAULT_RESIZE, check_resize, to_inception_input

FEATURE_DIM = 2048
NUM_LOGITS = 1008


def _fused_conv_relu_op():
    """oneDNN's fused convolution + bias + ReLU (the kernel inductor emits on CPU), or None without it."""
    try:
        return torch.ops.mkldnn._convolution_pointwise.default if torch.backends.mkldnn.is_available() else None
    except (AttributeError, RuntimeError):
        return None


_FUSED_CONV_RELU = _fused_conv_relu_op()


def conv_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``relu(conv2d(x, weight, bias))`` with ``conv``'s geometry; one fused oneDNN call for float32 CPU
    inputs (no second pass over the output for the ReLU), else conv2d then an in-place ReLU."""
    if _FUSED_CONV_RELU is not None and x.device.type == "cpu" and x.dtype == torch.float32:
        return _FUSED_CONV_RELU(x, weight, bias, list(conv.padding), list(conv.stride), list(conv.dilation),
                                conv.groups, "relu", [None], "")
    return F.relu(F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups), inplace=True)


class BasicConv2d(nn.Module):
    """conv (no bias) -> BN(eps=1e-3) -> ReLU; keys ``conv.weight``, ``bn.*``.

    With ``fold`` (set by :class:`InceptionV3` in its fast channels_last mode) an eval-mode forward runs
    one convolution with the batch norm folded into its weight and bias, ``w * g / sqrt(var + eps)`` and
    ``b - mean * g / sqrt(var + eps)``, fused with the ReLU on CPU: the same function with two passes over
    the activations fewer. The
    folded pair is recomputed whenever a weight or statistic changes (a loaded state dict).
    """

    def __init__(self, cin: int, cout: int, **conv_kwargs):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **conv_kwargs)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)  # (TF default eps, kept by pytorch-fid)
        self.fold = False
        self._folded: tuple | None = None

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the convolution with the batch norm folded in, computed in float64."""
        bn, w = self.bn, self.conv.weight
        key = tuple((t.data_ptr(), t._version) for t in (w, bn.weight, bn.bias, bn.running_mean, bn.running_var))
        if self._folded is None or self._folded[0] != key:
            with torch.no_grad():
                scale = bn.weight.double() * torch.rsqrt(bn.running_var.double() + bn.eps)
                weight = (w.double() * scale[:, None, None, None]).to(w.dtype)
                bias = (bn.bias.double() - bn.running_mean.double() * scale).to(w.dtype)
            weight = weight.contiguous(memory_format=torch.channels_last)
            self._folded = (key, weight, bias)
        return self._folded[1], self._folded[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fold and not self.training:
            weight, bias = self.folded()
            return conv_relu(x, weight, bias, self.conv)
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _avg_pool_tf(x: torch.Tensor) -> torch.Tensor:
    # TF's avg_pool ignores the zero padding (pytorch-fid: count_include_pad=False)
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_tf(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (``Mixed_6a``)."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class InceptionC(nn.Module):
    """Factorised 7x7 block (``Mixed_6b``..``Mixed_6e``)."""

    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(_avg_pool_tf(x))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (``Mixed_7a``)."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class InceptionE(nn.Module):
    """Expanded-filter block (``Mixed_7b``, ``Mixed_7c``); ``max_pool`` for the last one (2015 graph)."""

    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.max_pool:  # (pytorch-fid FIDInceptionE_2: the 2015 graph max-pools here)
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool_tf(x)
        return torch.cat([b1, b3, bd, self.branch_pool(pooled)], 1)


class InceptionV3(nn.Module):
    """FID Inception: uint8 RGB images -> (2048-d pool features, 1008 bias-free logits), float32."""

    def __init__(self, resize: str = DEFAULT_RESIZE):
        super().__init__()
        self.resize = check_resize(resize)  # features always say how their inputs were made
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(FEATURE_DIM, NUM_LOGITS)
        for p in self.parameters():
            p.requires_grad_(False)
        self.channels_last = True

    @property
    def channels_last(self) -> bool:
        return self._channels_last

    @channels_last.setter
    def channels_last(self, value: bool) -> None:
        """The fast mode (channels_last, batch norm folded into the convolutions) or, with False, the exact
        kernels of torch-fidelity's network (bit-identical features)."""
        self._channels_last = bool(value)
        for m in self.modules():
            if isinstance(m, BasicConv2d):
                m.fold = self._channels_last

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> float32 (B, 3, 299, 299) under this network's resize protocol
        (``self.resize``, see :mod:`sagan.scores.resize`), in the network's memory layout: channels_last
        (faster convolutions on CPU and GPU) unless ``self.channels_last`` is False, where the
        convolutions run the same kernels as torch-fidelity's network (bit-identical features)."""
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        return to_inception_input(images, self.resize).contiguous(memory_format=layout)

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed images (B, 3, 299, 299) -> 2048-d features after the final average pool."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))  # adaptive average pool to 1x1

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Bias-free logits ``features @ fc.weight.T`` (improved-GAN / torch-fidelity ``logits_unbiased``)."""
        return features @ self.fc.weight.T.to(features.dtype)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.pool_features(self.preprocess(images))
        return features, self.logits(features)
