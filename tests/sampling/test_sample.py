"""sample.py: grids, sample sets, determinism, class control, truncation, attention maps, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from sagan.checkpoint import save_checkpoint
from sagan.models import load_generator
from sagan.config import load_config
from sagan.models.layers import ConditionalBatchNorm2d
from sagan.models import Discriminator, Generator
from sagan.sampling.draw import generate, interpolation_inputs, parse_classes, spread_classes
from sagan.sampling.sets import MARKER, class_folder_names
from sagan.sampling.latents import class_balanced_labels, sample_latents
from sagan.commands.sample import main
from sagan.sampling.viz import QUERY_COLOURS, attention_overlay

from sample_utils import NAMES, ckpt, run  # noqa: F401  (fixture)


def test_npz_is_identical_across_batch_sizes_and_class_balanced(ckpt, tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert run("--checkpoint", ckpt, "--out", a, "--num-samples", 25, "--batch-size", 3).exit_code == 0
    assert run("--checkpoint", ckpt, "--out", b, "--num-samples", 25, "--batch-size", 8).exit_code == 0
    da, db = np.load(a), np.load(b)
    assert da["images"].dtype == np.uint8 and da["images"].shape == (25, 32, 32, 3)
    assert da["labels"].dtype == np.int64 and da["labels"].shape == (25,)
    np.testing.assert_array_equal(da["labels"], db["labels"])
    # same latents and labels; batched conv/GEMM kernels sum in a batch-shape-dependent order (~1e-7),
    # which can move a value sitting on a rounding boundary by one level, and nothing more
    diff = np.abs(da["images"].astype(int) - db["images"].astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    c = tmp_path / "c.npz"
    assert run("--checkpoint", ckpt, "--out", c, "--num-samples", 25, "--batch-size", 3).exit_code == 0
    np.testing.assert_array_equal(np.load(c)["images"], da["images"])  # bit-exact at the same batch size
    counts = np.bincount(da["labels"], minlength=10)
    assert counts.max() - counts.min() <= 1
    assert int(da["step"]) == 5 and bool(da["ema"]) and np.isnan(da["truncation"])


def test_classes_restrict_labels_and_change_pixels(ckpt, tmp_path):
    out = tmp_path / "c.npz"
    assert run("--checkpoint", ckpt, "--out", out, "--num-samples", 6, "--classes", "2,7-8").exit_code == 0
    d = np.load(out)
    assert d["labels"].tolist() == [2, 7, 8, 2, 7, 8]
    other = tmp_path / "o.npz"
    assert run("--checkpoint", ckpt, "--out", other, "--num-samples", 6, "--classes", "3").exit_code == 0
    # same latents, other class: other pixels
    assert not np.array_equal(np.load(other)["images"][0], d["images"][0])


def test_grid_rows_are_the_requested_classes(ckpt, tmp_path):
    out = tmp_path / "grid.png"
    r = run("--checkpoint", ckpt, "--out", out, "--classes", "0,1,2", "--per-class", 4, "--batch-size", 5)
    assert r.exit_code == 0, r.output
    grid = np.asarray(Image.open(out).convert("RGB"))
    # tiles are 32px zoomed 3x (nearest) with 2px gaps, right-aligned after the caption strip
    zoom, pad, size, nrow = 3, 2, 32 * 3, 4
    assert grid.shape[0] == 3 * (size + pad) + pad

    def tile(r, c):
        x, y = grid.shape[1] - (nrow - c) * (size + pad), pad + r * (size + pad)
        return grid[y : y + size : zoom, x : x + size : zoom]

    G, _, _ = load_generator(ckpt)
    z = sample_latents(12, G.z_dim, seed=0)  # the grid's latents: row-major, seed 0
    labels = torch.tensor([0, 1, 2]).repeat_interleave(nrow)
    right = torch.cat([b for b, _ in generate(G, z, labels, batch_size=5)]).numpy()
    wrong = torch.cat([b for b, _ in generate(G, z, (labels + 5) % 10, batch_size=5)]).numpy()
    for i in range(12):
        r_, c = divmod(i, nrow)
        np.testing.assert_array_equal(tile(r_, c), right[i])
        assert np.abs(tile(r_, c).astype(int) - wrong[i]).mean() > 5  # the label matters in this network


def test_png_folder_output(ckpt, tmp_path):
    out = tmp_path / "pngs"
    assert run("--checkpoint", ckpt, "--out", f"{out}/", "--num-samples", 4, "--classes", "0-1").exit_code == 0
    # the class folders, and the marker that lists them for --overwrite
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "class_0", "class_1"]
    files = sorted((out / "class_0").glob("*.png"))
    assert len(files) == 2 and Image.open(files[0]).size == (32, 32)


def test_class_folder_names_are_unique_and_safe():
    names = ["crane", "a/b", "crane", "", ".."]
    assert class_folder_names(names, 6) == ["crane_0", "a_b", "crane_2", "3", "4", "5"]
    assert class_folder_names(None, 3) == ["0", "1", "2"]


def test_truncation_bounds_and_is_recorded(ckpt, tmp_path):
    z = sample_latents(500, 64, seed=1, truncation=0.5)
    assert z.abs().max() <= 0.5
    # redrawn entries follow N(0,1) truncated to [-T, T], not clamped values piling up at the bound
    assert (z.abs() > 0.49).float().mean() < 0.05
    out = tmp_path / "t.npz"
    assert run("--checkpoint", ckpt, "--out", out, "--num-samples", 2, "--truncation", 0.7).exit_code == 0
    assert float(np.load(out)["truncation"]) == pytest.approx(0.7)


def test_attention_maps_are_probability_maps_and_figure_is_written(ckpt, tmp_path):
    from sagan.models import load_generator

    G, _, _ = load_generator(ckpt)
    with torch.no_grad():
        G.attn["16"].gamma.fill_(1.0)
        _, maps = G(torch.randn(2, G.z_dim), torch.tensor([0, 1]), return_attn=True)
    attn = maps[16]
    assert attn.shape == (2, 16, 16, 8, 8)
    torch.testing.assert_close(attn.sum((-1, -2)), torch.ones(2, 16, 16))
    out = tmp_path / "attn.png"
    r = run("--checkpoint", ckpt, "--out", out, "--attention-maps", "--num-images", 2, "--num-queries", 3)
    assert r.exit_code == 0, r.output
    img = np.asarray(Image.open(out).convert("RGB"))
    # 1 image column + 1 layer x 3 query columns of 128px tiles, 4px gaps; a 34px header, and per image a
    # 14px caption line above a 128px row
    assert img.shape == (34 + 2 * (14 + 128 + 4) + 4, 4 * (128 + 4) + 4, 3)
    for q in range(3):  # each map is framed in its query's colour
        x, y = 4 + (1 + q) * (128 + 4), 34 + 14
        assert tuple(img[y + 1, x + 1]) == QUERY_COLOURS[q]


def test_attention_overlay_is_bright_where_the_query_looks():
    attn = torch.zeros(8, 8)
    attn[2, 5] = 1.0
    grey = np.full((32, 32, 3), 128, dtype=np.uint8)
    tile = np.asarray(attention_overlay(grey, attn, 128)).astype(int).sum(-1)
    y, x = np.unravel_index(tile.argmax(), tile.shape)
    # key cell (2, 5) of an 8x8 grid covers rows 32-47 and columns 80-95 of a 128px tile
    assert 32 <= y < 48 and 80 <= x < 96
    assert tile[y, x] > tile[120, 8] + 300


def test_interpolation_figure_and_inputs(ckpt, tmp_path):
    z, y, rows = interpolation_inputs(8, 10, [1, 4], steps=5, seed=0)
    assert z.shape == (20, 8) and y.shape == (20, 10) and rows == [(1, 1), (1, 4), (4, 4), (4, 1)]
    torch.testing.assert_close(y.sum(1), torch.ones(20))
    assert torch.equal(y[5], torch.eye(10)[1]) and torch.equal(y[9], torch.eye(10)[4])  # class row ends
    assert torch.equal(z[5], z[9])  # fixed z along a class row
    out = tmp_path / "interp.png"
    assert run("--checkpoint", ckpt, "--out", out, "--interpolate", "--classes", "1,4", "--steps", 5).exit_code == 0
    assert Image.open(out).width > 5 * 32


@pytest.mark.parametrize("hierarchical", [False, True])
def test_soft_class_weights_mix_the_class_embeddings(hierarchical):
    cfg = load_config("demo", overrides=["model.g_ch=16", "model.d_ch=16", f"model.hierarchical_z={hierarchical}",
                                         "model.shared_dim=16"])
    G = Generator.from_config(cfg).eval()
    with torch.no_grad():  # make the class matter
        for m in G.modules():
            if isinstance(m, ConditionalBatchNorm2d) and m.embedded:
                m.gain.weight.normal_(1.0, 0.5)
                m.bias.weight.normal_(0.0, 0.5)
        if hierarchical:
            G.shared.weight.normal_(0.0, 1.0)
    z = sample_latents(1, G.z_dim, seed=3).expand(3, -1)
    eye = torch.eye(10)
    soft = torch.stack([eye[1], 0.5 * eye[1] + 0.5 * eye[4], eye[4]])
    with torch.no_grad():
        hard = G(z[[0, 2]], torch.tensor([1, 4]))
        mixed = G(z, soft)
    torch.testing.assert_close(mixed[[0, 2]], hard)  # the ends are the classes themselves
    assert (mixed[1] - hard[0]).abs().mean() > 1e-3 and (mixed[1] - hard[1]).abs().mean() > 1e-3


def test_balanced_labels_spread_classes_and_class_lists():
    assert class_balanced_labels(7, [3, 5]).tolist() == [3, 5, 3, 5, 3, 5, 3]
    assert spread_classes(1000, 10)[::9] == [0, 999] and spread_classes(3, 10) == [0, 1, 2]
    assert spread_classes(1000, 1) == [0]  # sample.py --attention-maps --num-images 1 divided by zero
    assert parse_classes("0-2,9", 10) == [0, 1, 2, 9]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--checkpoint", "missing.pt", "--out", "g.png"], "does not exist"),
        (["--out", "g.gif"], "unknown output type"),
        (["--out", "g.png", "--classes", "0,10"], "class 10 is out of range; this model has classes 0-9"),
        (["--out", "g.png", "--classes", "a-b"], "cannot read 'a-b'"),
        (["--out", "g.npz", "--attention-maps"], "give a .png file"),
        (["--out", "g.png", "--query-points", "0.5"], "expected row,col fractions"),
        (["--out", "s.npz", "--num-samples", "0"], "'--num-samples': 0 is not in the range x>=1"),
        (["--out", "s.npz", "--device", "tpu"], "--device 'tpu' is not a device"),
    ],
)
def test_bad_arguments_are_one_line_errors_with_exit_2(ckpt, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    if "--checkpoint" not in args:
        args = ["--checkpoint", str(ckpt)] + args
    r = run(*args)
    assert r.exit_code == 2
    assert message in r.output and "Traceback" not in r.output
    assert sum(message in line for line in r.output.splitlines()) == 1  # said on one line


def test_corrupt_checkpoint_and_unwritable_output(ckpt, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    r = run("--checkpoint", bad, "--out", tmp_path / "g.png")
    assert r.exit_code == 2 and "cannot read checkpoint" in r.output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run("--checkpoint", ckpt, "--out", blocker / "sub" / "g.png")
    assert r.exit_code == 2 and "pick another --out" in r.output


def test_write_failure_mid_run_is_one_line(ckpt, tmp_path, monkeypatch):
    import errno

    import sagan.commands.sample as script

    def full_disk(img, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(script, "save_png", full_disk)
    r = run("--checkpoint", ckpt, "--out", tmp_path / "g.png", "--classes", "0", "--per-class", 1)
    assert r.exit_code == 2 and "No space left on device; check free space and permissions, or pick another --out" in r.output
    assert "Traceback" not in r.output


# --------------------------------------------------------------------------------------------------
# BN statistics, provenance and class names of sample sets


def test_npz_records_bn_mode_and_class_names_without_pickle(ckpt, tmp_path):
    out = tmp_path / "s.npz"
    r = run("--checkpoint", ckpt, "--out", out, "--num-samples", 6, "--bn-stats", "standing", "--standing-batches", 3)
    assert r.exit_code == 0, r.output
    d = np.load(out, allow_pickle=False)
    assert str(d["bn_stats"]) == "standing" and int(d["bn_standing_batches"]) == 3
    assert d["class_names"].dtype.kind == "U" and d["class_names"].tolist() == NAMES  # index = class label
    again = tmp_path / "again.npz"
    assert run("--checkpoint", ckpt, "--out", again, "--num-samples", 6, "--bn-stats", "standing",
               "--standing-batches", 3).exit_code == 0
    np.testing.assert_array_equal(np.load(again)["images"], d["images"])  # standing statistics are seeded
    running = tmp_path / "r.npz"
    assert run("--checkpoint", ckpt, "--out", running, "--num-samples", 6).exit_code == 0
    r_ = np.load(running, allow_pickle=False)
    assert str(r_["bn_stats"]) == "running" and int(r_["bn_standing_batches"]) == 0
    assert np.abs(r_["images"].astype(int) - d["images"]).mean() > 1  # other statistics, other pixels


def test_class_names_are_indices_when_the_checkpoint_has_none(tmp_path):
    torch.manual_seed(0)
    cfg = load_config("demo", overrides=["model.g_ch=16", "model.d_ch=16"])
    G, D = Generator.from_config(cfg), Discriminator.from_config(cfg)
    path = tmp_path / "nameless.pt"
    save_checkpoint(path, dict(step=1, config=cfg.to_dict(), G=G.state_dict(), D=D.state_dict(), G_ema=None,
                               opt_G={}, opt_D={}, rng={}, data={}))
    out = tmp_path / "s.npz"
    assert run("--checkpoint", path, "--out", out, "--num-samples", 2).exit_code == 0
    assert np.load(out, allow_pickle=False)["class_names"].tolist() == [str(i) for i in range(10)]


def test_batch_mode_grid_differs_and_every_summary_names_the_bn_mode(ckpt, tmp_path):
    paths = {}
    for mode in ("running", "batch"):
        paths[mode] = tmp_path / f"{mode}.png"
        r = run("--checkpoint", ckpt, "--out", paths[mode], "--classes", "0,1", "--per-class", 4, "--bn-stats", mode)
        assert r.exit_code == 0, r.output
        summary = [line for line in r.output.splitlines() if line.startswith("wrote")]
        assert len(summary) == 1 and "seed 0" in summary[0] and "EMA G at step 5" in summary[0]
        assert ("per-batch statistics" if mode == "batch" else "running statistics from the checkpoint") in summary[0]
    a, b = (np.asarray(Image.open(paths[m]).convert("RGB")).astype(int) for m in ("running", "batch"))
    assert np.abs(a - b).mean() > 1
    r = run("--checkpoint", ckpt, "--out", tmp_path / "attn.png", "--attention-maps", "--num-images", 1,
            "--bn-stats", "standing", "--standing-batches", 2)
    assert r.exit_code == 0 and "standing statistics over 2 batches" in r.output


def test_help_examples_write_under_the_run_directory():
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0 and "--out runs/00000-demo/grid.png" in r.output
    outs = [line.split("--out ")[1].split()[0] for line in r.output.splitlines() if "python sample.py" in line]
    assert outs and all(o.startswith(("runs/", "RUN/")) for o in outs)
    assert "--bn-stats" in r.output and "--overwrite" in r.output


# --------------------------------------------------------------------------------------------------
# output folders: no silent merging, no clearing of what is not a sample folder


def _files(folder):
    """The files of a folder besides sample.py's marker (tests of the marker: test_sample_faults.py)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MARKER)


