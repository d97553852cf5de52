"""sagan-serve's page, through its handlers: grids equal sample.py's pixel for pixel, the strip and the
attention maps, bad input as a message (never a traceback), nothing written into the run folder, the
Space files of an hf export, the command line's one-line errors."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from export_utils import NAMES, STEP, write_run
from export_utils import run as export_run
from sagan.config import load_config
from sagan.sampling.viz import upscale_factor
from sagan.commands.sample import main as sample_cli

gr = pytest.importorskip("gradio")

from sagan.serve.app import build_app, model_page  # noqa: E402
from sagan.commands.serve import main as serve_cli  # noqa: E402
from sagan.serve.model import MAX_IMAGES, load_served  # noqa: E402

TINY = ["model.g_ch=16", "model.d_ch=16"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("run"), load_config("demo", overrides=TINY))


@pytest.fixture(scope="module")
def answers(tiny_run):
    return model_page(load_served(tiny_run)).answers


def sample_py_grid(tmp_path, run, *args) -> np.ndarray:
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(sample_cli, ["--checkpoint", str(run), "--out", str(out), "--device", "cpu",
                                             *map(str, args)])
    assert result.exit_code == 0, result.output
    return np.asarray(Image.open(out).convert("RGB"))


@pytest.mark.parametrize("classes, seed, per_class, truncation, generator, bn, flags", [
    ([3], 7, 16, None, "EMA", "running", ["--classes", "3", "--per-class", "16", "--seed", "7"]),
    ([0, 9, 4], 2, 5, 0.7, "raw", "batch",
     ["--classes", "0,9,4", "--per-class", "5", "--seed", "2", "--truncation", "0.7", "--no-ema", "--bn-stats", "batch"]),
    (None, 0, 2, None, "EMA", "running", ["--per-class", "2"]),  # no pick: sample.py's spread over the classes
])
def test_the_page_grid_is_sample_pys_grid_pixel_for_pixel(tmp_path, tiny_run, answers, classes, seed, per_class,
                                                          truncation, generator, bn, flags):
    figure, message, download = answers.grid(classes, seed, per_class, truncation, generator, bn)
    assert message.startswith("grid: "), message
    want = sample_py_grid(tmp_path, tiny_run, *flags)
    assert np.array_equal(np.asarray(figure), want)
    assert np.array_equal(np.asarray(Image.open(download).convert("RGB")), want)  # the PNG offered for download


def test_ema_and_raw_generators_draw_different_grids(answers):
    ema, _, _ = answers.grid([1], 0, 2, None, "EMA", "running")
    raw, _, _ = answers.grid([1], 0, 2, None, "raw", "running")
    assert ema.size == raw.size and not np.array_equal(np.asarray(ema), np.asarray(raw))


def test_the_strip_walks_from_the_first_seed_and_class_to_the_second(answers):
    strip, message, _ = answers.strip([2], 4, 8, None, "EMA", "running", 9, 2, 6, 5)
    assert message.startswith("interpolation: "), message
    start, _, _ = answers.grid([2], 4, 1, None, "EMA", "running")  # seed 4, class 2: the strip's first tile
    end, _, _ = answers.grid([6], 9, 1, None, "EMA", "running")  # seed 9, class 6: its last
    w = 32 * upscale_factor(32) + 4  # a 32px tile enlarged, with its 2 px padding on both sides
    tiles = np.asarray(strip).astype(int)
    assert tiles.shape[1] == 5 * (w - 2) + 2  # five tiles, no caption strip
    first, last = tiles[:, :w], tiles[:, -w:]
    # the same latents and classes through G at another batch size: at most one uint8 level apart
    assert np.abs(first - np.asarray(start)[:, -w:]).max() <= 1
    assert np.abs(last - np.asarray(end)[:, -w:]).max() <= 1
    assert np.abs(first - last).max() > 10


def test_the_attention_figure_marks_the_chosen_query_point(answers):
    a, message, _ = answers.attention([5], 1, 8, None, "EMA", "running", 0.2, 0.8)
    assert message.startswith("attention: "), message
    b, _, _ = answers.attention([5], 1, 8, None, "EMA", "running", 0.8, 0.2)
    assert a.size == b.size and not np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("args, message", [
    (([12], 0, 4, None, "EMA", "running"), "class 12 is out of range; this model has classes 0-9"),
    ((["no_such_class"], 0, 4, None, "EMA", "running"), "neither a class index nor a class name"),
    (([1, 2], 0, 200, None, "EMA", "running"), f"2 x 200 = 400 images is more than this page draws at once ({MAX_IMAGES})"),
    (([1], 0, 4, 0, "EMA", "running"), "truncation must be > 0"),
    (([1], 0, 4, -2.5, "EMA", "running"), "truncation must be > 0"),
    (([1], 0, 4, "half", "EMA", "running"), "truncation 'half' is not a number"),
    (([1], -1, 4, None, "EMA", "running"), "seed must be >= 0"),
    (([1], 0, 0, None, "EMA", "running"), "images per class must be >= 1"),
    (([1], 0.5, 4, None, "EMA", "running"), "seed must be a whole number"),
])
def test_bad_input_is_a_message_on_the_page(answers, args, message):
    figure, shown, download = answers.grid(*args)
    assert figure is None and download is None
    assert shown.startswith("**error:** ") and message in shown and "Traceback" not in shown


def test_a_class_can_be_picked_by_name(answers):
    by_name, _, _ = answers.grid([NAMES[3]], 0, 2, None, "EMA", "running")
    by_index, _, _ = answers.grid([3], 0, 2, None, "EMA", "running")
    assert np.array_equal(np.asarray(by_name), np.asarray(by_index))


def test_the_page_never_writes_into_the_run_folder(tmp_path, answers, tiny_run):
    before = {p: p.stat().st_mtime_ns for p in tiny_run.rglob("*")}
    answers.grid([1], 0, 2, None, "EMA", "running")
    answers.grid([1], 0, 2, None, "EMA", "standing")
    answers.strip([1], 0, 2, None, "raw", "running", 1, 1, 2, 3)
    answers.attention([1], 0, 2, None, "EMA", "running", 0.5, 0.5)
    assert {p: p.stat().st_mtime_ns for p in tiny_run.rglob("*")} == before
    assert not answers.folder.is_relative_to(tiny_run)


def test_an_unconditional_model_has_no_class_picker(tmp_path):
    run = write_run(tmp_path / "uncond", load_config("demo", overrides=TINY + ["model.num_classes=0"]), class_names=None)
    page = model_page(load_served(run))
    picker = next(b for b in page.blocks.values() if getattr(b, "elem_id", None) == "classes")
    assert picker.visible is False
    figure, message, _ = page.answers.grid(None, 0, 3, None, "EMA", "running")
    assert message.startswith("grid: ") and np.array_equal(np.asarray(figure), sample_py_grid(tmp_path, run, "--per-class", "3"))
    assert "unconditional" in page.answers.grid([1], 0, 3, None, "EMA", "running")[1]


def test_a_file_that_is_not_a_checkpoint_is_a_message_on_the_page(tmp_path):
    bogus = tmp_path / "model.pt"
    bogus.write_bytes(b"not a checkpoint")
    page = build_app(bogus)
    [message] = [b for b in page.blocks.values() if getattr(b, "elem_id", None) == "message"]
    assert message.value.startswith("**error:** ") and "model.pt" in message.value


def test_sagan_serve_refuses_a_bad_checkpoint_in_one_line(tmp_path):
    result = CliRunner().invoke(serve_cli, ["--checkpoint", str(tmp_path / "missing"), "--port", "7999"])
    assert result.exit_code == 2
    err = result.stderr.strip()
    assert err.startswith("error: --checkpoint") and "\n" not in err and "Traceback" not in err


def test_a_missing_gradio_is_one_line_naming_the_extra(tiny_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)
    result = CliRunner().invoke(serve_cli, ["--checkpoint", str(tiny_run)])
    assert result.exit_code == 2 and result.stderr.strip() == (
        'error: the web page needs gradio, which is not installed; install it with pip install -e ".[serve]"')


def test_an_hf_export_runs_the_same_page_as_a_space(tmp_path, tiny_run, monkeypatch):
    folder = tmp_path / "demo-hf"
    result = export_run("--checkpoint", tiny_run, "--format", "hf", "--out", folder)
    assert result.exit_code == 0, result.output
    card = (folder / "README.md").read_text()
    assert "sdk: gradio" in card and "app_file: app.py" in card and "python app.py" in card
    assert "sagan[serve,hub]" in (folder / "requirements.txt").read_text()
    page = runpy.run_path(str(folder / "app.py"))["demo"]  # what a Space runs (not as __main__: no server)
    figure, message, _ = page.answers.grid([3], 7, 4, None, "EMA", "running")
    assert message.startswith("grid: ") and f"step {STEP}" in page.answers.model.describe()
    # the exported generator (spectral norm folded) draws what the checkpoint's does, up to float rounding
    want = sample_py_grid(tmp_path, tiny_run, "--classes", "3", "--per-class", "4", "--seed", "7")
    assert figure.size == (want.shape[1], want.shape[0])
    assert np.abs(np.asarray(figure).astype(int) - want).max() <= 2
    assert page.answers.model.generators == ["EMA"]
