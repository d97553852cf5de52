"""Dataset formats: CIFAR (python and binary), Hugging Face (save_to_disk, parquet) and flat folders read
from files written the way the originals are, packed by sagan-prepare and opened by open_dataset; the
registry as an extension point; a pickle that would run code is refused without running; bad inputs
are one line each."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import sagan.data.formats as formats_mod
from format_files import (CIFAR10_NAMES, hf_path_cells, hf_split, with_labels, write_cifar10, write_cifar100,
                          write_hf_parquet, write_tiny_imagenet)
from sagan.config import ConfigError, load_config
from sagan.data import DatasetFormat, FormatOptions, PackedDataset, Source, SourceDataset, open_dataset
from sagan.data.formats import find_format, register_format, registered_formats
from sagan.data.formats.source import ArrayReader
from sagan.data.images import resize_square
from sagan.data.formats.packed import MANIFEST
from sagan.commands.prepare import main as prepare_cli
from sagan.data.prepare import pack, summary
from sagan.data.stream import open_training_data
from sagan.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def packed_arrays(out: Path) -> tuple[np.ndarray, np.ndarray]:
    ds = open_dataset(out, uint8=True)
    items = [ds[i] for i in range(len(ds))]
    return np.stack([x.numpy().transpose(1, 2, 0) for x, _ in items]), np.array([y for _, y in items])


def one_line(call, *args, **kwargs) -> str:
    with pytest.raises(UserError) as err:
        call(*args, **kwargs)
    text = str(err.value)
    assert text and "\n" not in text
    return text


def run_prepare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sagan.commands.prepare", *args, "--quiet"], capture_output=True,
                          text=True, timeout=120, cwd=REPO)


# --------------------------------------------------------------------------------------------------
# the registry


def test_every_builtin_format_is_registered_once_most_specific_first():
    names = [f.name for f in registered_formats()]
    assert sorted(names) == sorted(formats_mod.BUILTIN)
    assert names.index("packed") < names.index("cifar") < names.index("tree")
    with pytest.raises(ValueError, match="registered twice"):
        register_format(DatasetFormat("tree", "another tree", lambda root: False))


@pytest.fixture
def scratch_formats():
    """Dataset formats registered in a test end with it."""
    with formats_mod.DATASET_FORMATS.scratch():
        yield


def test_a_new_format_is_one_registration_that_open_dataset_and_the_packer_both_use(tmp_path, scratch_formats):
    images = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)

    def source(root, options):
        return Source("npy pair", ["a", "b"], range(5), [0, 1, 0, 1, 1], ArrayReader(np.load(root / "x.npy")),
                      resolution=16, parallel=False)

    register_format(DatasetFormat("npy-pair", "a folder with x.npy", lambda root: (root / "x.npy").is_file(),
                                  source=source, priority=50, sized=True))
    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "x.npy", images)
    ds = open_dataset(tmp_path / "src", uint8=True)
    assert isinstance(ds, SourceDataset) and ds.resolution == 16 and ds.class_names == ["a", "b"]
    assert np.array_equal(ds[3][0].numpy().transpose(1, 2, 0), images[3]) and ds[3][1] == 1
    manifest = pack(tmp_path / "src", tmp_path / "out", workers=0, progress=False)
    assert manifest["source_format"] == "npy-pair" and manifest["resolution"] == 16
    assert np.array_equal(packed_arrays(tmp_path / "out")[0], images)


def test_entry_points_reach_the_packer():
    import sagan.commands.prepare

    assert sagan.commands.prepare.main is prepare_cli and sagan.commands.prepare.pack is pack
    result = subprocess.run([sys.executable, "-m", "sagan.commands.prepare", "--help"], capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    assert result.returncode == 0 and "cifar-10-batches-py" in result.stdout and "--split" in result.stdout


# --------------------------------------------------------------------------------------------------
# CIFAR


@pytest.mark.parametrize("binary", [False, True], ids=["python", "binary"])
def test_cifar10_packs_both_splits_with_pixels_in_plane_order(tmp_path, binary):
    src = tmp_path / ("cifar-10-batches-bin" if binary else "cifar-10-batches-py")
    expected = write_cifar10(src, binary=binary)
    assert find_format(src)[0].name == "cifar"
    manifest = pack(src, tmp_path / "train", workers=0, progress=False)  # resolution: the stored 32
    assert manifest["resolution"] == 32 and manifest["classes"] == CIFAR10_NAMES and manifest["num_images"] == 30
    assert manifest["source_format"] == "cifar" and "train split" in manifest["source_kind"]
    images, labels = packed_arrays(tmp_path / "train")
    assert np.array_equal(images, expected["train"][0]) and np.array_equal(labels, expected["train"][1])
    pack(src, tmp_path / "test", workers=0, progress=False, split="test")
    images, labels = packed_arrays(tmp_path / "test")
    assert np.array_equal(images, expected["test"][0]) and np.array_equal(labels, expected["test"][1])


def test_cifar10_python_and_binary_folders_give_the_same_dataset(tmp_path):
    write_cifar10(tmp_path / "py")
    write_cifar10(tmp_path / "bin", binary=True)
    py, bn = open_dataset(tmp_path / "py", uint8=True), open_dataset(tmp_path / "bin", uint8=True)
    assert len(py) == len(bn) == 30 and py.class_names == bn.class_names == CIFAR10_NAMES
    assert all(np.array_equal(py[i][0], bn[i][0]) and py[i][1] == bn[i][1] for i in range(30))


@pytest.mark.parametrize("binary", [False, True], ids=["python", "binary"])
def test_cifar100_fine_labels_by_default_coarse_on_request(tmp_path, binary):
    src = tmp_path / ("cifar-100-binary" if binary else "cifar-100-python")
    expected = write_cifar100(src, binary=binary)
    fine = open_dataset(src, uint8=True)
    assert fine.num_classes == 100 and fine.class_names[7] == "fine07" and fine.resolution == 32
    assert [fine[i][1] for i in range(len(fine))] == expected["train"][1].tolist()
    assert np.array_equal(fine[3][0].numpy().transpose(1, 2, 0), expected["train"][0][3])
    result = CliRunner().invoke(prepare_cli, ["--source", str(src), "--out", str(tmp_path / "out"), "--labels",
                                              "coarse", "--split", "test", "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "packed 4 images of 20 classes at 32px" in result.output
    images, labels = packed_arrays(tmp_path / "out")
    assert np.array_equal(labels, expected["test"][2]) and np.array_equal(images, expected["test"][0])
    assert open_dataset(tmp_path / "out").class_names[0] == "coarse00"


@pytest.mark.parametrize("hundred", [False, True], ids=["cifar10", "cifar100"])
def test_torchvision_reads_our_cifar_files_as_we_do(tmp_path, monkeypatch, hundred):
    """torchvision's CIFAR readers (a trusting pickle.load, latin-1) as the oracle of the file layout."""
    from torchvision import datasets as tvd

    cls = tvd.CIFAR100 if hundred else tvd.CIFAR10
    monkeypatch.setattr(cls, "_check_integrity", lambda self: True)  # our files are not the published ones
    monkeypatch.setattr(tvd.cifar, "check_integrity", lambda *a: True)
    (write_cifar100 if hundred else write_cifar10)(tmp_path / cls.base_folder)
    for split in ("train", "test"):
        theirs = cls(str(tmp_path), train=split == "train", download=False)
        ours = open_dataset(tmp_path / cls.base_folder, uint8=True, split=split)
        assert ours.class_names == theirs.classes and len(ours) == len(theirs)
        for i in range(len(ours)):
            image, label = theirs[i]
            assert np.array_equal(ours[i][0].numpy().transpose(1, 2, 0), np.asarray(image)) and ours[i][1] == label


