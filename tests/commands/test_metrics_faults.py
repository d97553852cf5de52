"""evaluate.py end to end with a microsecond stand-in for Inception (:class:`metrics_utils.TinyInception`):
the faults of the fault-injection run (classes paired by name, full disks, unwritable outputs, the demo
dataset), the new options (--metrics, --resize, --bn-stats, --fid-bootstrap) and metrics.jsonl. The
numbers themselves are checked against the reference implementations in test_metrics*.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluate_utils import (BLUE, RED, bad, colour_ref, colour_tree, demo_images, inception_calls,  # noqa: F401
                            run, write_samples)
from metrics_utils import TinyInception, smooth_images, write_image_tree
from sagan.metrics import class_frechet_distance, load_ref
from sagan.metrics.evaluation import sample_features
from sagan.metrics.history import read_records

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------------------
# classes pair by name


def test_samples_pair_classes_by_name(colour_ref, tmp_path):
    ref = load_ref(colour_ref)
    assert ref.class_names == ["blue_triangle", "red_circle"]  # the folder tree's alphabetical order
    gen = np.concatenate([demo_images(RED, 10, start=500), demo_images(BLUE, 10, start=500)])
    labels = np.repeat([0, 1], 10)  # the model's order: 0 = red_circle, 1 = blue_triangle
    samples = write_samples(tmp_path / "s.npz", gen, labels, ["red_circle", "blue_triangle"], bn_stats=np.str_("batch"))
    out = tmp_path / "rep" / "report.json"
    run(["metrics", "--ref", colour_ref, "--samples", samples, "--out", out, "--splits", 2])
    rep = json.loads(out.read_text())
    feats, _ = sample_features(gen, labels, TinyInception(), progress=False)
    red, blue = ref.class_names.index("red_circle"), ref.class_names.index("blue_triangle")
    assert rep["class_names"] == {str(red): "red_circle", str(blue): "blue_triangle"}
    by_name = {red: class_frechet_distance(feats[:10], ref.class_features(red)),
               blue: class_frechet_distance(feats[10:], ref.class_features(blue))}
    assert rep["per_class_fid"] == {str(c): pytest.approx(v, rel=1e-6) for c, v in by_name.items()}
    crossed = class_frechet_distance(feats[:10], ref.class_features(blue))  # what index pairing computed
    assert rep["per_class_fid"][str(red)] < crossed / 3
    assert "by name" in rep["protocol"]["class_pairing"] and rep["bn_stats"] == "batch"


def test_samples_without_names_pair_by_index_and_say_so(colour_ref, tmp_path):
    gen = np.concatenate([demo_images(BLUE, 10, start=500), demo_images(RED, 10, start=500)])
    samples = write_samples(tmp_path / "s.npz", gen, np.repeat([0, 1], 10))
    out = tmp_path / "report.json"
    run(["metrics", "--ref", colour_ref, "--samples", samples, "--out", out, "--splits", 2])
    rep = json.loads(out.read_text())
    assert rep["protocol"]["class_pairing"].startswith("by index") and "has no class names" in rep["protocol"]["class_pairing"]
    assert rep["bn_stats"] == "unknown"


def test_other_class_sets_are_refused(colour_ref, tmp_path, inception_calls):
    gen = demo_images(RED, 20, start=500)
    samples = write_samples(tmp_path / "s.npz", gen, np.repeat([0, 1], 10), ["red_circle", "green_square"])
    bad(["metrics", "--ref", colour_ref, "--samples", samples, "--out", tmp_path / "r.json", "--splits", 2],
        "'green_square'")
    assert inception_calls == ["tf1"]  # the reference's; refused before the Inception work on the samples


@pytest.fixture
def checkpoint(tmp_path, tiny_cfg):
    from sagan.checkpoint import save_checkpoint
    from sagan.models import Discriminator, Generator

    def make(class_names):
        cfg = tiny_cfg.replace(model={"num_classes": 2})
        G, D = Generator.from_config(cfg), Discriminator.from_config(cfg)
        return save_checkpoint(tmp_path / "last.pt", {
            "step": 77, "config": cfg.to_dict(), "G": G.state_dict(), "D": D.state_dict(), "G_ema": G.state_dict(),
            "opt_G": {}, "opt_D": {}, "rng": {}, "data": {}, "class_names": class_names})
    return make


def test_checkpoint_classes_pair_by_name_and_bn_mode_is_reported(colour_ref, checkpoint, tmp_path):
    ckpt = checkpoint(["red_circle", "blue_triangle"])
    out = tmp_path / "eval" / "report.json"
    run(["metrics", "--ref", colour_ref, "--checkpoint", ckpt, "--num-samples", 12, "--out", out, "--splits", 2,
         "--bn-stats", "standing", "--standing-batches", 2, "--batch-size", 6])
    rep = json.loads(out.read_text())
    assert "by name" in rep["protocol"]["class_pairing"] and set(rep["per_class_fid"]) == {"0", "1"}
    assert rep["bn_stats"] == "standing" and "standing statistics over 2 batches" in rep["protocol"]["bn_stats"]
    (record,) = read_records(out.parent / "metrics.jsonl")
    assert record["protocol"]["bn_stats"] == "standing" and record["step"] == 77
    bad(["metrics", "--ref", colour_ref, "--checkpoint", checkpoint(["red_circle", "cat"]), "--num-samples", 12,
         "--out", out, "--splits", 2], "differ")
    bad(["metrics", "--ref", colour_ref, "--samples", tmp_path / "x.npz", "--out", out, "--bn-stats", "batch"],
        "--bn-stats applies to --checkpoint")


# --------------------------------------------------------------------------------------------------
# the new options, report.json / report.md / metrics.jsonl


def test_all_metrics_reports_and_history(colour_ref, tmp_path, inception_calls):
    gen = np.concatenate([demo_images(RED, 10, start=500), demo_images(BLUE, 10, start=500)])
    samples = write_samples(tmp_path / "s.npz", gen, np.repeat([0, 1], 10), ["red_circle", "blue_triangle"])
    out = tmp_path / "eval" / "report.json"
    args = ["metrics", "--ref", colour_ref, "--samples", samples, "--out", out, "--splits", 2, "--kid-subsets", 5,
            "--prdc-samples", 15, "--resize", "tf1"]
    res = run(args + ["--metrics", "fid,is,intra_fid,kid,precision,recall,density,coverage", "--fid-bootstrap", 4])
    rep = json.loads(out.read_text())
    for key in ("fid", "inception_score", "intra_fid", "per_class_fid", "num_samples", "kid", "precision", "recall",
                "density", "coverage", "fid_ci", "resize", "bn_stats"):
        assert rep.get(key) is not None, key
    assert set(rep["kid"]) == {"mean", "std"} and rep["resize"] == "tf1" and len(rep["fid_ci"]) == 2
    assert "clipped from 1000" in rep["protocol"]["kid"] and "15 of 24 real" in rep["protocol"]["precision_recall"]
    md = out.with_suffix(".md").read_text()
    assert "KID ×10³ ↓" in md and "Precision ↑" in md and "Coverage ↑" in md and "bootstrap interval" in md
    assert "KID ×10³" in res.stdout and f"FID {rep['fid']:.2f}" in res.stdout
    run(args + ["--metrics", "fid,kid"])
    rep2 = json.loads(out.read_text())
    assert rep2["metrics"] == ["fid", "kid"] and rep2["inception_score"] is None and rep2["kid"] == rep["kid"]
    first, second = read_records(out.parent / "metrics.jsonl")
    assert set(first["values"]) == {"fid", "is", "intra_fid", "kid", "precision", "recall", "density", "coverage"}
    assert set(second["values"]) == {"fid", "kid"} and second["values"]["fid"] == pytest.approx(rep["fid"])
    assert first["protocol"]["resize"] == "tf1" and first["protocol"]["num_samples"] == 20
    assert first["protocol"]["reference"] == str(Path(colour_ref).resolve()) and first["protocol"]["weights_sha256"]
    assert first["fid_ci"] == rep["fid_ci"] and first["report"] == str(out.resolve())


def test_mismatched_resize_is_refused_in_one_line(colour_ref, tmp_path, inception_calls):
    samples = write_samples(tmp_path / "s.npz", demo_images(RED, 12, start=500), np.zeros(12, np.int64))
    del inception_calls[:]
    err = bad(["metrics", "--ref", colour_ref, "--samples", samples, "--out", tmp_path / "r.json", "--resize", "clean"],
              "--resize tf1")
    assert "'tf1'" in err and "'clean'" in err
    assert inception_calls == []  # refused before any Inception work
    # a plain pytorch-fid file: taken as pytorch-fid resize, said so; with --resize pytorch-fid, FID and IS only
    ref = load_ref(colour_ref)
    np.savez(tmp_path / "pf.npz", mu=ref.mu, sigma=ref.sigma)
    bad(["metrics", "--ref", tmp_path / "pf.npz", "--samples", samples, "--out", tmp_path / "r.json"], "records no protocol")
    run(["metrics", "--ref", tmp_path / "pf.npz", "--samples", samples, "--out", tmp_path / "r.json", "--resize",
         "pytorch-fid", "--splits", 2])
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["metrics"] == ["fid", "is"] and any("kid not computed" in n for n in rep["notes"])
    bad(["metrics", "--ref", tmp_path / "pf.npz", "--samples", samples, "--out", tmp_path / "r.json", "--resize",
         "pytorch-fid", "--metrics", "fid,kid"], "cannot compute kid")


# --------------------------------------------------------------------------------------------------
# reference statistics of the built-in demo dataset


def test_stats_of_the_demo_dataset_follow_the_demo_preset(tmp_path, inception_calls):
    from sagan.config import load_config

    out = tmp_path / "refs" / "demo.npz"
    run(["stats", "--data", "demo", "--out", out, "--num-workers", 0, "--batch-size", 250])
    cfg, ref = load_config("demo"), load_ref(out)
    assert ref.num_images == cfg.data.demo_size and ref.num_classes == cfg.model.num_classes
    assert ref.class_names[:3] == ["red_circle", "green_square", "blue_triangle"]
    assert ref.protocol["resolution"] == cfg.model.resolution and ref.protocol["source"].startswith("demo")
    assert ref.resize == "tf1" and inception_calls == ["tf1"]


# --------------------------------------------------------------------------------------------------
# full disk during `stats`


@pytest.fixture
def tiny_tree(tmp_path):
    """160 images of 8x8: a features memmap of 1.3 MB, more than a 1 MB disk holds."""
    return write_image_tree(tmp_path / "tiny", smooth_images(160, 8, seed=5), np.arange(160) % 4)


def test_stats_refuses_a_too_small_disk_before_the_work(tiny_tree, small_disk, inception_calls):
    disk = small_disk("1m")
    err = bad(["stats", "--data", tiny_tree, "--resolution", 8, "--out", disk / "ref.npz", "--num-workers", 0],
              "free some space")
    assert "needs about" in err and inception_calls == []
    assert list(disk.iterdir()) == []


def _stats_without_precheck(tree: Path, out: Path) -> subprocess.CompletedProcess:
    """evaluate.py stats in a child process (a SIGBUS would kill pytest itself) with the free-space
    pre-check disabled, as if the disk filled up after it."""
    script = (f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); "
              "import metrics_utils, sagan.commands.evaluate as E, sagan.metrics.evaluation as ev, "
              "sagan.metrics.session as S; "
              "S.load_inception = metrics_utils.tiny_inception_loader(); "
              "ev.check_reference_space = lambda *a, **k: None; "
              "E.main(sys.argv[1:], prog_name='evaluate.py')")
    args = ["stats", "--data", str(tree), "--resolution", "8", "--out", str(out), "--num-workers", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("size", ["1m", "6m"])  # 1m: the memmap does not fit; 6m: it does, the .npz does not
def test_stats_full_disk_is_one_line_and_leaves_nothing(tiny_tree, small_disk, size):
    disk = small_disk(size)
    proc = _stats_without_precheck(tiny_tree, disk / "ref.npz")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])  # not -7 (SIGBUS)
    assert lines[-1].startswith("error: ") and "free some space" in lines[-1] and "Traceback" not in proc.stderr
    assert list(disk.iterdir()) == []  # no memmap, no temp file, no partial .npz


# --------------------------------------------------------------------------------------------------
# unwritable outputs fail before the work


@pytest.fixture
def readonly_dir(tmp_path):
    """A read-only tmpfs mount (root), else a folder without write permission."""
    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(d)], capture_output=True,
                          timeout=10).returncode != 0:
            pytest.skip("cannot mount a read-only tmpfs here")
        yield d
        subprocess.run(["umount", "-l", str(d)], capture_output=True, timeout=10)
    else:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)


def test_unwritable_outputs_fail_before_the_work(readonly_dir, colour_tree, colour_ref, tmp_path, inception_calls):
    samples = write_samples(tmp_path / "s.npz", demo_images(RED, 12, start=500), np.zeros(12, np.int64))
    del inception_calls[:]
    for out in (readonly_dir / "ref.npz", readonly_dir / "sub" / "ref.npz"):
        bad(["stats", "--data", colour_tree, "--resolution", 32, "--out", out], "not writable")
    for out in (readonly_dir / "report.json", readonly_dir / "eval" / "report.json"):
        bad(["metrics", "--ref", colour_ref, "--samples", samples, "--out", out, "--splits", 2], "not writable")
    assert inception_calls == []