def test_non_empty_folder_is_refused_and_overwrite_replaces_the_set(ckpt, tmp_path):
    out = tmp_path / "pngs"
    assert run("--checkpoint", ckpt, "--out", f"{out}/", "--num-samples", 8, "--classes", "0-3").exit_code == 0
    first = _files(out)
    assert len(first) == 8
    r = run("--checkpoint", ckpt, "--out", f"{out}/", "--num-samples", 2, "--classes", "0-1", "--seed", 1)
    assert r.exit_code == 2 and "is not empty (an earlier sample set?); pass --overwrite" in r.output
    assert _files(out) == first  # untouched
    r = run("--checkpoint", ckpt, "--out", out, "--num-samples", 2, "--classes", "0-1", "--seed", 1, "--overwrite")
    assert r.exit_code == 0, r.output
    # the new set alone: no file of the earlier one survives next to it
    assert _files(out) == ["class_0/000000.png", "class_1/000000.png"]


@pytest.mark.parametrize("stranger", ["notes.txt", "class_0/notes.txt", "class_0/sub/000000.png"])
def test_overwrite_refuses_to_clear_what_is_not_a_sample_folder(ckpt, tmp_path, stranger):
    out = tmp_path / "home"
    (out / "class_0").mkdir(parents=True)
    (out / "class_0" / "000000.png").write_bytes(b"png")
    (out / stranger).parent.mkdir(parents=True, exist_ok=True)
    (out / stranger).write_text("keep me")
    before = _files(out)
    r = run("--checkpoint", ckpt, "--out", f"{out}/", "--num-samples", 2, "--overwrite")
    assert r.exit_code == 2 and "does not look like a sample folder" in r.output and "refusing to clear it" in r.output
    assert "Traceback" not in r.output and sum("sample folder" in line for line in r.output.splitlines()) == 1
    assert _files(out) == before


