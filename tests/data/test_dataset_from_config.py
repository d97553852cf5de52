"""One way from a config to a dataset (:func:`sagan.data.dataset_from_config`), each open detecting the
format once, and ``train.py --grad-accum auto`` / ``--dry-run`` opening the training data once."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
import torch
from click.testing import CliRunner

from format_files import write_cifar10
from sagan.config import load_config
from sagan.data import dataset_from_config, find_format, open_dataset, open_found
from sagan.data.formats import OpenRequest
from sagan.data.stream import open_training_data
from sagan.registry import DATASET_FORMATS
from sagan.commands.train import main as train_cli

TINY = ["model.g_ch=16", "model.d_ch=16", "train.batch_size=8", "train.num_workers=0"]


@pytest.fixture
def format_calls(monkeypatch) -> Counter:
    """Counts, per registered format, the calls of its ``detect`` and of what opens it (``source`` /
    ``open``), through the real functions."""
    calls: Counter = Counter()

    def counted(kind: str, name: str, fn):
        def call(*args, **kwargs):
            calls[f"{kind} {name}"] += 1
            return fn(*args, **kwargs)
        return call

    for name, fmt in list(DATASET_FORMATS.items()):
        kept = {k: counted(k, name, getattr(fmt, k)) for k in ("detect", "source", "open") if getattr(fmt, k)}
        monkeypatch.setitem(DATASET_FORMATS._entries, name, dataclasses.replace(fmt, **kept))
    return calls


@pytest.fixture
def cifar(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    write_cifar10(root)  # 30 train images, 6 test images, 10 classes
    return root


def detections(calls: Counter) -> dict[str, int]:
    return {k: v for k, v in calls.items() if k.startswith("detect ")}


def test_opening_the_training_data_detects_its_format_once(format_calls, cifar):
    ds, cfg = open_training_data(load_config("demo", overrides=TINY).replace(data={"path": str(cifar)}), pinned=())
    assert len(ds) == 30 and cfg.model.resolution == 32 and cfg.model.num_classes == 10
    found = detections(format_calls)
    assert found and set(found.values()) == {1}, found  # every format asked once, not twice
    assert format_calls["source cifar"] == 1


def test_an_already_found_format_is_not_detected_again(format_calls, cifar):
    found = find_format(cifar)
    asked = sum(detections(format_calls).values())
    ds = open_found(found, OpenRequest(uint8=True), cifar)
    assert sum(detections(format_calls).values()) == asked and len(ds) == 30 and ds.uint8


def test_dataset_from_config_reads_the_demo_the_config_names():
    cfg = load_config("demo", overrides=["data.demo_size=40", "model.num_classes=3", "train.seed=5", "data.hflip=true"])
    ds = dataset_from_config(cfg)
    same = open_dataset(None, resolution=cfg.model.resolution, hflip=True, demo_size=40, demo_classes=3, seed=5)
    assert (len(ds), ds.num_classes, ds.resolution, ds.hflip, ds.seed) == (40, 3, cfg.model.resolution, True, 5)
    for i in (0, 17, 39):
        assert torch.equal(ds[i][0], same[i][0]) and ds[i][1] == same[i][1]


def test_dataset_from_config_takes_split_and_overrides_of_resolution_flips_and_dtype(cifar):
    cfg = load_config("demo", overrides=TINY).replace(data={"path": str(cifar), "split": "test", "hflip": True})
    ds = dataset_from_config(cfg, resolution=None, hflip=False, uint8=True)  # None: the stored size
    assert (len(ds), ds.resolution, ds.hflip, ds.uint8) == (6, 32, False, True)
    assert ds[0][0].dtype == torch.uint8
    assert dataset_from_config(cfg, resolution=16).resolution == 16  # resized on the fly
    assert dataset_from_config(cfg).hflip is True  # the config's data.hflip by default


def test_experiment_reference_reads_the_dataset_the_config_names(monkeypatch, tmp_path, cifar):
    from accelerate import Accelerator

    from sagan.experiments import runner

    seen = {}
    monkeypatch.setattr(runner, "dataset_reference", lambda dataset, ref, **kw: seen.update(dataset=dataset))
    _, cfg = open_training_data(load_config("demo", overrides=TINY).replace(data={"path": str(cifar)}), pinned=())
    runner.ensure_reference(tmp_path, cfg, None, Accelerator(cpu=True))
    ds = seen["dataset"]
    assert (len(ds), ds.resolution, ds.uint8, ds.hflip) == (30, 32, True, False)  # unflipped uint8 images


@pytest.mark.parametrize("mode", [["--grad-accum", "auto", "--max-steps", "1", "--no-progress"],
                                  ["--dry-run", "--memory", "24GiB"]])
def test_train_py_fitting_the_device_opens_the_training_data_once(format_calls, cifar, tmp_path, monkeypatch, mode):
    monkeypatch.chdir(tmp_path)
    overrides = [a for o in TINY for a in ("--set", o)]
    result = CliRunner().invoke(train_cli, [*overrides, "--data", str(cifar), "--outdir", str(tmp_path / "run"), *mode],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert format_calls["source cifar"] == 1, format_calls  # opened once, by fit_device, then trained on
    found = detections(format_calls)
    assert set(found.values()) == {1}, found
    if "--dry-run" not in mode:
        assert "global batch 8 = 8 x 1 process(es) x 1 accumulation" in (tmp_path / "run" / "log.txt").read_text()
