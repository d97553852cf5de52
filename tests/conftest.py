"""Shared pytest fixtures: small configs and networks that build in milliseconds."""

from __future__ import annotations

import pytest
import torch

from sagan.config import load_config


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def tiny_cfg():
    """The demo preset at 32px with narrow networks (G and D ~100k parameters each)."""
    return load_config("demo", overrides=["model.g_ch=16", "model.d_ch=16"])


def _mount_tmpfs(path, size: str) -> bool:
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    try:
        return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a tiny file system (``small_disk(size)`` -> Path): a real tmpfs where the tests run as
    root, else the test is skipped (tests that must always run inject ENOSPC with a failing writer)."""
    import os
    import subprocess

    mounted = []

    def make(size: str = "2m"):
        mnt = tmp_path / f"disk{len(mounted)}"
        if os.geteuid() != 0 or not _mount_tmpfs(mnt, size):
            pytest.skip("needs root to mount a small tmpfs")
        mounted.append(mnt)
        return mnt

    yield make
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=10)


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only file system (root's writes fail there too, whatever the mode bits say)."""
    import os
    import subprocess

    mnt = tmp_path / "ro"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mnt)],
                                           capture_output=True, timeout=10).returncode != 0:
        pytest.skip("needs root to mount a read-only tmpfs")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=10)


# --------------------------------------------------------------------------------------------------
# evaluation during training: a random calibrated Inception file and a tiny demo reference


TINY_TRAIN = ["model.g_ch=16", "model.d_ch=16", "data.demo_size=32", "train.batch_size=8", "train.log_every=1",
              "train.num_workers=0", "train.sample_every=1000", "train.checkpoint_every=1000",
              "train.fid_num_samples=10"]


@pytest.fixture(scope="session")
def inception_weights_file(tmp_path_factory):
    """The FID Inception with calibrated random weights, saved like the official file (metrics_utils)."""
    from metrics_utils import calibrated_inception_state, save_state

    return save_state(calibrated_inception_state(seed=0), tmp_path_factory.mktemp("inception") / "random_inception.pth")


@pytest.fixture(scope="session")
def demo_ref(tmp_path_factory, inception_weights_file):
    """Reference statistics (tf1 resize) of the 32-image tiny demo dataset of ``TINY_TRAIN``."""
    from sagan.experiments.runner import ensure_reference
    from sagan.training import make_accelerator

    cfg = load_config("demo", overrides=TINY_TRAIN)
    return ensure_reference(tmp_path_factory.mktemp("ref"), cfg, str(inception_weights_file), make_accelerator("no"))


def random_image_tree(root, classes, per_class: int = 4, size: int = 40, seed: int = 0):
    """A class-per-folder tree of random RGB PNGs: ``root/<class>/<i>.png`` (class names may hold
    undecodable bytes as surrogate escapes, ``os.fsdecode``)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


# --------------------------------------------------------------------------------------------------
# exact resume: a run straight through vs. the same run stopped and resumed


def all_tensors(state, prefix=""):
    """Flatten nested state dicts / lists into {path: tensor or plain value}."""
    if isinstance(state, dict):
        return {k2: v2 for k, v in state.items() for k2, v2 in all_tensors(v, f"{prefix}/{k}").items()}
    if isinstance(state, (list, tuple)):
        return {k2: v2 for i, v in enumerate(state) for k2, v2 in all_tensors(v, f"{prefix}/{i}").items()}
    return {prefix: state}


def assert_same_state(a, b, what: str) -> None:
    """Every tensor (and plain value) of two nested states is equal, bit for bit."""
    ta, tb = all_tensors(a), all_tensors(b)
    assert ta.keys() == tb.keys(), what
    for name in ta:
        if isinstance(ta[name], torch.Tensor):
            assert torch.equal(ta[name], tb[name]), f"{what}{name} differs after resume"
        else:
            assert ta[name] == tb[name], f"{what}{name}"


def straight_and_resumed(cfg, root, steps: int, split: int) -> tuple[dict, dict]:
    """The last checkpoints of ``cfg`` trained ``steps`` steps straight (``root/straight``) and trained
    ``split`` steps then resumed to ``steps`` (``root/split``)."""
    from sagan.training import train

    train(cfg.replace(train={"max_steps": steps}), outdir=root / "straight", progress=False)
    train(cfg.replace(train={"max_steps": split}), outdir=root / "split", progress=False)
    train(cfg.replace(train={"max_steps": steps}), resume=root / "split", progress=False)
    return (torch.load(root / "straight/checkpoints/last.pt", weights_only=True),
            torch.load(root / "split/checkpoints/last.pt", weights_only=True))
