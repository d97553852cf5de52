"""The training application as the issue specifies it: outputs, exact resume, kill -9 / Ctrl-C, NaN guard,
one-line errors, EMA semantics. Everything runs the demo preset with narrow networks on tiny batches."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import assert_same_state, random_image_tree, straight_and_resumed
from sagan.checkpoint import load_checkpoint
from sagan.config import load_config
from sagan.data.demo import CLASS_NAMES
from sagan.training.ema import EMA
from sagan.training.losses import LOSSES
from sagan.models import Generator
from sagan.sampling.viz import caption_strip_width
from sagan.commands.train import main as train_cli
from sagan.training import EpochBatchSampler, TrainingDiverged, train
from training_utils import REPO, TINY_CLI, cli, one_line_error, spawn_cli, tiny, wait_for


# --------------------------------------------------------------------------------------------------
# a short run end to end


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "demo"
    train(tiny("train.max_steps=6", "train.sample_every=4", "train.checkpoint_every=4", "train.keep_checkpoints=1"),
          outdir=out, progress=False)
    return out


def test_checkpoint_loads_weights_only_and_holds_everything(short_run):
    ckpts = sorted(p.name for p in (short_run / "checkpoints").iterdir())
    assert ckpts == ["last.pt", "step_0000006.pt"]  # keep_checkpoints=1 pruned step 4
    ckpt = torch.load(short_run / "checkpoints" / "last.pt", weights_only=True)
    for key in ("step", "config", "G", "D", "G_ema", "opt_G", "opt_D", "rng", "data", "class_names"):
        assert key in ckpt, key
    assert ckpt["step"] == 6
    assert isinstance(ckpt["config"], dict) and ckpt["config"]["model"]["g_ch"] == 16
    assert ckpt["class_names"][:2] == ["red_circle", "green_square"]
    assert set(ckpt["rng"]) >= {"torch", "python", "numpy", "cuda"}
    # 6 steps of 8 images from 64: the data position is epoch 0, 48 images in
    assert ckpt["data"]["epoch"] == 0 and ckpt["data"]["index"] == 48
    assert ckpt["G_ema"].keys() == ckpt["G"].keys()


def test_outputs_config_log_and_png_grid(short_run):
    assert load_config(short_run / "config.yaml").model.g_ch == 16
    log = (short_run / "log.txt").read_text()
    assert "step       1 |" in log and "step       6 |" in log
    pngs = sorted(p.name for p in (short_run / "samples").glob("*.png"))
    assert pngs == ["step_0000004.png", "step_0000006.png"]
    with Image.open(short_run / "samples" / "step_0000006.png") as im:
        # 10 classes (rows) x 8 latents (columns) of 32 px shown 3x (96 px, legible), with 2 px padding,
        # after a strip of class names
        strip = caption_strip_width(CLASS_NAMES[:10], 96)
        assert im.size == (strip + 8 * 98 + 2, 10 * 98 + 2) and im.mode == "RGB"


def test_tensorboard_scalars_from_the_first_step(short_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(short_run))
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    for tag in ("loss/d_loss_real", "loss/d_loss_fake", "loss/g_loss", "logits/real", "logits/fake",
                "attention/gamma_G_16px", "attention/gamma_D_16px", "grad_norm/G", "grad_norm/D", "lr/G", "lr/D",
                "perf/images_per_s"):
        assert tag in tags, tag
    assert [e.step for e in ea.Scalars("loss/g_loss")] == [1, 5, 6]
    assert ea.Scalars("lr/D")[0].value == pytest.approx(4e-4)
    assert "samples" in ea.Tags()["images"]


# --------------------------------------------------------------------------------------------------
# exact resume


def test_resume_is_bit_exact(tmp_path):
    """10 steps + resume to 20 == 20 steps straight, for every tensor of the checkpoint (weights, EMA after
    its start step, SN u/v, BN statistics, Adam moments), with flips on and the resume inside an epoch."""
    cfg = tiny("train.checkpoint_every=10", "train.sample_every=10", "train.ema_start=5", "data.hflip=true")
    a, b = straight_and_resumed(cfg, tmp_path, steps=20, split=10)
    assert a["step"] == b["step"] == 20 and a["data"] == b["data"]
    for key in ("G", "D", "G_ema", "opt_G", "opt_D"):
        assert_same_state(a[key], b[key], key)
    # the resumed run kept its TensorBoard curve continuous (purge_step) and logged the resume
    assert "resumed at step 10" in (tmp_path / "split/log.txt").read_text()


def test_sampler_shards_cover_each_global_batch_and_resume_mid_epoch():
    def micro_batches(rank, world, start=0, epoch=3):
        s = EpochBatchSampler(size=50, global_batch=12, micro_batches=2, rank=rank, world=world, seed=7)
        s.set_epoch(epoch, start)
        return list(s)

    whole = micro_batches(0, 1)
    assert len(whole) == 2 * (50 // 12) and all(len(b) == 6 for b in whole)
    shards = [micro_batches(r, 3) for r in range(3)]
    for i, batch in enumerate(whole):  # the 3 processes' shards of micro-batch i make up micro-batch i
        assert sum((s[i] for s in shards), []) == batch
    assert micro_batches(0, 1, start=24) == whole[4:]  # resuming 2 global batches in
    assert micro_batches(0, 1, epoch=4) != whole  # a new permutation each epoch


# --------------------------------------------------------------------------------------------------
# interruptions


def test_resume_after_kill_9(tmp_path):
    out = tmp_path / "run"
    proc = spawn_cli("--outdir", str(out), "--max-steps", "1000", "--checkpoint-every", "2", "--sample-every", "1000")
    last = out / "checkpoints" / "last.pt"
    wait_for(last.exists, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = load_checkpoint(last)["step"]
    assert killed_at >= 2 and killed_at % 2 == 0
    result = cli("--resume", str(out), "--max-steps", str(killed_at + 2), "--no-progress")
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(last)
    assert ckpt["step"] == killed_at + 2
    assert f"resumed at step {killed_at}" in (out / "log.txt").read_text()


def test_sigint_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    out = tmp_path / "run"
    proc = spawn_cli("--outdir", str(out), "--max-steps", "100000", "--checkpoint-every", "100000",
                     "--sample-every", "100000")
    wait_for(lambda: (out / "log.txt").exists() and "step       1 |" in (out / "log.txt").read_text(), proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT, err  # stopped by a signal, not finished
    assert "Traceback" not in err and "stopped at step" in err
    ckpt = load_checkpoint(out)
    assert ckpt["step"] >= 1
    assert (out / "samples" / f"step_{ckpt['step']:07d}.png").exists()


# --------------------------------------------------------------------------------------------------
# failures


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    hinge = LOSSES["hinge"]

    def g_loss_nan_from_step_7(logits):
        calls["n"] += 1
        loss = hinge.g_loss(logits)
        return loss * float("nan") if calls["n"] >= 7 else loss

    cfg = tiny("train.max_steps=20", "train.checkpoint_every=5", "train.log_every=1")
    with LOSSES.replaced("hinge", dataclasses.replace(hinge, g_loss=g_loss_nan_from_step_7)):
        with pytest.raises(TrainingDiverged, match="at step 7") as err:
            train(cfg, outdir=tmp_path / "run", progress=False)
    assert "\n" not in str(err.value) and "last.pt" in str(err.value)
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["step"] == 5
    assert all(torch.isfinite(v).all() for v in ckpt["G"].values() if v.is_floating_point())
    assert "non-finite loss" in (tmp_path / "run" / "log.txt").read_text()


def test_checkpoint_from_another_architecture_is_a_one_line_error(short_run):
    err = one_line_error(cli("--resume", str(short_run), "--config", "demo", *TINY_CLI, "--set", "model.g_ch=24"))
    assert "another architecture" in err and "g_ch" in err


def test_corrupt_checkpoint_is_a_one_line_error(tmp_path):
    bad = tmp_path / "run" / "checkpoints" / "last.pt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"PK\x03\x04 not really a zip file")
    assert "corrupt" in one_line_error(cli("--resume", str(tmp_path / "run")))


def test_existing_outdir_is_not_overwritten(short_run):
    before = sorted(p.name for p in short_run.rglob("*"))
    err = one_line_error(cli("--outdir", str(short_run), *TINY_CLI, "--max-steps", "1"))
    assert "--resume" in err and "--outdir" in err
    assert sorted(p.name for p in short_run.rglob("*")) == before


def test_classes_come_from_the_data_unless_pinned(tmp_path):
    tree = random_image_tree(tmp_path / "tree", ("cat", "dog", "fox"))
    err = one_line_error(cli("--data", str(tree), "--set", "model.num_classes=5", "--outdir", str(tmp_path / "x")))
    assert "3 classes" in err and "num_classes=5" in err
    result = cli("--data", str(tree), *TINY_CLI, "--max-steps", "1", "--outdir", str(tmp_path / "run"), "--no-progress")
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["config"]["model"]["num_classes"] == 3 and ckpt["class_names"] == ["cat", "dog", "fox"]


def test_help_opens_with_examples():
    out = CliRunner().invoke(train_cli, ["--help"]).output
    assert out.index("Examples:") < out.index("Options:")
    assert "python train.py --resume" in out and "accelerate launch" in out


# --------------------------------------------------------------------------------------------------
# EMA


def test_ema_tracks_exactly_before_start_then_averages_and_copies_buffers():
    G = Generator.from_config(tiny())
    ema = EMA(G, decay=0.9, start=3)

    def perturb():
        with torch.no_grad():
            for p in G.parameters():
                p.add_(torch.randn_like(p))
        G(torch.randn(4, G.z_dim), torch.arange(4))  # train mode: BN statistics and SN u/v move

    for step in (1, 2):  # before the start step: an exact copy
        perturb()
        ema.update(step)
        for (name, e), g in zip(ema.ema.state_dict().items(), G.state_dict().values()):
            assert torch.equal(e, g), name
    before = {k: v.clone() for k, v in ema.ema.state_dict().items()}
    perturb()
    ema.update(3)  # from the start step on: ema = 0.9 ema + 0.1 G for parameters, buffers copied
    params = dict(G.named_parameters())
    for name, e in ema.ema.state_dict().items():
        g = G.state_dict()[name]
        if name in params:
            assert torch.allclose(e, 0.9 * before[name] + 0.1 * g, atol=1e-6), name
            assert not torch.equal(e, g), name
        else:  # BN running stats, SN u/v (never averaged: that would shrink u/v), num_batches_tracked
            assert torch.equal(e, g), name
    assert any(n.endswith("_u") for n in before) and any("running_mean" in n for n in before)
    assert not ema.ema.training and not any(p.requires_grad for p in ema.ema.parameters())


# --------------------------------------------------------------------------------------------------
# multi-process


@pytest.mark.slow
def test_two_cpu_processes_under_accelerate_launch_train_with_one_writer_and_resume(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "train.py"), "--no-progress", *TINY_CLI,
           "--max-steps", "4", "--checkpoint-every", "2", "--outdir", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(out)
    assert ckpt["step"] == 4 and ckpt["meta"]["num_processes"] == 2
    assert len(ckpt["rng"]["per_process"]) == 2
    assert len(list((out / "samples").glob("*.png"))) == 1  # only the main process writes
    # and a 2-process run resumes
    cmd[cmd.index("--max-steps") + 1] = "6"
    proc = subprocess.run(cmd + ["--resume", str(out)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert load_checkpoint(out)["step"] == 6


def test_logged_grad_norms_are_means_over_the_same_steps_as_the_losses():
    """A log line once read `|grad| G 42.8 D 0` beside a non-zero D loss: the norms were the last step's
    alone (its hinge loss happened to be 0), the losses the mean of the steps since the last line."""
    from accelerate import Accelerator

    from sagan.training.monitor import RecentSteps

    recent = RecentSteps(torch.device("cpu"))
    for step, (loss, d_norm) in enumerate([(0.8, 4.0), (0.6, 2.0), (0.0, 0.0)], start=1):
        recent.add(step, {"d_loss": torch.tensor(loss)}, 32, {"G": torch.tensor(10.0), "D": torch.tensor(d_norm)})
    values, _ = recent.take(Accelerator(cpu=True))
    assert values["d_loss"] == pytest.approx(1.4 / 3)
    assert values["grad_norm/D"] == pytest.approx(2.0) and values["grad_norm/G"] == pytest.approx(10.0)
    recent.add(4, {"d_loss": torch.tensor(1.0)}, 32, {"G": torch.tensor(float("inf")), "D": torch.tensor(1.0)})
    assert int(recent.first_bad) == -1  # a skipped fp16 step's infinite gradients are not a diverged run


def test_redirected_output_gets_log_lines_and_no_progress_bar_fragments(tmp_path):
    """stderr not a terminal (CliRunner, `> log 2>&1`): no tqdm frames between the lines, and the step lines that
    the bar would have summed up are printed instead."""
    from click.testing import CliRunner

    from sagan.commands.train import main as train_cli

    r = CliRunner().invoke(train_cli, ["--outdir", str(tmp_path / "run"), "--max-steps", "2", "--batch-size", "4",
                                       "--set", "model.g_ch=16", "--set", "model.d_ch=16", "--set", "data.demo_size=8"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "\r" not in r.stderr and "step/s" not in r.stderr and "it/s" not in r.stderr
    assert "step       2 | d_loss" in r.stderr
