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
