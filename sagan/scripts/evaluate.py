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
import time
from pathlib import Path

import click
import numpy as np
import torch

from ..sampling.bn_stats import BN_MODES, bn_mode_description, prepare_generator
from ..errors import UserError, report_user_errors
from ..io import check_free_space, check_writable, new_folders_removed_on_error
from ..metrics import evaluation as ev
from ..metrics.classes import pair_classes
from ..metrics.history import EVAL_HISTORY_FILE, append_record
from ..metrics.registry import METRIC_NAMES, METRICS, MetricOptions, resolve_metrics, scalars
from ..metrics.report import write_report
from ..metrics.resize import DEFAULT_RESIZE, RESIZE_MODES, resize_description
from ..metrics.samples import load_samples
from ..metrics.stats import load_ref
from ..metrics.weights import WEIGHTS_HELP, WEIGHTS_SHA256_PREFIX, load_inception
from ..training.rundir import CONFIG_FILE, METRICS_FILE
from ..sampling.latents import class_balanced_labels, model_classes

RESIZE_HELP = ("How images become 299x299 Inception input: tf1 = the paper's TF code (and torch-fidelity, TTUR, "
               "stylegan2-ada), pytorch-fid, or clean (clean-fid).")
DEMO = "demo"


def _accelerator(device: str | None):
    """(accelerator, device): accelerate gives each process its device; ``--device`` picks one when alone."""
    from accelerate import Accelerator

    acc = Accelerator()
    if device is None:
        return acc, acc.device
    if acc.num_processes > 1:
        raise UserError("--device cannot be combined with `accelerate launch` (each process gets its own device); "
                        "drop --device")
    try:
        dev = torch.device(device)
        torch.empty(0, device=dev)
    except (RuntimeError, AssertionError) as e:
        raise UserError(f"--device {device!r} is not usable here ({' '.join(str(e).split())[:120]}); "
                        "try --device cpu or cuda") from None
    return acc, dev


def _say(acc, msg: str) -> None:
    if acc.is_main_process:
        click.echo(msg, err=True)


REPORT_BYTES = 4 * 1000 * 1000  # report.json, report.md and the histogram of 1000 per-class FIDs, with room


def _check_out(out: str, what: str, needed: int = 0) -> Path:
    """An output file's folder must be writable, with ``needed`` bytes free, before any work (a read-only
    mount, a typo'd path, a full disk); click already refuses a folder as the file."""
    out = Path(out)
    check_writable(out.parent, f"the folder of {what}")
    if needed:
        check_free_space(out, needed, what)
    return out


def history_file(folder: Path) -> Path:
    """Where ``evaluate.py metrics`` appends its record: ``metrics.jsonl`` beside the report, except in a
    training run's folder, whose ``metrics.jsonl`` is the trainer's own history (RUN:best, the collapse
    watch and the experiments' reports read it): there ``evaluations.jsonl``."""
    is_run = (folder / CONFIG_FILE).is_file() or (folder / "checkpoints").is_dir()
    return folder / (EVAL_HISTORY_FILE if is_run else METRICS_FILE)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


def _open_stats_dataset(data_path: str, resolution: int | None):
    """(dataset, source description): ``demo`` is the built-in dataset with the demo preset's settings."""
    from ..data import open_dataset

    if data_path == DEMO:
        from ..config import load_config

        cfg = load_config(DEMO)  # the preset's resolution / classes / size / seed: a reference cannot drift
        res = resolution or cfg.model.resolution
        dataset = open_dataset(None, resolution=res, hflip=False, uint8=True, demo_size=cfg.data.demo_size,
                               demo_classes=cfg.model.num_classes, seed=cfg.train.seed)
        return dataset, (f"demo (built-in procedural dataset, preset {DEMO}: {res} px, {cfg.model.num_classes} "
                         f"classes, {cfg.data.demo_size} images, seed {cfg.train.seed})")
    try:
        return open_dataset(data_path, resolution=resolution, hflip=False, uint8=True), str(data_path)
    except UserError as e:
        if resolution is None and "resolution" in str(e):
            raise UserError(f"{e} (evaluate.py stats: pass --resolution, e.g. 128)") from None
        raise


