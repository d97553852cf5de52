"""evaluate.py faults: non-finite reference statistics, evaluation
history apart from training history, full disks before the Inception work, no empty folders left by
refusals, loader workers, non-official weights in report.md's table, help examples."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from click.testing import CliRunner

from evaluate_utils import (BLUE, RED, bad, colour_ref, colour_tree, demo_images, inception_calls,  # noqa: F401
                            run, write_samples)
from sagan.errors import UserError
from sagan.metrics import load_ref
from sagan.metrics.history import append_record, read_records
from sagan.commands import evaluate as E


def _damaged_ref(src, dst, key, value):
    with np.load(src, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arr = arrays[key].copy()
    arr.reshape(-1)[3] = value
    arrays[key] = arr
    np.savez(dst, **arrays)
    return dst


@pytest.mark.parametrize("key, value", [("sigma", np.nan), ("mu", np.inf), ("class_features", np.nan)])
def test_non_finite_reference_is_refused_naming_the_array_before_inception(colour_ref, tmp_path, inception_calls,
                                                                          key, value):
    ref = _damaged_ref(colour_ref, tmp_path / "bad.npz", key, value)
    with pytest.raises(UserError, match=rf"bad\.npz: {key} holds NaN/Inf"):
        load_ref(ref)  # training start-up reads the reference through load_ref too (RunWatch)
    samples = write_samples(tmp_path / "s.npz", demo_images(RED, 12, start=500), np.zeros(12, np.int64))
    del inception_calls[:]
    bad(["metrics", "--ref", ref, "--samples", samples, "--out", tmp_path / "r" / "report.json", "--splits", 2],
        f"{key} holds NaN/Inf")
    assert inception_calls == [] and not (tmp_path / "r").exists()


def test_training_start_up_refuses_a_non_finite_reference(colour_ref, tmp_path):
    from sagan.config import load_config
    from sagan.training.watch import RunWatch

    ref = _damaged_ref(colour_ref, tmp_path / "bad.npz", "sigma", np.nan)
    cfg = load_config("demo", overrides=["train.fid_every=2", f"data.ref_stats={ref}"])

    class Acc:
        is_main_process, num_processes = True, 1

    with pytest.raises(UserError, match="sigma holds NaN/Inf"):
        RunWatch(cfg, tmp_path / "run", Acc(), monitor=None, inception_weights=None)


def _training_run(tmp_path):
    run_dir = tmp_path / "runs" / "00000-demo"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("name: demo\n")
    append_record(run_dir / "metrics.jsonl", {"step": 4, "values": {"fid": 50.0}, "protocol": {"num_samples": 10}})
    return run_dir


def test_evaluation_of_a_run_does_not_append_to_its_training_history(colour_ref, tmp_path):
    run_dir = _training_run(tmp_path)
    before = (run_dir / "metrics.jsonl").read_bytes()
    samples = write_samples(tmp_path / "s.npz", demo_images(RED, 12, start=500), np.zeros(12, np.int64))
    res = run(["metrics", "--ref", colour_ref, "--samples", samples, "--out", run_dir / "report.json", "--splits", 2])
    assert (run_dir / "metrics.jsonl").read_bytes() == before
    (record,) = read_records(run_dir / "evaluations.jsonl")
    assert record["report"] == str((run_dir / "report.json").resolve()) and "evaluations.jsonl" in res.stderr


def test_experiment_report_uses_only_its_own_protocols_records(tmp_path):
    from sagan.experiments.report import summarise
    from sagan.experiments.runner import record_settings

    out = tmp_path / "exp"
    out.mkdir()
    settings = {"experiment": "stabilisation", "base": "demo", "steps": 4, "eval_every": 2, "num_samples": 10,
                "data": None, "ref": None}
    record_settings(out, settings, ["sn_gd"], main=True)
    run_dir = out / "sn_gd"
    for step, fid in ((2, 60.0), (4, 50.0)):
        append_record(run_dir / "metrics.jsonl", {"step": step, "values": {"fid": fid},
                                                  "protocol": {"num_samples": 10, "resize": "tf1"}})
    # an evaluate.py record (another protocol: 50k samples) and a foreign 5-sample one
    append_record(run_dir / "metrics.jsonl", {"step": 4, "values": {"fid": 5.0}, "report": "x/report.json",
                                              "protocol": {"num_samples": 50000, "resize": "tf1"}})
    append_record(run_dir / "metrics.jsonl", {"step": 4, "values": {"fid": 1.0}, "protocol": {"num_samples": 5}})
    (row,) = summarise(out)["variants"]
    assert row["best"]["fid"] == 50.0 and [p["step"] for p in row["curve"]] == [2, 4]


def test_full_disk_fails_before_the_inception_pass(colour_ref, tmp_path, inception_calls, monkeypatch):
    import sagan.io

    samples = write_samples(tmp_path / "s.npz", demo_images(RED, 12, start=500), np.zeros(12, np.int64))
    monkeypatch.setattr(sagan.io, "free_bytes", lambda path: 1000)
    del inception_calls[:]
    bad(["metrics", "--ref", colour_ref, "--samples", samples, "--out", tmp_path / "r" / "report.json", "--splits", 2],
        "free")
    assert inception_calls == []


def test_refusals_leave_no_empty_output_folders(colour_ref, colour_tree, tmp_path, inception_calls):
    bad(["stats", "--data", tmp_path / "missing", "--out", tmp_path / "refs" / "x.npz"], "missing")
    assert not (tmp_path / "refs").exists()
    bad(["metrics", "--ref", tmp_path / "missing.npz", "--samples", tmp_path / "s.npz", "--out",
         tmp_path / "eval" / "deep" / "report.json"], "missing.npz")
    assert not (tmp_path / "eval").exists()


def test_stats_loader_workers_default_to_the_cores_of_the_machine(colour_tree, tmp_path, inception_calls, monkeypatch):
    import sagan.metrics.evaluation as ev

    seen = {}
    real = ev.reference_stats

    def spy(dataset, inception, out, batch_size, num_workers, *args, **kwargs):
        seen["workers"] = num_workers
        return real(dataset, inception, out, batch_size, 0, *args, **kwargs)

    monkeypatch.setattr(ev, "reference_stats", spy)
    res = run(["stats", "--data", colour_tree, "--resolution", 32, "--out", tmp_path / "r.npz", "--batch-size", 10])
    assert seen["workers"] == len(os.sched_getaffinity(0)) and "suggested max number of worker" not in res.stderr


def test_report_with_unofficial_weights_says_so_in_the_table(colour_ref, tmp_path):
    samples = write_samples(tmp_path / "s.npz", demo_images(RED, 12, start=500), np.zeros(12, np.int64))
    out = tmp_path / "r" / "report.json"
    run(["metrics", "--ref", colour_ref, "--samples", samples, "--out", out, "--splits", 2])
    md = out.with_suffix(".md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| this run"))
    assert "not comparable" in row and "Inception weights" in row


def test_help_examples_use_run_names_the_trainer_makes():
    for args in ([], ["metrics"], ["stats"]):
        text = CliRunner().invoke(E.main, [*args, "--help"]).output
        names = re.findall(r"runs/([^/\s]+)", text)
        assert all(re.fullmatch(r"\d{5}-demo", n) for n in names), names
    assert "runs/00000-demo" in CliRunner().invoke(E.main, ["--help"]).output


def test_experiments_list_says_no_attention_plainly():
    from sagan.commands.experiments import main as experiments_cli

    out = CliRunner().invoke(experiments_cli, ["list"]).output
    line = next(line for line in out.splitlines() if line.strip().startswith("no_attention"))
    assert "[]" not in line and "G no attention, D no attention" in line, line
    feat32 = next(line for line in out.splitlines() if line.strip().startswith("feat32"))
    assert "G attention at 32px" in feat32


def test_fid_from_fewer_images_than_feature_dimensions_warns_and_suggests_kid(colour_ref, tmp_path):
    samples = write_samples(tmp_path / "s.npz", demo_images(RED, 12, start=500), np.zeros(12, np.int64))
    out = tmp_path / "r" / "report.json"
    res = run(["metrics", "--ref", colour_ref, "--samples", samples, "--out", out, "--splits", 2])
    assert "warning: FID from 12 generated images, fewer than the 2048 Inception feature dimensions" in res.stderr
    assert "not meaningful; compare KID (--metrics kid)" in res.stderr
    md = out.with_suffix(".md").read_text()
    assert "- note: FID from 12 generated images" in md


def test_small_set_note_names_the_smaller_side():
    from sagan.metrics.evaluate_files import small_set_note

    assert "FID from 100 reference images" in small_set_note(100, 5000)
    assert small_set_note(2048, 50000) is None
    assert "FID from 12 generated images" in small_set_note(None, 12)  # a pytorch-fid file records no count


def test_report_of_a_non_imagenet_model_has_no_paper_rows_nor_pairing_by_index(colour_ref, tmp_path):
    """An unconditional 32px model's report: no ImageNet paper rows beside it, no `class_pairing: by index`."""
    samples = write_samples(tmp_path / "s.npz", demo_images(RED, 12, start=500), np.zeros(12, np.int64),
                            class_names=[])  # sample.py's file of an unconditional model
    out = tmp_path / "r" / "report.json"
    run(["metrics", "--ref", colour_ref, "--samples", samples, "--out", out, "--splits", 2])
    md = out.with_suffix(".md").read_text()
    assert "(paper)" not in md and "52.52" not in md
    assert "No paper numbers" in md and "an unconditional model at 32px" in md
    assert "by index" not in md and "**class_pairing**: none (an unconditional model" in md