def test_cifar_resized_like_any_image_and_trained_from_directly(tmp_path):
    src = tmp_path / "cifar-10-batches-py"
    expected = write_cifar10(src)
    pack(src, tmp_path / "out16", 16, workers=0, progress=False)
    assert np.array_equal(packed_arrays(tmp_path / "out16")[0][4], resize_square(expected["train"][0][4], 16))
    cfg = load_config("demo").replace(data={"path": str(src)}, model={"num_classes": 3, "resolution": 64})
    ds, cfg = open_training_data(cfg, pinned=())  # the data gives both
    assert (ds.resolution, ds.num_classes, cfg.model.resolution, cfg.model.num_classes) == (32, 10, 32, 10)


def test_training_runs_straight_from_a_cifar_folder(tmp_path):
    from sagan.checkpoint import load_checkpoint
    from sagan.training import train

    src = tmp_path / "cifar-10-batches-py"
    write_cifar10(src)
    cfg = load_config("demo", overrides=["model.g_ch=16", "model.d_ch=16", "train.batch_size=8", "train.num_workers=0",
                                         "train.max_steps=1", "train.sample_every=1000", "train.checkpoint_every=1000",
                                         f"data.path={src}"])
    train(cfg, outdir=tmp_path / "run", progress=False)
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["class_names"] == CIFAR10_NAMES and ckpt["config"]["model"]["resolution"] == 32


