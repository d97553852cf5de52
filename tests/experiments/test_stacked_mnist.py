"""StackedMNIST: the stacked images, the mode count and reverse KL, the digit classifier and its accuracy
gate, and ``sagan-experiments run stacked_mnist`` end to end on tiny IDX files."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from format_files import digit_images, write_mnist_raw
from sagan.checkpoint import load_checkpoint
from sagan.config import TrainConfig
from sagan.data import open_dataset
from sagan.data.formats.mnist import resize_grey
from sagan.experiments import definitions
from sagan.commands.experiments import main as experiments_cli
from sagan.experiments.definitions import build_variant, variant_names
from sagan.experiments.modes import (RELIABLE_ACCURACY, accuracy, image_modes, mode_coverage, mode_ids,
                                     train_classifier)
from sagan.experiments.report import write_summary
from sagan.experiments.stacked_mnist import (MODES_FILE, draw_stacks, stack_images, stacked_modes,
                                             write_stacked_dataset)

OBJECTIVES = ["hinge", "ns_r1", "hinge_r1r2", "rpgan_r1r2"]


def run_cli(*args):
    return CliRunner().invoke(experiments_cli, [str(a) for a in args], catch_exceptions=False)


# ------------------------------------------------------------------------------------------------
# the stacked images


def numbered_digits(n: int, side: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """n grey 'digits' whose every pixel is the digit's index (so an image names the digits it took)."""
    return np.repeat(np.arange(n, dtype=np.uint8), side * side).reshape(n, side, side), np.arange(n) % 10


def test_each_stacked_image_is_three_digits_one_per_channel_and_its_mode_names_them():
    digits, labels = numbered_digits(30)
    idx = draw_stacks(len(digits), 50, seed=3)
    images = stack_images(digits, idx)
    assert images.shape == (50, 8, 8, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[:, 0, 0, :], idx)  # channel c holds digit idx[:, c], whole
    assert (images == images[:, :1, :1, :]).all()
    modes = stacked_modes(labels, idx)
    np.testing.assert_array_equal(modes, 100 * (idx[:, 0] % 10) + 10 * (idx[:, 1] % 10) + idx[:, 2] % 10)


def test_the_three_digits_are_drawn_independently_and_uniformly():
    _, labels = numbered_digits(10)
    idx = draw_stacks(10, 200_000, seed=0)
    modes = stacked_modes(labels, idx)
    assert mode_coverage(modes)["modes"] == 1000
    assert mode_coverage(modes)["kl"] < 0.005  # 200 per mode: sampling noise only (E[KL] ~ 999 / 2n = 0.0025)
    same = [(idx[:, a] == idx[:, b]).mean() for a, b in ((0, 1), (0, 2), (1, 2))]
    np.testing.assert_allclose(same, 0.1, atol=0.005)  # independent channels agree 1 time in 10
    np.testing.assert_allclose(np.corrcoef(idx.T)[np.triu_indices(3, 1)], 0, atol=0.01)


def test_stacked_draws_are_fixed_by_the_seed():
    np.testing.assert_array_equal(draw_stacks(100, 64, seed=5), draw_stacks(100, 64, seed=5))
    assert (draw_stacks(100, 64, seed=5) != draw_stacks(100, 64, seed=6)).any()


def test_the_stacked_set_is_an_unlabelled_packed_dataset_with_its_modes(tmp_path):
    digits, labels = numbered_digits(20, side=32)
    manifest = write_stacked_dataset(tmp_path / "sm", digits, labels, n=40, seed=1, source="test", chunk=16)
    ds = open_dataset(tmp_path / "sm", uint8=True)
    assert len(ds) == 40 and ds.num_classes == 0 and ds.resolution == 32 and manifest["num_images"] == 40
    idx = draw_stacks(20, 40, seed=1)
    for i in (0, 17, 39):  # across the chunks
        image, label = ds[i]
        assert label == 0 and image[:, 0, 0].tolist() == idx[i].tolist()
    np.testing.assert_array_equal(np.load(tmp_path / "sm" / MODES_FILE), stacked_modes(labels, idx))
    mtime = (tmp_path / "sm" / "images.npy").stat().st_mtime_ns
    write_stacked_dataset(tmp_path / "sm", digits, labels, n=40, seed=1, source="test")  # complete: kept
    assert (tmp_path / "sm" / "images.npy").stat().st_mtime_ns == mtime


# ------------------------------------------------------------------------------------------------
# modes and KL


def test_mode_id_is_the_three_digits_read_as_a_number():
    np.testing.assert_array_equal(mode_ids([[3, 7, 1], [0, 0, 9], [9, 9, 9]]), [371, 9, 999])