def test_report_of_an_imagenet_128px_model_keeps_the_paper_rows():
    from sagan.metrics.report import markdown
    from sagan.metrics.evaluate_files import paper_comparable

    assert paper_comparable(1000, 128) and not paper_comparable(10, 32) and not paper_comparable(0, 64)
    report = {"fid": 20.0, "num_samples": 50000, "resize": "tf1", "paper_comparison": True}
    assert "SAGAN (paper)" in markdown(report)


def test_stats_of_an_unlabelled_folder_says_unlabelled(tmp_path, inception_calls):
    from metrics_utils import smooth_images

    folder = tmp_path / "faces"
    folder.mkdir()
    from PIL import Image

    for i, img in enumerate(smooth_images(6, 32)):
        Image.fromarray(img).save(folder / f"{i}.png")
    res = run(["stats", "--data", folder, "--resolution", 32, "--out", tmp_path / "r.npz", "--num-workers", 0])
    assert "(6 images, unlabelled, resize tf1)" in res.stderr and "1 classes" not in res.stderr
    samples = write_samples(tmp_path / "s.npz", demo_images(RED, 12, start=500), np.repeat([0, 1], 6))
    err = bad(["metrics", "--ref", tmp_path / "r.npz", "--samples", samples, "--out", tmp_path / "e" / "r.json",
               "--splits", 2], "is unlabelled (its images have no classes)")
    assert "1 classes" not in err


def test_metrics_num_samples_default_by_device_is_stated_in_help():
    from sagan.metrics.evaluate_files import default_num_samples

    import torch

    assert default_num_samples(torch.device("cuda")) == 50000 and default_num_samples(torch.device("cpu")) == 5000
    text = CliRunner().invoke(E.main, ["metrics", "--help"]).output
    assert "50000 (the paper's protocol) on a GPU, 5000 on a CPU" in " ".join(text.split())