def _truncate(path: Path, keep: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:len(data) + keep])


@pytest.mark.parametrize("case, message", [
    ("batch_missing", "CIFAR-10 python batches without data_batch_3"),
    ("pickle_cut_short", "truncated download"),
    ("fewer_than_meta_says", "5 images but batches.meta (num_cases_per_batch) say 6"),
    ("binary_cut_mid_record", "not a whole number of 3073-byte records"),
    ("binary_batch_a_record_short", "5 images but the other batches say 6"),
    ("coarse_on_cifar10", "--labels coarse: CIFAR-10 python batches has one label set"),
    ("unknown_split", "--split val: CIFAR-10 python batches has the splits train, test"),
    ("split_on_a_tree", "--split does not apply to a class-per-folder tree"),
])
def test_cifar_bad_inputs_are_one_line(tmp_path, case, message):
    binary = case.startswith("binary")
    src = tmp_path / "c"
    write_cifar10(src, binary=binary)
    kwargs = {}
    if case == "batch_missing":
        (src / "data_batch_3").unlink()
    elif case == "pickle_cut_short":
        _truncate(src / "data_batch_5", 2000)
    elif case == "fewer_than_meta_says":
        write_cifar10(tmp_path / "five", per_batch=5)
        os.replace(tmp_path / "five" / "data_batch_2", src / "data_batch_2")
    elif case == "binary_cut_mid_record":
        _truncate(src / "data_batch_4.bin", -100)
    elif case == "binary_batch_a_record_short":
        _truncate(src / "data_batch_2.bin", -3073)
    elif case == "coarse_on_cifar10":
        kwargs = {"labels": "coarse"}
    elif case == "unknown_split":
        kwargs = {"split": "val"}
    elif case == "split_on_a_tree":
        src = tmp_path / "tree"
        (src / "a").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(src / "a" / "x.png")
        kwargs = {"split": "test"}
    assert message in one_line(pack, src, tmp_path / "out", workers=0, progress=False, **kwargs)
    assert message in one_line(open_dataset, src, resolution=32, **kwargs)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("label, shown", [(1.7, "1.7"), (None, "None"), (2 ** 70, str(2 ** 70)), (True, "True"),
                                          (10, "10")])
