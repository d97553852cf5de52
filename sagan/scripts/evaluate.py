"""``evaluate.py`` / ``sagan-evaluate``: reference statistics and IS / FID / intra-FID reports.

Commands (``main`` is the click group and the ``sagan-evaluate`` console script):

- ``stats``: Inception statistics of a dataset (packed or class-per-folder) -> ``ref.npz``;
- ``metrics``: a ``samples.npz`` or a checkpoint against ``ref.npz`` -> ``report.json``, ``report.md``,
  ``report_per_class_fid.png``.

Both run on one device or sharded under ``accelerate launch`` (features gathered, main process writes).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import click
import numpy as np
import torch

from ..errors import UserError, report_user_errors
from ..metrics import evaluation as ev
from ..sampling import class_balanced_labels
from ..metrics.report import write_report
from ..metrics.stats import _npz_member_memmap, load_ref
from ..metrics.weights import WEIGHTS_SHA256_PREFIX, load_inception

WEIGHTS_HELP = ("pytorch-fid's pt_inception-2015-12-05-6726825d.pth; default: $SAGAN_INCEPTION_WEIGHTS, "
                "then the torch hub cache, then a download")


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """IS / FID / intra-FID with pytorch-fid's Inception (the 2015 TF graph).

    \b
    Examples:
      # reference statistics of the training set (packed by sagan-prepare, or a class-per-folder tree)
      python evaluate.py stats --data data/imagenet128 --out refs/imagenet128_train.npz
      python evaluate.py stats --data ~/ILSVRC/train --resolution 128 --out refs/imagenet128_train.npz
      # metrics of a checkpoint's EMA generator (50k class-balanced samples, 50 per class)
      python evaluate.py metrics --ref refs/imagenet128_train.npz --checkpoint runs/00000-sagan/checkpoints/last.pt --out report.json
      # metrics of saved samples (sample.py writes samples.npz)
      python evaluate.py metrics --ref refs/imagenet128_train.npz --samples samples.npz --out report.json
      # on 8 GPUs
      accelerate launch --num_processes 8 evaluate.py metrics --ref ref.npz --checkpoint last.pt --out report.json
    """


@main.command()
@click.option("--data", "data_path", required=True, help="Packed dataset folder or class-per-folder image tree.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .npz (mu, sigma + per-class features).")
@click.option("--resolution", type=int, default=None, help="Resize a folder tree to this size first (training resolution, e.g. 128).")
@click.option("--inception-weights", default=None, help=WEIGHTS_HELP)
@click.option("--batch-size", default=50, show_default=True, help="Images per Inception batch (per process).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: accelerate's choice).")
@click.option("--num-workers", default=4, show_default=True, help="Data loading processes.")
@click.option("--per-class/--no-per-class", default=True, show_default=True,
              help="Store per-class features for intra-FID (N x 2048 x 4 bytes: 10 GB for ImageNet).")
@click.option("--features-dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True,
              help="Storage of the per-class features (float16 halves the file, ~1e-3 relative rounding).")
@report_user_errors
def stats(data_path, out, resolution, inception_weights, batch_size, device, num_workers, per_class, features_dtype):
    """Reference statistics of a dataset: pytorch-fid-compatible mu/sigma plus per-class data."""
    from ..data import open_dataset

    acc, dev = _accelerator(device)
    try:
        dataset = open_dataset(data_path, resolution=resolution, hflip=False, uint8=True)
    except UserError as e:
        if resolution is None and "resolution" in str(e):
            raise UserError(f"{e} (evaluate.py stats: pass --resolution, e.g. 128)") from None
        raise
    inception = load_inception(inception_weights, device=dev)
    path = ev.reference_stats(dataset, inception, out, batch_size, num_workers, acc, features_dtype, per_class,
                              source=str(data_path))
    _say(acc, f"wrote {path} ({len(dataset)} images, {getattr(dataset, 'num_classes', '?')} classes)")


def load_samples(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``images`` uint8 (N, H, W, 3) (memory-mapped when stored uncompressed) and ``labels`` (N,)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"samples file {p} does not exist; write one with sample.py or pass --checkpoint")
    try:
        with np.load(p, allow_pickle=False) as f:
            missing = {"images", "labels"} - set(f.files)
            if missing:
                raise UserError(f"{p} has no {' or '.join(sorted(missing))} array; expected images uint8 (N,H,W,3) "
                                "and labels (N,) as sample.py writes")
            labels = np.asarray(f["labels"])
            images = _npz_member_memmap(p, "images")
            if images is None:
                images = f["images"]
    except UserError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
        detail = " ".join(str(e).split())[:120]
        if "allow_pickle" in detail or "Object arrays" in detail:
            raise UserError(f"{p}: images is an object array (images of mixed sizes?); store one uint8 "
                            "(N, H, W, 3) array of equal-sized RGB images") from None
        raise UserError(f"cannot read samples {p}: corrupt or not an .npz ({detail})") from None
    if images.dtype != np.uint8:
        raise UserError(f"{p}: images are {images.dtype}, expected uint8 0..255 (quantise as a PNG would)")
    if images.ndim == 3 or (images.ndim == 4 and images.shape[3] == 1):
        raise UserError(f"{p}: images {images.shape} are grayscale; store RGB (N, H, W, 3)")
    if images.ndim != 4 or images.shape[3] != 3:
        raise UserError(f"{p}: images have shape {images.shape}, expected RGB (N, H, W, 3)")
    if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{p}: labels {labels.dtype} {labels.shape} must be integers, one per image ({len(images)})")
    return images, labels.astype(np.int64)


@main.command()
@click.option("--ref", "ref_path", required=True, help="Reference stats from `evaluate.py stats` (or pytorch-fid's .npz: FID/IS only).")
@click.option("--samples", default=None, help="samples.npz: images uint8 (N,H,W,3), labels (N,).")
@click.option("--checkpoint", default=None, help="Checkpoint (.pt or run dir) to sample from.")
@click.option("--num-samples", default=50000, show_default=True, help="With --checkpoint: class-balanced samples.")
@click.option("--seed", default=0, show_default=True, help="With --checkpoint: latent seed.")
@click.option("--truncation", type=float, default=None, help="With --checkpoint: truncate z to [-T, T].")
@click.option("--ema/--no-ema", default=True, show_default=True, help="With --checkpoint: use the EMA generator.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="report.json (report.md and the PNG go next to it).")
@click.option("--inception-weights", default=None, help=WEIGHTS_HELP)
@click.option("--splits", default=10, show_default=True, help="Inception Score splits.")
@click.option("--intra-fid/--no-intra-fid", default=True, show_default=True)
@click.option("--intra-fid-protocol", type=click.Choice(["mission", "projection"]), default="mission", show_default=True,
              help="mission: the class-balanced samples themselves (50 per class for 50k); projection: "
                   "--per-class-samples generated per class (Miyato & Koyama 2018), needs --checkpoint.")
@click.option("--per-class-samples", default=5000, show_default=True, help="Projection protocol: samples per class.")
@click.option("--batch-size", default=50, show_default=True, help="Images per batch (per process).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: accelerate's choice).")
@report_user_errors
def metrics(ref_path, samples, checkpoint, num_samples, seed, truncation, ema, out, inception_weights, splits,
            intra_fid, intra_fid_protocol, per_class_samples, batch_size, device):
    """IS, FID and intra-FID of samples or a checkpoint against reference statistics."""
    if (samples is None) == (checkpoint is None):
        raise UserError("pass exactly one of --samples FILE or --checkpoint CKPT")
    if intra_fid and intra_fid_protocol == "projection" and checkpoint is None:
        raise UserError("--intra-fid-protocol projection generates images per class and needs --checkpoint")
    if num_samples < splits and checkpoint is not None:
        raise UserError(f"--num-samples {num_samples} cannot be cut into {splits} Inception Score splits; use more")
    acc, dev = _accelerator(device)
    ref = load_ref(ref_path)
    if intra_fid and not ref.has_classes:
        _say(acc, f"warning: {ref_path} has no per-class features (pytorch-fid stats?): skipping intra-FID")
        intra_fid = False
    provenance = {"ref": str(Path(ref_path).resolve()), "ref_num_images": ref.num_images}
    G = None
    if samples is not None:
        images, labels = load_samples(samples)
        ev.check_labels(labels, ref, str(samples))
        if intra_fid:
            ev.check_intra_fid_inputs(labels, ref)
        if len(images) < splits:
            raise UserError(f"{samples} holds {len(images)} images, fewer than the {splits} Inception Score splits; "
                            "use more samples or --splits")
        provenance["samples"] = str(Path(samples).resolve())
    else:
        from ..checkpoint import load_generator

        G, _, ckpt = load_generator(checkpoint, ema=ema, device=dev)
        if ref.has_classes and G.num_classes > ref.num_classes:
            raise UserError(f"checkpoint {checkpoint} has {G.num_classes} classes but the reference {ref_path} only "
                            f"{ref.num_classes}; use the reference of the training dataset")
        if intra_fid and intra_fid_protocol == "mission":
            ev.check_intra_fid_inputs(np.asarray(class_balanced_labels(num_samples, range(G.num_classes))), ref)
        provenance.update(checkpoint=ckpt["path"], step=int(ckpt["step"]), used_ema=bool(ckpt["used_ema"]),
                          seed=seed, truncation=truncation)
    inception = load_inception(inception_weights, device=dev)
    ev.check_same_inception(ref, inception)
    provenance.update(inception_weights=inception.weights_path, weights_sha256=inception.weights_sha256,
                      official_weights=inception.weights_sha256.startswith(WEIGHTS_SHA256_PREFIX))

    if G is None:
        got = ev.sample_features(images, labels, inception, batch_size, acc)
    else:
        got = ev.generator_features(G, num_samples, inception, batch_size, seed, truncation=truncation, accelerator=acc)
    mission_intra = intra_fid and intra_fid_protocol == "mission"
    result = None
    if acc.is_main_process:
        feats, labs = got
        result = ev.compute_metrics(feats, labs, ref, inception, splits, intra=mission_intra)
        del feats
    if intra_fid and intra_fid_protocol == "projection":
        proj = ev.projection_intra_fid(G, ref, inception, per_class_samples, batch_size, seed, truncation, acc)
        if acc.is_main_process:
            result["intra_fid"], per_class = proj
            result["per_class_fid"] = {str(c): v for c, v in per_class.items()}
    if not acc.is_main_process:
        return
    protocol = _intra_protocol(intra_fid, intra_fid_protocol, per_class_samples, labs, seed)
    report = _assemble_report(result, ref, provenance, splits, protocol, generated=G is not None)
    paths = write_report(report, out)
    is_ = report["inception_score"]
    intra = "" if report["intra_fid"] is None else f"  intra-FID {report['intra_fid']:.2f}"
    click.echo(f"FID {report['fid']:.2f}  IS {is_['mean']:.2f} ± {is_['std']:.2f}{intra}  ({report['num_samples']} samples)")
    click.echo("wrote " + ", ".join(str(p) for p in paths.values()), err=True)


def _intra_protocol(enabled: bool, name: str, per_class_samples: int, labels: np.ndarray, seed: int):
    if not enabled:
        return "not computed"
    if name == "projection":
        generated = f"{per_class_samples} generated per class (class c from seed {seed} + 1 + c)"
    else:
        counts = np.bincount(labels)
        generated = f"the {len(labels)} class-balanced samples ({counts[counts > 0].min()}-{counts.max()} per class)"
    return {"name": name, "generated": generated, "real": "all reference images of the class"}


def _assemble_report(result: dict, ref, provenance: dict, splits: int, intra_protocol, generated: bool) -> dict:
    per_class = result.get("per_class_fid", {})
    return {
        "fid": result["fid"],
        "inception_score": result["inception_score"],
        "intra_fid": result.get("intra_fid"),
        "per_class_fid": per_class,
        "num_samples": result["num_samples"],
        "class_names": {c: ref.class_names[int(c)] for c in per_class} if ref.class_names else {},
        "protocol": {
            "resize": ev.RESIZE_MODE,
            "quantisation": "generated images rounded to uint8 as PNG saving does" if generated else "as stored (uint8)",
            "features": "2048-d pool3 of pytorch-fid's Inception (2015 TF graph)",
            "covariance": "unbiased (N-1), float64",
            "is_splits": splits,
            "is_logits": "bias-free 1008-way (improved-GAN / torch-fidelity), contiguous splits, population std",
            "intra_fid": intra_protocol,
        },
        "provenance": provenance,
    }


if __name__ == "__main__":
    main(prog_name="evaluate.py")
