"""Fitting a device: ``train.py --dry-run`` measures a real step at two micro-batch sizes and writes nothing;
``--grad-accum auto`` keeps the global batch (on CPU the config's split); memory sizes parse or fail in one
line; the live-bytes counter sees what a step allocates."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from sagan.errors import UserError
from sagan.commands.train import main as train_cli
from sagan.training.fit import _live_peak, parse_memory

TINY = ["model.g_ch=16", "model.d_ch=16", "data.demo_size=64", "train.batch_size=8", "train.num_workers=0"]
TINY_CLI = [a for o in TINY for a in ("--set", o)]


def test_dry_run_prints_params_flops_memory_and_the_fitting_micro_batch_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(train_cli, [*TINY_CLI, "--dry-run", "--memory", "24GiB"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    err = result.stderr
    assert "parameters: G 0.19M + D 0.15M" in err
    assert "FLOPs per training image:" in err and "GFLOP" in err
    assert "peak memory:" in err and "at micro-batch 4" in err and "at 8;" in err and "per image on top of" in err
    # 8 images per process fit 24 GiB easily: no accumulation needed
    assert "fits 24.00 GiB: micro-batch 8" in err and "--grad-accum 1 at global batch 8" in err
    assert list(tmp_path.iterdir()) == []  # no run directory


def test_dry_run_with_a_tiny_budget_picks_a_smaller_micro_batch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(train_cli, [*TINY_CLI, "--dry-run", "--memory", "12MiB"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    line = next(s for s in result.stderr.splitlines() if s.startswith("fits "))
    assert "micro-batch 8" not in line, line  # a budget below the micro-batch-8 peak


def test_grad_accum_auto_on_cpu_keeps_the_configs_split(tmp_path):
    result = CliRunner().invoke(train_cli, [*TINY_CLI, "--grad-accum", "auto", "--max-steps", "1", "--no-progress",
                                            "--outdir", str(tmp_path / "r"), "--set", "train.grad_accum=2"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "--grad-accum auto: no GPU here, keeping train.grad_accum=2 (micro-batch 4 on 1 process(es))" in result.stderr
    assert "global batch 8 = 4 x 1 process(es) x 2 accumulation" in (tmp_path / "r" / "log.txt").read_text()


def test_grad_accum_rejects_words_other_than_auto():
    result = CliRunner().invoke(train_cli, ["--grad-accum", "many", "--dry-run"])
    assert result.exit_code == 2 and "neither an integer >= 1 nor auto" in result.output


def test_memory_sizes_parse_or_fail_in_one_line():
    assert parse_memory("24GiB") == 24 * 2**30 and parse_memory("16GB") == 16 * 10**9 and parse_memory("512mib") == 2**29
    for bad in ("lots", "-3GiB", "24 parsecs"):
        with pytest.raises(UserError, match="is not a memory size"):
            parse_memory(bad)


def test_live_bytes_count_a_steps_activations_on_top_of_the_weights():
    m = torch.nn.Conv2d(3, 16, 3, padding=1)
    opt = torch.optim.Adam(m.parameters())

    def step(b):
        m(torch.randn(b, 3, 32, 32)).square().mean().backward()
        opt.step()
        opt.zero_grad()

    step(1)
    weights = sum(p.numel() * 4 for p in m.parameters())
    peaks = {b: _live_peak(lambda: step(b), m, optimizers=(opt,)) for b in (4, 8)}
    out = 16 * 32 * 32 * 4  # one image's output activation, float32
    assert peaks[4] >= 3 * weights + 4 * out  # weights, Adam's two moments, the batch's output
    assert peaks[8] - peaks[4] >= 4 * out  # grows with the batch


def test_grad_accum_auto_halves_past_out_of_memory_errors_only():
    """The search behind --grad-accum auto (on a GPU): a micro-batch whose step raises torch's out-of-memory
    error is halved, the first that runs is taken, any other error propagates, and none fitting gives 0."""
    from sagan.training.fit import largest_that_runs

    tried = []

    def probe(limit):
        def run(micro):
            tried.append(micro)
            if micro > limit:
                raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {micro} GiB")
        return run

    assert largest_that_runs([8, 4, 2, 1], probe(2)) == 2 and tried == [8, 4, 2]
    assert largest_that_runs([8, 4, 2, 1], probe(0)) == 0
    with pytest.raises(ValueError, match="a bug"):
        largest_that_runs([8, 4], lambda micro: (_ for _ in ()).throw(ValueError("a bug")))


def test_dry_run_of_an_unconditional_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(train_cli, [*TINY_CLI, "--set", "model.num_classes=0", "--dry-run"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "0 classes" in result.stderr and "FLOPs per training image:" in result.stderr


def test_dry_run_estimates_seconds_per_step_and_time_to_the_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(train_cli, [*TINY_CLI, "--dry-run", "--max-steps", "3600"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    line = next(s for s in result.stderr.splitlines() if s.startswith("time: about "))
    seconds = float(line.split()[2])
    assert seconds > 0 and "(measured; micro-batch 8 x 1 accumulation on 1 process(es)" in line
    assert "for train.max_steps 3600" in line


def test_step_time_is_linear_in_the_micro_batch_between_and_beyond_the_probes():
    from sagan.training.fit import Probe, duration, step_seconds

    a, b = Probe(4, 0, 0.0, seconds=1.0), Probe(8, 0, 0.0, seconds=1.8)
    assert step_seconds(a, b, 8, 1) == pytest.approx(1.8)
    assert step_seconds(a, b, 16, 2) == pytest.approx(2 * (1.8 + 0.2 * 8))
    assert (duration(42), duration(17 * 60), duration(3.2 * 3600), duration(2.5 * 86400)) == \
        ("42 s", "17 min", "3.2 h", "2.5 days")


def test_dry_run_says_when_only_the_even_splits_of_the_batch_do_not_fit(tmp_path, monkeypatch):
    """--batch-size 100000000 --memory 1GiB: hundreds of images fit, but the halvings of 10^8 stop at 390625;
    the message used to say that not even one image fits."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(train_cli, [*TINY_CLI, "--dry-run", "--batch-size", "100000000", "--memory", "1GiB"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    line = next(s for s in result.stderr.splitlines() if s.startswith("fits "))
    assert "even 1 image" not in line
    assert "the micro-batches that split global batch 100000000 evenly on 1 process(es) are 390625 or more" in line
    assert "pick a --batch-size that halves down to" in line
