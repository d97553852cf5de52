"""Resize protocols against their reference implementations, on the same (random, calibrated) weights:
``tf1`` = torch-fidelity's ``inception-v3-compat`` (resize, pool features, IS / FID / KID of
``calculate_metrics``), ``clean`` = clean-fid's resize, ``pytorch-fid`` = pytorch-fid (test_metrics.py);
and references that record their protocol, refused when it differs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metrics_utils import calibrated_inception_state, save_state, smooth_images
from sagan.errors import UserError
from sagan.metrics import FeatureStats, class_frechet_distance, load_inception, load_ref, save_ref
from sagan.metrics.evaluation import check_reference_protocol, compute_metrics, sample_features
from sagan.metrics.registry import MetricOptions
from sagan.metrics.resize import RESIZE_MODES, RESIZERS, tf1_bilinear, to_inception_input

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

NUM_GEN, NUM_REAL, RES = 10, 12, 32
SPLITS, KID_SUBSETS, KID_SIZE = 5, 6, 8


def uint8_batch(h: int, w: int, seed: int, n: int = 2) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, h, w), generator=torch.Generator().manual_seed(seed)).to(torch.uint8)


# --------------------------------------------------------------------------------------------------
# resize functions


@pytest.mark.parametrize("h,w", [(32, 32), (16, 16), (128, 128), (40, 100), (299, 299), (512, 512)])
def test_tf1_resize_is_torch_fidelitys_bit_for_bit(h, w):
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    x = uint8_batch(h, w, seed=h + w).float()
    theirs = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    assert torch.equal(tf1_bilinear(x), theirs)
    ours = to_inception_input(x.to(torch.uint8), "tf1")
    torch.testing.assert_close(ours, (theirs - 128) / 128, rtol=0, atol=0)


def test_tf1_resize_has_no_half_pixel_offset():
    """TF1 samples output pixel i at i * in / out: a 2x upsample repeats pixels on even positions."""
    x = torch.tensor([[[[0.0, 100.0]]]]).expand(1, 1, 2, 2).contiguous()
    out = tf1_bilinear(x, size=4)[0, 0, 0]
    assert out.tolist() == [0.0, 50.0, 100.0, 100.0]  # align_corners=False with half pixels would give 25 at 0


@pytest.mark.parametrize("h,w", [(16, 16), (32, 32), (64, 64), (300, 300), (512, 512), (40, 100)])
def test_clean_resize_equals_clean_fid(h, w):
    from cleanfid.resize import make_resizer

    resize = make_resizer("PIL", False, "bicubic", (299, 299))  # clean-fid's build_resizer("clean")
    img = uint8_batch(h, w, seed=7 * h + w, n=1)
    theirs = resize(img[0].permute(1, 2, 0).numpy())  # float32 0..255, HWC
    ours = RESIZERS["clean"].to_input(img)[0].permute(1, 2, 0).numpy() * 128 + 128  # undo (x - 128) / 128
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)


def test_protocols_differ_and_pytorch_fid_is_unchanged():
    x = uint8_batch(32, 32, seed=1)
    out = {m: to_inception_input(x, m) for m in RESIZE_MODES}
    ref = torch.nn.functional.interpolate(x.float() / 255, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
    torch.testing.assert_close(out["pytorch-fid"], ref, rtol=0, atol=1e-6)
    assert (out["tf1"] - out["pytorch-fid"]).abs().max() > 0.05 and (out["clean"] - out["tf1"]).abs().max() > 0.05
    with pytest.raises(UserError, match="unknown"):
        to_inception_input(x, "bilinear")


# --------------------------------------------------------------------------------------------------
# tf1 features and metrics = torch-fidelity's


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_state(calibrated_inception_state(seed=0), tmp_path_factory.mktemp("w") / "inception.pth")


@pytest.fixture(scope="module")
def images():
    return smooth_images(NUM_GEN, RES, seed=3), smooth_images(NUM_REAL, RES, seed=4)


class _Images(torch.utils.data.Dataset):
    def __init__(self, array):
        self.array = array

    def __len__(self):
        return len(self.array)

    def __getitem__(self, i):
        return torch.from_numpy(self.array[i]).permute(2, 0, 1).contiguous()


@pytest.fixture(scope="module")
def fidelity(weights, images):
    """torch-fidelity's calculate_metrics, input1 = generated, input2 = real, on our weights file."""
    import torch_fidelity

    gen, real = images
    return torch_fidelity.calculate_metrics(
        input1=_Images(gen), input2=_Images(real), cuda=False, isc=True, fid=True, kid=True, verbose=False,
        cache=False, batch_size=8, feature_extractor="inception-v3-compat", feature_extractor_weights_path=str(weights),
        isc_splits=SPLITS, kid_subsets=KID_SUBSETS, kid_subset_size=KID_SIZE, samples_shuffle=False, save_cpu_ram=True)


