"""MNIST-family IDX folders as torchvision unpacks them: the header checks, .gz, splits, EMNIST's
transposed images, grey to RGB at the configured resolution."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from format_files import idx_bytes, write_mnist_raw
from sagan.data import open_dataset
from sagan.data.formats import FormatOptions, find_format
from sagan.data.formats.mnist import read_idx_images, read_idx_labels, read_split
from sagan.errors import UserError

RAW = "MNIST/raw"


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_read_back_what_was_written(tmp_path, gz):
    written = write_mnist_raw(tmp_path, gz=gz)
    for split in ("train", "test"):
        _, classes, images, labels, _ = read_split(tmp_path, FormatOptions(split=split))
        np.testing.assert_array_equal(images, written[split][0])
        np.testing.assert_array_equal(labels, written[split][1])
        assert classes == [str(d) for d in range(10)]


@pytest.mark.parametrize("where", ["", "MNIST", RAW])
def test_the_folder_around_mnist_its_raw_folder_and_the_files_folder_are_found(tmp_path, where):
    write_mnist_raw(tmp_path)
    fmt, _ = find_format(tmp_path / where)
    assert fmt.name == "mnist"
    assert len(open_dataset(tmp_path / where, resolution=32)) == 40


def test_grey_images_become_rgb_at_the_configured_resolution(tmp_path):
    images, labels = write_mnist_raw(tmp_path)["test"]
    ds = open_dataset(tmp_path, resolution=32, split="test", uint8=True)
    image, label = ds[3]
    assert image.shape == (3, 32, 32) and label == labels[3]
    assert (image[0] == image[1]).all() and (image[1] == image[2]).all()
    same = open_dataset(tmp_path, resolution=28, split="test", uint8=True)[3][0]
    np.testing.assert_array_equal(same[0].numpy(), images[3])


def test_wrong_magic_is_one_clear_error(tmp_path):
    write_mnist_raw(tmp_path)
    path = tmp_path / RAW / "train-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(np.zeros(40, np.uint8), 2051))  # an images magic in a labels file
    with pytest.raises(UserError, match="magic number 2051, not 2049"):
        read_idx_labels(path)
    with pytest.raises(UserError, match="train-labels-idx1-ubyte: magic number"):
        open_dataset(tmp_path, resolution=32)


def test_little_endian_header_is_refused(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(np.array([2051, 1, 2, 2], "<i4").tobytes() + bytes(4))
    with pytest.raises(UserError, match="not 2051"):
        read_idx_images(path)


def test_a_truncated_images_file_is_an_error_never_a_smaller_set(tmp_path):
    write_mnist_raw(tmp_path)
    path = tmp_path / RAW / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserError, match=r"bytes but its header \(40 x 28 x 28 images\) says 31376; a truncated"):
        open_dataset(tmp_path, resolution=32)


def test_a_truncated_gz_is_an_error(tmp_path):
    write_mnist_raw(tmp_path, gz=True)
    path = tmp_path / RAW / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte.gz: cannot be read"):
        open_dataset(tmp_path, resolution=32, split="test")


def test_images_and_labels_of_other_counts_are_refused(tmp_path):
    write_mnist_raw(tmp_path)
    (tmp_path / RAW / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(39, np.uint8), 2049))
    with pytest.raises(UserError, match="40 images but train-labels-idx1-ubyte has 39 labels"):
        open_dataset(tmp_path, resolution=32)


def test_a_missing_split_file_is_named(tmp_path):
    write_mnist_raw(tmp_path)
    (tmp_path / RAW / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(UserError, match="no t10k-images-idx3-ubyte"):
        open_dataset(tmp_path, resolution=32, split="test")
    with pytest.raises(UserError, match="--split val: IDX folders have the splits train and test"):
        open_dataset(tmp_path, resolution=32, split="val")


def test_fashion_mnist_names_its_classes(tmp_path):
    write_mnist_raw(tmp_path, family="FashionMNIST", gz=True)
    ds = open_dataset(tmp_path, resolution=32)
    assert ds.class_names[9] == "Ankle boot" and len(ds) == 40


def test_emnist_images_are_transposed_back_and_subsets_chosen_with_labels(tmp_path):
    written = write_mnist_raw(tmp_path, family="EMNIST", prefix="emnist-digits-", transpose=True)
    _, _, images, labels, _ = read_split(tmp_path, FormatOptions(split="test"))
    np.testing.assert_array_equal(images, written["test"][0])
    letters = tmp_path / "EMNIST" / "raw"
    (letters / "emnist-letters-train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((2, 28, 28), np.uint8), 2051))
    (letters / "emnist-letters-train-labels-idx1-ubyte").write_bytes(gzip.decompress(gzip.compress(
        idx_bytes(np.array([1, 26], np.uint8), 2049))))
    with pytest.raises(UserError, match="several EMNIST subsets .*digits, letters.*--labels"):
        read_split(tmp_path, FormatOptions())
    _, classes, images, labels, _ = read_split(tmp_path, FormatOptions(labels="letters"))
    assert len(images) == 2 and len(classes) == 27


def test_zalandos_fashion_mnist_folder_is_named_by_its_folder(tmp_path):
    written = write_mnist_raw(tmp_path, family="FashionMNIST", gz=True)
    (tmp_path / "FashionMNIST" / "raw").rename(tmp_path / "fashion-mnist")  # the files themselves, no raw/
    what, classes, images, _, _ = read_split(tmp_path / "fashion-mnist", FormatOptions(split="test"))
    assert what == "Fashion-MNIST, test split" and classes[0] == "T-shirt/top"
    np.testing.assert_array_equal(images, written["test"][0])