def test_modes_and_kl_match_a_hand_computation():
    # p = (1/2, 1/4, 1/4) on three of 1000 modes: KL(p || u) = sum p log(1000 p)
    by_hand = 0.5 * math.log(500) + 2 * 0.25 * math.log(250)
    got = mode_coverage(np.array([7, 7, 123, 999]))
    assert got["modes"] == 3 and got["samples"] == 4
    assert got["kl"] == pytest.approx(by_hand, rel=1e-12)
    assert mode_coverage(np.arange(1000))["kl"] == pytest.approx(0.0, abs=1e-12)  # uniform
    assert mode_coverage(np.full(26, 5))["kl"] == pytest.approx(math.log(1000), rel=1e-12)  # one mode
    # the reverse direction KL(p || u), not KL(u || p) (infinite for any missing mode)
    assert math.isfinite(mode_coverage(np.zeros(10, np.int64))["kl"])


@pytest.fixture(scope="module")
def classifier():
    labels = np.arange(500) % 10
    return train_classifier(resize_grey(digit_images(labels, seed=0), 32), labels, epochs=3, batch_size=32)


def test_the_digit_classifier_learns_to_read_digits(classifier):
    labels = np.arange(200) % 10
    assert accuracy(classifier, resize_grey(digit_images(labels, seed=9), 32), labels) > 0.9


def test_each_channel_of_a_generated_image_is_read_for_its_mode(classifier):
    labels = np.array([3, 7, 1, 0, 0, 9, 5, 2, 8])
    digits = resize_grey(digit_images(labels, seed=11), 32)
    images = stack_images(digits, np.arange(9).reshape(3, 3))  # (3, 7, 1), (0, 0, 9), (5, 2, 8)
    assert (image_modes(classifier, images) == [371, 9, 528]).sum() >= 2


# ------------------------------------------------------------------------------------------------
# the experiment


def test_stacked_mnist_runs_the_objectives_variants():
    assert variant_names("objectives") == OBJECTIVES
    assert variant_names("stacked_mnist") == OBJECTIVES
    hinge = build_variant("stacked_mnist", "hinge", "demo", {"model.num_classes": 0}).config
    assert hinge.train.loss == "hinge" and hinge.model.num_classes == 0
    own = {v: yaml.safe_load((definitions.EXPERIMENTS_DIR / "objectives" / f"{v}.yaml").read_text())["train"]
           for v in OBJECTIVES}
    assert own["ns_r1"] == {"loss": "ns", "r1_gamma": 0.01, "reg_interval": 16}
    assert own["rpgan_r1r2"] == {"loss": "rpgan", "r1_gamma": 0.05, "r2_gamma": 0.05, "reg_interval": 1}
    assert own["hinge_r1r2"]["loss"] == "hinge" and own["hinge_r1r2"]["r2_gamma"] == 0.05


@pytest.mark.skipif("r1_gamma" not in TrainConfig.__dataclass_fields__, reason="needs train.r1_gamma / rpgan")
def test_every_objective_builds_on_the_cifar10_preset():
    cfgs = {v: build_variant("objectives", v, "cifar10", {}).config.train for v in OBJECTIVES}
    assert (cfgs["hinge"].r1_gamma, cfgs["hinge"].r2_gamma) == (0, 0)
    assert (cfgs["ns_r1"].loss, cfgs["ns_r1"].r1_gamma, cfgs["ns_r1"].reg_interval) == ("ns", 0.01, 16)
    assert (cfgs["rpgan_r1r2"].loss, cfgs["rpgan_r1r2"].r2_gamma) == ("rpgan", 0.05)


def _experiment_dir(tmp_path, accuracy_value: float):
    """An experiment directory with a classifier record of the given accuracy and no runs."""
    out = tmp_path / f"exp{accuracy_value}"
    out.mkdir()
    settings = {"experiment": "stacked_mnist", "base": "demo", "data": "d", "steps": 4, "eval_every": 2,
                "num_samples": 26000, "ref": None, "seeds": 1, "resolution": 32, "train_size": 128000,
                "classifier_epochs": 3}
    (out / "experiment.json").write_text(json.dumps({"settings": settings, "variants": ["hinge"]}))
    (out / "classifier.json").write_text(json.dumps({
        "accuracy": accuracy_value, "test_images": 10000, "test_set": "MNIST, test split", "train_images": 60000, "epochs": 3, "resolution": 32,
        "reliable": accuracy_value >= RELIABLE_ACCURACY, "stacked_data": {"modes": 1000, "kl": 0.02, "samples": 26000}}))
    write_summary(out)
    return json.loads((out / "summary.json").read_text()), (out / "summary.md").read_text()