@main.command()
@click.option("--data", "data_path", required=True,
              help="Packed dataset folder, class-per-folder image tree, or 'demo' (the built-in dataset; a folder "
                   "named demo is ./demo).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .npz (mu, sigma + per-class features).")
@click.option("--resolution", type=int, default=None, help="Resize a folder tree to this size first (training resolution, e.g. 128).")
@click.option("--resize", type=click.Choice(RESIZE_MODES), default=DEFAULT_RESIZE, show_default=True, help=RESIZE_HELP)
@click.option("--inception-weights", default=None, help=WEIGHTS_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=50, show_default=True, help="Images per Inception batch (per process).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: accelerate's choice).")
@click.option("--num-workers", type=click.IntRange(min=0), default=None,
              help="Data loading processes.  [default: the cores this process may use]")
@click.option("--per-class/--no-per-class", default=True, show_default=True,
              help="Store the features for intra-FID, KID and precision/recall (N x 2048 x 4 bytes: 10 GB for ImageNet).")
@click.option("--features-dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True,
              help="Storage of the per-class features (float16 halves the file, ~1e-3 relative rounding).")
@report_user_errors
def stats(data_path, out, resolution, resize, inception_weights, batch_size, device, num_workers, per_class,
          features_dtype):
    """Reference statistics of a dataset: pytorch-fid-compatible mu/sigma plus per-class features.

    \b
    Examples:
      python evaluate.py stats --data data/imagenet128 --out refs/imagenet128_train.npz
      python evaluate.py stats --data demo --out refs/demo.npz
      python evaluate.py stats --data ~/ILSVRC/train --resolution 128 --resize clean --out refs/imagenet128_clean.npz
    """
    with new_folders_removed_on_error(Path(out).parent):
        _stats(data_path, out, resolution, resize, inception_weights, batch_size, device, num_workers, per_class,
               features_dtype)


def _stats(data_path, out, resolution, resize, inception_weights, batch_size, device, num_workers, per_class,
           features_dtype):
    out = _check_out(out, "--out")
    if num_workers is None:
        num_workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    acc, dev = _accelerator(device)
    dataset, source = _open_stats_dataset(data_path, resolution)
    ev.check_reference_space(out, len(dataset), per_class, features_dtype)  # before any Inception work
    inception = load_inception(inception_weights, device=dev, resize=resize)
    path = ev.reference_stats(dataset, inception, out, batch_size, num_workers, acc, features_dtype, per_class,
                              source=source)
    _say(acc, f"wrote {path} ({len(dataset)} images, {getattr(dataset, 'num_classes', '?')} classes, resize {resize})")


def _metric_names(spec: str | None, intra_fid: bool, ref, num_samples: int, acc,
                  labelled: bool = True) -> tuple[tuple, dict]:
    """(metrics to compute, {skipped: why}), with one-line errors before any work: ``--metrics`` or every
    metric the inputs allow; ``--no-intra-fid`` drops intra-FID."""
    names, skipped = resolve_metrics(spec, ref, num_samples, has_labels=labelled)
    if not intra_fid:
        names = tuple(n for n in names if n != "intra_fid")
        skipped.pop("intra_fid", None)
    if not names:
        raise UserError("no metric left to compute (--metrics intra_fid with --no-intra-fid?)")
    if "intra_fid" in skipped:
        _say(acc, f"warning: skipping intra-FID: {skipped['intra_fid']}")
    return names, skipped


@main.command()
@click.option("--ref", "ref_path", required=True, help="Reference stats from `evaluate.py stats` (or pytorch-fid's .npz: FID/IS only).")
@click.option("--samples", default=None, help="samples.npz: images uint8 (N,H,W,3), labels (N,) [, class_names, bn_stats].")
@click.option("--checkpoint", default=None, help="Checkpoint (.pt or run dir) to sample from.")
@click.option("--num-samples", type=click.IntRange(min=2), default=50000, show_default=True, help="With --checkpoint: class-balanced samples.")
@click.option("--seed", default=0, show_default=True, help="With --checkpoint: latent seed.")
@click.option("--truncation", type=float, default=None, help="With --checkpoint: truncate z to [-T, T].")
@click.option("--ema/--no-ema", default=True, show_default=True, help="With --checkpoint: use the EMA generator.")
@click.option("--bn-stats", type=click.Choice(BN_MODES), default=None,
              help="With --checkpoint: G's BN statistics: running (default), batch, or standing (BigGAN).")
