"""Putting it together: reference statistics of a dataset, features of samples or a generator, and the
metrics (FID, IS, intra-FID) of those features against a reference.

Distributed use: call these on every accelerate process with the same arguments; features are gathered
step by step and the results (files, metric dicts) exist on the main process only (``None`` elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import UserError
from ..sampling import class_balanced_labels, sample_latents
from .features import array_batches, dataset_batches, extract_features, generator_batches, shard_batches
from .frechet import ClassFrechetDistance, class_indices, frechet_distance
from .inception import FEATURE_DIM, InceptionV3
from .inception_score import inception_score
from .stats import FeatureStats, RefStats, save_ref

RESIZE_MODE = "pytorch-fid: uint8 -> [0,1] -> bilinear 299 (align_corners=False) -> [-1,1]"


def _rank_world(accelerator) -> tuple[int, int, bool]:
    if accelerator is None:
        return 0, 1, True
    return accelerator.process_index, accelerator.num_processes, accelerator.is_main_process


def _collect(steps, num_items: int, keep: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """All gathered features (N, d) float32 and labels (N,), in index order (main process)."""
    feats = np.empty((num_items, FEATURE_DIM), np.float32) if keep else None
    labels = np.empty(num_items, np.int64) if keep else None
    for idx, y, f in steps:
        if keep:
            feats[idx], labels[idx] = f, y
    return (feats, labels) if keep else None


# --------------------------------------------------------------------------------------------------
# feature sources


def sample_features(images: np.ndarray, labels: np.ndarray, inception: InceptionV3, batch_size: int = 50,
                    accelerator=None, progress: bool = True):
    """Features of uint8 (N, H, W, 3) images; ``(features, labels)`` on the main process."""
    rank, world, main = _rank_world(accelerator)
    batches = shard_batches(len(images), batch_size, rank, world)
    steps = extract_features(inception, array_batches(images, labels, batches), len(batches), len(images),
                             accelerator, desc="inception (samples)", progress=progress)
    return _collect(steps, len(images), main)


def generator_features(G: torch.nn.Module, num_samples: int, inception: InceptionV3, batch_size: int = 50,
                       seed: int = 0, classes: list[int] | None = None, truncation: float | None = None,
                       accelerator=None, progress: bool = True, desc: str = "generate + inception"):
    """Features of ``num_samples`` class-balanced samples of ``G`` (labels cycle through ``classes``,
    default all of G's): 50 per class for 50k ImageNet samples. Latents come from one seeded CPU generator,
    so the samples do not depend on the batch size or the number of processes."""
    classes = list(range(G.num_classes)) if classes is None else classes
    labels = class_balanced_labels(num_samples, classes)
    z = sample_latents(num_samples, G.z_dim, seed, truncation)
    rank, world, main = _rank_world(accelerator)
    batches = shard_batches(num_samples, batch_size, rank, world)
    device = next(inception.parameters()).device
    steps = extract_features(inception, generator_batches(G, z, labels, batches, device), len(batches),
                             num_samples, accelerator, desc=desc, progress=progress)
    return _collect(steps, num_samples, main)


# --------------------------------------------------------------------------------------------------
# reference statistics


def reference_stats(dataset, inception: InceptionV3, out: str | os.PathLike, batch_size: int = 50,
                    num_workers: int = 0, accelerator=None, features_dtype: str = "float32",
                    per_class: bool = True, source: str = "") -> Path | None:
    """Write the reference ``.npz`` of a dataset yielding ``(uint8 (3, R, R), label)``.

    Global mean/covariance stream in float64; per-class rows go through a temporary memory-mapped
    float32 file next to ``out`` (the whole of ImageNet's 1.28M x 2048 features is 10 GB), then are
    grouped by class into ``out``. Returns the path on the main process.
    """
    rank, world, main = _rank_world(accelerator)
    n = len(dataset)
    if n < 2:
        raise UserError(f"dataset {source or ''} has {n} image(s); reference statistics need at least 2")
    out = Path(out)
    batches = shard_batches(n, batch_size, rank, world)
    steps = extract_features(inception, dataset_batches(dataset, batches, num_workers), len(batches), n,
                             accelerator, desc="inception (reference)")
    stats = FeatureStats()
    labels = np.empty(n, np.int64)
    tmp = out.with_name(f".{out.name}.features.tmp.npy")
    feats = None
    if main and per_class:
        out.parent.mkdir(parents=True, exist_ok=True)
        feats = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, FEATURE_DIM))
    try:
        for idx, y, f in steps:
            if main:
                stats.update(f)
                labels[idx] = y
                if feats is not None:
                    feats[idx] = f
        if not main:
            return None
        class_index = None
        if per_class:
            num_classes = max(int(getattr(dataset, "num_classes", 0)), int(labels.max()) + 1)
            groups = class_indices(labels)
            class_index = [groups.get(c, np.empty(0, np.int64)) for c in range(num_classes)]
        protocol = {"resize": RESIZE_MODE, "source": source, "features_dtype": features_dtype,
                    "resolution": getattr(dataset, "resolution", None), "weights_sha256": getattr(inception, "weights_sha256", None)}
        return save_ref(out, stats, feats, class_index, getattr(dataset, "class_names", None), protocol, features_dtype)
    finally:
        del feats
        if main and tmp.exists():
            tmp.unlink()


# --------------------------------------------------------------------------------------------------
# metrics


def check_labels(labels: np.ndarray, ref: RefStats, where: str) -> None:
    if len(labels) and labels.min() < 0:
        raise UserError(f"{where}: negative class label {int(labels.min())}; labels must be class indices >= 0")
    if ref.has_classes and len(labels) and labels.max() >= ref.num_classes:
        raise UserError(f"{where}: class label {int(labels.max())} but the reference {ref.path} has "
                        f"{ref.num_classes} classes; use the reference of the dataset the model was trained on")


def check_same_inception(ref: RefStats, inception: InceptionV3) -> None:
    """Features of two different networks are not comparable: refuse a reference made with other weights."""
    theirs, ours = ref.protocol.get("weights_sha256"), getattr(inception, "weights_sha256", None)
    if theirs and ours and theirs != ours:
        raise UserError(f"reference {ref.path} was computed with Inception weights sha256 {theirs[:12]}..., but "
                        f"these are {ours[:12]}...; use the same --inception-weights or recompute the reference")


def check_intra_fid_inputs(labels: np.ndarray, ref: RefStats) -> None:
    """Fail before any feature extraction when some class cannot get a covariance (< 2 images a side)."""
    counts = np.bincount(labels)
    for c in np.flatnonzero(counts):
        if counts[c] < 2:
            raise UserError(f"class {c} has {counts[c]} generated image(s); intra-FID needs at least 2 per class: "
                            "use more samples (50 per class is the paper's 50k on ImageNet) or --no-intra-fid")
        if ref.class_count(int(c)) < 2:
            raise UserError(f"class {c} has {ref.class_count(int(c))} real image(s) in {ref.path}; intra-FID needs "
                            "at least 2 per class, or pass --no-intra-fid")


def logits_of(features: np.ndarray, inception: InceptionV3, chunk: int = 4096) -> np.ndarray:
    """Bias-free logits (N, 1008) float32 of pool features, computed on CPU in chunks."""
    w = inception.fc.weight.detach().float().cpu()
    return np.concatenate([(torch.from_numpy(features[i : i + chunk]) @ w.T).numpy()
                           for i in range(0, len(features), chunk)]) if len(features) else np.empty((0, w.shape[0]), np.float32)


def fid_of(features: np.ndarray, ref: RefStats) -> float:
    stats = FeatureStats(features.shape[1])
    for i in range(0, len(features), 4096):  # float64 in chunks: never a second full-size copy
        stats.update(features[i : i + 4096])
    return frechet_distance(stats.mean, stats.cov(), ref.mu, ref.sigma)


def intra_fid_of(features: np.ndarray, labels: np.ndarray, ref: RefStats, device="cpu",
                 progress: bool = True) -> tuple[float, dict[int, float]]:
    """Mean over the generated classes of FID(generated class c, real class c) and the per-class FIDs."""
    if not ref.has_classes:
        raise UserError(f"reference {ref.path} has no per-class features (a pytorch-fid mu/sigma file?); "
                        "rebuild it with `evaluate.py stats` or pass --no-intra-fid")
    check_labels(labels, ref, "samples")
    per_class, distance = {}, ClassFrechetDistance(device)
    for c, idx in tqdm(class_indices(labels).items(), desc="intra-FID", unit="class", disable=not progress,
                       dynamic_ncols=True):
        per_class[c] = class_fid(features[idx], ref, c, distance)
    return float(np.mean(list(per_class.values()))), per_class


def class_fid(gen_features: np.ndarray, ref: RefStats, c: int, distance: ClassFrechetDistance) -> float:
    if len(gen_features) < 2:
        raise UserError(f"class {c} has {len(gen_features)} generated image(s); intra-FID needs at least 2 per "
                        "class: use more samples (50 per class is the paper's 50k on ImageNet) or --no-intra-fid")
    if ref.class_count(c) < 2:
        raise UserError(f"class {c} has {ref.class_count(c)} real image(s) in {ref.path}; intra-FID needs at "
                        "least 2 per class, or pass --no-intra-fid")
    return distance(gen_features, ref.class_features(c))


def compute_metrics(features: np.ndarray, labels: np.ndarray | None, ref: RefStats, inception: InceptionV3,
                    splits: int = 10, intra: bool = True, device="cpu", progress: bool = True) -> dict:
    """FID, IS (``splits`` contiguous splits) and, when ``intra``, intra-FID of generated features."""
    if features.shape[1] != ref.dim:
        raise UserError(f"features are {features.shape[1]}-d but the reference {ref.path} is {ref.dim}-d")
    if len(features) < 2:
        raise UserError(f"FID needs at least 2 samples, got {len(features)}")
    check_same_inception(ref, inception)
    if labels is not None:
        check_labels(labels, ref, "samples")
    mean, std = inception_score(logits_of(features, inception), splits)
    result = {"fid": fid_of(features, ref), "inception_score": {"mean": mean, "std": std},
              "num_samples": int(len(features))}
    if intra and labels is not None:
        result["intra_fid"], per_class = intra_fid_of(features, labels, ref, device, progress)
        result["per_class_fid"] = {str(c): v for c, v in per_class.items()}
    return result


def projection_intra_fid(G: torch.nn.Module, ref: RefStats, inception: InceptionV3, per_class: int = 5000,
                         batch_size: int = 50, seed: int = 0, truncation: float | None = None, accelerator=None,
                         progress: bool = True) -> tuple[float, dict[int, float]] | None:
    """The projection-discriminator paper's intra-FID: ``per_class`` generated images of each class (5000)
    against all real images of that class, one class at a time (features of one class in memory)."""
    if not ref.has_classes:
        raise UserError(f"reference {ref.path} has no per-class features; rebuild it with `evaluate.py stats`")
    _, _, main = _rank_world(accelerator)
    scores, distance = {}, ClassFrechetDistance(next(inception.parameters()).device)
    for c in tqdm(range(min(G.num_classes, ref.num_classes)), desc="intra-FID (projection protocol)", unit="class",
                  disable=not (progress and main), dynamic_ncols=True):
        got = generator_features(G, per_class, inception, batch_size, seed + 1 + c, [c], truncation, accelerator,
                                 progress=False)
        if main:
            scores[c] = class_fid(got[0], ref, c, distance)
    return (float(np.mean(list(scores.values()))), scores) if main else None


def evaluate_generator(G: torch.nn.Module, ref: RefStats | str | os.PathLike, num_samples: int = 5000,
                       inception: InceptionV3 | None = None, batch_size: int = 50, seed: int = 0,
                       splits: int = 10, intra: bool = False, accelerator=None, progress: bool = False) -> dict | None:
    """FID and IS (and optionally intra-FID) of ``G`` against a reference: the training loop's hook.

    ``G`` runs in eval mode on its own device; ``inception`` defaults to ``load_inception(device=G's)``.
    Returns the metric dict on the main process, ``None`` on the others.
    """
    from .stats import load_ref
    from .weights import load_inception

    ref = load_ref(ref) if not isinstance(ref, RefStats) else ref
    device = next(G.parameters()).device
    inception = inception if inception is not None else load_inception(device=device)
    got = generator_features(G, num_samples, inception, batch_size, seed, accelerator=accelerator, progress=progress)
    if got is None:
        return None
    return compute_metrics(got[0], got[1], ref, inception, splits, intra, progress=progress)
