"""sagan-prepare: odd and broken files, label order, determinism, resume after an interruption, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import sagan.data.prepare as prepare
from sagan.commands.prepare import main as prepare_cli
from sagan.data import open_dataset
from sagan.data.formats.packed import IMAGES, MANIFEST, PROGRESS, SKIPPED
from sagan.errors import UserError

R = 16
BROKEN = {"zebra/empty.jpg", "zebra/notes.jpg", "zebra/truncated.jpg"}


def _photo(seed: int, size=(48, 36)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def odd_tree(tmp_path_factory):
    """Two classes (folder names deliberately not in creation order) with every odd case of the issue."""
    root = tmp_path_factory.mktemp("odd_tree")
    apple, zebra = root / "apple", root / "zebra"
    (apple / "nested").mkdir(parents=True)
    zebra.mkdir()
    for i in range(3):
        _photo(i).save(apple / f"photo{i}.jpg", quality=90)
        _photo(10 + i).save(zebra / f"photo{i}.JPEG", quality=90)
    _photo(20).save(apple / "nested" / "deep.png")
    Image.new("L", (40, 30), 128).save(apple / "grey.jpg")
    Image.new("CMYK", (40, 30), (0, 255, 0, 0)).save(apple / "cmyk.jpg")  # magenta
    Image.new("RGBA", (40, 30), (255, 0, 0, 0)).save(apple / "rgba.png")  # fully transparent
    pal = Image.new("P", (40, 30), 1)
    pal.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)  # index 1 = blue
    pal.save(apple / "palette.png")
    Image.fromarray(np.full((30, 40), 40000, np.uint16)).save(apple / "sixteen.png")  # 'I;16'
    # stored wide (left red, right blue) with EXIF orientation 6: displayed tall, red on top
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, :20, 0] = 255
    wide[:, 20:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(wide).save(apple / "rotated.jpg", exif=exif, quality=95)
    # broken ones
    (zebra / "empty.jpg").write_bytes(b"")
    (zebra / "notes.jpg").write_text("not an image\n")
    data = (apple / "photo0.jpg").read_bytes()
    (zebra / "truncated.jpg").write_bytes(data[: len(data) // 2])
    # ignored silently
    (zebra / ".DS_Store").write_bytes(b"\0\0")
    (zebra / "._photo0.JPEG").write_bytes(b"\0\5\26\7")
    (zebra / "readme.txt").write_text("hello")
    (root / ".hidden_dir").mkdir()
    return root


@pytest.fixture(scope="module")
def packed(odd_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("packed") / "odd"
    return out, prepare.pack(odd_tree, out, R, workers=0, chunk_size=4, progress=False)


def test_kept_skipped_and_report(odd_tree, packed):
    out, manifest = packed
    assert manifest["classes"] == ["apple", "zebra"]  # sorted folder names; hidden folder ignored
    assert manifest["num_slots"] == 10 + 6
    assert manifest["num_images"] == 13 and manifest["num_skipped"] == 3
    assert manifest["class_counts"] == [10, 3]
    report = [line.split("\t") for line in (out / SKIPPED).read_text().splitlines()]
    assert {path for path, _ in report} == BROKEN
    assert all(reason for _, reason in report)
    assert "truncated" in dict(report)["zebra/truncated.jpg"]
    assert not (out / PROGRESS).exists()
    line = prepare.summary(manifest, out)
    assert "13 images of 2 classes" in line and "skipped 3" in line and SKIPPED in line


def test_odd_files_converted_to_rgb(odd_tree, packed):
    out, _ = packed
    ds = open_dataset(out, uint8=True)
    names = [p for p, _ in prepare.list_class_tree(odd_tree)[1] if p not in BROKEN]
    pixel = {name: ds[i][0][:, R // 2, R // 2].tolist() for i, name in enumerate(names)}
    assert pixel["apple/grey.jpg"] == [128, 128, 128]
    assert pixel["apple/cmyk.jpg"] == [255, 0, 255]
    assert pixel["apple/rgba.png"] == [255, 255, 255]  # transparent -> white background
    assert pixel["apple/palette.png"] == [0, 0, 255]
    assert pixel["apple/sixteen.png"] == [40000 >> 8] * 3  # scaled, not clipped to white
    rotated = ds[names.index("apple/rotated.jpg")][0].int()
    assert rotated[0, 2, R // 2] > 200 and rotated[2, 2, R // 2] < 60  # red on top after EXIF rotation
    assert rotated[2, R - 3, R // 2] > 200 and rotated[0, R - 3, R // 2] < 60  # blue at the bottom
    labels = [ds[i][1] for i in range(len(ds))]
    assert labels == [0] * 10 + [1] * 3


def test_pack_is_deterministic(odd_tree, packed, tmp_path):
    out, manifest = packed
    again = prepare.pack(odd_tree, tmp_path / "again", R, workers=2, chunk_size=4, progress=False)
    assert again["checksum"] == manifest["checksum"]
    assert (tmp_path / "again" / IMAGES).read_bytes() == (out / IMAGES).read_bytes()


def test_resume_after_interruption(odd_tree, packed, tmp_path, monkeypatch):
    _, clean = packed
    out = tmp_path / "resumed"
    real = prepare._pack_chunk
    calls = []

    def dies_after_two(task):
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C during the third chunk
        calls.append(task[0])
        return real(task)

    monkeypatch.setattr(prepare, "_pack_chunk", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        prepare.pack(odd_tree, out, R, workers=0, chunk_size=4, progress=False)
    assert not (out / MANIFEST).exists()  # an interrupted run never looks complete
    with pytest.raises(UserError, match="incomplete packed dataset"):
        open_dataset(out)
    with open(out / PROGRESS, "a") as f:
        f.write('{"chunk": 3, "si')  # a record cut short by the interruption

    calls.clear()
    monkeypatch.setattr(prepare, "_pack_chunk", lambda task: calls.append(task[0]) or real(task))
    resumed = prepare.pack(odd_tree, out, R, workers=0, chunk_size=4, progress=False)
    assert calls == [2, 3]  # chunks 0 and 1 were not done again
    assert resumed["checksum"] == clean["checksum"]
    assert (out / IMAGES).read_bytes() == (packed[0] / IMAGES).read_bytes()
    assert (out / SKIPPED).read_text() == (packed[0] / SKIPPED).read_text()


def test_rerun_of_complete_pack_is_noop_and_other_source_refused(odd_tree, packed, tmp_path, monkeypatch):
    out, manifest = packed
    monkeypatch.setattr(prepare, "_pack_chunk", lambda task: pytest.fail("re-packed a complete dataset"))
    assert prepare.pack(odd_tree, out, R, workers=0, chunk_size=4, progress=False)["checksum"] == manifest["checksum"]
    with pytest.raises(UserError, match="already holds a packed dataset"):
        prepare.pack(odd_tree, out, 2 * R, workers=0, progress=False)


def _tree(root, classes):
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            _photo(i).save(root / name / f"{i}.png")
    return root


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("not_a_dataset", "none of the formats sagan reads"),
    ("flat_files_and_class_folders", "next to 1 class folder"),
    ("no_images", "no images"),
    ("empty_class", "class folder without images"),
    ("split_folders", "point at the train folder"),
    ("out_inside_source", "inside --source"),
])
def test_unpackable_sources_are_one_line_errors_and_leave_no_manifest(tmp_path, case, message):
    src, out = tmp_path / "src", tmp_path / "out"
    if case == "not_a_dataset":  # (a folder of loose images is an unlabelled set: tests/data/test_formats.py)
        src.mkdir()
        (src / "notes.txt").write_text("x")
    elif case == "flat_files_and_class_folders":
        _tree(src, {"a": 1})
        _photo(0).save(src / "loose.png")
    elif case == "no_images":
        _tree(src, {"a": 0, "b": 0})
        (src / "a" / "notes.txt").write_text("x")
    elif case == "empty_class":
        _tree(src, {"a": 1, "b": 0, "c": 1})
    elif case == "split_folders":
        _tree(src, {"train": 1, "val": 1})
    elif case == "out_inside_source":
        _tree(src, {"a": 1})
        out = src / "packed"
    with pytest.raises(UserError, match=message) as err:
        prepare.pack(src, out, R, workers=0, progress=False)
    assert "\n" not in str(err.value)
    assert not (out / MANIFEST).exists()


def test_command_line_packs_reports_skips_and_refuses_a_missing_source(odd_tree, tmp_path):
    runner = CliRunner()
    help_text = runner.invoke(prepare_cli, ["--help"]).output
    assert "Examples:" in help_text.split("Options:")[0] and "--source" in help_text
    result = runner.invoke(prepare_cli, ["--source", str(odd_tree), "--out", str(tmp_path / "o"),
                                          "--resolution", str(R), "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "packed 13 images of 2 classes" in result.output and "skipped 3" in result.output
    bad = runner.invoke(prepare_cli, ["--source", str(tmp_path / "nope"), "--out", str(tmp_path / "o2")])
    assert bad.exit_code == 2 and "error:" in bad.output and "does not exist" in bad.output
    manifest = json.loads((tmp_path / "o" / MANIFEST).read_text())
    assert manifest["resolution"] == R and manifest["checksum"].startswith("sha256:")


def test_packing_says_how_many_images_it_upscaled_and_the_smallest(tmp_path):
    """At 64px, a folder of 100px photos with two of 40 and 50px: those two are upscaled, and the user hears it
    (the median side is 100px, so no resolution note warns of it)."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for i, side in enumerate([100, 100, 100, 40, 50]):
        _photo(i, (side, side)).save(folder / f"{i}.png")
    r = CliRunner().invoke(prepare_cli, ["--source", str(folder), "--out", str(tmp_path / "packed"),
                                         "--resolution", "64", "--workers", "0"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "note: 2 of the 5 images were smaller than 64px and upscaled (the smallest 40px)" in r.output
    manifest = json.loads((tmp_path / "packed" / MANIFEST).read_text())
    assert (manifest["num_upscaled"], manifest["smallest_side"]) == (2, 40)
