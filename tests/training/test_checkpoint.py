"""The checkpoint module on its own: the file format, finding a run's checkpoints, one-line refusals of
damaged or foreign files, the weights-only load, RNG states, and the checkpoint folder (step files,
last.pt, best.pt, pruning, abandoned branches)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sagan.checkpoint import (BEST, CHECKPOINT_DIR, FORMAT, LAST, MAX_BYTES_ENV, MAX_CHECKPOINT_BYTES, VERSION,
                              load_checkpoint, resolve_checkpoint, save_checkpoint, step_file_name, step_files)
from sagan.training.lineage import Reconciliation, lineage_of
from sagan.training.run_state import rng_state, set_rng_state, write_best, write_training_checkpoint
from sagan.errors import CheckpointError
from sagan.models import Discriminator, Generator, load_discriminator, load_generator

REPO = Path(__file__).resolve().parents[2]


def payload(cfg, step: int = 5, ema: bool = True) -> dict:
    G, D = Generator.from_config(cfg), Discriminator.from_config(cfg)
    G_ema = Generator.from_config(cfg) if ema else None
    return {"step": step, "config": cfg.to_dict(), "G": G.state_dict(), "D": D.state_dict(),
            "G_ema": G_ema.state_dict() if ema else None, "opt_G": None, "opt_D": None, "rng": None, "data": None}


def test_saved_checkpoint_loads_with_its_format_tag_and_path(tiny_cfg, tmp_path):
    p = save_checkpoint(tmp_path / "a.pt", payload(tiny_cfg))
    raw = torch.load(p, weights_only=True)
    assert raw["format"] == FORMAT and raw["version"] == VERSION and raw["step"] == 5
    ckpt = load_checkpoint(p)
    assert ckpt["path"] == str(p) and ckpt["config"] == tiny_cfg.to_dict()
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically: no temp file left


def test_the_documented_checkpoint_loaders_are_the_models_ones():
    """``from sagan.checkpoint import load_generator`` (documented before the loaders moved next to the
    networks) still gives the same functions."""
    import sagan.checkpoint as C
    from sagan.checkpoint import load_generator as old_name

    assert old_name is load_generator and C.load_discriminator is load_discriminator
    with pytest.raises(AttributeError):
        C.no_such_name


def test_load_generator_takes_the_ema_weights_and_falls_back_to_the_raw_ones(tiny_cfg, tmp_path):
    data = payload(tiny_cfg)
    with_ema = save_checkpoint(tmp_path / "ema.pt", data)
    G, cfg, ckpt = load_generator(with_ema)
    assert ckpt["used_ema"] and not G.training and cfg == tiny_cfg
    key = next(k for k, v in data["G_ema"].items() if v.is_floating_point() and not torch.equal(v, data["G"][k]))
    assert torch.equal(G.state_dict()[key], data["G_ema"][key])
    G_raw, _, ckpt = load_generator(with_ema, ema=False)
    assert not ckpt["used_ema"] and torch.equal(G_raw.state_dict()[key], data["G"][key])
    _, _, ckpt = load_generator(save_checkpoint(tmp_path / "no_ema.pt", payload(tiny_cfg, ema=False)))
    assert not ckpt["used_ema"]


def test_a_run_folder_resolves_to_its_last_and_best_checkpoints(tmp_path):
    ckpts = tmp_path / "run" / CHECKPOINT_DIR
    ckpts.mkdir(parents=True)
    (ckpts / LAST).write_bytes(b"x")
    assert resolve_checkpoint(tmp_path / "run") == ckpts / LAST
    assert resolve_checkpoint(ckpts) == ckpts / LAST
    with pytest.raises(CheckpointError, match="no best checkpoint in .*train.fid_every"):
        resolve_checkpoint(f"{tmp_path / 'run'}:best")
    (ckpts / BEST).write_bytes(b"y")
    assert resolve_checkpoint(f"{tmp_path / 'run'}:best") == ckpts / BEST
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_checkpoint(tmp_path / "nowhere.pt")
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        resolve_checkpoint(tmp_path)


def test_foreign_newer_incomplete_and_malformed_files_are_one_line_errors(tiny_cfg, tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    cases = {"foreign.pt": "is not a sagan checkpoint"}
    torch.save({"format": FORMAT, "version": VERSION + 1, **payload(tiny_cfg)}, tmp_path / "newer.pt")
    cases["newer.pt"] = "upgrade sagan"
    incomplete = payload(tiny_cfg)
    del incomplete["D"]
    save_checkpoint(tmp_path / "incomplete.pt", incomplete)
    cases["incomplete.pt"] = "incomplete: missing D"
    save_checkpoint(tmp_path / "badstep.pt", {**payload(tiny_cfg), "step": -1})
    cases["badstep.pt"] = "field step is malformed"
    for name, match in cases.items():
        with pytest.raises(CheckpointError, match=match) as e:
            load_checkpoint(tmp_path / name)
        assert "\n" not in str(e.value), name


def test_a_damaged_file_is_refused_and_an_older_step_file_is_suggested(tiny_cfg, tmp_path):
    older = save_checkpoint(tmp_path / step_file_name(1), payload(tiny_cfg, step=1))
    p = save_checkpoint(tmp_path / step_file_name(2), payload(tiny_cfg, step=2))
    data = bytearray(p.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(b ^ 0xFF for b in data[mid : mid + 64])  # flipped bits inside a weight record
    p.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt") as e:
        load_checkpoint(p)
    assert str(older) in str(e.value)


def test_non_finite_weights_are_refused_unless_verification_is_off(tiny_cfg, tmp_path):
    data = payload(tiny_cfg)
    name = next(k for k, v in data["G"].items() if v.is_floating_point())
    data["G"][name] = torch.full_like(data["G"][name], float("nan"))
    p = save_checkpoint(tmp_path / "nan.pt", data)
    with pytest.raises(CheckpointError, match=f"tensor G.{name} holds NaN/Inf"):
        load_checkpoint(p)
    assert load_checkpoint(p, verify=False)["step"] == 5  # a status read does not judge the weights


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_file_that_would_run_code_is_refused_without_running_it(tmp_path, capfd):
    p = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "payload": _RunsCode()}, p)
    with pytest.raises(CheckpointError, match="not a torch checkpoint file"):
        load_checkpoint(p)
    assert "pwned" not in capfd.readouterr().out


def test_rng_states_round_trip_through_a_checkpoint(tiny_cfg, tmp_path):
    data = payload(tiny_cfg)  # building the networks draws from torch's RNG: before the state is taken
    state = rng_state()
    p = save_checkpoint(tmp_path / "rng.pt", {**data, "rng": state})
    first = (torch.rand(3), random.random(), np.random.rand())
    set_rng_state(load_checkpoint(p)["rng"])  # stored as plain lists: readable with weights_only=True
    again = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(first[0], again[0]) and first[1:] == again[1:]
    with pytest.raises(CheckpointError, match="cannot be restored"):
        set_rng_state({"torch": state["torch"], "python": [3, [1, 2], None], "numpy": []})


def test_step_files_link_last_prune_old_ones_and_best_links_the_step_file(tiny_cfg, tmp_path):
    ckpts = tmp_path / CHECKPOINT_DIR
    ckpts.mkdir()
    for step in (10, 20, 30):
        path = write_training_checkpoint(ckpts, step, payload(tiny_cfg, step=step), keep=2)
    assert sorted(step_files(ckpts)) == [20, 30]
    assert (ckpts / LAST).samefile(path)  # a hard link, not a second copy
    best = write_best(ckpts, 30, None)
    assert best.samefile(path)
    loose = write_best(ckpts, 31, payload(tiny_cfg, step=31))  # no step file at that step: its own file
    assert load_checkpoint(loose)["step"] == 31 and not loose.samefile(path)


def test_dropping_an_abandoned_branch_keeps_its_best_under_another_name(tiny_cfg, tmp_path):
    ckpts = tmp_path / CHECKPOINT_DIR
    ckpts.mkdir()
    for step in (10, 20, 30):
        write_training_checkpoint(ckpts, step, payload(tiny_cfg, step=step), keep=5)
    write_best(ckpts, 30, None)
    resumed = load_checkpoint(ckpts / step_file_name(10))
    done = Reconciliation(ckpts, 10, lineage_of(resumed.get("meta")), None, path=ckpts / step_file_name(10)).checkpoints()
    assert sorted(step_files(ckpts)) == [10]
    assert load_checkpoint(ckpts / LAST)["step"] == 10
    assert not (ckpts / BEST).exists() and (ckpts / f"abandoned_best_{step_file_name(30)}").is_file()
    assert any("last.pt now points at step 10" in d for d in done)


# --------------------------------------------------------------------------------------------------
# paths that are not checkpoint files: refused before anything opens them (never a hang, never an OOM)

# each path in a child process, with a timeout and its address space capped 2 GiB above what the imports
# took: without the check, a FIFO blocks in open() and /dev/zero is read until the cap stops it
_PROBE = """
import resource, sys
import hubconf
from sagan.checkpoint import load_checkpoint
from sagan.errors import UserError
vm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (2 << 30), vm + (2 << 30)))
load = {"loader": load_checkpoint, "hubconf": lambda p: hubconf.generator(checkpoint=p)}[sys.argv[1]]
for path in sys.argv[2:]:
    try:
        load(path)
        print("loaded", path, flush=True)
    except UserError as e:
        print("refused", e, flush=True)
    except BaseException as e:
        print("failed", type(e).__name__, path, flush=True)
