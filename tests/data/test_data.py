"""Datasets: the demo dataset, open_dataset on all three sources, reproducible flips, workers, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler

from sagan.data import DemoDataset, FolderDataset, PackedDataset, flip_decision, open_dataset
from sagan.data.demo import CLASS_NAMES
from sagan.errors import UserError
from sagan.data.prepare import pack

R = 16


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Three classes of 4 JPEGs of different sizes; class folders created out of sorted order."""
    root = tmp_path_factory.mktemp("tree")
    rng = np.random.default_rng(0)
    for name in ("cat", "ant", "bee"):
        (root / name).mkdir()
        for i in range(4):
            h, w = rng.integers(20, 60, size=2)
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / name / f"{i}.jpg")
    return root


@pytest.fixture(scope="module")
def packed(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("packed") / "ds"
    pack(tree, out, R, workers=0, progress=False)
    return out


# --------------------------------------------------------------------------------------------------
# demo dataset


def test_demo_items_and_names():
    ds = DemoDataset(resolution=32, num_classes=10, size=40)
    img, label = ds[13]
    assert img.shape == (3, 32, 32) and img.dtype == torch.float32 and isinstance(label, int)
    assert -1.0 <= img.min() and img.max() <= 1.0 and label == 3
    assert ds.class_names[:3] == ["red_circle", "green_square", "blue_triangle"]
    assert ds.num_classes == 10 and ds.resolution == 32 and len(ds) == 40
    u8, _ = DemoDataset(size=40, uint8=True)[13]
    assert u8.dtype == torch.uint8 and torch.allclose(u8.float() / 127.5 - 1, img)


def test_demo_is_deterministic_per_index():
    a, b = DemoDataset(size=600, seed=3), DemoDataset(size=600, seed=3)
    assert all(torch.equal(a[i][0], b[i][0]) for i in (0, 1, 299, 599))
    short = DemoDataset(size=20, seed=3)  # image i does not depend on the dataset size
    assert all(torch.equal(a[i][0], short[i][0]) for i in range(20))
    assert not torch.equal(a[0][0], DemoDataset(size=1, seed=4)[0][0])


def _features(images: np.ndarray) -> np.ndarray:
    """Colour histogram (4 bins per channel) + horizontal / vertical edge energy of uint8 N x 3 x R x R."""
    q = images // 64
    codes = (q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2]).reshape(len(images), -1)
    hist = np.stack([np.bincount(c, minlength=64) for c in codes]) / codes.shape[1]
    x = images.astype(np.float32) / 255
    edges = [np.abs(np.diff(x, axis=a)).mean(axis=(1, 2, 3)) for a in (2, 3)]
    return np.concatenate([hist, np.stack(edges, 1) * 4], 1)


def test_demo_classes_are_distinct():
    """A nearest-class-mean classifier on simple features tells all 12 designs apart on held-out images."""
    ds = DemoDataset(resolution=32, num_classes=len(CLASS_NAMES), size=1200, uint8=True)
    images = np.stack([ds[i][0].numpy() for i in range(len(ds))])
    labels = np.arange(len(ds)) % ds.num_classes
    feats = _features(images)
    train, test = slice(0, 960), slice(960, None)
    means = np.stack([feats[train][labels[train] == c].mean(0) for c in range(ds.num_classes)])
    pred = np.abs(feats[test][:, None] - means[None]).sum(-1).argmin(1)
    assert (pred == labels[test]).mean() > 0.95


def test_demo_rejects_too_many_classes():
    with pytest.raises(UserError, match=f"has {len(CLASS_NAMES)} designs"):
        DemoDataset(num_classes=len(CLASS_NAMES) + 1)


# --------------------------------------------------------------------------------------------------
# reproducible flips


def test_flip_is_a_function_of_seed_epoch_index():
    ds = DemoDataset(size=64, hflip=True, seed=5, uint8=True)
    plain = DemoDataset(size=64, hflip=False, seed=5, uint8=True)
    flips = []
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        for i in range(64):
            flipped = flip_decision(5, epoch, i)
            expected = plain[i][0].flip(-1) if flipped else plain[i][0]
            assert torch.equal(ds[i][0], expected)
            flips.append(flipped)
    assert 40 < sum(flips) < 88  # a fair coin over 128 draws
    assert flips[:64] != flips[64:]  # a new epoch flips other images
    assert [flip_decision(5, 0, i) for i in range(64)] == flips[:64]