@click.option("--standing-batches", type=click.IntRange(min=1), default=16, show_default=True,
              help="Batches that --bn-stats standing accumulates.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="report.json (report.md, the PNG and metrics.jsonl go next to it; evaluations.jsonl in a run folder).")
@click.option("--metrics", "metric_spec", default=None,
              help=f"Comma-separated, from {','.join(METRIC_NAMES)} (default: all that the inputs allow).")
@click.option("--resize", type=click.Choice(RESIZE_MODES), default=DEFAULT_RESIZE, show_default=True, help=RESIZE_HELP)
@click.option("--inception-weights", default=None, help=WEIGHTS_HELP)
@click.option("--splits", type=click.IntRange(min=1), default=10, show_default=True, help="Inception Score splits.")
@click.option("--kid-subsets", type=click.IntRange(min=1), default=100, show_default=True, help="KID: number of random subsets.")
@click.option("--kid-subset-size", type=click.IntRange(min=2), default=1000, show_default=True, help="KID: samples per subset (clipped to the smaller side).")
@click.option("--prdc-samples", type=click.IntRange(min=6), default=10000, show_default=True,
              help="Precision/recall/density/coverage: real and generated features used (random subset).")
@click.option("--fid-bootstrap", type=click.IntRange(min=0), default=0, show_default=True, help="FID 95% interval from N bootstrap resamples (0: none).")
@click.option("--intra-fid/--no-intra-fid", default=True, show_default=True)
@click.option("--intra-fid-protocol", type=click.Choice(["mission", "projection"]), default="mission", show_default=True,
              help="mission: the class-balanced samples themselves (50 per class for 50k); projection: "
                   "--per-class-samples generated per class (Miyato & Koyama 2018), needs --checkpoint.")
@click.option("--per-class-samples", type=click.IntRange(min=2), default=5000, show_default=True, help="Projection protocol: samples per class.")
@click.option("--batch-size", type=click.IntRange(min=1), default=50, show_default=True, help="Images per batch (per process).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: accelerate's choice).")
@report_user_errors
def metrics(ref_path, samples, checkpoint, num_samples, seed, truncation, ema, bn_stats, standing_batches, out,
            metric_spec, resize, inception_weights, splits, kid_subsets, kid_subset_size, prdc_samples, fid_bootstrap,
            intra_fid, intra_fid_protocol, per_class_samples, batch_size, device):
    """Metrics of samples or a checkpoint against reference statistics (every metric the inputs allow by default).

    \b
    Examples:
      python evaluate.py metrics --ref refs/demo.npz --checkpoint runs/00000-demo --num-samples 5000 --out runs/00000-demo/eval/report.json
      python evaluate.py metrics --ref refs/imagenet128_train.npz --samples samples.npz --metrics fid,is,kid --out eval/report.json
      python evaluate.py metrics --ref refs/imagenet128_train.npz --checkpoint last.pt --bn-stats standing --fid-bootstrap 100 --out eval/report.json
    """
    with new_folders_removed_on_error(Path(out).parent):
        _metrics(ref_path, samples, checkpoint, num_samples, seed, truncation, ema, bn_stats, standing_batches, out,
                 metric_spec, resize, inception_weights, splits, kid_subsets, kid_subset_size, prdc_samples,
                 fid_bootstrap, intra_fid, intra_fid_protocol, per_class_samples, batch_size, device)


def _metrics(ref_path, samples, checkpoint, num_samples, seed, truncation, ema, bn_stats, standing_batches, out,
             metric_spec, resize, inception_weights, splits, kid_subsets, kid_subset_size, prdc_samples, fid_bootstrap,
             intra_fid, intra_fid_protocol, per_class_samples, batch_size, device):
    if (samples is None) == (checkpoint is None):
        raise UserError("pass exactly one of --samples FILE or --checkpoint CKPT")
    projection = intra_fid and intra_fid_protocol == "projection"
    if projection and checkpoint is None:
        raise UserError("--intra-fid-protocol projection generates images per class and needs --checkpoint")
    if bn_stats is not None and checkpoint is None:
        raise UserError("--bn-stats applies to --checkpoint; a samples file records the mode it was drawn with")
    if num_samples < splits and checkpoint is not None:
        raise UserError(f"--num-samples {num_samples} cannot be cut into {splits} Inception Score splits; use more")
    out = _check_out(out, "--out", REPORT_BYTES)
    acc, dev = _accelerator(device)
    ref = load_ref(ref_path)
    ev.check_reference_protocol(ref, resize)  # a mismatched reference fails now, not after the Inception work
    provenance = {"ref": str(Path(ref_path).resolve()), "ref_num_images": ref.num_images}
    src = _open_source(samples, checkpoint, num_samples, splits, ema, bn_stats, seed, truncation, dev, provenance)
    G, source, where, names, n, bn_mode = src
    pairing = pair_classes(names, ref, where)
    labels = pairing.map(source.labels if G is None else class_balanced_labels(n, model_classes(G.num_classes)).numpy())
    ev.check_labels(labels, ref, where)
    # an unconditional model (num_classes 0; its samples file: an empty class_names) has no classes to compare
    labelled = G.num_classes > 0 if G is not None else names is None or len(names) > 0
    names_run, skipped = _metric_names(metric_spec, intra_fid, ref, n, acc, labelled)
    run_intra = "intra_fid" in names_run
    if projection:  # computed per class below, not from the class-balanced samples
        names_run = tuple(m for m in names_run if m != "intra_fid")
    elif run_intra:
        ev.check_intra_fid_inputs(labels, ref)
    inception = load_inception(inception_weights, device=dev, resize=resize)
    ev.check_same_inception(ref, inception)
    provenance.update(inception_weights=inception.weights_path, weights_sha256=inception.weights_sha256,
                      official_weights=inception.weights_sha256.startswith(WEIGHTS_SHA256_PREFIX))
    if G is not None:
        if bn_mode == "standing":
            _say(acc, f"accumulating standing BN statistics over {standing_batches} batches")
        prepare_generator(G, bn_mode, standing_batches=standing_batches, seed=seed, device=dev, truncation=truncation)
        got = ev.generator_features(G, num_samples, inception, batch_size, seed, truncation=truncation, accelerator=acc)
    else:
        got = ev.sample_features(source.images, source.labels, inception, batch_size, acc)
    options = MetricOptions(splits=splits, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                            prdc_samples=prdc_samples, fid_bootstrap=fid_bootstrap, seed=seed, device=dev)
    result, metric_protocol = None, {}
    if acc.is_main_process:
        result = ev.compute_metrics(got[0], pairing.map(got[1]), ref, inception, metrics=names_run, options=options,
                                    protocol=metric_protocol)
    if run_intra and projection:
        proj = ev.projection_intra_fid(G, ref, inception, per_class_samples, batch_size, seed, truncation, acc,
                                       to_ref=pairing.to_ref)
        if acc.is_main_process:
            result["intra_fid"], per_class = proj
            result["per_class_fid"] = {str(c): v for c, v in per_class.items()}
    if not acc.is_main_process:
        return
    bn_line = (bn_mode_description(bn_mode, standing_batches) if G is not None else
               f"as drawn by sample.py: {bn_mode}" if bn_mode else "unknown (the samples file does not record it)")
    protocol = {"resize": resize_description(resize), "bn_stats": bn_line, "class_pairing": pairing.description,
                **_intra_protocol(run_intra, intra_fid_protocol, per_class_samples, labels, seed), **metric_protocol}
    report = _assemble_report(result, ref, provenance, splits, protocol, G is not None, resize,
                              bn_mode or "unknown", skipped)
    paths = write_report(report, out)
    history = append_record(history_file(out.parent), _history_record(report, out))
    shown = "  ".join(f"{METRICS[k].label} {METRICS[k].format(report)}" for k in scalars(report))
    click.echo(f"{shown}  ({report['num_samples']} samples, resize {resize})")
    click.echo("wrote " + ", ".join(str(p) for p in paths.values()) + f"; appended to {history}", err=True)


def _open_source(samples, checkpoint, num_samples, splits, ema, bn_stats, seed, truncation, dev, provenance):
    """(G or None, SampleSet or None, where, class names, number of samples, BN mode) of --samples or
    --checkpoint; adds to ``provenance``."""
    if samples is not None:
        source = load_samples(samples)
        if len(source.images) < splits:
            raise UserError(f"{samples} holds {len(source.images)} images, fewer than the {splits} Inception Score "
                            "splits; use more samples or --splits")
        provenance["samples"] = str(Path(samples).resolve())
        return None, source, str(samples), source.class_names, len(source.images), source.bn_stats
    from ..checkpoint import load_generator

    G, _, ckpt = load_generator(checkpoint, ema=ema, device=dev)
    provenance.update(checkpoint=ckpt["path"], step=int(ckpt["step"]), used_ema=bool(ckpt["used_ema"]),
                      seed=seed, truncation=truncation)
    return G, None, f"checkpoint {checkpoint}", ckpt.get("class_names"), num_samples, bn_stats or "running"


def _intra_protocol(enabled: bool, name: str, per_class_samples: int, labels: np.ndarray, seed: int) -> dict:
    if not enabled:
        return {"intra_fid": "not computed"}
    if name == "projection":
        generated = f"{per_class_samples} generated per class (class c from seed {seed} + 1 + c)"
    else:
        counts = np.bincount(labels)
        generated = f"the {len(labels)} class-balanced samples ({counts[counts > 0].min()}-{counts.max()} per class)"
    return {"intra_fid": {"name": name, "generated": generated, "real": "all reference images of the class"}}


def _assemble_report(result: dict, ref, provenance: dict, splits: int, protocol: dict, generated: bool,
                     resize: str, bn_stats: str, skipped: dict) -> dict:
    per_class = result.get("per_class_fid", {})
    report = {"fid": result.get("fid"), "inception_score": result.get("inception_score"),
              "intra_fid": result.get("intra_fid"), "per_class_fid": per_class, "num_samples": result["num_samples"]}
    report.update({k: v for k, v in result.items() if k not in report})  # kid, precision, ..., fid_ci
    report.update(resize=resize, bn_stats=bn_stats, metrics=list(scalars(result)),
                  notes=[f"{name} not computed: {why}" for name, why in skipped.items()],
                  class_names={c: ref.class_names[int(c)] for c in per_class} if ref.class_names else {})
    report["protocol"] = {
        **protocol,
        "quantisation": "generated images rounded to uint8 as PNG saving does" if generated else "as stored (uint8)",
        "features": "2048-d pool3 of pytorch-fid's Inception (2015 TF graph)",
        "covariance": "unbiased (N-1), float64",
        "is_splits": splits,
        "is_logits": "bias-free 1008-way (improved-GAN / torch-fidelity), contiguous splits, population std",
    }
    report["provenance"] = provenance
    return report


def _history_record(report: dict, out: Path) -> dict:
    """The ``metrics.jsonl`` line: values, protocol, BN mode, step, weights, reference, sample count, time."""
    prov = report["provenance"]
    return {"time": time.time(), "step": prov.get("step"), "values": scalars(report),
            "fid_ci": report.get("fid_ci"),
            "protocol": {"resize": report["resize"], "bn_stats": report["bn_stats"],
                         "num_samples": report["num_samples"], "reference": prov["ref"],
                         "weights_sha256": prov.get("weights_sha256")},
            "source": prov.get("checkpoint") or prov.get("samples"), "report": str(out.resolve())}


if __name__ == "__main__":
    main(prog_name="evaluate.py")
