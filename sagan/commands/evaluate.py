"""``evaluate.py`` / ``sagan-evaluate``: reference statistics and metric reports.

Commands (``main`` is the click group and the ``sagan-evaluate`` console script):

- ``stats``: Inception statistics of a dataset (packed, class-per-folder, or ``demo``) -> ``ref.npz``;
- ``metrics``: a ``samples.npz`` or a checkpoint against ``ref.npz`` -> ``report.json``, ``report.md``,
  ``report_per_class_fid.png``, and a line appended to ``metrics.jsonl`` beside them (``evaluations.jsonl``
  in a training run's folder: its ``metrics.jsonl`` is the training history).

Both run on one device or sharded under ``accelerate launch`` (features gathered, main process writes).
Every output location, the free space and the reference's protocol are checked before the Inception
work starts.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..config import load_config
from ..data import dataset_from_config, open_dataset
from ..errors import UserError, report_user_errors
from ..io import check_free_space, check_writable, new_folders_removed_on_error
from ..scores.intra import FORMER_NAMES, PROTOCOLS
from ..metrics.registry import MetricOptions
from ..metrics.evaluate_files import REPORT_BYTES, MetricsRequest, default_num_samples, evaluate_request
from ..metrics.resize import DEFAULT_RESIZE
from ..metrics.session import dataset_reference
from ..registry import METRICS, RESIZERS
from .options import (Group, RegistryChoice, bn_stats_options, device_option, inception_weights_option, live_help_option,
                      parse_device, read_formats, seed_option, threads_option, truncation_option, use_threads)

DEMO = "demo"


def resize_help() -> str:
    """``--resize``: every registered protocol with its one-line description."""
    return "How images become 299x299 Inception input: " + "; ".join(f"{r.name} = {r.description}"
                                                                      for r in RESIZERS.values()) + "."


def _accelerator(device: str):
    """(accelerator, device): accelerate gives each process its device; ``--device`` picks one when alone."""
    from accelerate import Accelerator

    acc = Accelerator()
    dev = parse_device(device)
    if dev is None:
        return acc, acc.device
    if acc.num_processes > 1:
        raise UserError("--device cannot be combined with `accelerate launch` (each process gets its own device); "
                        "drop --device")
    return acc, dev


def _say(acc, msg: str) -> None:
    if acc.is_main_process:
        click.echo(msg, err=True)


def _check_out(out: str, what: str, needed: int = 0) -> Path:
    """An output file's folder must be writable, with ``needed`` bytes free, before any work (a read-only
    mount, a typo'd path, a full disk); click already refuses a folder as the file."""
    out = Path(out)
    check_writable(out.parent, f"the folder of {what}")
    if needed:
        check_free_space(out, needed, what)
    return out


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """IS / FID / intra-FID / KID / precision-recall with pytorch-fid's Inception (the 2015 TF graph).

    \b
    Examples:
      # reference statistics of the training set (packed by sagan-prepare, a class-per-folder tree, or the demo)
      python evaluate.py stats --data data/imagenet128 --out refs/imagenet128_train.npz
      python evaluate.py stats --data ~/ILSVRC/train --resolution 128 --out refs/imagenet128_train.npz
      python evaluate.py stats --data demo --out refs/demo.npz
      # every metric of a checkpoint's EMA generator (50k class-balanced samples, 50 per class)
      python evaluate.py metrics --ref refs/imagenet128_train.npz --checkpoint runs/00000-demo --out runs/00000-demo/eval/report.json
      # some metrics of saved samples (sample.py writes samples.npz)
      python evaluate.py metrics --ref refs/imagenet128_train.npz --samples samples.npz --metrics fid,is,kid --out eval/report.json
      # on 8 GPUs
      accelerate launch --num_processes 8 evaluate.py metrics --ref ref.npz --checkpoint runs/00000-demo --out runs/00000-demo/eval/report.json
    """


def _open_stats_dataset(data_path: str, resolution: int | None, split: str | None = None, labels: str | None = None):
    """(dataset, source description): ``demo`` is the built-in dataset with the demo preset's settings."""
    if data_path == DEMO:

        cfg = load_config(DEMO)  # the preset's resolution / classes / size / seed: a reference cannot drift
        res = resolution or cfg.model.resolution
        dataset = dataset_from_config(cfg.replace(data={"split": split, "labels": labels}), resolution=res, hflip=False,
                                      uint8=True)
        return dataset, (f"demo (built-in procedural dataset, preset {DEMO}: {res} px, {cfg.model.num_classes} "
                         f"classes, {cfg.data.demo_size} images, seed {cfg.train.seed})")
    try:
        chosen = "".join(f", {k} {v}" for k, v in (("split", split), ("labels", labels)) if v is not None)
        dataset = open_dataset(data_path, resolution=resolution, hflip=False, uint8=True, split=split, labels=labels)
        return dataset, f"{data_path}{f' ({chosen[2:]})' if chosen else ''}"
    except UserError as e:
        if resolution is None and "resolution" in str(e):
            raise UserError(f"{e} (evaluate.py stats: pass --resolution, e.g. 128)") from None
        raise


