"""Helpers of the evaluate.py tests: a microsecond stand-in for Inception (``metrics_utils.TinyInception``)
patched into the evaluation session, evaluate.py driven through click with its one-line refusals, and
reference statistics of real demo red circles and blue triangles."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from metrics_utils import tiny_inception_loader, write_image_tree
from sagan.metrics import session as S
from sagan.commands import evaluate as E

RED, BLUE = 0, 2  # demo classes red_circle and blue_triangle (model order; alphabetically blue comes first)


@pytest.fixture
def inception_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(S, "load_inception", tiny_inception_loader(calls))
    return calls


def run(args, ok=True):
    result = CliRunner().invoke(E.main, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output + str(result.exception)
    return result


def bad(args, match):
    result = run(args, ok=False)
    *before, err = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert err.startswith("error:") and "Traceback" not in result.output, result.stderr
    assert all(line.startswith("warning:") for line in before), result.stderr
    assert match in err, err
    return err


def demo_images(cls: int, n: int, start: int = 0) -> np.ndarray:
    """n demo images (uint8 HWC) of demo class ``cls``, from image index ``start`` on."""
    from sagan.data import open_dataset

    ds = open_dataset(None, resolution=32, uint8=True, demo_size=start + 10 * n, demo_classes=10, seed=0)
    idx = [i for i in range(start, len(ds)) if i % 10 == cls][:n]
    return np.stack([ds[i][0].permute(1, 2, 0).numpy() for i in idx])


@pytest.fixture
def colour_tree(tmp_path):
    """Real red circles and blue triangles in folders named by class (sorted: blue_triangle, red_circle)."""
    images = np.concatenate([demo_images(RED, 12), demo_images(BLUE, 12)])
    return write_image_tree(tmp_path / "tree", images, np.repeat([0, 1], 12), ["red_circle", "blue_triangle"])


@pytest.fixture
def colour_ref(colour_tree, tmp_path, inception_calls):
    out = tmp_path / "ref.npz"
    run(["stats", "--data", colour_tree, "--resolution", 32, "--out", out, "--num-workers", 0, "--batch-size", 10])
    return out


def write_samples(path, images, labels, class_names=None, **extra):
    arrays = {"images": images, "labels": np.asarray(labels)}
    if class_names is not None:
        arrays["class_names"] = np.array(class_names, dtype=str)
    np.savez(path, **arrays, **extra)
    return path