def test_cifar_labels_that_are_not_class_numbers_are_refused_naming_the_entry(tmp_path, label, shown):
    src = tmp_path / "cifar-10-batches-py"
    write_cifar10(src)
    batch = pickle.loads((src / "data_batch_4").read_bytes(), encoding="latin1")
    batch["labels"][2] = label
    (src / "data_batch_4").write_bytes(pickle.dumps(batch, protocol=2))
    text = one_line(open_dataset, src)
    assert f"data_batch_4: labels[2] is {shown}, not a class number 0..9" in text
    assert "data_batch_4" in one_line(pack, src, tmp_path / "out", workers=0, progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("short", ["train", "test"])
def test_cifar100_binary_files_short_by_whole_records_are_refused(tmp_path, short):
    src = tmp_path / "cifar-100-binary"
    write_cifar100(src, binary=True)
    _truncate(src / f"{short}.bin", -2 * (2 + 3072))
    other = "test" if short == "train" else "train"
    for split in ("train", "test"):  # whichever split is read
        text = one_line(open_dataset, src, split=split)
        assert f"{short}.bin: {18 if short == 'train' else 2} images but {other}.bin has" in text
        assert "5 train images per test image" in text


def test_a_long_binary_batch_is_the_one_named(tmp_path):
    src = tmp_path / "cifar-10-batches-bin"
    write_cifar10(src, binary=True)
    with open(src / "data_batch_3.bin", "ab") as f:
        f.write((src / "data_batch_1.bin").read_bytes()[:3073])
    text = one_line(open_dataset, src)
    assert "data_batch_3.bin: 7 images but the other batches say 6" in text
    assert len(open_dataset(src, split="test")) == 6  # the test batch is fine


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("where", ["the whole file", "inside the batch dict"])
def test_a_pickle_that_would_run_code_is_refused_without_running(tmp_path, where):
    src = tmp_path / "cifar-10-batches-py"
    write_cifar10(src)
    marker = tmp_path / "pwned"
    payload = _RunsCode(marker) if where == "the whole file" else {"x": _RunsCode(marker), "labels": [0] * 6}
    (src / "data_batch_2").write_bytes(pickle.dumps(payload, protocol=2))
    pickle.loads((src / "data_batch_2").read_bytes())  # the payload works on a trusting reader ...
    assert marker.exists()
    marker.unlink()
    text = one_line(open_dataset, src)  # ... and not on ours
    assert "data_batch_2" in text and "refused" in text and "posix.system" in text and "nothing in it was run" in text
    result = run_prepare("--source", str(src), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "refused" in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 5])