def test_set_epoch_reaches_persistent_workers():
    ds = DemoDataset(size=8, hflip=True, uint8=True)
    loader = DataLoader(ds, batch_size=8, num_workers=1, persistent_workers=True)
    for epoch in (0, 1, 2):
        ds.set_epoch(epoch)
        batch, _ = next(iter(loader))
        expected = torch.stack([ds[i][0] for i in range(8)])
        assert torch.equal(batch, expected)


# --------------------------------------------------------------------------------------------------
# open_dataset on the three sources


def test_no_path_opens_the_demo_dataset_with_its_settings():
    ds = open_dataset(None, demo_size=30, demo_classes=5, seed=1)
    assert isinstance(ds, DemoDataset) and ds.resolution == 32 and ds.num_classes == 5 and len(ds) == 30


def test_open_packed_and_folder_agree(tree, packed):
    folder = open_dataset(tree, resolution=R)
    packed_ds = open_dataset(packed)
    assert isinstance(folder, FolderDataset) and isinstance(packed_ds, PackedDataset)
    for ds in (folder, packed_ds):
        assert ds.class_names == ["ant", "bee", "cat"] and ds.num_classes == 3 and ds.resolution == R
        assert len(ds) == 12
    for i in range(12):
        (a, la), (b, lb) = folder[i], packed_ds[i]
        assert la == lb == i // 4
        assert a.shape == (3, R, R) and a.dtype == torch.float32 and -1 <= a.min() and a.max() <= 1
        assert torch.equal(a, b)
    u8, _ = open_dataset(packed, uint8=True)[5]
    assert u8.dtype == torch.uint8 and u8.shape == (3, R, R)
    assert open_dataset(packed, resolution=R).resolution == R


def test_packed_pickles_without_arrays_and_shards(packed):
    ds = open_dataset(packed, uint8=True)
    ds[0]  # opens the memory maps
    state = pickle.dumps(ds)
    assert len(state) < 4096 < 12 * R * R * 3  # the arrays (9 KB here, 63 GB for ImageNet) are not pickled
    clone = pickle.loads(state)
    assert clone._images is None and torch.equal(clone[7][0], ds[7][0])
    seen = []
    for rank in range(2):  # what accelerate does per process: a DistributedSampler shard, workers
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        for images, labels in DataLoader(ds, batch_size=3, sampler=sampler, num_workers=2):
            assert images.shape[1:] == (3, R, R)
            seen += labels.tolist()
    assert sorted(seen) == sorted(ds.labels.tolist())


def test_packed_skips_holes(tmp_path):
    src = tmp_path / "src"
    for name in ("a", "b"):
        (src / name).mkdir(parents=True)
        Image.new("RGB", (20, 20), (10, 20, 30) if name == "a" else (200, 100, 0)).save(src / name / "ok.png")
    (src / "a" / "broken.png").write_bytes(b"")
    pack(src, tmp_path / "out", R, workers=0, progress=False)
    ds = open_dataset(tmp_path / "out", uint8=True)
    assert len(ds) == 2 and [ds[i][1] for i in range(2)] == [0, 1]
    assert ds[1][0][:, 0, 0].tolist() == [200, 100, 0]


# --------------------------------------------------------------------------------------------------
# clear errors


def test_unreadable_dataset_paths_are_one_line_errors(tree, packed, tmp_path):
    cases = []
    cases.append((tmp_path / "nope", {}, "does not exist"))
    (tmp_path / "file.jpg").write_bytes(b"x")
    cases.append((tmp_path / "file.jpg", {}, "is a file"))
    (tmp_path / "notes").mkdir()  # a flat folder of images is an unlabelled set; one without images is nothing
    (tmp_path / "notes" / "x.txt").write_text("x")
    cases.append((tmp_path / "notes", {"resolution": R}, "none of the formats sagan reads"))
    (tmp_path / "noimg" / "a").mkdir(parents=True)
    cases.append((tmp_path / "noimg", {"resolution": R}, "no images"))
    cases.append((tree, {}, "needs a resolution"))
    cases.append((packed, {"resolution": 2 * R}, f"packed at {R}px"))
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "images.npy").write_bytes(b"")
    cases.append((tmp_path / "partial", {}, "incomplete packed dataset"))
    for path, kwargs, message in cases:
        with pytest.raises(UserError, match=message) as err:
            open_dataset(path, **kwargs)
        assert "\n" not in str(err.value)


def test_folder_dataset_names_a_broken_file(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bad.jpg").write_text("not an image")
    with pytest.raises(UserError, match="bad.jpg: cannot decode"):
        open_dataset(tmp_path, resolution=R)[0]