@main.command()
@live_help_option("--data", "data_path", required=True,
                  live_help=lambda: f"A dataset folder in any format sagan reads ({read_formats()}) or 'demo' (the "
                                    "built-in dataset; a folder named demo is ./demo).")
@click.option("--split", default=None, help="CIFAR / Hugging Face folder: the split, e.g. test.  [default: train]")
@click.option("--labels", default=None, help="CIFAR-100: fine (default) or coarse; Hugging Face: the ClassLabel column.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .npz (mu, sigma + per-class features).")
@click.option("--resolution", type=int, default=None, help="Resize a folder tree to this size first (training resolution, e.g. 128).")
@live_help_option("--resize", type=RegistryChoice(RESIZERS), default=DEFAULT_RESIZE, show_default=True,
                  live_help=resize_help)
@inception_weights_option
@click.option("--batch-size", type=click.IntRange(min=1), default=50, show_default=True, help="Images per Inception batch (per process).")
@device_option
@click.option("--num-workers", type=click.IntRange(min=0), default=None,
              help="Data loading processes.  [default: the cores this process may use]")
@click.option("--per-class/--no-per-class", default=True, show_default=True,
              help="Store the features for intra-FID, KID and precision/recall (N x 2048 x 4 bytes: 10 GB for ImageNet).")
@click.option("--features-dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True,
              help="Storage of the per-class features (float16 halves the file, ~1e-3 relative rounding).")
@threads_option
@report_user_errors
def stats(data_path, split, labels, out, resolution, resize, inception_weights, batch_size, device, num_workers,
          per_class, features_dtype, threads):
    """Reference statistics of a dataset: pytorch-fid-compatible mu/sigma plus per-class features.

    \b
    Examples:
      python evaluate.py stats --data data/imagenet128 --out refs/imagenet128_train.npz
      python evaluate.py stats --data demo --out refs/demo.npz
      python evaluate.py stats --data ~/ILSVRC/train --resolution 128 --resize clean --out refs/imagenet128_clean.npz
      python evaluate.py stats --data ~/data/cifar-10-batches-py --split test --out refs/cifar10_test.npz
    """
    use_threads(threads)
    with new_folders_removed_on_error(Path(out).parent):
        _stats(data_path=data_path, out=out, resolution=resolution, resize=resize, inception_weights=inception_weights,
               batch_size=batch_size, device=device, num_workers=num_workers, per_class=per_class,
               features_dtype=features_dtype, split=split, labels=labels)


def _stats(data_path, out, resolution, resize, inception_weights, batch_size, device, num_workers, per_class,
           features_dtype, split=None, labels=None):
    out = _check_out(out, "--out")
    if num_workers is None:
        num_workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    acc, dev = _accelerator(device)
    dataset, source = _open_stats_dataset(data_path, resolution, split, labels)
    path = dataset_reference(dataset, out, source=source, inception_weights=inception_weights, resize=resize,
                             device=dev, accelerator=acc, batch_size=batch_size, num_workers=num_workers,
                             per_class=per_class, features_dtype=features_dtype)
    classes = getattr(dataset, "num_classes", None)
    held = ("unlabelled" if classes == 0 else "classes unknown" if classes is None else
            f"{classes} class{'es' if classes != 1 else ''}")
    _say(acc, f"wrote {path} ({len(dataset)} images, {held}, resize {resize})")


@main.command()
@click.option("--ref", "ref_path", required=True, help="Reference stats from `evaluate.py stats` (or pytorch-fid's .npz: FID/IS only).")
@click.option("--samples", default=None, help="samples.npz: images uint8 (N,H,W,3), labels (N,) [, class_names, bn_stats].")
@click.option("--checkpoint", default=None, help="Checkpoint (.pt or run dir) to sample from.")
@click.option("--num-samples", type=click.IntRange(min=2), default=None,
              help="With --checkpoint: class-balanced samples.  [default: 50000 (the paper's protocol) on a GPU, 5000 "
                   "on a CPU, where 50k Inception passes take hours; FID grows at fewer samples, so compare equal "
                   "counts]")
