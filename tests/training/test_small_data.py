"""Small-data training through the real training loop: DiffAugment, ADA, LeCam and data.subset
each train, resume bit for bit, and log what they add; the subset is deterministic; config errors are
one line; the preset and the small_data experiment build."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TINY_TRAIN, assert_same_state, straight_and_resumed
from sagan.config import load_config
from sagan.data import open_dataset
from sagan.data.subset import apply_subset, subset_indices
from sagan.errors import ConfigError
from sagan.training.step import GANStep
from sagan.metrics.history import read_records
from sagan.training import make_accelerator, train
from sagan.models import Discriminator, Generator

TINY = ["model.g_ch=16", "model.d_ch=16", "data.demo_size=64", "train.batch_size=8", "train.log_every=1",
        "train.num_workers=0", "train.sample_every=1000", "train.checkpoint_every=2"]

OPTIONS = {
    "diffaugment": ["train.augment=diffaugment"],
    # p moves by 8 * 1 / 40 = 0.2 per step: visible within a few steps
    "ada": ["train.augment=ada", "train.ada_interval=1", "train.ada_kimg=0.04", "train.ada_target=0.0"],
    "lecam": ["train.lecam_weight=0.3", "train.lecam_start=1"],
    "subset": ["data.subset=0.5", "data.hflip=true"],
}


def tiny(*overrides: str):
    return load_config("demo", overrides=TINY + list(overrides))


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    return train(tiny("train.max_steps=4"), outdir=tmp_path_factory.mktemp("plain") / "run", progress=False)


@pytest.mark.parametrize("option", list(OPTIONS))
def test_each_option_trains_and_resumes_bit_exactly(option, tmp_path, plain_run):
    a, b = straight_and_resumed(tiny(*OPTIONS[option]), tmp_path, steps=4, split=2)
    assert a["step"] == b["step"] == 4 and a["data"] == b["data"]
    for key in ("G", "D", "G_ema", "opt_G", "opt_D"):
        assert_same_state(a[key], b[key], key)
    for key in ("augment", "regularisers"):
        assert_same_state(a["meta"][key], b["meta"][key], key)
    if option == "diffaugment":  # what it adds is said at start-up
        log = (tmp_path / "straight/log.txt").read_text()
        assert "augment: DiffAugment color,translation,cutout on every image D sees (real and fake" in log
    # the option changed the training: its weights differ from a plain run's
    c = torch.load(plain_run / "checkpoints/last.pt", weights_only=True)
    assert any(not torch.equal(a["G"][k], c["G"][k]) for k in a["G"])


def scalars(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run))
    ea.Reload()
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


def test_ada_logs_p_and_signal_keeps_them_in_checkpoints_and_metrics_jsonl(tmp_path, demo_ref, inception_weights_file):
    cfg = load_config("demo", overrides=TINY_TRAIN + OPTIONS["ada"] + [
        "train.max_steps=2", "train.fid_every=2", f"data.ref_stats={demo_ref}", "train.eval_metrics=[fid]"])
    run = train(cfg, outdir=tmp_path / "ada", inception_weights=str(inception_weights_file), progress=False)
    tb = scalars(run)
    p = [v for _, v in tb["augment/p"]]
    signal = [v for _, v in tb["augment/signal"]]
    assert [s for s, _ in tb["augment/p"]] == [1, 2] and len(signal) == 2
    # every step (ada_interval 1) p moves by 0.2 towards more augmentation when D's mean sign on the reals is
    # above the target (0 here), towards less below it, within [0, 1]
    expected, prev = [], 0.0
    for r in signal:
        assert -1 <= r <= 1
        prev = min(1.0, max(0.0, prev + 0.2 * float(np.sign(r - 0.0))))
        expected.append(prev)
    assert p == pytest.approx(expected, abs=1e-6) and max(p) > 0
    log = (run / "log.txt").read_text()
    assert f"| augment ada: p {p[0]:.4f} signal {signal[0]:.4f}" in log
    assert "augment: ADA on every image D sees, p = 0.0000 moving by 2.00e-01 every 1 steps towards" in log
    ckpt = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert ckpt["meta"]["augment"]["name"] == "ada"
    assert float(ckpt["meta"]["augment"]["state"]["p"]) == pytest.approx(p[-1], abs=1e-6)
    records = read_records(run / "metrics.jsonl")
    assert [r["step"] for r in records] == [2]
    assert records[0]["augment"]["p"] == pytest.approx(p[1], abs=1e-6)
    assert all(r["augment"]["name"] == "ada" and -1 <= r["augment"]["signal"] <= 1 for r in records)


def test_lecam_is_a_logged_loss_part_and_its_averages_are_checkpointed(tmp_path):
    run = train(tiny("train.max_steps=4", *OPTIONS["lecam"]), outdir=tmp_path / "lecam", progress=False)
    tb = scalars(run)
    lecam = dict(tb["loss/d_loss_lecam"])
    assert lecam[1] == 0.0 and all(lecam[s] > 0 for s in (2, 3, 4))  # applies after train.lecam_start=1
    log = (run / "log.txt").read_text()
    assert "lecam " in log.split("step       2 |")[1].split("\n")[0]
    assert "regulariser: LeCam, weight 0.3, moving averages of D's outputs with decay 0.99, applied after step 1" in log
    ckpt = torch.load(run / "checkpoints/last.pt", weights_only=True)
    state = ckpt["meta"]["regularisers"]["lecam"]
    assert set(state) == {"ema_real", "ema_fake"} and float(state["ema_real"]) != 0
    # a plain run has neither the part nor a state
def test_a_plain_run_has_no_lecam_part_and_no_small_data_state(plain_run):
    assert "loss/d_loss_lecam" not in scalars(plain_run) and "augment/p" not in scalars(plain_run)
    meta = torch.load(plain_run / "checkpoints/last.pt", weights_only=True)["meta"]
    assert meta["regularisers"] == {} and meta["augment"] == {"name": "none", "state": {}}
    assert "augment" not in (plain_run / "log.txt").read_text()


def test_a_malformed_stored_ada_state_is_a_one_line_checkpoint_error(tmp_path):
    from sagan.errors import CheckpointError

    cfg = tiny("train.max_steps=1", *OPTIONS["ada"])
    run = train(cfg, outdir=tmp_path / "r", progress=False)
    ckpt = torch.load(run / "checkpoints/last.pt", weights_only=True)
    ckpt["meta"]["augment"]["state"]["p"] = torch.tensor(float("nan"))
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad.pt: the stored augmentation / regulariser state is malformed "
                                              r"\(ADA state p must be a finite scalar tensor"):
        train(cfg.replace(train={"max_steps": 2}), resume=tmp_path / "bad.pt", outdir=tmp_path / "r2", progress=False)


def test_lecam_term_follows_the_papers_released_definition():
    from sagan.training.regularisers import LeCam

    reg = LeCam(weight=0.3, decay=0.99, start=2, device="cpu")
    reg.end_d_update(torch.tensor(5.0), torch.tensor(5.0), step=1)
    reg.end_d_update(torch.tensor(1.0), torch.tensor(-1.0), step=1)  # before start: the values themselves
    assert float(reg.ema_real) == 1.0 and float(reg.ema_fake) == -1.0
    real, fake = torch.tensor([0.5, -2.0]), torch.tensor([2.0, -3.0])
    assert float(reg.d_terms(real, fake, step=2)["d_loss_lecam"]) == 0.0  # not before step > start
    term = reg.d_terms(real, fake, step=3)["d_loss_lecam"]
    # relu(D(x) - a_F)^2: 1.5^2, 0; relu(a_R - D(G(z)))^2: 0, 4^2
    assert float(term) == pytest.approx(0.3 * ((1.5**2 + 0) / 2 + (0 + 4.0**2) / 2))
    reg.end_d_update(torch.tensor(3.0), torch.tensor(1.0), step=3)  # from start on: decay 0.99
    assert float(reg.ema_real) == pytest.approx(0.99 * 1 + 0.01 * 3)
    assert float(reg.ema_fake) == pytest.approx(0.99 * -1 + 0.01 * 1)


def test_augmentation_is_applied_to_real_and_fake_in_the_d_step_and_in_the_g_step():
    cfg = tiny("train.augment=diffaugment", "train.augment_policy=cutout")
    G, D = Generator.from_config(cfg), Discriminator.from_config(cfg)
    step = GANStep(cfg, G, D, make_accelerator("no")).prepare()
    seen = []
    original = step.augment.__class__.__call__

    def spy(self, x, gen):
        out = original(self, x, gen)
        seen.append((len(x), out.requires_grad, bool((out == 0).all(dim=1).any())))
        return out

    step.augment.__class__.__call__ = spy
    try:
        x, y = torch.rand(8, 3, 32, 32) * 2 - 1, torch.arange(8) % 10
        step(1, lambda: [(x, y)])
    finally:
        step.augment.__class__.__call__ = original
    # D step: one call on cat(real, fake) (16 images); G step: the fakes, with G's graph (gradient to G)
    assert seen == [(16, False, True), (8, True, True)]


# --------------------------------------------------------------------------------------------------
# data.subset


def test_subset_is_a_fraction_or_a_count_of_every_class_and_deterministic():
    labels = np.arange(1000) % 10
    tenth = subset_indices(labels, 0.1, seed=0)
    assert len(tenth) == 100 and np.bincount(labels[tenth]).tolist() == [10] * 10
    assert np.array_equal(tenth, subset_indices(labels, 0.1, seed=0))  # every call, process, resume
    assert not np.array_equal(tenth, subset_indices(labels, 0.1, seed=1))
    fifth = subset_indices(labels, 0.2, seed=0)
    assert set(tenth) <= set(fifth)  # a smaller fraction takes part of a larger one's images
    per_class = subset_indices(labels, 30, seed=0)
    assert np.bincount(labels[per_class]).tolist() == [30] * 10
    uneven = np.array([0] * 5 + [1] * 100)
    assert np.bincount(uneven[subset_indices(uneven, 0.1)]).tolist() == [1, 10]  # rounded, at least one
    assert np.bincount(uneven[subset_indices(uneven, 20)]).tolist() == [5, 20]  # all of a smaller class


def test_subset_dataset_serves_the_chosen_images_with_their_flips():
    ds = open_dataset(None, demo_size=40, hflip=True, seed=3)
    sub = apply_subset(ds, 0.25, seed=0)
    idx = subset_indices(ds.labels, 0.25, 0)
    assert len(sub) == 10 and sub.num_classes == 10 and sub.resolution == ds.resolution
    sub.set_epoch(2)
    assert ds.epoch == 2
    for i in range(len(sub)):
        img, label = sub[i]
        ref, ref_label = ds[int(idx[i])]
        assert torch.equal(img, ref) and label == ref_label
    assert "data.subset=0.25: training on 10 of 40 images (25% of each class, 10 classes" in sub.note


def test_subset_size_is_printed_at_start_up_and_trains_on_that_many_images(tmp_path):
    run = train(tiny("train.max_steps=1", "data.subset=2"), outdir=tmp_path / "r", progress=False)
    log = (run / "log.txt").read_text()
    assert "data.subset=2: training on 20 of 64 images (2 images per class, 10 classes" in log
    assert "training demo: 20 images" in log
    assert torch.load(run / "checkpoints/last.pt", weights_only=True)["data"]["size"] == 20


@pytest.mark.parametrize("override, message", [
    ("data.subset=0", "data.subset must be a fraction in (0, 1)"),
    ("data.subset=2.5", "data.subset must be a fraction in (0, 1)"),
    ("data.subset=.nan", "data.subset: must be a finite number, got nan"),
    ("train.augment=mixup", "train.augment must be one of none, diffaugment, ada"),
    ("train.augment_policy=color,zoom", "train.augment_policy: unknown DiffAugment op 'zoom'"),
    ("train.ada_target=1.5", "train.ada_target must be in [0, 1)"),
    ("train.ada_interval=0", "train.ada_kimg must be > 0 and train.ada_interval >= 1"),
    ("train.lecam_weight=-1", "train.lecam_weight and train.lecam_start must be >= 0"),
    ("train.lecam_decay=1", "train.lecam_decay must be in [0, 1)"),
])
def test_bad_small_data_keys_are_one_line_config_errors(override, message):
    with pytest.raises(ConfigError, match=None) as e:
        tiny(override)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_defaults_keep_the_papers_setting():
    cfg = load_config("demo")
    t = cfg.train
    assert (t.augment, t.lecam_weight, cfg.data.subset) == ("none", 0.0, None)
    assert (t.ada_target, t.ada_interval, t.ada_kimg, t.lecam_decay) == (0.6, 4, 500.0, 0.99)
    step = GANStep(cfg, Generator.from_config(cfg), Discriminator.from_config(cfg), make_accelerator("no"))
    assert not step.augment.active and step.regularisers == {}


@pytest.mark.slow  # two accelerate processes: ~60 s on 2 cores
def test_two_processes_share_adas_p_and_lecams_averages(tmp_path):
    """Under two processes ADA's signal and LeCam's averages are reduced over both (one collective each), so
    both processes hold the same p; a 2-process run with every option trains and resumes."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "run"
    sets = [a for o in TINY + OPTIONS["ada"] + OPTIONS["lecam"] + ["data.subset=0.5", "train.log_every=1"]
            for a in ("--set", o)]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
           "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(repo / "train.py"), "--no-progress", *sets,
           "--max-steps", "3", "--checkpoint-every", "3", "--outdir", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=repo, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(out / "checkpoints/last.pt", weights_only=True)
    assert ckpt["meta"]["num_processes"] == 2 and ckpt["data"]["size"] == 34  # half of 7 or 6 per class, rounded
    assert 0 < float(ckpt["meta"]["augment"]["state"]["p"]) <= 0.6 + 1e-6
    assert set(ckpt["meta"]["regularisers"]["lecam"]) == {"ema_real", "ema_fake"}
    log = (out / "log.txt").read_text()
    assert "| augment ada: p " in log and "lecam " in log and "training on 34 of 64 images" in log
    cmd[cmd.index("--max-steps") + 1] = "4"
    proc = subprocess.run(cmd + ["--resume", str(out)], capture_output=True, text=True, cwd=repo, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert torch.load(out / "checkpoints/last.pt", weights_only=True)["step"] == 4


def test_cifar10_diffaug_preset_is_studiogans_recipe_on_the_cifar10_preset():
    cfg, base = load_config("cifar10_diffaug"), load_config("cifar10")
    t = cfg.train
    assert (t.augment, t.augment_policy) == ("diffaugment", "color,translation,cutout")
    assert (t.lecam_weight, t.lecam_decay, t.lecam_start, t.max_steps) == (0.3, 0.99, 1000, 200_000)
    assert cfg.model == base.model and cfg.data == base.data and cfg.name == "cifar10_diffaug"
    assert cfg.replace(train={k: getattr(base.train, k) for k in ("augment", "lecam_weight", "lecam_start",
                                                                  "max_steps")}).train == base.train
