#!/usr/bin/env python
"""Seconds per training step (one D update + one G update) and peak memory, ours vs a reference.

"Ours" is the real training step (``sagan.training.step.GANStep`` as the ``Trainer`` builds it: data loading
from an in-memory dataset, one D call on real+fake, G step, EMA update). "Reference" is the same networks written the way
StudioGAN's SAGAN writes them (``benchmarks/reference_nets.py``: explicit bmm attention, upsample-then-1x1
shortcut in G, 1x1-then-pool in D, legacy spectral-norm hooks, D called on real and fake separately).
Each (preset, implementation) runs in its own process, so that peak memory is its own.

    # default: demo preset at its batch and the paper preset (batch 4 on CPU, 64 on GPU), fp32
    python benchmarks/train_step.py
    # StudioGAN's CIFAR-10 SAGAN recipe (batch 64, 5 D steps per G step) against StudioGAN-style networks
    python benchmarks/train_step.py --preset cifar10
    # StudioGAN's CIFAR-10 BigGAN (big_resnet: shared embedding, hierarchical z) against StudioGAN-style networks
    python benchmarks/train_step.py --preset cifar10_biggan --batch-size 8 --steps 3
    # the ImageNet BigGAN preset's step without timing: parameters, FLOPs, memory plan for an 80 GB GPU
    python benchmarks/train_step.py --preset biggan128 --dry-run --memory 80GB
    # a GPU run of the paper preset as it trains (bf16, channels_last), and with torch.compile
    python benchmarks/train_step.py --preset imagenet128 --batch-size 64 --mixed-precision bf16 --channels-last
    python benchmarks/train_step.py --preset imagenet128 --batch-size 64 --mixed-precision bf16 --channels-last --compile
    # ours eager vs compiled x fp32 vs bf16, side by side (CPU: the demo preset, a few steps each)
    python benchmarks/train_step.py --grid --preset demo --steps 3
    # gradient penalties (issue 28): the plain step, the penalised step, and the penalised step written the
    # straightforward way (autograd through D's weights too in the penalty's first backward), with ratios
    python benchmarks/train_step.py --preset demo --r1-gamma 0.05 --r2-gamma 0.05 --loss rpgan

Timing: the best of ``--steps`` timed steps (and the median), so that other work on a shared machine
inflates the numbers less. The issue's target: a paper-preset step at least as fast as the reference (ratio ours/reference <= 1).
Peak memory: CUDA ``max_memory_allocated``; on CPU the process's peak resident set size (includes the
~0.4 GB of the Python/torch runtime, so compare the two columns rather than read them as model memory).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class RandomImages(torch.utils.data.Dataset):
    """In-memory random images with the attributes the training loop reads."""

    def __init__(self, n: int, resolution: int, num_classes: int):
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(n, 3, resolution, resolution, generator=g) * 2 - 1
        self.y = torch.arange(n) % num_classes
        self.resolution, self.num_classes = resolution, num_classes
        self.class_names = [f"class_{i}" for i in range(num_classes)]

    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _config(preset: str, batch: int, mp: str, channels_last: bool, compile_: bool):
    from sagan.config import load_config

    return load_config(preset).replace(train={"batch_size": batch, "grad_accum": 1, "mixed_precision": mp,
                                              "channels_last": channels_last, "compile": compile_, "num_workers": 0})


def time_steps(step, device, warmup: int, steps: int) -> dict:
    """Per-step wall times; ``sec_per_step`` is the best (minimum) step, the usual way to time code on a
    machine shared with other work (Python's timeit does the same), the median is reported beside it;
    ``first_step_sec`` is the first warm-up step (with ``--compile``: compilation included);
    ``cpu_sec_per_step``: the best step's process CPU time (with one thread, the work itself, whatever else
    shares the cores; not meaningful on a GPU)."""
    t0 = time.perf_counter()
    for i in range(warmup):
        step()
        if i == 0:
            _sync(device)
            first = time.perf_counter() - t0
    _sync(device)
    times, cpu = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"sec_per_step": min(times), "median_sec_per_step": statistics.median(times), "times": times,
            "cpu_sec_per_step": min(cpu), "first_step_sec": first if warmup else float("nan")}


def step_flops(step) -> float:
    """Model FLOPs of one call of ``step`` (torch's FlopCounterMode: matmuls and convolutions, forward and
    backward), for MFU = FLOPs / (seconds x the device's peak)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return float(counter.get_total_flops())


def gradients_through_the_weights(gan):
    """The straightforward penalty formulation for the ``penalty_through_weights`` worker: the first backward
    differentiates D's summed logits with respect to the images and every D weight (graphs of the weight
    gradients built, then dropped), as ``loss.backward(create_graph=True)`` reading ``x.grad`` would."""

    def input_gradients(logits, inputs):
        params = [p for p in gan.D_raw.parameters() if p.requires_grad]
        grads = torch.autograd.grad(logits.float().sum(), [*inputs, *params], create_graph=True, allow_unused=True)
        return [g.float().square().flatten(1).sum(1) for g in grads[:len(inputs)]]

    return input_gradients


def run_ours(cfg, warmup: int, steps: int, through_weights: bool = False) -> dict:
    import itertools

    from sagan.training import Trainer

    m = cfg.model
    data = RandomImages(4 * cfg.train.batch_size, m.resolution, m.num_classes)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, outdir=Path(tmp) / "run", progress=False, dataset=data)
        if through_weights:
            trainer.gan._input_gradients = gradients_through_the_weights(trainer.gan)
        counter = itertools.count(1)

        def step():
            trainer.gan(next(counter), trainer.data.next)

        timing = time_steps(step, trainer.device, warmup, steps)
        # (FlopCounterMode's module hooks refuse autograd.grad with respect to leaf weights: none for that worker)
        flops = step_flops(step) if not (cfg.train.compile or through_weights) else None
        return {**timing, "flops_per_step": flops, "peak_memory_gb": _peak_memory_gb(trainer.device),
                "device": str(trainer.device)}


