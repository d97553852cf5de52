"""The metrics equal the references: pytorch-fid's Inception features and FID, torch-fidelity's IS, and
intra-FID as the mean of per-class FIDs computed the slow exact way (scipy sqrtm on full covariances)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metrics_utils import (calibrated_inception_state, pytorch_fid_features, pytorch_fid_inception, save_state,
                           scipy_fid, smooth_images)
from sagan.errors import UserError
from sagan.metrics import (FeatureStats, MetricOptions, class_frechet_distance, frechet_distance, inception_score,
                           load_inception, load_ref, save_ref, trace_sqrt_product)
from sagan.metrics.evaluation import compute_metrics, reference_stats, sample_features
from sagan.scores.intra import intra_fid_of
from sagan.metrics.features import shard_batches
from sagan.scores.inception import InceptionV3

pytestmark = pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")  # pytorch-fid's sqrtm call


@pytest.fixture(scope="module")
def inception_state():
    return calibrated_inception_state(seed=0)


@pytest.fixture(scope="module")
def weights_file(inception_state, tmp_path_factory):
    return save_state(inception_state, tmp_path_factory.mktemp("w") / "random_inception.pth")


@pytest.fixture(scope="module")
def inception(weights_file):
    return load_inception(weights_file, device="cpu", resize="pytorch-fid")  # compared with pytorch-fid below


@pytest.fixture(scope="module")
def images():
    return smooth_images(12, 32, seed=3)


@pytest.fixture(scope="module")
def oracle_features(inception_state, images):
    mp = pytest.MonkeyPatch()
    try:
        return pytorch_fid_features(pytorch_fid_inception(inception_state, mp), images)
    finally:
        mp.undo()


def random_cov(rng, n, d, scale=1.0):
    x = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * scale / np.sqrt(d) + rng.standard_normal(d)
    return x.mean(0), np.cov(x, rowvar=False)


# --------------------------------------------------------------------------------------------------
# Inception network


def test_state_dict_keys_and_shapes_equal_pytorch_fid(inception_state, monkeypatch):
    ref = pytorch_fid_inception(inception_state, monkeypatch)
    theirs = {k.split(".", 2)[-1]: v.shape for k, v in ref.state_dict().items()}  # drop "blocks.i." prefix
    # pytorch-fid's InceptionV3 regroups the layers; its fid_inception_v3() holds the file's exact keys
    import pytorch_fid.inception as pfi

    official = pfi.fid_inception_v3().state_dict()
    ours = InceptionV3().state_dict()
    assert list(ours) == list(official)
    assert all(ours[k].shape == official[k].shape for k in ours)
    assert len(theirs) > 500


def test_features_equal_pytorch_fid(inception, images, oracle_features):
    with torch.inference_mode():
        ours, logits = inception(torch.from_numpy(images).permute(0, 3, 1, 2))
    ours = ours.double().numpy()
    assert ours.shape == (len(images), 2048)
    assert oracle_features.std(0).mean() > 0.05  # the calibrated network separates the images
    np.testing.assert_allclose(ours, oracle_features, rtol=1e-4, atol=1e-4)


def test_logits_are_bias_free(inception, images):
    with torch.inference_mode():
        feats, logits = inception(torch.from_numpy(images[:2]).permute(0, 3, 1, 2))
    assert inception.fc.bias.abs().max() > 0.1  # the fixture's bias is nonzero, so leaving it out matters
    torch.testing.assert_close(logits, feats @ inception.fc.weight.T)
    assert logits.shape == (2, 1008)


def test_preprocess_resizes_like_pytorch_fid(images):
    x = torch.from_numpy(images[:2]).permute(0, 3, 1, 2)
    ref = torch.nn.functional.interpolate(x.float() / 255, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
    net = InceptionV3(resize="pytorch-fid")
    torch.testing.assert_close(net.preprocess(x), ref, rtol=0, atol=1e-6)
    with pytest.raises(TypeError):
        net.preprocess(x.float())


def test_sample_features_and_stats_equal_pytorch_fid(inception, images, oracle_features, tmp_path):
    labels = np.arange(len(images)) % 3
    feats, labs = sample_features(images, labels, inception, batch_size=5, progress=False)
    np.testing.assert_array_equal(labs, labels)
    np.testing.assert_allclose(feats, oracle_features, rtol=1e-4, atol=1e-4)

    class Data(torch.utils.data.Dataset):  # the open_dataset(uint8=True) contract
        num_classes, resolution, class_names = 3, 32, ["a", "b", "c"]

        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return torch.from_numpy(images[i]).permute(2, 0, 1).contiguous(), int(labels[i])

    out = reference_stats(Data(), inception, tmp_path / "ref.npz", batch_size=5)
    from pytorch_fid.fid_score import compute_statistics_of_path

    mu, sigma = compute_statistics_of_path(str(out), None, 1, 2048, "cpu")  # pytorch-fid reads our file
    np.testing.assert_allclose(mu, oracle_features.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(sigma, np.cov(oracle_features, rowvar=False), atol=1e-4)
    ref = load_ref(out)
    assert ref.num_classes == 3 and ref.class_names == ["a", "b", "c"] and ref.num_images == 12
    for c in range(3):
        np.testing.assert_allclose(ref.class_features(c), oracle_features[labels == c], rtol=1e-4, atol=1e-4)
    assert not (tmp_path / ".ref.npz.features.tmp.npy").exists()


# --------------------------------------------------------------------------------------------------
# statistics


def test_streaming_stats_equal_numpy_and_merge():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 16)) * 3 + 100  # a large offset: the pairwise update must not cancel
    a = FeatureStats(16, block=50)  # blocks of >= 50 rows folded in as they fill
    for i in range(0, 300, 37):
        a.update(x[i : i + 37])
    np.testing.assert_allclose(a.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(a.cov(), np.cov(x, rowvar=False), rtol=1e-10, atol=1e-10)
    b, c = FeatureStats(16).update(x[:100]), FeatureStats(16).update(x[100:])
    np.testing.assert_allclose(b.merge(c).cov(), a.cov(), rtol=1e-10, atol=1e-10)


def test_ref_file_roundtrip_float16(tmp_path):
    rng = np.random.default_rng(1)
    feats = rng.random((20, 2048)).astype(np.float32)
    labels = np.array([1, 0, 2, 1, 0] * 4)
    index = [np.flatnonzero(labels == c) for c in range(3)]
    st = FeatureStats().update(feats)
    save_ref(tmp_path / "r.npz", st, feats, index, ["x", "y", "z"], {"resize": "test"}, "float16")
    ref = load_ref(tmp_path / "r.npz")
    assert ref.protocol == {"resize": "test"} and ref.class_count(1) == 8
    assert isinstance(ref._class_features, np.memmap)  # read lazily, one class at a time
    assert ref.class_features(2).dtype == np.float16
    np.testing.assert_allclose(ref.class_features(1), feats[labels == 1], rtol=1e-3)
    np.testing.assert_allclose(ref.sigma, np.cov(feats.astype(np.float64), rowvar=False), atol=1e-10)


def test_pytorch_fid_stats_file_loads_without_classes(tmp_path):
    rng = np.random.default_rng(2)
    np.savez_compressed(tmp_path / "pf.npz", mu=rng.random(2048), sigma=np.eye(2048))  # pytorch-fid's save_fid_stats
    ref = load_ref(tmp_path / "pf.npz")
    assert not ref.has_classes
    with pytest.raises(UserError, match="no per-class features"):
        intra_fid_of(rng.random((4, 2048)).astype(np.float32), np.array([0, 0, 1, 1]), ref, progress=False)


# --------------------------------------------------------------------------------------------------
# Frechet distance


def test_frechet_distance_equals_pytorch_fid():
    rng = np.random.default_rng(0)
    mu1, s1 = random_cov(rng, 400, 64)
    mu2, s2 = random_cov(rng, 400, 64, scale=1.3)
    ours, theirs = frechet_distance(mu1, s1, mu2, s2), scipy_fid(mu1, s1, mu2, s2)
    assert abs(ours - theirs) <= 1e-6 * abs(theirs)
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-8


def test_frechet_distance_singular_covariances():
    """n < d: both covariances singular -> the eigh fallback; no NaN, equal to the SVD route on the features."""
    rng = np.random.default_rng(3)
    a, b = rng.random((20, 96)), rng.random((30, 96)) + 0.1
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ours = frechet_distance(a.mean(0), s1, b.mean(0), s2)
    exact = class_frechet_distance(a, b)
    assert np.isfinite(ours) and abs(ours - exact) <= 1e-6 * exact
    # one singular, one full-rank: the Cholesky of the full-rank one is taken
    c = rng.random((300, 96))
    sc = np.cov(c, rowvar=False)
    assert abs(trace_sqrt_product(s1, sc) - trace_sqrt_product(sc, s1)) < 1e-8 * trace_sqrt_product(sc, s1)
    assert abs(frechet_distance(a.mean(0), s1, c.mean(0), sc) - class_frechet_distance(a, c)) < 1e-6 * class_frechet_distance(a, c)


def test_class_frechet_distance_equals_full_covariance_route():
    rng = np.random.default_rng(4)
    for n1, n2 in ((12, 40), (40, 12), (50, 50)):
        a, b = rng.random((n1, 24)) * 2, rng.random((n2, 24))
        full = scipy_fid(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
        assert abs(class_frechet_distance(a, b) - full) <= 1e-6 * full


def test_intra_fid_is_mean_of_exact_per_class_fids(tmp_path):
    rng = np.random.default_rng(5)
    d, classes = 16, 4
    gen = rng.random((4 * 30, d)).astype(np.float32)
    gen_labels = np.repeat(np.arange(classes), 30)
    rng.shuffle(gen_labels)  # rows of a class need not be contiguous
    real = {c: rng.random((50 + 10 * c, d)).astype(np.float32) * (1 + c / 4) for c in range(classes)}
    rows = np.concatenate([real[c] for c in range(classes)])
    starts = np.cumsum([0] + [len(real[c]) for c in range(classes)])
    ref = load_ref(save_ref(tmp_path / "r.npz", FeatureStats(d).update(rows), rows,
                            [np.arange(starts[c], starts[c + 1]) for c in range(classes)]), expected_dim=d)
    mean, per_class = intra_fid_of(gen, gen_labels, ref, progress=False)  # what the registry's intra_fid runs
    exact = {}
    for c in range(classes):
        g, r = gen[gen_labels == c].astype(np.float64), real[c].astype(np.float64)
        exact[c] = scipy_fid(g.mean(0), np.cov(g, rowvar=False), r.mean(0), np.cov(r, rowvar=False))
        assert abs(per_class[c] - exact[c]) <= 1e-6 * exact[c]
    assert abs(mean - np.mean(list(exact.values()))) <= 1e-6 * mean


# --------------------------------------------------------------------------------------------------
# Inception Score


def test_inception_score_equals_torch_fidelity():
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = torch.randn(103, 1008, generator=torch.Generator().manual_seed(0)) * 3
    theirs = isc_features_to_metric(logits, splits=10, shuffle=False)
    mean, std = inception_score(logits.numpy(), splits=10)
    assert mean == pytest.approx(theirs["inception_score_mean"], rel=1e-10)
    assert std == pytest.approx(theirs["inception_score_std"], rel=1e-8)
    assert mean > 1.5


def test_inception_score_is_1_without_diversity_n_for_n_classes_and_refuses_too_many_splits():
    one_class = np.full((20, 1008), -50.0)
    one_class[:, 7] = 50.0
    assert inception_score(one_class, splits=2)[0] == pytest.approx(1.0)  # no diversity
    perfect = np.full((1008, 1008), -50.0)
    np.fill_diagonal(perfect, 50.0)
    assert inception_score(perfect, splits=1)[0] == pytest.approx(1008, rel=1e-6)  # exp(log 1008)
    with pytest.raises(UserError, match="splits"):
        inception_score(np.zeros((5, 1008)), splits=10)


def test_compute_metrics_on_features(inception, tmp_path):
    rng = np.random.default_rng(6)
    real = rng.random((60, 2048)).astype(np.float32)
    real_labels = np.repeat([0, 1, 2], 20)
    gen = (rng.random((30, 2048)) * 1.1).astype(np.float32)
    gen_labels = np.repeat([0, 1, 2], 10)
    path = save_ref(tmp_path / "r.npz", FeatureStats().update(real), real,
                    [np.flatnonzero(real_labels == c) for c in range(3)])
    ref = load_ref(path)
    options = MetricOptions(splits=3, progress=False)
    out = compute_metrics(gen, gen_labels, ref, inception, metrics=("fid", "is", "intra_fid"), options=options)
    # both sides are sample statistics of feature sets, so the exact feature-space route is an oracle
    assert out["fid"] == pytest.approx(class_frechet_distance(gen, real), rel=1e-6)
    assert out["num_samples"] == 30
    assert out["intra_fid"] == pytest.approx(np.mean(list(out["per_class_fid"].values())))
    assert out["per_class_fid"]["1"] == pytest.approx(class_frechet_distance(gen[10:20], real[20:40]), rel=1e-9)
    logits = gen @ inception.fc.weight.numpy().T
    assert out["inception_score"]["mean"] == pytest.approx(inception_score(logits, 3)[0], rel=1e-5)
    with pytest.raises(UserError, match="3 classes"):
        compute_metrics(gen, gen_labels + 1, ref, inception, metrics=("fid", "is", "intra_fid"), options=options)


def test_shards_cover_every_index_once_in_lockstep():
    for n, bs, world in ((101, 50, 2), (7, 3, 4), (3, 5, 4), (100, 10, 1)):
        shards = [shard_batches(n, bs, r, world) for r in range(world)]
        assert len({len(s) for s in shards}) == 1
        got = np.concatenate([b for s in shards for b in s])
        np.testing.assert_array_equal(np.sort(got), np.arange(n))
