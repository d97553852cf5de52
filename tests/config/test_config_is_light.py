"""Validating a config asks the leaf registries for names (issue 27): loading every preset, with every
registry-backed key checked against its registry, imports none of the stacks above them (trainer,
models, sampling, evaluation sessions, exporters, converters, experiments, commands)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# the packages a config's validation must not import: they build networks, draw samples, train or export
FORBIDDEN = ("sagan.training", "sagan.export", "sagan.experiments", "sagan.convert", "sagan.serve",
             "sagan.commands", "sagan.models", "sagan.sampling", "sagan.metrics")

PROBE = """
import json, sys
from sagan.config import load_config
from sagan.config_files import preset_names
from sagan.registry import AUGMENTS, LOSSES, METRICS, REGULARISERS, RESIZERS
loaded = [name for name in preset_names() if load_config(name) is not None]
cfg = load_config("demo", ["train.loss=ns", "train.augment=diffaugment", "train.eval_metrics=[fid,is,kid]",
                           "train.best_metric=kid", "train.fid_resize=clean", "train.lecam_weight=0.3"])
names = {r.kind: list(r.names) for r in (LOSSES, REGULARISERS, AUGMENTS, METRICS, RESIZERS)}
print(json.dumps({"presets": loaded, "names": names, "modules": sorted(m for m in sys.modules if m.startswith("sagan"))}))
"""


def test_validating_every_preset_imports_no_stack():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("SAGAN_PLUGINS", None)  # a user's plugin may import what it likes
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert "demo" in got["presets"] and "imagenet128" in got["presets"] and len(got["presets"]) >= 9
    # the registries were read (their built-in entries registered), so the check below is not vacuous
    assert {"hinge", "ns", "rpgan"} <= set(got["names"]["loss"]) and "lecam" in got["names"]["regulariser"]
    assert {"fid", "is", "kid", "intra_fid"} <= set(got["names"]["metric"]) and "tf1" in got["names"]["resize protocol"]
    assert {"none", "diffaugment", "ada"} <= set(got["names"]["augmentation"])
    imported = [m for m in got["modules"] if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert imported == [], f"validating a config imported {imported}"
