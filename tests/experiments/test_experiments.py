"""The paper's experiments in one command: variants, runs, the report, resuming a killed experiment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import random_image_tree
from experiments_utils import tiny_base  # noqa: F401 (the fixture: demo at narrow widths)
from sagan.checkpoint import load_checkpoint
from sagan.config import load_config
from sagan.errors import UserError
from sagan.commands.experiments import main as experiments_cli
from sagan.experiments.definitions import build_variant, select_variants, variant_names
from sagan.metrics.history import read_records

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args):
    return CliRunner().invoke(experiments_cli, [str(a) for a in args], catch_exceptions=False)


def test_variants_follow_the_paper():
    assert variant_names("stabilisation") == ["sn_d_only", "sn_gd", "sn_gd_ttur"]
    assert variant_names("attention") == ["no_attention", "feat8", "feat16", "feat32", "feat64", "residual_feat8",
                                          "residual_feat16", "residual_feat32", "residual_feat64"]
    paper = {v: build_variant("attention", v, "imagenet128", {}).config.model for v in variant_names("attention")}
    assert paper["no_attention"].g_attn == () and paper["feat32"].d_attn == (32,)
    assert paper["residual_feat64"].g_block_type == "residual" and paper["feat64"].g_block_type == "attention"
    stab = {v: build_variant("stabilisation", v, "imagenet128", {}).config for v in variant_names("stabilisation")}
    assert not stab["sn_d_only"].model.g_sn and stab["sn_gd"].model.g_sn
    assert stab["sn_d_only"].train.lr_d == stab["sn_d_only"].train.lr_g == stab["sn_gd"].train.lr_d == 1e-4
    assert (stab["sn_gd_ttur"].train.lr_g, stab["sn_gd_ttur"].train.lr_d) == (1e-4, 4e-4)


def test_small_data_variants_are_three_fractions_with_and_without_diffaugment():
    assert variant_names("small_data") == ["data100", "data100_diffaug", "data20", "data20_diffaug", "data10",
                                           "data10_diffaug"]
    cfgs = {v: build_variant("small_data", v, "demo", {}).config for v in variant_names("small_data")}
    assert [cfgs[v].data.subset for v in variant_names("small_data")] == [None, None, 0.2, 0.2, 0.1, 0.1]
    assert [cfgs[v].train.augment for v in variant_names("small_data")] == ["none", "diffaugment"] * 3
    assert all(c.train.augment_policy == "color,translation,cutout" and c.train.lecam_weight == 0 for c in cfgs.values())
    assert cfgs["data10"].model == load_config("demo").model  # only the data and the augmentation change


@pytest.mark.slow  # two variants with an evaluation each: ~50 s on 2 cores
def test_small_data_experiment_trains_on_the_fraction_and_reports(tmp_path, tiny_base, demo_ref, inception_weights_file):
    out = tmp_path / "small"
    result = run_cli("run", "small_data", "--base", tiny_base, "--steps", 2, "--eval-every", 2, "--num-samples", 10,
                     "--variants", "data20,data20_diffaug", "--ref", demo_ref, "--inception-weights",
                     inception_weights_file, "--outdir", out, "--no-progress")
    assert result.exit_code == 0, result.output
    for v, augment in (("data20", "none"), ("data20_diffaug", "diffaugment")):
        ckpt = load_checkpoint(out / v)
        assert ckpt["step"] == 2 and ckpt["data"]["size"] == 10  # 20% of each class (3 or 4 images: 1) of the 32-image demo set
        assert ckpt["config"]["train"]["augment"] == augment and ckpt["config"]["data"]["subset"] == 0.2
        assert "data.subset=0.2: training on 10 of 32 images" in (out / v / "log.txt").read_text()
    assert "| data20_diffaug | finished |" in (out / "summary.md").read_text()


def test_placements_the_base_lacks_are_dropped_or_skipped():
    feat32 = build_variant("attention", "feat32", "demo", {})
    assert feat32.config.model.g_attn == (32,) and feat32.config.model.d_attn == ()
    assert any("D at 32px has no 32px stage" in n for n in feat32.notes)
    assert build_variant("attention", "feat64", "demo", {}).config is None
    with pytest.raises(UserError, match="'feat7' is not a variant of attention"):
        select_variants("attention", "feat7")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, tiny_base, demo_ref, inception_weights_file):
    out = tmp_path_factory.mktemp("exp") / "attention"
    result = run_cli("run", "attention", "--base", tiny_base, "--steps", 4, "--eval-every", 2, "--num-samples", 10,
                     "--variants", "no_attention,feat16,feat64", "--ref", demo_ref, "--inception-weights",
                     inception_weights_file, "--outdir", out, "--no-progress")
    assert result.exit_code == 0, result.output
    return out, result


def test_run_trains_each_variant_with_the_same_budget(experiment):
    out, result = experiment
    for v in ("no_attention", "feat16"):
        assert load_checkpoint(out / v)["step"] == 4
        assert [r["step"] for r in read_records(out / v / "metrics.jsonl")] == [2, 4]
        assert load_checkpoint(out / v)["config"]["train"]["seed"] == 0
    assert not (out / "feat64").exists()
    assert "[feat64] skipped" in result.stderr and "not available at 32px" in result.stderr
    assert "attention-feat16 step 2: FID" in result.stderr  # one line per variant per evaluation
    settings = json.loads((out / "experiment.json").read_text())
    assert settings["variants"] == ["no_attention", "feat16", "feat64"] and settings["settings"]["steps"] == 4


def test_report_writes_the_table_and_the_plot(experiment):
    out, _ = experiment
    result = run_cli("report", out)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["variant"]: r for r in summary["variants"]}
    assert rows["feat64"]["status"] == "not available"
    for v in ("no_attention", "feat16"):
        assert rows[v]["status"] == "finished" and rows[v]["best"]["step"] in (2, 4)
        assert rows[v]["best"]["fid"] == min(p["fid"] for p in rows[v]["curve"])
        assert "kid" in rows[v]["best"]
    assert set(rows["feat16"]["gamma"]) == {"G 16px", "D 16px"} and rows["no_attention"]["gamma"] == {}
    assert rows["no_attention"]["paper"] == {"fid": 22.96, "is": 42.87}
    md = (out / "summary.md").read_text()
    assert "| no_attention | finished |" in md and "22.96 / 42.87" in md and "resize `tf1`" in md
    with Image.open(out / "curves.png") as im:
        assert im.format == "PNG" and im.size[0] > 400


def test_changed_settings_are_refused(experiment, tiny_base):
    out, _ = experiment
    result = run_cli("run", "attention", "--base", tiny_base, "--steps", 4, "--eval-every", 3, "--num-samples", 10,
                     "--outdir", out)
    assert result.exit_code == 2 and "eval_every=2, not 3" in result.output


def test_a_killed_experiment_resumes(tmp_path, tiny_base, demo_ref, inception_weights_file):
    out = tmp_path / "stab"
    args = ["run", "stabilisation", "--base", str(tiny_base), "--steps", "4", "--eval-every", "2", "--num-samples",
            "10", "--variants", "sn_d_only,sn_gd", "--ref", str(demo_ref), "--inception-weights",
            str(inception_weights_file), "--outdir", str(out), "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "sagan.commands.experiments", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    t0 = time.time()
    while not (out / "sn_gd" / "checkpoints" / "last.pt").exists():  # the second variant's first checkpoint
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.time() - t0 < 600
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = load_checkpoint(out / "sn_gd")["step"]
    assert killed_at == 2
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    assert "[sn_d_only] finished at step 4; skipping" in result.stderr
    assert "[sn_gd] resuming at step 2" in result.stderr
    assert load_checkpoint(out / "sn_gd")["step"] == 4
    assert [r["step"] for r in read_records(out / "sn_gd" / "metrics.jsonl")] == [2, 4]


def test_data_of_another_size_and_class_count_replaces_the_presets(tmp_path, tiny_base, inception_weights_file):
    """--data decides resolution and classes (as train.py does); the reference is computed from it once."""
    tree = random_image_tree(tmp_path / "tree", ("ant", "bee", "cat"), size=20)
    out = tmp_path / "exp"
    result = run_cli("run", "attention", "--base", tiny_base, "--data", tree, "--steps", 1, "--eval-every", 1,
                     "--num-samples", 10, "--variants", "no_attention", "--inception-weights", inception_weights_file,
                     "--outdir", out, "--no-progress")
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(out / "no_attention")
    assert ckpt["config"]["model"]["num_classes"] == 3 and ckpt["class_names"] == ["ant", "bee", "cat"]
    assert (out / "reference.npz").is_file() and "computing reference statistics" in result.stderr


def test_baselines_are_table_2s_models_on_any_base():
    assert variant_names("baselines") == ["acgan", "sngan", "sagan"]
    for base in ("imagenet128", "cifar10", "demo"):
        v = {n: build_variant("baselines", n, base, {}).config.model for n in variant_names("baselines")}
        base_model = build_variant("baselines", "sagan", base, {}).config.model
        assert v["sagan"].g_attn == base_model.g_attn != () and v["sagan"].d_cond == "projection" and v["sagan"].g_sn
        assert v["sngan"].g_attn == v["sngan"].d_attn == () and not v["sngan"].g_sn and v["sngan"].d_cond == "projection"
        assert v["acgan"].d_cond == "ac" and v["acgan"].g_attn == () and not v["acgan"].g_sn
        assert v["sngan"].g_widths == base_model.g_widths  # the base's own networks otherwise
    uncond = build_variant("baselines", "acgan", "uncond64", {})
    assert uncond.config is None and "needs classes" in uncond.notes[-1]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, tiny_base, demo_ref, inception_weights_file):
    out = tmp_path_factory.mktemp("exp") / "baselines"
    result = run_cli("run", "baselines", "--base", tiny_base, "--steps", 2, "--eval-every", 1, "--num-samples", 10,
                     "--variants", "acgan,sngan", "--seeds", 2, "--ref", demo_ref, "--inception-weights",
                     inception_weights_file, "--outdir", out, "--no-progress")
    assert result.exit_code == 0, result.output
    return out, result


@pytest.mark.slow
def test_seeds_run_each_variant_with_consecutive_seeds(seeded):
    out, result = seeded
    for v in ("acgan", "sngan"):
        assert load_checkpoint(out / v)["config"]["train"]["seed"] == 0
        assert load_checkpoint(out / f"{v}.seed1")["config"]["train"]["seed"] == 1
    assert load_checkpoint(out / "acgan")["config"]["model"]["d_cond"] == "ac"
    assert "[acgan.seed1] starting" in result.stderr
    log = (out / "acgan" / "log.txt").read_text()
    assert "ac_real" in log and "ac_fake" in log  # the AC-GAN loss parts in the log lines


@pytest.mark.slow
def test_seeds_report_mean_and_std_of_the_best_fid(seeded):
    import numpy as np

    out, _ = seeded
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["variant"]: r for r in summary["variants"]}
    for v in ("acgan", "sngan"):
        row = rows[v]
        assert [s["seed"] for s in row["seeds"]] == [0, 1]
        bests = [min(p["fid"] for p in read_records_values(out / d)) for d in (v, f"{v}.seed1")]
        assert [s["best"]["fid"] for s in row["seeds"]] == pytest.approx(bests)
        assert row["best_fid"]["n"] == 2 and row["best_fid"]["mean"] == pytest.approx(np.mean(bests))
        assert row["best_fid"]["std"] == pytest.approx(np.std(bests, ddof=1))
        assert [p["step"] for p in row["mean_curve"]] == [1, 2] and "fid_std" in row["mean_curve"][0]
    md = (out / "summary.md").read_text()
    mean, std = rows["sngan"]["best_fid"]["mean"], rows["sngan"]["best_fid"]["std"]
    assert f"| sngan | finished | {mean:.2f} ± {std:.2f} (n=2) |" in md and "mean ± std over seeds" in md
    assert rows["sngan"]["paper"] == {"fid": 27.62, "is": 36.80}
    with Image.open(out / "curves.png") as im:
        assert im.format == "PNG"


def read_records_values(run):
    return [r["values"] for r in read_records(run / "metrics.jsonl")]