@pytest.mark.parametrize("encoding", ["latin1", "bytes"])
def test_a_batch_re_saved_by_python3_reads_as_the_original(tmp_path, protocol, encoding):
    """Loaded as torchvision does (latin1) or as the CIFAR page's snippet does (bytes: keys and names stay
    bytes), then saved by Python 3: at protocols 0-2 its bytes are _codecs.encode calls, at 5 the arrays
    numpy's _frombuffer; the images, labels and class names are those of the original folder."""
    src = tmp_path / "cifar-10-batches-py"
    write_cifar10(src)
    original = packed_arrays_of(src, tmp_path / "original")
    for name in ("data_batch_3", "test_batch", "batches.meta"):
        batch = pickle.loads((src / name).read_bytes(), encoding=encoding)
        (src / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    resaved = packed_arrays_of(src, tmp_path / "resaved")
    assert all(np.array_equal(a, b) for a, b in zip(original, resaved))
    assert open_dataset(src).class_names == CIFAR10_NAMES
    assert len(open_dataset(src, split="test")) == 6


def packed_arrays_of(src: Path, out: Path) -> tuple[np.ndarray, np.ndarray]:
    pack(src, out, workers=0, progress=False)
    return packed_arrays(out)


class _EncodesThenRuns:
    """A bytes-like payload whose reduction is _codecs.encode with a codec other than latin-1."""

    def __reduce__(self):
        import _codecs

        return _codecs.encode, ("x", "rot13")


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_python3_pickles_that_would_run_code_are_still_refused(tmp_path, protocol):
    src = tmp_path / "cifar-10-batches-py"
    write_cifar10(src)
    marker = tmp_path / "pwned"
    (src / "data_batch_2").write_bytes(pickle.dumps({"data": _RunsCode(marker), "labels": [0] * 6}, protocol=protocol))
    text = one_line(open_dataset, src)
    assert "refused" in text and "system" in text and "nothing in it was run" in text and not marker.exists()
    (src / "data_batch_2").write_bytes(pickle.dumps({"data": _EncodesThenRuns(), "labels": [0] * 6}, protocol=protocol))
    assert "_codecs.encode with str and encoding 'rot13'" in one_line(open_dataset, src)
    assert "it is not a CIFAR-10 batch:" in text  # the dataset's name, one space before the role


# --------------------------------------------------------------------------------------------------
# Tiny-ImageNet


def test_tiny_imagenet_train_and_val_splits_at_64px(tmp_path):
    src = tmp_path / "tiny-imagenet-200"
    expected = write_tiny_imagenet(src)
    assert find_format(src)[0].name == "tiny_imagenet"
    manifest = pack(src, tmp_path / "train", workers=0, progress=False)
    assert (manifest["resolution"], manifest["num_images"]) == (64, 6)
    assert manifest["classes"] == ["n01443537", "n01629819", "n01641577"]  # sorted, as wnids.txt is not
    images, labels = packed_arrays(tmp_path / "train")
    assert labels.tolist() == [label for _, label in expected["train"]]
    assert np.array_equal(images[3], np.asarray(Image.open(src / expected["train"][3][0]).convert("RGB")))
    val = open_dataset(src, split="val", uint8=True)
    assert val.resolution == 64 and [val[i][1] for i in range(len(val))] == [label for _, label in expected["val"]]
    assert "no labels" in one_line(open_dataset, src, split="test")
    (src / "val" / "images" / "val_2.JPEG").unlink()
    assert "val_2.JPEG (listed in val_annotations.txt) is missing" in one_line(open_dataset, src, split="val")
    (src / "train" / "n01629819" / "images" / "n01629819_1.JPEG").unlink()
    assert "n01629819: 1 images but other classes have 2" in one_line(open_dataset, src)


@pytest.mark.parametrize("listed", ["../../../outside.JPEG", "ABSOLUTE", "../../train/../../../outside.JPEG", "link"])
def test_tiny_imagenet_val_images_outside_the_folder_are_refused_naming_the_line(tmp_path, listed):
    src = tmp_path / "tiny-imagenet-200"
    write_tiny_imagenet(src)
    outside = tmp_path / "outside.JPEG"
    Image.new("RGB", (64, 64), (255, 0, 0)).save(outside)
    if listed == "ABSOLUTE":
        listed = str(outside)
    elif listed == "link":  # a symlink in val/images that points out of the folder
        (src / "val" / "images" / "link.JPEG").symlink_to(outside)
        listed = "link.JPEG"
    annotations = src / "val" / "val_annotations.txt"
    lines = annotations.read_text().splitlines(keepends=True)
    lines[2] = f"{listed}\tn01443537\t0\t0\t63\t63\n"
    annotations.write_text("".join(lines))
    text = one_line(open_dataset, src, split="val")
    assert "val_annotations.txt:3: image" in text and "lies outside" in text and "refused" in text
    assert "val_annotations.txt:3" in one_line(pack, src, tmp_path / "out", split="val", workers=0, progress=False)
    assert not (tmp_path / "out").exists()


def test_tiny_imagenet_names_inside_the_folder_read_as_listed(tmp_path):
    src = tmp_path / "tiny-imagenet-200"
    expected = write_tiny_imagenet(src)
    annotations = src / "val" / "val_annotations.txt"
    annotations.write_text(annotations.read_text().replace("val_1.JPEG", "./sub/../val_1.JPEG"))
    val = open_dataset(src, split="val", uint8=True)
    assert [val[i][1] for i in range(len(val))] == [label for _, label in expected["val"]]


@pytest.mark.parametrize("same_class", [False, True])
def test_a_tiny_imagenet_image_listed_twice_is_refused(tmp_path, same_class):
    src = tmp_path / "tiny-imagenet-200"
    write_tiny_imagenet(src)
    annotations = src / "val" / "val_annotations.txt"
    lines = annotations.read_text().splitlines(keepends=True)
    wnid = lines[0].split("\t")[1] if same_class else "n01641577"
    annotations.write_text("".join(lines) + f"val_0.JPEG\t{wnid}\t0\t0\t63\t63\n")
    text = one_line(open_dataset, src, split="val")
    assert "val_annotations.txt:5: val_0.JPEG is listed again" in text and "(first on line 1)" in text
    assert ("with class n01641577, there n01443537" in text) != same_class


# --------------------------------------------------------------------------------------------------
# Hugging Face


NAMES = ["apple", "bear", "cloud"]


@pytest.fixture(scope="module")
def hf_splits():
    pytest.importorskip("datasets")
    train, train_images, train_labels = hf_split(8, 0, NAMES)
    test, test_images, test_labels = hf_split(4, 1, NAMES)
    return {"train": train, "test": test}, {"train": (train_images, train_labels), "test": (test_images, test_labels)}


@pytest.mark.parametrize("layout", ["save_to_disk", "parquet"])
def test_hugging_face_folders_pack_images_labels_and_class_names(tmp_path, hf_splits, layout):
    import datasets

    splits, expected = hf_splits
    src = tmp_path / "hf"
    if layout == "save_to_disk":
        datasets.DatasetDict(splits).save_to_disk(str(src))
    else:
        write_hf_parquet(src, splits)
    assert find_format(src)[0].name == "huggingface"
    manifest = pack(src, tmp_path / "out", 16, workers=0, progress=False)
    assert manifest["classes"] == NAMES and manifest["num_images"] == 8 and manifest["source_format"] == "huggingface"
    images, labels = packed_arrays(tmp_path / "out")
    assert np.array_equal(labels, expected["train"][1])
    assert all(np.array_equal(images[i], resize_square(expected["train"][0][i], 16)) for i in range(8))
    test = open_dataset(src, resolution=16, split="test", uint8=True)
    assert len(test) == 4 and test.class_names == NAMES and test.num_classes == 3
    assert np.array_equal(test[2][0].numpy().transpose(1, 2, 0), resize_square(expected["test"][0][2], 16))
    assert "--split val" in one_line(open_dataset, src, resolution=16, split="val")
    assert "--labels fine" in one_line(open_dataset, src, resolution=16, labels="fine")


def test_hugging_face_packing_in_worker_processes_matches(tmp_path, hf_splits):
    splits, _ = hf_splits
    write_hf_parquet(tmp_path / "hf", splits)
    pack(tmp_path / "hf", tmp_path / "a", 16, workers=0, progress=False)
    pack(tmp_path / "hf", tmp_path / "b", 16, workers=2, chunk_size=3, progress=False)
    assert all(np.array_equal(x, y) for x, y in zip(packed_arrays(tmp_path / "a"), packed_arrays(tmp_path / "b")))


def test_hugging_face_without_class_label_is_unlabelled(tmp_path):
    pytest.importorskip("datasets")
    ds, images, _ = hf_split(5, 2, None)
    ds.save_to_disk(str(tmp_path / "hf"))
    opened = open_dataset(tmp_path / "hf", resolution=8)
    assert opened.num_classes == 0 and opened.class_names == [] and {opened[i][1] for i in range(5)} == {0}


def test_parquet_without_an_image_column_is_one_line(tmp_path):
    datasets = pytest.importorskip("datasets")
    (tmp_path / "hf" / "data").mkdir(parents=True)
    ds = datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]},
                                    features=datasets.Features({"text": datasets.Value("string"),
                                                                "label": datasets.ClassLabel(names=["x", "y"])}))
    ds.to_parquet(str(tmp_path / "hf" / "data" / "train-00000-of-00001.parquet"))
    text = one_line(pack, tmp_path / "hf", tmp_path / "out", 16, workers=0, progress=False)
    assert "no image column" in text and "text (Value)" in text


