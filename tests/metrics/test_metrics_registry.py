"""The new metrics against their reference implementations on the same features (KID = torch-fidelity's,
precision/recall/density/coverage = ``prdc``'s, the FID interval = resampling by hand), the registry that
every consumer iterates over, the report, and ``metrics.jsonl``."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch

from click.testing import CliRunner

from metrics_utils import TinyInception, smooth_images, tiny_inception_loader, write_image_tree
from sagan.config import load_config
from sagan.errors import ConfigError, UserError
from sagan.metrics import FeatureStats, frechet_distance, load_ref, save_ref
from sagan.scores import prdc as prdc_module
from sagan.metrics import registry as R
from sagan.metrics import session as S
from sagan.metrics.evaluation import compute_metrics, sample_features
from sagan.scores.fid import fid_bootstrap_interval, fid_of
from sagan.metrics.history import append_record, read_records
from sagan.scores.kid import kernel_inception_distance, kid_subset_size
from sagan.scores.prdc import precision_recall_density_coverage
from sagan.metrics.report import markdown
from sagan.commands.evaluate import main as evaluate_main


def run_cli(args, ok=True):
    result = CliRunner().invoke(evaluate_main, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output + str(result.exception)
    return result


@pytest.fixture
def tiny_tree_and_samples(tmp_path):
    """A 2-class folder tree of 16 px images and 8 generated ones (samples.npz)."""
    tree = write_image_tree(tmp_path / "tree", smooth_images(8, 16, seed=1), np.repeat([0, 1], 4), ["a", "b"])
    samples = tmp_path / "samples.npz"
    np.savez(samples, images=smooth_images(8, 16, seed=2), labels=np.repeat([0, 1], 4))
    return tree, samples


def manifold_features(n: int, seed: int, spread: float = 1.0, dim: int = 2048) -> np.ndarray:
    """Non-negative features near a 16-d manifold (pool features are post-ReLU averages): nearest
    neighbours are informative, unlike i.i.d. noise in 2048-d."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(1234).standard_normal((16, dim))
    return np.maximum(rng.standard_normal((n, 16)) * spread @ basis * 0.1 + 0.3, 0).astype(np.float32)


def prdc_oracle(real, gen):
    from prdc import compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
        pr, dc = compute_prdc(real, gen, nearest_k=3), compute_prdc(real, gen, nearest_k=5)
    return {"precision": pr["precision"], "recall": pr["recall"], "density": dc["density"], "coverage": dc["coverage"]}


# --------------------------------------------------------------------------------------------------
# KID


def test_kid_equals_torch_fidelity_on_the_same_features_and_subsets():
    from torch_fidelity.metric_kid import kid_features_to_metric

    gen, real = manifold_features(150, 0, 1.6), manifold_features(170, 1)
    ours = kernel_inception_distance(gen, real, subsets=20, subset_size=60)
    theirs = kid_features_to_metric(torch.from_numpy(gen).double(), torch.from_numpy(real).double(), kid_subsets=20,
                                    kid_subset_size=60, rng_seed=2020, verbose=False, kid_kernel="poly",
                                    kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)
    assert ours["mean"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-6)
    assert ours["std"] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-6)
    assert ours["mean"] > 10 * ours["std"] / np.sqrt(20)  # clearly nonzero: the two sets differ


def test_kid_subset_size_is_clipped_to_the_smaller_side(tmp_path):
    gen, real = manifold_features(30, 0), manifold_features(50, 1)
    assert kid_subset_size(30, 50, 1000) == 30 and kid_subset_size(3000, 2000, 1000) == 1000
    out = kernel_inception_distance(gen, real, subsets=3, subset_size=1000)
    assert out["subset_size"] == 30
    # from a reference: rows read from the memory map give the same numbers as the array
    path = save_ref(tmp_path / "r.npz", FeatureStats().update(real), real, [np.arange(20), np.arange(20, 50)])
    assert kernel_inception_distance(gen, load_ref(path), subsets=3, subset_size=1000) == out
    with pytest.raises(UserError, match="at least 2"):
        kernel_inception_distance(gen[:1], real)


# --------------------------------------------------------------------------------------------------
# precision, recall, density, coverage


@pytest.mark.parametrize("n_real,n_gen,dim", [(60, 50, 2048), (300, 260, 2048), (400, 350, 32)])
def test_prdc_equals_prdc_package(n_real, n_gen, dim):
    real, gen = manifold_features(n_real, 2, dim=dim), manifold_features(n_gen, 3, spread=1.2, dim=dim)
    real[5], gen[4], gen[7] = real[6], gen[3], real[8]  # duplicates within and across the sets
    ours = precision_recall_density_coverage(real, gen)
    theirs = prdc_oracle(real, gen)
    for key in theirs:
        assert ours[key] == pytest.approx(theirs[key], abs=1e-6), key
    assert 0.05 < ours["precision"] < 0.95 and 0.05 < ours["coverage"] < 1.0  # informative values


