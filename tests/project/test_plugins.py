"""Plugins (sagan.plugins): a package of the user's own registers a loss and a metric, and the commands use
them without any edit to sagan: through the ``sagan.plugins`` entry point of an installed package (a
``*.dist-info`` on the path), ``--plugin MODULE`` and ``SAGAN_PLUGINS``; ``--help`` lists what they register,
and one that fails to import is one line naming it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from click.testing import CliRunner

from metrics_utils import calibrated_inception_state, save_state, smooth_images, write_image_tree
from sagan import plugins
from sagan.plugins import env_plugins, plugin_arguments
from sagan.registry import LOSSES, METRICS
from sagan.commands.evaluate import main as evaluate_cli
from sagan.commands.train import main as train_cli

ROOT = Path(__file__).resolve().parents[2]
TINY = ["model.g_ch=16", "model.d_ch=16", "data.demo_size=64", "train.batch_size=8", "train.log_every=1",
        "train.num_workers=0", "train.fid_every=0"]
TINY_CLI = [a for o in TINY for a in ("--set", o)]

PLUGIN = '''
"""A sagan plugin: the least-squares loss (LSGAN, Mao et al. 2017) and the mean norm of the features."""
import numpy as np

from sagan.metrics.registry import Metric, register
from sagan.training.losses import register_loss

register_loss("{loss}", lambda real, fake: {{"d_loss_real": ((real - 1) ** 2).mean(), "d_loss_fake": (fake ** 2).mean()}},
              lambda fake: ((fake - 1) ** 2).mean(), "least squares (LSGAN)")
register(Metric("{metric}", "mean feature norm", False, "{metric}",
                lambda inp: {{"{metric}": float(np.linalg.norm(inp.features, axis=1).mean())}}))
'''


def write_plugin(site: Path, module: str, loss: str, metric: str, installed: bool) -> Path:
    """The plugin package ``module`` in the folder ``site``; ``installed``: with the dist-info that pip would
    write for it (METADATA, entry_points.txt naming the module in the sagan.plugins group)."""
    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text(PLUGIN.format(loss=loss, metric=metric))
    if installed:
        dist = site / f"{module}-0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(f"[sagan.plugins]\n{module} = {module}\n")
    return site


def sagan(script: str, *args, site: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python SCRIPT ARGS`` from the repository, with ``site`` on the path (PYTHONPATH)."""
    path = os.pathsep.join(str(p) for p in (ROOT, site) if p is not None)
    inherited = {k: v for k, v in os.environ.items() if k != "SAGAN_PLUGINS"}
    full_env = {**inherited, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=300, cwd=ROOT)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return " ".join(proc.stdout.split())


@pytest.fixture
def fresh_plugins(monkeypatch, tmp_path):
    """Plugins (under ``tmp_path``) loaded in a test end with it: what they registered, the list of loaded
    plugins, their modules."""
    monkeypatch.setattr(plugins, "_loaded", {})
    monkeypatch.setattr(plugins, "_entry_points_loaded", False)
    with LOSSES.scratch(), METRICS.scratch():
        yield
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def invoke(command, *args, env: dict | None = None):
    return CliRunner().invoke(command, [str(a) for a in args], env=env)


def test_plugin_option_loads_a_module_on_the_path(tmp_path, monkeypatch, fresh_plugins):
    site = write_plugin(tmp_path / "site", "my_gan_bits", "lsq_opt", "norm_opt", installed=False)
    monkeypatch.syspath_prepend(str(site))
    assert "lsq_opt" not in invoke(train_cli, "--help").output  # not installed: nothing loads it
    assert "norm_opt" in " ".join(invoke(evaluate_cli, "metrics", "--plugin", "my_gan_bits", "--help").output.split())
    assert plugins.loaded_plugins() == {"my_gan_bits": "--plugin my_gan_bits"}
    result = invoke(train_cli, *TINY_CLI, "--set", "train.loss=lsq_opt", "--max-steps", 1, "--outdir",
                    tmp_path / "run", "--no-progress", "--plugin=my_gan_bits")
    assert result.exit_code == 0, result.output
    assert "loss lsq_opt" in (tmp_path / "run" / "log.txt").read_text()


BUILTIN_LOSSES = ", ".join(LOSSES.names)  # hinge, ns, wasserstein, rpgan, ...: the plugin's follow them