def run_reference(cfg, warmup: int, steps: int) -> dict:
    from reference_nets import RefDiscriminator, RefGenerator, reference_step

    t, m = cfg.train, cfg.model
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(t.seed)
    fmt = torch.channels_last if t.channels_last else torch.preserve_format
    G = RefGenerator(cfg).to(device, memory_format=fmt)
    D = RefDiscriminator(cfg).to(device, memory_format=fmt)
    opt_G = torch.optim.Adam(G.parameters(), lr=t.lr_g, betas=(t.beta1, t.beta2), eps=t.adam_eps)
    opt_D = torch.optim.Adam(D.parameters(), lr=t.lr_d, betas=(t.beta1, t.beta2), eps=t.adam_eps)
    if t.compile:
        G, D = torch.compile(G), torch.compile(D)
    data = RandomImages(t.batch_size, m.resolution, m.num_classes)
    real = data.x.to(device, memory_format=fmt)
    labels = data.y.to(device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.mixed_precision)

    def autocast():
        return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    def step():
        reference_step(G, D, opt_G, opt_D, real, labels, m.z_dim, m.num_classes, autocast, t.d_steps)

    timing = time_steps(step, device, warmup, steps)
    return {**timing, "peak_memory_gb": _peak_memory_gb(device), "device": str(device)}