# --------------------------------------------------------------------------------------------------
# full disks and read-only locations

# Runs sample.py in a child process: a SIGBUS from a memory-mapped write would kill pytest itself.
# "late" removes the free-space checks, as when another process fills the disk after they passed, so
# that the writes themselves meet the full disk.
FULL_DISK_CHILD = """
import sys
import sagan.io, sagan.sampling.sets, sagan.commands.sample as script
if sys.argv[1] == "late":
    for module in (sagan.io, sagan.sampling.sets, script):
        module.check_free_space = lambda *args, **kwargs: None
script.main(sys.argv[2:])
"""


@pytest.mark.parametrize("when, num", [("checked", 1000), ("late", 1000), ("late", 200)],
                         ids=["refused-up-front", "memmap-reservation", "zip-reservation"])
def test_npz_on_a_full_disk_is_one_line_and_leaves_nothing(ckpt, small_disk, when, num):
    import subprocess
    import sys

    disk = small_disk("1m")  # 1000 x 32px = 3 MB of pixels; 200 x 32px = 0.6 MB, twice that with the zip
    out = disk / "sets" / "s.npz"
    proc = subprocess.run([sys.executable, "-c", FULL_DISK_CHILD, when, "--checkpoint", str(ckpt), "--out", str(out),
                           "--num-samples", str(num), "--batch-size", "1000", "--device", "cpu"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])  # -7 would be the SIGBUS
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert ("needs about" in errors[0]) if when == "checked" else ("disk full" in errors[0])
    # no partial .npz, no temp memmap, no temp folder: only the output folder sample.py created
    assert [p.name for p in disk.rglob("*")] == ["sets"]


