"""Counting StackedMNIST's modes: a small digit classifier, the mode of each image, coverage and reverse KL.

The protocol of VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018; fjxmlzn/PacGAN
``stacked_MNIST_experiments``): a classifier trained on MNIST reads the digit in each of the three colour
channels of a generated image; the mode of the image is ``100 * d_R + 10 * d_G + d_B`` (1000 modes);
over 26,000 generated images, report how many modes occur at least once and the reverse KL divergence
between the generated mode distribution p and the uniform distribution u over the 1000 modes,

    KL(p || u) = sum_k p_k * log(p_k / (1 / 1000)) = log(1000) - H(p)   (natural log, 0 log 0 = 0),

0 for a uniform output, log(1000) = 6.91 for one mode. The classifier is trained here on MNIST's training
images at the experiment's resolution (resized as the stacked images are) and its accuracy on MNIST's
test images says how far the mode counts can be trusted (:data:`RELIABLE_ACCURACY`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError
from ..io import write_text_atomic

NUM_MODES = 1000
RELIABLE_ACCURACY = 0.98  # below this on MNIST's test images, mode counts are marked unreliable
CLASSIFIER_WEIGHTS, CLASSIFIER_RECORD = "classifier.safetensors", "classifier.json"


class DigitClassifier(nn.Module):
    """A small CNN on one grey channel at R px (R >= 8): three 3x3 conv + BN + ReLU + 2x2 max-pool stages
    (16, 32, 64 channels), pooled to 4x4, one linear layer to the 10 digits."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveMaxPool2d(4))
        self.head = nn.Linear(64 * 16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def _as_input(grey: np.ndarray) -> torch.Tensor:
    """uint8 (N, R, R) -> float (N, 1, R, R) in [-1, 1], the range of sagan's images."""
    return torch.from_numpy(np.ascontiguousarray(grey)).float().div_(127.5).sub_(1.0).unsqueeze(1)


def train_classifier(images: np.ndarray, labels: np.ndarray, epochs: int, seed: int = 0,
                     batch_size: int = 128, lr: float = 1e-3) -> DigitClassifier:
    """A :class:`DigitClassifier` trained on uint8 (N, R, R) digit images with Adam, ``seed`` fixing the
    initialisation and the order of the batches."""
    torch.manual_seed(seed)
    model = DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    targets = torch.from_numpy(np.asarray(labels, np.int64))
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(images), generator=gen).split(batch_size):
            loss = F.cross_entropy(model(_as_input(images[idx.numpy()])), targets[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


@torch.inference_mode()
def predict_digits(model: DigitClassifier, grey: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """The digit (int64) the classifier reads in each uint8 (N, R, R) image."""
    model.eval()
    out = [model(_as_input(grey[i:i + batch_size])).argmax(1) for i in range(0, len(grey), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.int64)


def accuracy(model: DigitClassifier, images: np.ndarray, labels: np.ndarray) -> float:
    return float((predict_digits(model, images) == np.asarray(labels)).mean())


def mode_ids(digits: np.ndarray) -> np.ndarray:
    """Digits (N, 3) read in the R, G, B channels -> mode ids 100 * d_R + 10 * d_G + d_B in [0, 1000)."""
    digits = np.asarray(digits, np.int64)
    return digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]


def image_modes(model: DigitClassifier, images: np.ndarray) -> np.ndarray:
    """The mode id of each uint8 (N, R, R, 3) RGB image: its three channels classified one by one."""
    images = np.asarray(images)
    channels = images.transpose(3, 0, 1, 2).reshape(-1, *images.shape[1:3])  # all R, then all G, then all B
    return mode_ids(predict_digits(model, channels).reshape(3, len(images)).T)


def mode_coverage(modes: np.ndarray, num_modes: int = NUM_MODES) -> dict:
    """{``modes``: modes seen at least once, ``kl``: KL(p || uniform) of the observed mode frequencies p
    (natural log; see the module docstring), ``samples``}."""
    modes = np.asarray(modes, np.int64)
    if not len(modes):
        raise ValueError("no samples to count modes of")
    counts = np.bincount(modes, minlength=num_modes)
    p = counts[counts > 0] / len(modes)
    kl = float(np.sum(p * np.log(p * num_modes)))
    return {"modes": int((counts > 0).sum()), "kl": kl, "samples": int(len(modes))}


def save_classifier(folder: Path, model: DigitClassifier, record: dict) -> None:
    """Weights as safetensors (nothing read back can run code) and ``record`` as JSON beside them; the
    record is written last, so a folder with it is complete."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / CLASSIFIER_WEIGHTS))
    write_text_atomic(folder / CLASSIFIER_RECORD, json.dumps(record, indent=2) + "\n")


def load_classifier(folder: Path) -> tuple[DigitClassifier, dict] | None:
    """The classifier and its record saved in ``folder``, None if there is none."""
    from safetensors.torch import load_file

    if not (folder / CLASSIFIER_RECORD).is_file():
        return None
    try:
        record = json.loads((folder / CLASSIFIER_RECORD).read_text())
        model = DigitClassifier()
        model.load_state_dict(load_file(str(folder / CLASSIFIER_WEIGHTS)))
    except (OSError, ValueError, RuntimeError) as e:
        raise UserError(f"{folder / CLASSIFIER_WEIGHTS}: unreadable digit classifier ({e}); delete "
                        f"{CLASSIFIER_WEIGHTS} and {CLASSIFIER_RECORD} to train it again") from None
    return model.eval(), record


def max_kl(num_modes: int = NUM_MODES) -> float:
    """KL(p || uniform) of a single mode: log(num_modes)."""
    return math.log(num_modes)
