"""``sagan-experiments run objectives``: the variants over seeds with FID, KID and precision / recall /
density / coverage, reported as mean ± std with recall and coverage curves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from conftest import TINY_TRAIN
from sagan.checkpoint import load_checkpoint
from sagan.commands.experiments import main as experiments_cli
from sagan.experiments.runner import EXPERIMENT_METRICS


def test_objectives_are_evaluated_on_fid_kid_and_prdc():
    assert set(EXPERIMENT_METRICS["objectives"]) >= {"fid", "kid", "precision", "recall", "density", "coverage"}


@pytest.mark.slow
def test_objectives_report_prdc_mean_and_std_over_seeds(tmp_path, demo_ref, inception_weights_file):
    sections: dict = {}
    for item in TINY_TRAIN:
        key, value = item.split("=")
        sections.setdefault(key.split(".")[0], {})[key.split(".")[1]] = int(value) if value.isdigit() else value
    base = tmp_path / "tiny.yaml"
    base.write_text(yaml.safe_dump({"base": "demo", **sections}))
    out = tmp_path / "objectives"
    result = CliRunner().invoke(experiments_cli, [str(a) for a in (
        "run", "objectives", "--base", base, "--variants", "hinge", "--seeds", 2, "--steps", 2, "--eval-every", 1,
        "--num-samples", 10, "--ref", demo_ref, "--inception-weights", inception_weights_file, "--outdir", out,
        "--no-progress")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out / "hinge.seed1")["config"]["train"]["loss"] == "hinge"
    row = json.loads((out / "summary.json").read_text())["variants"][0]
    recalls = [s["best"]["recall"] for s in row["seeds"]]
    assert row["at_best"]["recall"]["n"] == 2 and row["at_best"]["recall"]["mean"] == pytest.approx(np.mean(recalls))
    assert {"precision", "density", "coverage", "kid"} <= set(row["at_best"])
    assert "coverage_std" in row["mean_curve"][0]
    md = (out / "summary.md").read_text()
    assert "precision / recall / density / coverage ↑ at best" in md
    with Image.open(out / "curves.png") as im:  # FID, IS, recall, coverage panels
        assert im.size[0] > 4 * 400
