"""sagan-experiments run biggan_ablation: BigGAN's Table 1 rows that fit a base, over seeds, with FID / KID /
precision / recall / density / coverage as mean ± std and curves with bands."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from experiments_utils import tiny_base  # noqa: F401 (the fixture: demo at narrow widths)
from sagan.commands.experiments import main as experiments_cli
from sagan.experiments.definitions import PAPER_VALUES, build_variant, variant_names


def test_biggan_ablation_variants_are_table_1s_steps_on_any_base():
    assert variant_names("biggan_ablation") == ["sagan", "shared", "hierarchical", "ortho"]
    for base in ("cifar10_biggan", "demo", "biggan128"):
        cfgs = {v: build_variant("biggan_ablation", v, base, {}).config for v in variant_names("biggan_ablation")}
        m = {v: c.model for v, c in cfgs.items()}
        assert (m["sagan"].shared_embedding, m["sagan"].hierarchical_z) == (False, False)
        assert (m["shared"].shared_embedding, m["shared"].hierarchical_z) == (True, False)
        assert (m["hierarchical"].shared_embedding, m["hierarchical"].hierarchical_z) == (True, True)
        assert m["ortho"] == m["hierarchical"]
        assert [c.train.ortho_reg for c in cfgs.values()] == [0.0, 0.0, 0.0, 1e-4]
        assert m["sagan"].g_ch == m["ortho"].g_ch  # only the BigGAN options change
    assert PAPER_VALUES["biggan_ablation"]["ortho"] == {"fid": 8.51, "is": 99.31}


def test_hierarchical_rows_are_skipped_where_the_bases_z_does_not_split(tmp_path):
    import yaml

    base = tmp_path / "odd.yaml"
    base.write_text(yaml.safe_dump({"base": "demo", "model": {"z_dim": 65}}))
    v = build_variant("biggan_ablation", "hierarchical", str(base), {})
    assert v.config is None and "model.z_dim 65 does not divide" in v.notes[-1] and "multiple of 4" in v.notes[-1]
    assert build_variant("biggan_ablation", "shared", str(base), {}).config.model.shared_embedding


@pytest.mark.slow
def test_biggan_ablation_reports_fid_kid_prdc_mean_and_std_over_seeds(tmp_path, tiny_base, demo_ref,
                                                                      inception_weights_file):
    base = tiny_base
    out = tmp_path / "exp"
    r = CliRunner().invoke(experiments_cli, [str(a) for a in (
        "run", "biggan_ablation", "--base", base, "--steps", 2, "--eval-every", 1, "--num-samples", 10,
        "--variants", "sagan,ortho", "--seeds", 2, "--ref", demo_ref, "--inception-weights", inception_weights_file,
        "--outdir", out, "--no-progress")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "(ortho " in (out / "ortho" / "log.txt").read_text()  # the G loss part is logged
    assert "(ortho " not in (out / "sagan" / "log.txt").read_text()
    summary = json.loads((out / "summary.json").read_text())
    rows = {row["variant"]: row for row in summary["variants"]}
    for v in ("sagan", "ortho"):
        stats = rows[v]["at_best"]
        for metric in ("fid", "kid", "precision", "recall", "density", "coverage"):
            assert stats[metric]["n"] == 2 and stats[metric]["std"] is not None, (v, metric)
        assert stats["fid"]["mean"] == pytest.approx(rows[v]["best_fid"]["mean"])
        assert "fid_std" in rows[v]["mean_curve"][0]  # the curves' bands
    assert summary["paper_source"].startswith("BigGAN (Brock et al. 2019) Table 1")
    md = (out / "summary.md").read_text()
    assert "At each seed's best FID, mean ± std over seeds" in md and "| Precision ↑ |" in md.replace(" | ", " | ")