def run_worker(spec: dict, mixed_precision: str = "no", channels_last: bool = False, compile_: bool = False) -> dict:
    """One measurement in a fresh process (its own peak memory, its own compile caches)."""
    cmd = [sys.executable, __file__, "--worker", json.dumps(spec), "--mixed-precision", mixed_precision,
           "--channels-last" if channels_last else "--no-channels-last", "--compile" if compile_ else "--no-compile"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=f"{ROOT / 'benchmarks'}{os.pathsep}{ROOT}"))
    if proc.returncode != 0:
        raise click.ClickException(f"{spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def batch_and_steps(preset: str, batch_size: int | None, steps: int | None) -> tuple[int, int]:
    """The batch and timed steps of a preset: the given ones, else the preset's batch (4 for the paper preset
    on CPU, 64 on GPU) and 10 steps (3 for the paper preset on CPU, 20 on GPU)."""
    from sagan.config import load_config

    gpu = torch.cuda.is_available()
    paper = load_config(preset).model.resolution >= 128
    batch = batch_size or (load_config(preset).train.batch_size if not paper else (64 if gpu else 4))
    return batch, steps or (20 if gpu else (3 if paper else 10))


def precision_compile_grid(presets, batch_size, steps, warmup, channels_last, json_out) -> None:
    """``--grid``: our step eager vs compiled, fp32 vs bf16, in one table (s/step best, speed-up over eager
    fp32); the first compiled step's time (compilation included) beside it."""
    gpu = torch.cuda.is_available()
    rows = []
    for preset in presets:
        batch, n = batch_and_steps(preset, batch_size, steps)
        for comp in (False, True):
            for mp in ("no", "bf16"):
                w = warmup if warmup is not None else (3 if comp else 1)
                spec = {"preset": preset, "impl": "ours", "batch": batch, "steps": n, "warmup": w, "mp": mp,
                        "compile": comp}
                r = run_worker(spec, mp, channels_last, comp)
                rows.append({"preset": preset, "batch_size": batch, "compile": comp, "mixed_precision": mp, **r})
                click.echo(f"{preset:>12s} {'compiled' if comp else 'eager':>8s} {mp:>4s}: {r['sec_per_step']:.3f} s/step "
                           f"best, first step {r['first_step_sec']:.1f} s", err=True)
    click.echo(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, "
               f"{'GPU ' + torch.cuda.get_device_name() if gpu else 'CPU'}, channels_last {channels_last}")
    click.echo(f"{'preset':>12s} {'batch':>5s} {'mode':>8s} {'dtype':>5s} {'s/step':>8s} {'vs eager fp32':>13s} "
               f"{'first step s':>12s} {'peak GB':>8s}")
    for r in rows:
        base = next(b for b in rows if b["preset"] == r["preset"] and not b["compile"] and b["mixed_precision"] == "no")
        click.echo(f"{r['preset']:>12s} {r['batch_size']:5d} {'compiled' if r['compile'] else 'eager':>8s} "
                   f"{'bf16' if r['mixed_precision'] == 'bf16' else 'fp32':>5s} {r['sec_per_step']:8.3f} "
                   f"{base['sec_per_step'] / r['sec_per_step']:12.2f}x {r['first_step_sec']:12.1f} "
                   f"{r['peak_memory_gb']:8.2f}")
    if json_out:
        Path(json_out).write_text(json.dumps(rows, indent=2))


def penalty_comparison(presets, batch_size, steps, warmup, mixed_precision, channels_last, loss, r1, r2, json_out):
    """``--r1-gamma`` / ``--r2-gamma``: the plain step, the penalised step and the penalised step with the
    straightforward first backward (through D's weights too), one process each, one after the other."""
    from sagan.config import load_config

    gpu = torch.cuda.is_available()
    rows = []
    for preset in presets:
        batch, n = batch_and_steps(preset, batch_size, steps)
        w = warmup if warmup is not None else 1
        plain = {"loss": loss} if loss else {}
        penalised = {**plain, "r1_gamma": r1, "r2_gamma": r2}
        row = {"preset": preset, "batch_size": batch, "loss": loss or load_config(preset).train.loss,
               "r1_gamma": r1, "r2_gamma": r2}
        for name, train, through in (("plain", plain, False), ("penalised", penalised, False),
                                     ("straightforward", penalised, True)):
            spec = {"preset": preset, "impl": "ours", "batch": batch, "steps": n, "warmup": w, "train": train,
                    "through_weights": through}
            row[name] = run_worker(spec, mixed_precision, channels_last, False)
            click.echo(f"{preset:>12s} {name:>15s}: {row[name]['sec_per_step']:.3f} s/step best, "
                       f"{row[name]['median_sec_per_step']:.3f} median, {row[name]['cpu_sec_per_step']:.3f} CPU s "
                       "best", err=True)
        rows.append(row)
    click.echo(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, "
               f"{'GPU ' + torch.cuda.get_device_name() if gpu else 'CPU'}; mixed precision {mixed_precision}; "
               f"R1 gamma {r1:g}, R2 gamma {r2:g}")
    # wall seconds (best step), and on a CPU the process CPU seconds, robust to other jobs on the cores
    clocks = [("sec_per_step", "wall")] + ([] if gpu else [("cpu_sec_per_step", "CPU")])
    click.echo(f"{'preset':>12s} {'batch':>5s} {'loss':>11s} {'clock':>5s} {'plain s':>8s} {'penalised s':>11s} "
               f"{'straight s':>10s} {'pen/plain':>9s} {'pen/straight':>12s}")
    for r in rows:
        for key, clock in clocks:
            p, q, st = (r[k][key] for k in ("plain", "penalised", "straightforward"))
            r[f"{clock}_ratio_penalised_over_plain"], r[f"{clock}_ratio_penalised_over_straightforward"] = q / p, q / st
            click.echo(f"{r['preset']:>12s} {r['batch_size']:5d} {r['loss']:>11s} {clock:>5s} {p:8.3f} {q:11.3f} "
                       f"{st:10.3f} {q / p:9.2f} {q / st:12.2f}")
    if json_out:
        Path(json_out).write_text(json.dumps(rows, indent=2))


def dry_runs(presets, batch_size, mixed_precision, channels_last, memory) -> None:
    """``--dry-run``: the step of each preset as ``train.py --dry-run`` plans it (its global batch unless
    ``--batch-size``), on this machine's device."""
    from sagan.config import load_config
    from sagan.training.fit import dry_run, parse_memory
    from sagan.training.loop import make_accelerator

    acc = make_accelerator(mixed_precision)
    for preset in presets:
        cfg = load_config(preset).replace(train={"mixed_precision": mixed_precision, "channels_last": channels_last,
                                                 **({"batch_size": batch_size, "grad_accum": 1} if batch_size else {})})
        dry_run(cfg, acc, parse_memory(memory), say=click.echo)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--preset", "presets", multiple=True, default=("demo", "imagenet128"), show_default=True,
              help="Config preset(s) to time.")