@pytest.fixture(scope="module")
def ours(weights, images, tmp_path_factory):
    """Our features (the NCHW layout torch-fidelity's network runs in) and metrics against a tf1 reference."""
    gen, real = images
    inception = load_inception(weights, resize="tf1", channels_last=False)
    g, _ = sample_features(gen, np.zeros(NUM_GEN, np.int64), inception, 4, progress=False)
    r, _ = sample_features(real, np.zeros(NUM_REAL, np.int64), inception, 4, progress=False)
    protocol = {"resize": "tf1", "weights_sha256": inception.weights_sha256}
    path = save_ref(tmp_path_factory.mktemp("ref") / "ref.npz", FeatureStats().update(r), r, [np.arange(NUM_REAL)],
                    ["all"], protocol)
    options = MetricOptions(splits=SPLITS, kid_subsets=KID_SUBSETS, kid_subset_size=KID_SIZE)
    metrics = compute_metrics(g, None, load_ref(path), inception, metrics=("fid", "is", "kid"), options=options)
    return {"gen": g, "real": r, "metrics": metrics, "inception": inception}


def test_tf1_pool_features_equal_torch_fidelity(weights, images, ours):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    gen = torch.from_numpy(images[0]).permute(0, 3, 1, 2).contiguous()
    theirs = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))
    with torch.no_grad():
        expected = theirs(gen)[0].numpy()
    assert expected.std(0).mean() > 0.05  # the calibrated network tells the images apart
    np.testing.assert_array_equal(ours["gen"], expected)  # the same kernels in the same layout: bit-identical
    fast = load_inception(weights, resize="tf1")  # the default channels_last layout: other conv kernels
    got, _ = sample_features(images[0], np.zeros(NUM_GEN, np.int64), fast, 5, progress=False)
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


def test_is_fid_kid_equal_torch_fidelity(ours, fidelity):
    from torch_fidelity.metric_kid import kid_features_to_metric

    m = ours["metrics"]
    assert m["inception_score"]["mean"] == pytest.approx(fidelity["inception_score_mean"], rel=1e-6)
    assert m["inception_score"]["std"] == pytest.approx(fidelity["inception_score_std"], rel=1e-6)
    assert m["inception_score"]["mean"] > 1.1  # not a degenerate score
    # torch-fidelity's own arithmetic limits the end-to-end match to ~2e-6 here: its FID takes eigvals of the
    # non-symmetric S1 S2 (rank 9 of 2048: torch-fidelity issue 46) after float32 means, its KID sums float32
    # kernels; on the same features its formulas in float64 (KID) and the exact FID agree with ours to 1e-6
    assert m["fid"] == pytest.approx(fidelity["frechet_inception_distance"], rel=1e-5)
    assert m["kid"]["mean"] == pytest.approx(fidelity["kernel_inception_distance_mean"], rel=1e-5)
    assert m["fid"] == pytest.approx(class_frechet_distance(ours["gen"], ours["real"]), rel=1e-6)
    exact_kid = kid_features_to_metric(torch.from_numpy(ours["gen"]).double(), torch.from_numpy(ours["real"]).double(),
                                       kid_subsets=KID_SUBSETS, kid_subset_size=KID_SIZE, rng_seed=2020, verbose=False,
                                       kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                                       kid_kernel_poly_coef0=1)
    assert m["kid"]["mean"] == pytest.approx(exact_kid["kernel_inception_distance_mean"], rel=1e-6)
    assert m["kid"]["std"] == pytest.approx(exact_kid["kernel_inception_distance_std"], rel=1e-6)


# --------------------------------------------------------------------------------------------------
# references record their protocol; a mismatch is refused


def test_reference_protocol_is_checked(ours, tmp_path):
    r, inception = ours["real"], ours["inception"]
    stats = FeatureStats().update(r)
    made_tf1 = load_ref(save_ref(tmp_path / "a.npz", stats, r, [np.arange(NUM_REAL)], ["all"],
                                 {"resize": "tf1", "weights_sha256": inception.weights_sha256}))
    assert made_tf1.resize == "tf1" and made_tf1.weights_sha256 == inception.weights_sha256
    check_reference_protocol(made_tf1, "tf1", inception.weights_sha256)
    with pytest.raises(UserError) as e:
        check_reference_protocol(made_tf1, "clean", inception.weights_sha256)
    assert "'tf1'" in str(e.value) and "'clean'" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError, match="recompute the reference"):
        check_reference_protocol(made_tf1, "tf1", "0" * 64)
    # a plain pytorch-fid mu/sigma file records nothing: pytorch-fid resize, unknown weights
    np.savez(tmp_path / "pf.npz", mu=stats.mean, sigma=stats.cov())
    plain = load_ref(tmp_path / "pf.npz")
    assert plain.resize == "pytorch-fid" and plain.weights_sha256 is None
    check_reference_protocol(plain, "pytorch-fid", inception.weights_sha256)
    with pytest.raises(UserError, match="records no protocol.*pytorch-fid.*weights unknown.*--resize pytorch-fid"):
        check_reference_protocol(plain, "tf1", inception.weights_sha256)
    # written before protocols had names
    legacy = load_ref(save_ref(tmp_path / "old.npz", stats, protocol={"resize": "pytorch-fid: uint8 -> [0,1] -> ..."}))
    assert legacy.resize == "pytorch-fid"