def test_mode_counts_are_marked_unreliable_below_98_percent(tmp_path):
    summary, md = _experiment_dir(tmp_path, 0.975)
    assert summary["reliable"] is False
    assert "**Mode counts unreliable**" in md and "modes ↑ (of 1000) (unreliable)" in md and "97.50% right on the 10000 images of MNIST, test split" in md
    summary, md = _experiment_dir(tmp_path, 0.985)
    assert summary["reliable"] is True and "unreliable" not in md and "98.50%" in md


def test_the_report_shows_r3gans_published_rows(tmp_path):
    summary, md = _experiment_dir(tmp_path, 0.99)
    published = {p["objective"]: p for p in summary["published"]}
    assert published["RpGAN + R1 + R2"]["modes"] == 1000 and published["RpGAN + R1 + R2"]["kl"] == 0.0781
    assert published["GAN + R1 + R2 (non-saturating)"]["modes"] == 693
    assert published["RpGAN + R1"]["result"] == published["GAN + R1"]["result"] == "fails"
    assert "| RpGAN + R1 + R2 | 1000 | 0.0781 |" in md and "| GAN + R1 + R2 (non-saturating) | 693 | 0.9270 |" in md
    assert summary["variants"][0]["status"] == "not started"


def test_stacked_mnist_needs_mnist_files(tmp_path):
    result = run_cli("run", "stacked_mnist", "--outdir", tmp_path / "o")
    assert result.exit_code == 2 and "stacked_mnist needs --data" in result.output
    (tmp_path / "cifar-10-batches-bin").mkdir()
    (tmp_path / "cifar-10-batches-bin" / "batches.meta.txt").write_text("a\n")
    result = run_cli("run", "stacked_mnist", "--data", tmp_path / "cifar-10-batches-bin", "--outdir", tmp_path / "o")
    assert result.exit_code == 2 and "stacked_mnist needs MNIST's IDX files" in result.output


@pytest.fixture
def variants_with_ns(tmp_path, monkeypatch):
    """The objectives' variant files plus a plain non-saturating one, which trains on every branch."""
    folder = tmp_path / "experiments"
    shutil.copytree(definitions.EXPERIMENTS_DIR, folder)
    (folder / "objectives" / "ns.yaml").write_text("base: cifar10\ntrain:\n  loss: ns\n")
    monkeypatch.setattr(definitions, "EXPERIMENTS_DIR", folder)


@pytest.mark.slow
def test_stacked_mnist_end_to_end_on_tiny_idx_files(tmp_path, variants_with_ns):
    write_mnist_raw(tmp_path / "mnist", n_train=200, n_test=50, gz=True)
    base = tmp_path / "tiny.yaml"
    base.write_text(yaml.safe_dump({"base": "demo", "model": {"g_ch": 16, "d_ch": 16},
                                    "train": {"batch_size": 8, "num_workers": 0, "log_every": 1}}))
    out = tmp_path / "exp"
    args = ["run", "stacked_mnist", "--data", tmp_path / "mnist", "--base", base, "--variants", "hinge,ns",
            "--seeds", 2, "--steps", 2, "--eval-every", 2, "--train-size", 300, "--num-samples", 100,
            "--classifier-epochs", 1, "--outdir", out, "--no-progress"]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    assert "digit classifier: " in result.stderr and "% right on the 50 images of MNIST, test split" in result.stderr
    for run, loss, seed in (("hinge", "hinge", 0), ("hinge.seed1", "hinge", 1), ("ns", "ns", 0), ("ns.seed1", "ns", 1)):
        cfg = load_checkpoint(out / run)["config"]
        assert (cfg["train"]["loss"], cfg["train"]["seed"], cfg["model"]["num_classes"]) == (loss, seed, 0)
        assert cfg["model"]["resolution"] == 32 and cfg["data"]["hflip"] is False
        measured = json.loads((out / run / "modes.json").read_text())
        assert measured["samples"] == 100 and 1 <= measured["modes"] <= 100 and measured["step"] == 2
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["variant"]: r for r in summary["variants"]}
    hinge = [s["modes"] for s in rows["hinge"]["seeds"]]
    assert rows["hinge"]["modes"]["mean"] == pytest.approx(np.mean(hinge)) and rows["hinge"]["modes"]["n"] == 2
    assert rows["hinge"]["modes"]["std"] == pytest.approx(np.std(hinge, ddof=1))
    assert summary["classifier"]["test_images"] == 50 and summary["reliable"] is False  # one epoch on 200 digits
    assert len(np.load(out / "stacked_mnist" / MODES_FILE)) == 300
    again = run_cli(*args)  # finished runs are skipped, the classifier and the stacked set kept
    assert again.exit_code == 0 and "[ns.seed1] finished at step 2; skipping" in again.stderr
    assert "training the digit classifier" not in again.stderr