def test_sagan_plugins_names_modules_on_the_path(tmp_path, monkeypatch, fresh_plugins):
    site = write_plugin(tmp_path / "site", "env_gan_bits", "lsq_env", "norm_env", installed=False)
    monkeypatch.syspath_prepend(str(site))
    help_text = " ".join(invoke(train_cli, "--help", env={"SAGAN_PLUGINS": "env_gan_bits"}).output.split())
    assert f"train.loss: {BUILTIN_LOSSES}, lsq_env" in help_text and "norm_env" in help_text
    assert plugins.loaded_plugins() == {"env_gan_bits": "SAGAN_PLUGINS=env_gan_bits"}


def test_an_installed_plugin_is_found_through_its_entry_point(tmp_path, monkeypatch, fresh_plugins):
    site = write_plugin(tmp_path / "site", "sagan_ep_plugin", "lsq_ep", "norm_ep", installed=True)
    monkeypatch.syspath_prepend(str(site))
    help_text = " ".join(invoke(train_cli, "--help").output.split())
    assert f"train.loss: {BUILTIN_LOSSES}, lsq_ep" in help_text and "norm_ep" in help_text
    assert plugins.loaded_plugins() == {"sagan_ep_plugin": "entry point sagan.plugins:sagan_ep_plugin of "
                                                            "sagan-ep-plugin"}


@pytest.mark.parametrize("how", ["option", "env", "entry point"])
def test_a_plugin_that_fails_to_import_is_one_line_naming_it(tmp_path, monkeypatch, fresh_plugins, how):
    site = tmp_path / "site"
    (site / "broken_plugin").mkdir(parents=True)
    (site / "broken_plugin" / "__init__.py").write_text("import not_a_module_anywhere\n")
    monkeypatch.syspath_prepend(str(site))
    args, env = ["--help"], {}
    if how == "option":
        args = ["--plugin", "broken_plugin", "--help"]
    elif how == "env":
        env = {"SAGAN_PLUGINS": "broken_plugin"}
    else:
        dist = site / "broken_plugin-0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text("[sagan.plugins]\nb = broken_plugin\n")
    result = invoke(train_cli, *args, env=env)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("error: plugin 'broken_plugin'") and "not_a_module_anywhere" in lines[0]


def test_plugin_arguments_are_read_before_the_command_line_is_parsed():
    assert plugin_arguments(["--plugin", "a", "--set", "x=1", "--plugin=b.c:register", "--", "--plugin", "z"]) == [
        "a", "b.c:register"]
    assert env_plugins({"SAGAN_PLUGINS": " a, ,b.c "}) == ["a", "b.c"] and env_plugins({}) == []


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A site folder holding an installed plugin (loss lsq_plugin, metric mean_norm)."""
    return write_plugin(tmp_path_factory.mktemp("site"), "sagan_lsq_plugin", "lsq_plugin", "mean_norm", True)


@pytest.mark.slow  # five processes that each import torch and sagan: about a minute on 2 shared CPU cores
def test_an_installed_plugins_loss_and_metric_are_used_by_train_and_evaluate(installed, tmp_path):
    assert "lsq_plugin" in ok(sagan("train.py", "--help", site=installed))
    ok(sagan("train.py", *TINY_CLI, "--set", "train.loss=lsq_plugin", "--max-steps", 2, "--outdir", tmp_path / "run",
             "--no-progress", site=installed))
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "loss lsq_plugin" in log and "(real " in log
    assert "mean_norm" in ok(sagan("evaluate.py", "metrics", "--help", site=installed))
    weights = save_state(calibrated_inception_state(seed=2, num_images=4), tmp_path / "inception.pth")
    tree = write_image_tree(tmp_path / "tree", smooth_images(8, 16, seed=1), np.repeat([0, 1], 4), ["a", "b"])
    samples = tmp_path / "samples.npz"
    images = smooth_images(8, 16, seed=2)
    np.savez(samples, images=images, labels=np.repeat([0, 1], 4))
    common = ["--inception-weights", weights, "--batch-size", 8]
    ok(sagan("evaluate.py", "stats", "--data", tree, "--resolution", 16, "--out", tmp_path / "ref.npz",
             "--num-workers", 0, *common, site=installed))
    out = tmp_path / "eval" / "report.json"
    shown = ok(sagan("evaluate.py", "metrics", "--ref", tmp_path / "ref.npz", "--samples", samples, "--metrics",
                     "fid,mean_norm", "--splits", 2, "--out", out, *common, site=installed))
    report = json.loads(out.read_text())
    assert report["mean_norm"] > 0 and "fid" in report and "mean feature norm" in shown
    assert "mean feature norm ↓" in out.with_suffix(".md").read_text()
    history = [json.loads(line) for line in out.with_name("metrics.jsonl").read_text().splitlines()]
    assert history[-1]["values"]["mean_norm"] == pytest.approx(report["mean_norm"])