@seed_option("With --checkpoint: latent seed (also of the precision/recall subsets and the FID bootstrap).")
@truncation_option
@click.option("--ema/--no-ema", default=True, show_default=True, help="With --checkpoint: use the EMA generator.")
@bn_stats_options
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="report.json (report.md, the PNG and metrics.jsonl go next to it; evaluations.jsonl in a run folder).")
@live_help_option("--metrics", "metric_spec", default=None,
                  live_help=lambda: f"Comma-separated, from {','.join(METRICS)} (default: all that the inputs allow).")
@live_help_option("--resize", type=RegistryChoice(RESIZERS), default=DEFAULT_RESIZE, show_default=True,
                  live_help=resize_help)
@inception_weights_option
@click.option("--splits", type=click.IntRange(min=1), default=10, show_default=True, help="Inception Score splits.")
@click.option("--kid-subsets", type=click.IntRange(min=1), default=100, show_default=True, help="KID: number of random subsets.")
@click.option("--kid-subset-size", type=click.IntRange(min=2), default=1000, show_default=True, help="KID: samples per subset (clipped to the smaller side).")
@click.option("--prdc-samples", type=click.IntRange(min=6), default=10000, show_default=True,
              help="Precision/recall/density/coverage: real and generated features used (random subset).")
@click.option("--fid-bootstrap", type=click.IntRange(min=0), default=0, show_default=True, help="FID 95% interval from N bootstrap resamples (0: none).")
@click.option("--intra-fid/--no-intra-fid", default=True, show_default=True)
@click.option("--intra-fid-protocol", type=click.Choice(PROTOCOLS + tuple(FORMER_NAMES)), default="balanced",
              show_default=True,
              help="balanced: the class-balanced samples themselves (50 per class for 50k); projection: "
                   "--per-class-samples generated per class (Miyato & Koyama 2018), needs --checkpoint. "
                   "(mission: the former name of balanced.)")
@click.option("--per-class-samples", type=click.IntRange(min=2), default=5000, show_default=True, help="Projection protocol: samples per class.")
@click.option("--batch-size", type=click.IntRange(min=1), default=50, show_default=True, help="Images per batch (per process).")
@device_option
@threads_option
@report_user_errors
def metrics(ref_path, samples, checkpoint, num_samples, seed, truncation, ema, bn_stats, standing_batches, out,
            metric_spec, resize, inception_weights, splits, kid_subsets, kid_subset_size, prdc_samples, fid_bootstrap,
            intra_fid, intra_fid_protocol, per_class_samples, batch_size, device, threads):
    """Metrics of samples or a checkpoint against reference statistics (every metric the inputs allow by default).

    \b
    Examples:
      python evaluate.py metrics --ref refs/demo.npz --checkpoint runs/00000-demo --num-samples 5000 --out runs/00000-demo/eval/report.json
      python evaluate.py metrics --ref refs/imagenet128_train.npz --samples samples.npz --metrics fid,is,kid --out eval/report.json
      python evaluate.py metrics --ref refs/imagenet128_train.npz --checkpoint last.pt --bn-stats standing --fid-bootstrap 100 --out eval/report.json
    """

    use_threads(threads)
    if intra_fid_protocol in FORMER_NAMES:
        click.echo(f"note: --intra-fid-protocol {intra_fid_protocol} is now called {FORMER_NAMES[intra_fid_protocol]}",
                   err=True)
    options = MetricOptions(splits=splits, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                            prdc_samples=prdc_samples, fid_bootstrap=fid_bootstrap, seed=seed,
                            intra_fid_protocol=FORMER_NAMES.get(intra_fid_protocol, intra_fid_protocol),
                            per_class_samples=per_class_samples)
    acc, dev = _accelerator(device)
    if num_samples is None:
        num_samples = default_num_samples(dev)
        if checkpoint is not None and dev.type != "cuda":
            _say(acc, f"note: {num_samples} samples on {dev} (50000 take hours on a CPU; FID is higher at fewer "
                      "samples, so compare runs at equal counts); --num-samples 50000 for the paper's protocol")
    with new_folders_removed_on_error(Path(out).parent):  # a refusal leaves no new empty folder behind
        request = MetricsRequest(ref=ref_path, out=_check_out(out, "--out", REPORT_BYTES), samples=samples,
                                 checkpoint=checkpoint, num_samples=num_samples, seed=seed, truncation=truncation,
                                 ema=ema, bn_stats=bn_stats, standing_batches=standing_batches, metrics=metric_spec,
                                 exclude=() if intra_fid else ("intra_fid",), resize=resize,
                                 inception_weights=inception_weights, batch_size=batch_size, options=options)
        evaluate_request(request, acc, dev, show=click.echo, note=lambda line: click.echo(line, err=True))


if __name__ == "__main__":
    main(prog_name="evaluate.py")