@click.option("--impl", type=click.Choice(["both", "ours", "reference"]), default="both", show_default=True)
@click.option("--batch-size", type=int, default=None,
              help="Batch per step.  [default: the demo preset's; 4 for the paper preset on CPU, 64 on GPU]")
@click.option("--steps", type=int, default=None, help="Timed steps.  [default: 10 demo, 3 paper preset on CPU, 20 on GPU]")
@click.option("--warmup", type=int, default=None, help="Untimed steps first.  [default: 1, 3 with --compile]")
@click.option("--mixed-precision", type=click.Choice(["no", "bf16", "fp16"]), default="no", show_default=True)
@click.option("--channels-last/--no-channels-last", default=False, show_default=True)
@click.option("--compile/--no-compile", "compile_", default=False, show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Also write the results here.")
@click.option("--peak-tflops", type=float, default=None,
              help="The device's dense peak for the dtype in use (e.g. H100 SXM bf16: 989), to print MFU.")
@click.option("--grid", is_flag=True,
              help="Instead: ours eager vs compiled x fp32 vs bf16, side by side (one process per cell).")
@click.option("--r1-gamma", type=float, default=0.0,
              help="Instead: time the plain step, the step with this R1 (and --r2-gamma) penalty, and the same "
                   "penalty through D's weights too (the straightforward formulation), with ratios.")
@click.option("--r2-gamma", type=float, default=0.0, help="R2 gamma of that comparison.")
@click.option("--loss", default=None, help="train.loss of that comparison (e.g. rpgan).  [default: the preset's]")
@click.option("--dry-run", is_flag=True,
              help="Instead: each preset's step without timing (train.py --dry-run): parameters, FLOPs per image, "
                   "peak memory and the micro-batch that fits --memory.")
@click.option("--memory", default="80GB", show_default=True, metavar="SIZE", help="Memory budget of --dry-run.")
@click.option("--worker", hidden=True, default=None)
def main(presets, impl, batch_size, steps, warmup, mixed_precision, channels_last, compile_, json_out, peak_tflops,
         grid, r1_gamma, r2_gamma, loss, dry_run, memory, worker):
    """Time one G+D training step of ours vs the StudioGAN-style reference formulation."""
    gpu = torch.cuda.is_available()
    if dry_run:
        return dry_runs(presets, batch_size, mixed_precision, channels_last, memory)
    if grid and worker is None:
        return precision_compile_grid(presets, batch_size, steps, warmup, channels_last, json_out)
    if (r1_gamma > 0 or r2_gamma > 0) and worker is None:
        return penalty_comparison(presets, batch_size, steps, warmup, mixed_precision, channels_last, loss, r1_gamma,
                                  r2_gamma, json_out)
    if worker is not None:  # child process: one measurement, printed as JSON
        args = json.loads(worker)
        cfg = _config(args["preset"], args["batch"], args.get("mp", mixed_precision), channels_last,
                      args.get("compile", compile_))
        cfg = cfg.replace(train=args["train"]) if args.get("train") else cfg
        if args["impl"] == "ours":
            print(json.dumps(run_ours(cfg, args["warmup"], args["steps"], args.get("through_weights", False))))
        else:
            print(json.dumps(run_reference(cfg, args["warmup"], args["steps"])))
        return
    results = []
    impls = ["ours", "reference"] if impl == "both" else [impl]
    for preset in presets:
        from sagan.config import load_config

        batch, n = batch_and_steps(preset, batch_size, steps)
        w = warmup if warmup is not None else (3 if compile_ else 1)
        row = {"preset": preset, "batch_size": batch, "mixed_precision": mixed_precision,
               "channels_last": channels_last, "compile": compile_, "steps": n}
        for which in impls:
            spec = {"preset": preset, "impl": which, "batch": batch, "steps": n, "warmup": w}
            row[which] = run_worker(spec, mixed_precision, channels_last, compile_)
            click.echo(f"{preset:>12s} {which:>9s}: {row[which]['sec_per_step']:.3f} s/step best, "
                       f"{row[which]['median_sec_per_step']:.3f} median, "
                       f"peak {row[which]['peak_memory_gb']:.2f} GB ({row[which]['device']}, batch {batch})", err=True)
        if len(impls) == 2:
            row["ratio_ours_over_reference"] = row["ours"]["sec_per_step"] / row["reference"]["sec_per_step"]
        ours = row.get("ours") or {}
        if ours.get("flops_per_step"):
            tflops = ours["flops_per_step"] / ours["sec_per_step"] / 1e12
            d_steps = load_config(preset).train.d_steps  # each D step takes a batch of real images
            row["images_per_s"] = batch * d_steps / ours["sec_per_step"]
            row["achieved_tflops"] = tflops
            mfu = f", MFU {tflops / peak_tflops:.1%} of {peak_tflops:g}" if peak_tflops else ""
            click.echo(f"{preset:>12s}      ours: {ours['flops_per_step'] / 1e9:.1f} GFLOP/step, {tflops:.3f} TFLOP/s, "
                       f"{row['images_per_s']:.1f} images/s{mfu}", err=True)
        results.append(row)

    click.echo(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, "
               f"{'GPU ' + torch.cuda.get_device_name() if gpu else 'CPU'}; mixed precision {mixed_precision}, "
               f"channels_last {channels_last}, compile {compile_}")
    click.echo(f"{'preset':>12s} {'batch':>5s} " + " ".join(f"{i + ' s/step':>18s} {i + ' peak GB':>18s}" for i in impls)
               + ("   ours/ref" if len(impls) == 2 else ""))
    for r in results:
        cols = " ".join(f"{r[i]['sec_per_step']:18.3f} {r[i]['peak_memory_gb']:18.2f}" for i in impls)
        ratio = f"   {r['ratio_ours_over_reference']:8.2f}" if len(impls) == 2 else ""
        click.echo(f"{r['preset']:>12s} {r['batch_size']:5d} {cols}{ratio}")
    if json_out:
        Path(json_out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
