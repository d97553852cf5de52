"""evaluate.py end to end on tiny inputs (folder tree -> ref.npz, samples.npz / checkpoint -> report), and
the one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from metrics_utils import calibrated_inception_state, save_state, smooth_images, write_image_tree
from sagan.metrics import MetricOptions, class_frechet_distance, load_inception, load_ref
from sagan.errors import UserError
from sagan.metrics.evaluation import sample_features
from sagan.metrics.session import open_session
from sagan.sampling.latents import class_balanced_labels, model_classes
from sagan.commands.evaluate import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NUM_REAL, NUM_GEN, RES = 24, 20, 32


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return str(save_state(calibrated_inception_state(seed=2, num_images=4), tmp_path_factory.mktemp("w") / "inc.pth"))


def run(args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output + str(result.exception)
    return result


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A 2-class folder tree of PNGs (one of them grayscale, one of another size)."""
    root = tmp_path_factory.mktemp("tree") / "data"
    labels = np.repeat([0, 1], NUM_REAL // 2)
    write_image_tree(root, smooth_images(NUM_REAL, RES, seed=10), labels, ["cat", "dog"])
    Image.fromarray(smooth_images(1, 48, seed=11)[0]).save(root / "cat" / "big.png")  # resized by the loader
    Image.fromarray(smooth_images(1, RES, seed=12, channels=1)[0, ..., 0]).save(root / "dog" / "gray.png")
    return root


@pytest.fixture(scope="module")
def ref(tree, weights):
    out = tree.parent / "ref.npz"
    run(["stats", "--data", tree, "--resolution", RES, "--out", out, "--inception-weights", weights,
         "--batch-size", 8, "--num-workers", 0])
    return out


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    path = tmp_path_factory.mktemp("s") / "samples.npz"
    np.savez(path, images=smooth_images(NUM_GEN, RES, seed=20), labels=np.repeat([0, 1], NUM_GEN // 2))
    return path


def test_stats_from_folder_tree(ref):
    r = load_ref(ref)
    assert r.num_images == NUM_REAL + 2 and r.class_names == ["cat", "dog"]
    assert [r.class_count(c) for c in range(2)] == [NUM_REAL // 2 + 1] * 2
    assert r.protocol["resize"] == "tf1" and r.protocol["resolution"] == RES  # the default: the paper's protocol
    assert r.resize == "tf1" and len(r.weights_sha256) == 64


def test_stats_from_packed_dataset_equal_tree(tree, ref, weights, tmp_path):
    from sagan.data.prepare import pack

    pack(tree, tmp_path / "packed", resolution=RES, workers=0, progress=False)
    run(["stats", "--data", tmp_path / "packed", "--out", tmp_path / "p.npz", "--inception-weights", weights,
         "--batch-size", 13, "--num-workers", 0])
    a, b = load_ref(ref), load_ref(tmp_path / "p.npz")
    assert a.num_images == b.num_images and a.class_names == b.class_names
    np.testing.assert_allclose(b.mu, a.mu, atol=1e-4)
    np.testing.assert_allclose(b.sigma, a.sigma, atol=1e-4)
    np.testing.assert_allclose(np.sort(b.class_features(1), 0), np.sort(a.class_features(1), 0), atol=1e-4)


def test_training_hook_evaluate_generator(ref, weights, tiny_cfg):
    from sagan.metrics import evaluate_generator
    from sagan.models import Generator

    G = Generator.from_config(tiny_cfg.replace(model={"num_classes": 2}))
    inception = load_inception(weights)
    out = evaluate_generator(G, ref, num_samples=8, inception=inception, batch_size=4,
                             metrics=("fid", "is", "intra_fid"), options=MetricOptions(splits=2, progress=False))
    assert set(out) == {"fid", "inception_score", "num_samples", "intra_fid", "per_class_fid"}
    assert out["num_samples"] == 8 and np.isfinite(out["fid"]) and out["inception_score"]["mean"] >= 1
    assert G.training  # the generator's mode is restored
    # it is the training loop's path (RunWatch: open_session with G's class-balanced labels, then of_generator)
    labels = class_balanced_labels(8, model_classes(2)).numpy()
    session = open_session(ref, num_samples=8, labels=labels, metrics=("fid", "is", "intra_fid"),
                           options=MetricOptions(splits=2, progress=False), inception=inception)
    again = session.of_generator(G, 8, batch_size=4, progress=False)
    assert again["fid"] == pytest.approx(out["fid"], rel=1e-6)
    assert again["intra_fid"] == pytest.approx(out["intra_fid"], rel=1e-6)
    # and checks as that path does, before any sample is drawn: an unconditional G has no classes for intra-FID
    G0 = Generator.from_config(tiny_cfg.replace(model={"num_classes": 0}))
    with pytest.raises(UserError, match="cannot compute intra_fid: the samples have no class labels"):
        evaluate_generator(G0, ref, num_samples=8, inception=inception, metrics=("fid", "intra_fid"))


def test_metrics_from_samples_writes_report(ref, samples, weights, tmp_path):
    out = tmp_path / "rep" / "report.json"
    res = run(["metrics", "--ref", ref, "--samples", samples, "--out", out, "--inception-weights", weights,
               "--splits", 2, "--batch-size", 8])
    rep = json.loads(out.read_text())
    assert {"fid", "inception_score", "intra_fid", "per_class_fid", "num_samples", "protocol", "provenance"} <= set(rep)
    assert rep["num_samples"] == NUM_GEN and set(rep["per_class_fid"]) == {"0", "1"}
    assert rep["intra_fid"] == pytest.approx(np.mean(list(rep["per_class_fid"].values())))
    assert rep["protocol"]["is_splits"] == 2 and rep["protocol"]["intra_fid"]["name"] == "balanced"
    assert rep["provenance"]["weights_sha256"] and rep["provenance"]["ref"].endswith("ref.npz")
    assert rep["class_names"] == {"0": "cat", "1": "dog"}
    # the numbers are those of the library on the same features
    inception = load_inception(weights)
    with np.load(samples) as f:
        feats, labels = sample_features(f["images"], f["labels"], inception, progress=False)
    r = load_ref(ref)
    assert rep["per_class_fid"]["1"] == pytest.approx(class_frechet_distance(feats[labels == 1], r.class_features(1)), rel=1e-6)
    md = out.with_suffix(".md").read_text()
    # a 2-class model is not the paper's ImageNet 128px one: no paper rows beside it (issue 26; an ImageNet
    # report keeps them: test_evaluate_faults.py::test_report_of_an_imagenet_128px_model_keeps_the_paper_rows)
    assert "52.52" not in md and "No paper numbers" in md and "a 2-class model" in md and f"{rep['fid']:.2f}" in md
    png = out.with_name("report_per_class_fid.png")
    with Image.open(png) as im:  # drawn by matplotlib (sagan.plots.histogram)
        assert im.size[0] > 300 and im.size[1] > 200 and len(set(im.convert("RGB").getdata())) > 2  # bars and text
    assert f"FID {rep['fid']:.2f}" in res.stdout


def test_metrics_from_checkpoint(ref, weights, tmp_path, tiny_cfg):
    from sagan.checkpoint import save_checkpoint
    from sagan.models import Discriminator, Generator

    cfg = tiny_cfg.replace(model={"num_classes": 2})
    G, D = Generator.from_config(cfg), Discriminator.from_config(cfg)
    ckpt = save_checkpoint(tmp_path / "last.pt", {
        "step": 123, "config": cfg.to_dict(), "G": G.state_dict(), "D": D.state_dict(), "G_ema": G.state_dict(),
        "opt_G": {}, "opt_D": {}, "rng": {}, "data": {}})
    out = tmp_path / "report.json"
    run(["metrics", "--ref", ref, "--checkpoint", ckpt, "--num-samples", 12, "--out", out, "--splits", 3,
         "--inception-weights", weights, "--batch-size", 5])
    rep = json.loads(out.read_text())
    assert rep["num_samples"] == 12 and rep["provenance"]["step"] == 123 and rep["provenance"]["used_ema"]
    assert set(rep["per_class_fid"]) == {"0", "1"} and np.isfinite(rep["fid"])
    assert "6 per class" in rep["protocol"]["intra_fid"]["generated"]

    # the projection paper's protocol: N generated per class, one class at a time
    run(["metrics", "--ref", ref, "--checkpoint", ckpt, "--num-samples", 10, "--out", out, "--splits", 2,
         "--inception-weights", weights, "--intra-fid-protocol", "projection", "--per-class-samples", 3])
    rep = json.loads(out.read_text())
    assert rep["protocol"]["intra_fid"]["name"] == "projection" and set(rep["per_class_fid"]) == {"0", "1"}
    assert rep["intra_fid"] == pytest.approx(np.mean(list(rep["per_class_fid"].values())))


# --------------------------------------------------------------------------------------------------
# bad input: exit code 2, one "error:" line, no traceback


def bad(args, match):
    result = run(args, ok=False)
    *before, err = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert err.startswith("error:") and "Traceback" not in result.output, result.stderr
    assert all(line.startswith("warning:") for line in before), result.stderr  # e.g. unofficial test weights
    assert match in err, err
    return err


@pytest.fixture
def bad_samples(tmp_path):
    def make(name, **arrays):
        path = tmp_path / name
        np.savez(path, **arrays)
        return path
    return make


def test_grayscale_float_or_out_of_range_samples_are_refused(ref, weights, bad_samples, tmp_path):
    imgs, labels = smooth_images(12, RES, seed=1), np.repeat([0, 1], 6)
    common = ["metrics", "--ref", ref, "--out", tmp_path / "r.json", "--inception-weights", weights, "--samples"]
    bad(common + [bad_samples("gray.npz", images=imgs[..., 0], labels=labels)], "grayscale")
    bad(common + [bad_samples("gray1.npz", images=imgs[..., :1], labels=labels)], "grayscale")
    bad(common + [bad_samples("float.npz", images=imgs.astype(np.float32), labels=labels)], "uint8")
    bad(common + [bad_samples("labels.npz", images=imgs, labels=labels + 1)], "2 classes")
    bad(common + [bad_samples("few.npz", images=imgs[:5], labels=labels[:5])], "splits")
    bad(common + [bad_samples("nolabels.npz", images=imgs)], "labels")
    mixed = np.empty(2, dtype=object)
    mixed[0], mixed[1] = imgs[0], imgs[1, :16]
    bad(common + [bad_samples("mixed.npz", images=mixed, labels=labels[:2])], "mixed sizes")
    bad(common + [tmp_path / "missing.npz"], "does not exist")
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04garbage")
    bad(common + [tmp_path / "corrupt.npz"], "corrupt")
    bad(common + [bad_samples("few_per_class.npz", images=imgs[:11], labels=np.minimum(np.arange(11) // 10, 1))], "at least 2")


def test_bad_refs_and_options(samples, weights, tmp_path):
    common = ["metrics", "--samples", samples, "--out", tmp_path / "r.json", "--inception-weights", weights, "--ref"]
    np.savez(tmp_path / "d64.npz", mu=np.zeros(64), sigma=np.eye(64))
    bad(common + [tmp_path / "d64.npz"], "64-d")
    bad(common + [tmp_path / "none.npz"], "do not exist")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    bad(common + [tmp_path / "junk.npz"], "corrupt")
    np.savez(tmp_path / "nokeys.npz", x=np.zeros(3))
    bad(common + [tmp_path / "nokeys.npz"], "no mu")
    bad(["metrics", "--ref", tmp_path / "d64.npz", "--out", tmp_path / "r.json"], "exactly one of")


def test_ref_from_other_inception_weights(ref, samples, tmp_path):
    other = save_state(calibrated_inception_state(seed=3, num_images=2), tmp_path / "other.pth")
    bad(["metrics", "--ref", ref, "--samples", samples, "--out", tmp_path / "r.json", "--splits", 2,
         "--inception-weights", other], "recompute the reference")


def test_missing_weights_is_one_line(ref, samples, tmp_path, monkeypatch):
    import urllib.error

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("SAGAN_INCEPTION_WEIGHTS", raising=False)

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    bad(["metrics", "--ref", ref, "--samples", samples, "--out", tmp_path / "r.json", "--splits", 2],
        "--inception-weights")


def test_stats_of_a_missing_folder_or_an_unsized_tree_is_refused(weights, tmp_path):
    bad(["stats", "--data", tmp_path / "nothing", "--out", tmp_path / "r.npz", "--inception-weights", weights], "does not exist")
    write_image_tree(tmp_path / "tree", smooth_images(2, 8), np.array([0, 1]))
    bad(["stats", "--data", tmp_path / "tree", "--out", tmp_path / "r.npz", "--inception-weights", weights], "--resolution")


@pytest.mark.slow
def test_distributed_equals_single_process(ref, samples, weights, tmp_path):
    """Two CPU processes under `accelerate launch`: shards gathered, same report as one process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    args = ["metrics", "--ref", ref, "--samples", samples, "--inception-weights", weights, "--splits", 2, "--batch-size", 4]
    run(args + ["--out", tmp_path / "one.json"])
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(root / "evaluate.py")]
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run(cmd + [str(a) for a in args] + ["--out", str(tmp_path / "two.json")], check=True, env=env,
                   capture_output=True, timeout=300)
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert one["num_samples"] == two["num_samples"] == NUM_GEN
    assert two["fid"] == pytest.approx(one["fid"], rel=1e-4)
    assert two["intra_fid"] == pytest.approx(one["intra_fid"], rel=1e-4)
    assert two["inception_score"]["mean"] == pytest.approx(one["inception_score"]["mean"], rel=1e-4)