def test_hugging_face_image_paths_outside_the_folder_are_refused_naming_the_row(tmp_path, monkeypatch):
    """Parquet keeps an image cell's path as written (save_to_disk and push_to_hub store the bytes instead)."""
    pytest.importorskip("datasets")
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "outside.png")

    def dataset_listing(name: str, paths: list[str]) -> Path:
        root = tmp_path / name
        (root / "images").mkdir(parents=True)
        for image in ("a", "b"):
            Image.new("RGB", (8, 8), (0, 255, 0)).save(root / "images" / f"{image}.png")
        monkeypatch.chdir(root)  # datasets sizes the listed files from the working directory when writing
        write_hf_parquet(root, {"train": hf_path_cells(paths, NAMES)})
        return root

    inside = dataset_listing("inside", ["images/a.png", "images/b.png"])  # read from the dataset folder
    assert np.array_equal(open_dataset(inside, resolution=8, uint8=True)[1][0].numpy()[:, 0, 0], [0, 255, 0])
    for case, outside in enumerate(["../outside.png", str(tmp_path / "outside.png")]):
        bad = dataset_listing(f"bad{case}", ["images/a.png", "images/b.png", outside])
        text = one_line(pack, bad, tmp_path / f"out{case}", 16, workers=0, progress=False)
        assert f"row 2: its image is a path, '{outside}', outside the dataset folder; refused" in text
        assert not (tmp_path / f"out{case}").exists()


