"""Shared helpers for the metrics tests: a calibrated random Inception, oracles, tiny image sets.

The official ``pt_inception-2015-12-05-6726825d.pth`` cannot be downloaded in CI, so the tests build the
same graph with random weights, calibrate its BatchNorm statistics on random images (so activations keep
unit scale through 94 layers instead of vanishing or exploding), save the state dict to a file and load
it the way the real file is loaded. pytorch-fid and torch-fidelity are test-only oracles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from sagan.scores.inception import InceptionV3


def smooth_images(n: int, size: int = 32, seed: int = 0, channels: int = 3) -> np.ndarray:
    """uint8 (n, size, size, channels): low-frequency random patterns plus noise, distinct per image."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, channels, 4, 4, generator=g)
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    x = 0.8 * x + 0.2 * torch.rand(n, channels, size, size, generator=g)
    return (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def calibrated_inception_state(seed: int = 0, num_images: int = 6) -> dict[str, torch.Tensor]:
    """State dict of a random-weight FID Inception whose BN running stats equal the batch stats of a
    forward pass on random images (momentum=None -> cumulative average of one batch = that batch)."""
    torch.manual_seed(seed)
    net = InceptionV3()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
            m.weight.uniform_(0.8, 1.2)
            m.bias.uniform_(-0.1, 0.3)  # keep most units alive after ReLU
    nn.init.normal_(net.fc.weight, std=0.15)  # logits spread enough that IS is far from 1
    nn.init.normal_(net.fc.bias, std=1.0)  # must not enter the bias-free logits
    net.train()
    imgs = torch.from_numpy(smooth_images(num_images, 48, seed=seed + 1000)).permute(0, 3, 1, 2)
    net(imgs)
    return {k: v.clone() for k, v in net.state_dict().items()}


def save_state(state: dict, path: Path) -> Path:
    torch.save(state, path)
    return path


def pytorch_fid_inception(state: dict, monkeypatch) -> torch.nn.Module:
    """pytorch-fid's ``InceptionV3`` (2048-d block) with ``state`` loaded instead of the downloaded file."""
    import pytorch_fid.inception as pfi

    monkeypatch.setattr(pfi, "load_state_dict_from_url", lambda *a, **k: state)
    return pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()


@torch.no_grad()
def pytorch_fid_features(model: torch.nn.Module, images: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """pytorch-fid's pipeline on uint8 HWC images: ToTensor (/255, CHW) -> InceptionV3 -> (N, 2048)."""
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(images[i : i + batch_size]).permute(0, 3, 1, 2).float() / 255
        out.append(model(x)[0].squeeze(3).squeeze(2).numpy())
    return np.concatenate(out).astype(np.float64)


def scipy_fid(mu1, s1, mu2, s2) -> float:
    """The slow exact route: pytorch-fid's calculate_frechet_distance (scipy sqrtm)."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    return float(calculate_frechet_distance(mu1, s1, mu2, s2))


def write_image_tree(root: Path, images: np.ndarray, labels: np.ndarray, names: list[str] | None = None) -> Path:
    """A class-per-folder PNG tree: root/<class name>/<i>.png."""
    from PIL import Image

    names = names or [f"class{c:02d}" for c in range(int(labels.max()) + 1)]
    for i, (img, y) in enumerate(zip(images, labels)):
        d = root / names[int(y)]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i:04d}.png")
    return root


class TinyInception(nn.Module):
    """A stand-in for the FID Inception with its interface (``resize``, ``weights_sha256``, ``preprocess``,
    ``pool_features``, ``fc``) at microseconds per image: for tests of the evaluation's plumbing (files,
    errors, class pairing, reports), not of its numbers. Features: a fixed random projection of the 8x8
    average-pooled image, through a ReLU (non-negative, like pool features)."""

    def __init__(self, resize: str = "tf1", weights_sha256: str = "f" * 64):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.proj = nn.Parameter(torch.randn(3 * 8 * 8, 2048, generator=g) / 8, requires_grad=False)
        self.fc = nn.Linear(2048, 1008)
        nn.init.normal_(self.fc.weight, std=0.5, generator=g)
        self.resize, self.weights_sha256, self.weights_path, self.channels_last = resize, weights_sha256, "tiny", False

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return images.float() / 255

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1) @ self.proj + 0.1)


def tiny_inception_loader(calls: list | None = None):
    """A ``load_inception`` replacement returning :class:`TinyInception` (records each call in ``calls``)."""
    def load(weights=None, device="cpu", channels_last=True, resize="tf1"):
        if calls is not None:
            calls.append(resize)
        return TinyInception(resize).to(device)
    return load