def test_prdc_blocks_bound_memory(monkeypatch):
    """Tiny blocks: many row blocks, symmetric blocks above the diagonal, ragged edges; same numbers."""
    real, gen = manifold_features(97, 4, dim=64), manifold_features(83, 5, spread=1.3, dim=64)
    expected = precision_recall_density_coverage(real, gen)
    shapes = []
    original = prdc_module._Points.sq_dist

    def recording(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        shapes.append(out.shape)
        return out

    monkeypatch.setattr(prdc_module, "BLOCK_ELEMENTS", 400)  # 20 x 20 self blocks, 4-5 rows x 83 cross blocks
    monkeypatch.setattr(prdc_module._Points, "sq_dist", recording)
    assert precision_recall_density_coverage(real, gen) == expected
    assert max(a * b for a, b in shapes) <= 420 and len(shapes) > 30
    assert expected == pytest.approx(prdc_oracle(real, gen), abs=1e-12)


def test_prdc_needs_k_plus_one_points():
    with pytest.raises(UserError, match="at least 6 points"):
        precision_recall_density_coverage(manifold_features(5, 0, dim=8), manifold_features(20, 1, dim=8))


# --------------------------------------------------------------------------------------------------
# FID bootstrap interval


def test_fid_bootstrap_interval_is_the_percentile_interval_of_resamples():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((300, 24))
    gen = (rng.standard_normal((200, 24)) * 1.2 + 0.2).astype(np.float32)
    ref = FeatureStats(24).update(real)
    ref_stats = type("Ref", (), {"mu": ref.mean, "sigma": ref.cov()})()
    low, high = fid_bootstrap_interval(gen, ref_stats, resamples=40, seed=5)
    draws = np.random.default_rng(5)
    fids = []
    for _ in range(40):  # the resamples by hand, in the same order
        g = gen[draws.integers(0, 200, 200)].astype(np.float64)
        fids.append(frechet_distance(g.mean(0), np.cov(g, rowvar=False), ref.mean, ref.cov()))
    assert [low, high] == pytest.approx(list(np.percentile(fids, [2.5, 97.5])), rel=1e-9)
    assert low < high and fid_of(gen, ref_stats) > 0
    with pytest.raises(UserError, match="at least 2 resamples"):
        fid_bootstrap_interval(gen, ref_stats, resamples=1)


# --------------------------------------------------------------------------------------------------
# registry


@pytest.fixture
def ref_with_rows(tmp_path):
    real = manifold_features(40, 6)
    labels = np.repeat([0, 1], 20)
    path = save_ref(tmp_path / "r.npz", FeatureStats().update(real), real,
                    [np.flatnonzero(labels == c) for c in range(2)], ["cat", "dog"], {"resize": "tf1"})
    return load_ref(path)


def test_registry_names_and_metadata():
    assert R.METRIC_NAMES == ("fid", "is", "intra_fid", "kid", "precision", "recall", "density", "coverage")
    assert not R.METRICS["fid"].higher_is_better and R.METRICS["is"].higher_is_better
    assert R.METRICS["kid"].format({"kid": {"mean": 0.01234, "std": 0.0005}}) == "12.34 ± 0.50"  # x 10^3
    assert R.parse_metric_names("fid, kid,fid") == ("fid", "kid")
    with pytest.raises(UserError, match="unknown metric 'fdi'.*fid, is, intra_fid"):
        R.parse_metric_names("fid,fdi")


def test_resolve_metrics_defaults_to_what_the_inputs_allow(ref_with_rows, tmp_path):
    names, skipped = R.resolve_metrics(None, ref_with_rows, 30, has_labels=True)
    assert names == R.METRIC_NAMES and skipped == {}
    np.savez(tmp_path / "pf.npz", mu=ref_with_rows.mu, sigma=ref_with_rows.sigma)  # no feature rows
    plain = load_ref(tmp_path / "pf.npz")
    names, skipped = R.resolve_metrics(None, plain, 30, has_labels=True)
    assert names == ("fid", "is") and set(skipped) == {"intra_fid", "kid", "precision", "recall", "density", "coverage"}
    with pytest.raises(UserError, match="cannot compute kid: .*no feature rows"):
        R.resolve_metrics("fid,kid", plain, 30, has_labels=True)
    assert R.resolve_metrics(None, ref_with_rows, 4, has_labels=True)[1]["precision"].endswith("6 samples a side")


def test_compute_metrics_iterates_the_registry(ref_with_rows):
    gen = manifold_features(30, 7, spread=1.2)
    labels = np.repeat([0, 1], 15)
    options = R.MetricOptions(splits=3, kid_subsets=4, kid_subset_size=1000, prdc_samples=25, fid_bootstrap=5)
    protocol = {}
    out = compute_metrics(gen, labels, ref_with_rows, TinyInception(), metrics=R.METRIC_NAMES, options=options,
                          protocol=protocol)
    assert set(out) == {"fid", "fid_ci", "inception_score", "intra_fid", "per_class_fid", "kid", "precision",
                        "recall", "density", "coverage", "num_samples"}
    assert set(R.scalars(out)) == set(R.METRIC_NAMES)
    assert R.scalars(out)["kid"] == out["kid"]["mean"] and R.scalars(out)["is"] == out["inception_score"]["mean"]
    assert "clipped from 1000 to the smaller side" in protocol["kid"] and "25 of 40 real" in protocol["precision_recall"]
    # precision & co. on the documented subsample: prdc on the same rows
    rng = np.random.default_rng(0)
    real_rows, gen_rows = np.sort(rng.choice(40, 25, replace=False)), np.sort(rng.choice(30, 25, replace=False))
    theirs = prdc_oracle(ref_with_rows.features(real_rows), gen[gen_rows])
    assert all(out[k] == pytest.approx(theirs[k], abs=1e-6) for k in theirs)


def _mean_norm(inp: R.MetricInputs) -> dict:
    return {"mean_norm": float(np.linalg.norm(inp.features, axis=1).mean())}


def test_a_new_metric_is_one_registration(ref_with_rows, tiny_tree_and_samples, monkeypatch, tmp_path):
    """Adding a metric: its computation plus one register() call; config validation, ``--metrics`` (and its
    --help), compute, scalars and report follow."""
    tree, samples = tiny_tree_and_samples
    monkeypatch.setattr(S, "load_inception", tiny_inception_loader())
    run_cli(["stats", "--data", tree, "--resolution", 16, "--out", tmp_path / "ref.npz", "--num-workers", 0])
    args = ["metrics", "--ref", tmp_path / "ref.npz", "--samples", samples, "--splits", 2, "--batch-size", 8]
    with pytest.raises(ConfigError, match="train.eval_metrics must be a non-empty list of fid, is"):
        load_config("demo", ["train.eval_metrics=[fid,mean_norm]"])
    assert "unknown metric 'mean_norm'" in run_cli([*args, "--metrics", "mean_norm", "--out", tmp_path / "no.json"],
                                                   ok=False).stderr
    with R.METRICS.scratch():
        R.register(R.Metric("mean_norm", "mean norm", False, "mean_norm", _mean_norm))
        assert load_config("demo", ["train.eval_metrics=[fid,mean_norm]"]).train.eval_metrics == ("fid", "mean_norm")
        assert "mean_norm" in R.METRIC_NAMES and "mean_norm" in " ".join(run_cli(["metrics", "--help"]).output.split())
        run_cli([*args, "--metrics", "fid,mean_norm", "--out", tmp_path / "report.json"])
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["mean_norm"] > 0 and "mean norm ↓" in (tmp_path / "report.md").read_text()
        with np.load(samples) as f:  # the value in the report is the new metric of the samples' features
            feats, _ = sample_features(f["images"], f["labels"], TinyInception(), progress=False)
        assert report["mean_norm"] == pytest.approx(np.linalg.norm(feats, axis=1).mean(), rel=1e-5)
        gen = manifold_features(12, 8)
        out = compute_metrics(gen, None, ref_with_rows, TinyInception(), metrics=("fid", "mean_norm"))
        assert out["mean_norm"] == pytest.approx(np.linalg.norm(gen, axis=1).mean(), rel=1e-6)
        assert R.scalars(out)["mean_norm"] == out["mean_norm"]
        assert "mean norm ↓" in markdown({**out, "resize": "tf1"})
        with pytest.raises(ValueError, match="registered twice"):
            R.register(R.Metric("fid", "FID", False, "fid", lambda inp: {}))
    assert "mean_norm" not in R.METRICS  # the registration ended with the block


def test_markdown_says_when_numbers_are_not_comparable_with_the_paper():
    report = {"fid": 20.0, "inception_score": {"mean": 40.0, "std": 1.0}, "num_samples": 50000, "bn_stats": "running"}
    same = markdown({**report, "resize": "tf1"})
    assert "same resize protocol (tf1)" in same and "Not directly comparable" not in same
    other = markdown({**report, "resize": "clean"})
    assert "Not directly comparable" in other and "`clean`" in other
    assert "| FID ↓ | IS ↑ | intra-FID ↓ |" in same and "52.52" in same and "83.70" in same


# --------------------------------------------------------------------------------------------------
# metrics.jsonl


def test_history_appends_and_skips_a_torn_line(tmp_path):
    path = tmp_path / "run" / "metrics.jsonl"
    assert read_records(path) == []
    append_record(path, {"step": 1, "values": {"fid": 10.0}})
    with open(path, "a") as f:
        f.write('{"step": 2, "values": {"fi')  # a crash mid-line
    append_record(path, {"step": 3, "values": {"fid": float("nan")}})
    records = read_records(path)
    assert [r["step"] for r in records] == [1, 3] and records[1]["values"]["fid"] is None
    assert all(json.loads(line) for line in path.read_text().splitlines()[::2])