@pytest.mark.parametrize("when", ["checked", "late"])
def test_png_folder_on_a_full_disk_is_one_line_and_leaves_nothing(ckpt, small_disk, monkeypatch, when):
    import sagan.commands.sample as script

    disk = small_disk("256k")  # 200 PNGs take 200 blocks of 4 KB
    if when == "late":
        monkeypatch.setattr(script, "check_free_space", lambda *args, **kwargs: None)
    r = run("--checkpoint", ckpt, "--out", f"{disk}/pngs/", "--num-samples", 200, "--batch-size", 50)
    assert r.exit_code == 2 and "Traceback" not in r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and ("needs about" if when == "checked" else "disk full") in errors[0]
    # no partial sample set to be taken for a whole one: not a PNG, not a class folder
    assert [p.name for p in disk.rglob("*")] == ["pngs"]


@pytest.mark.parametrize("target", ["grid.png", "s.npz", "pngs/", "sub/grid.png"])
def test_read_only_output_is_one_line_before_sampling(ckpt, read_only_dir, monkeypatch, target):
    import sagan.commands.sample as script

    def no_sampling(*args, **kwargs):
        raise AssertionError("sampled before checking the output location")

    monkeypatch.setattr(script, "generate", no_sampling)
    r = run("--checkpoint", ckpt, "--out", f"{read_only_dir}/{target}", "--num-samples", 2)
    assert r.exit_code == 2 and "Traceback" not in r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Read-only file system" in errors[0] and "pick another --out" in errors[0]


def test_a_photo_folder_as_out_suggests_a_new_folder_not_overwrite(ckpt, tmp_path):
    """--out on a folder of the user's photos: --overwrite would (rightly) be refused, so it is not suggested."""
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"jpeg")
    r = run("--checkpoint", ckpt, "--out", f"{out}/", "--num-samples", 2)
    assert r.exit_code == 2 and "--overwrite" not in r.output
    assert "does not look like a sample folder" in r.output and f"--out {out / 'samples'}/" in r.output
    assert (out / "holiday.jpg").read_bytes() == b"jpeg"
    assert run("--checkpoint", ckpt, "--out", f"{out / 'samples'}/", "--num-samples", 2).exit_code == 0