"""


def probe_loads(how: str, *paths) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", _PROBE, how, *map(str, paths)], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.splitlines()


def test_a_fifo_a_device_and_symlinks_to_them_are_refused_without_reading(tmp_path):
    fifo = tmp_path / "fifo.pt"
    os.mkfifo(fifo)  # no writer: opening it for reading would block forever
    (tmp_path / "zero.pt").symlink_to("/dev/zero")
    (tmp_path / "to_fifo.pt").symlink_to(fifo)
    run = tmp_path / "run" / CHECKPOINT_DIR
    run.mkdir(parents=True)
    os.mkfifo(run / LAST)  # a last.pt planted in a shared run folder
    lines = probe_loads("loader", "/dev/zero", fifo, tmp_path / "zero.pt", tmp_path / "to_fifo.pt", tmp_path / "run")
    assert len(lines) == 5 and all(line.startswith("refused") for line in lines), lines
    assert "/dev/zero is a device, not a regular file" in lines[0]
    assert f"{fifo} is a FIFO, not a regular file" in lines[1]
    assert "zero.pt (a symlink to /dev/zero) is a device" in lines[2]
    assert f"to_fifo.pt (a symlink to {fifo}) is a FIFO" in lines[3]
    assert f"{run / LAST} is a FIFO" in lines[4]
    hub = probe_loads("hubconf", fifo, "/dev/zero")
    assert all(line.startswith("refused") and "not a regular file" in line for line in hub), hub


def test_a_file_larger_than_any_checkpoint_is_refused_before_reading(tiny_cfg, tmp_path, monkeypatch):
    p = save_checkpoint(tmp_path / "a.pt", payload(tiny_cfg))
    monkeypatch.setenv(MAX_BYTES_ENV, str(p.stat().st_size - 1))
    bounded = f"more than any sagan checkpoint .* raise the bound with {MAX_BYTES_ENV}="
    with pytest.raises(CheckpointError, match=bounded):
        load_checkpoint(p)
    monkeypatch.delenv(MAX_BYTES_ENV)
    huge = tmp_path / "sparse.pt"
    with open(huge, "wb") as f:
        f.truncate(MAX_CHECKPOINT_BYTES + 1)  # sparse: no disk used
    with pytest.raises(CheckpointError, match="more than any sagan checkpoint"):
        load_checkpoint(huge)
    assert load_checkpoint(p)["step"] == 5


@pytest.mark.slow  # builds every preset's networks (on the meta device: shapes only, still ~2 min on 2 cores)
def test_the_size_bound_leaves_room_above_the_largest_preset_checkpoint():
    """G, G_ema and D, and Adam's two moments of every G and D parameter, in float32, for every preset:
    the bound is at least 8x the largest (wider networks than the presets still load)."""
    from sagan.config import CONFIG_DIR, load_config

    largest = 0
    for preset in sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")):
        cfg = load_config(preset)
        with torch.device("meta"):
            G, D = Generator.from_config(cfg), Discriminator.from_config(cfg)
        state = sum(t.numel() for t in G.state_dict().values()) * 2 + sum(t.numel() for t in D.state_dict().values())
        moments = 2 * sum(p.numel() for net in (G, D) for p in net.parameters())
        largest = max(largest, 4 * (state + moments))
    assert 1e9 < largest and MAX_CHECKPOINT_BYTES >= 8 * largest