@pytest.mark.parametrize("layout", ["save_to_disk", "parquet"])
@pytest.mark.parametrize("label, message", [(7, "row 3 has label 7 but the ClassLabel column label names 3 classes"),
                                            (None, "row 3 has no label (label is null)")])
def test_hugging_face_labels_outside_the_class_names_are_refused_naming_the_row(tmp_path, layout, label, message):
    pytest.importorskip("datasets")
    ds, _, _ = hf_split(6, 0, NAMES)
    ds = with_labels(ds, [0, 1, 2, label, 1, 0])
    src = tmp_path / "hf"
    ds.save_to_disk(str(src)) if layout == "save_to_disk" else write_hf_parquet(src, {"train": ds})
    assert message in one_line(open_dataset, src, resolution=16)
    assert message in one_line(pack, src, tmp_path / "out", 16, workers=0, progress=False)


def test_missing_datasets_package_is_one_line(tmp_path, hf_splits, monkeypatch):
    splits, _ = hf_splits
    write_hf_parquet(tmp_path / "hf", splits)
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError, as when not installed
    assert 'pip install -e ".[hf]"' in one_line(open_dataset, tmp_path / "hf", resolution=16)


# --------------------------------------------------------------------------------------------------
# flat folders (unlabelled) and what is none of the formats


@pytest.fixture
def flat(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "faces"
    root.mkdir()
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)).save(root / f"{i:03d}.png")
    (root / ".DS_Store").write_bytes(b"x")
    return root


def test_flat_folder_is_an_unlabelled_set_opened_and_packed(flat, tmp_path):
    ds = open_dataset(flat, resolution=16)
    assert (ds.num_classes, ds.class_names, len(ds)) == (0, [], 5) and {ds[i][1] for i in range(5)} == {0}
    manifest = pack(flat, tmp_path / "out", 16, workers=0, progress=False)
    assert (manifest["num_classes"], manifest["classes"], manifest["class_counts"]) == (0, [], [])
    assert "packed 5 images (unlabelled) at 16px" in summary(manifest, tmp_path / "out")
    packed = open_dataset(tmp_path / "out")
    assert isinstance(packed, PackedDataset) and packed.num_classes == 0 and set(packed.labels.tolist()) == {0}
    assert np.array_equal(packed_arrays(tmp_path / "out")[0][1],
                          resize_square(np.asarray(Image.open(flat / "001.png")), 16))


def test_training_takes_num_classes_0_from_an_unlabelled_set(flat):
    cfg = load_config("demo")
    ds, cfg = open_training_data(cfg.replace(data={"path": str(flat)}), pinned=("resolution",))
    assert ds.num_classes == 0 and cfg.model.num_classes == 0


def test_none_of_the_formats_is_one_line_naming_them(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("x")
    text = one_line(open_dataset, tmp_path / "stuff")
    for kind in ("packed by sagan-prepare", "class-per-folder tree", "flat folder", "cifar-10-batches-py",
                 "Hugging Face"):
        assert kind in text
    result = run_prepare("--source", str(tmp_path / "stuff"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "none of the formats" in result.stderr


def test_a_packed_folder_given_as_source_is_one_line(flat, tmp_path):
    pack(flat, tmp_path / "out", 16, workers=0, progress=False)
    assert (tmp_path / "out" / MANIFEST).is_file()
    assert "sagan-prepare does not read" in one_line(pack, tmp_path / "out", tmp_path / "again", 16, workers=0)


def test_options_a_format_does_not_read_are_refused():
    fmt = find_format(None)[0]
    assert fmt.name == "demo"
    with pytest.raises(UserError, match="--labels does not apply to the built-in demo"):
        fmt.check_options(FormatOptions(labels="fine"), "demo")


# --------------------------------------------------------------------------------------------------
# choosing a split and a label set from the config and the command lines


def test_data_split_and_labels_reach_the_training_data(tmp_path):
    src = tmp_path / "cifar-100-python"
    write_cifar100(src)
    cfg = load_config("demo").replace(data={"path": str(src), "split": "test", "labels": "coarse"})
    ds, cfg = open_training_data(cfg, pinned=())
    assert (len(ds), ds.num_classes, cfg.model.num_classes) == (4, 20, 20)
    with pytest.raises(ConfigError, match="data.split must be a name"):
        load_config("demo").replace(data={"split": ""})
    with pytest.raises(UserError, match="data.split / data.labels choose within"):
        open_training_data(load_config("demo").replace(data={"labels": "coarse"}), pinned=())


def test_reference_statistics_of_the_cifar_test_split(tmp_path, inception_weights_file):
    from sagan.metrics import load_ref
    from sagan.commands.evaluate import main as evaluate_cli

    src = tmp_path / "cifar-10-batches-py"
    write_cifar10(src)
    out = tmp_path / "test.npz"
    result = CliRunner().invoke(evaluate_cli, ["stats", "--data", str(src), "--split", "test", "--out", str(out),
                                               "--inception-weights", str(inception_weights_file), "--device", "cpu",
                                               "--batch-size", "6", "--num-workers", "0"])
    assert result.exit_code == 0, result.output
    ref = load_ref(out)
    assert ref.num_images == 6 and ref.class_names == CIFAR10_NAMES


def test_default_resolution_follows_the_images_of_every_format(tmp_path, flat, hf_splits):
    """sagan-prepare without --resolution: the stored size (CIFAR 32), else the largest power of two at or
    below the images' median shorter side, read from file headers or the stored bytes (no decoding)."""
    write_cifar10(tmp_path / "c")
    write_hf_parquet(tmp_path / "hf", hf_splits[0])  # 20x14 images
    for src, expected in ((tmp_path / "c", 32), (flat, 16), (tmp_path / "hf", 16)):  # flat: 30x24
        assert pack(src, tmp_path / f"out-{src.name}", workers=0, progress=False)["resolution"] == expected
