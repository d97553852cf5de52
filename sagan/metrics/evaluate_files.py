"""``evaluate.py metrics`` as one call: the metrics of a samples file or a checkpoint against a reference,
written as ``report.json`` / ``report.md`` / the per-class FID histogram, and one line of ``metrics.jsonl``
beside them (``evaluations.jsonl`` in a training run's folder). Every input is checked (reference
protocol, class pairing, metrics, Inception weights, free space) before any sample is drawn.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import UserError
from ..models.loading import load_generator
from ..sampling.bn_stats import bn_mode_description, prepare_generator
from ..sampling.latents import class_balanced_labels, model_classes
from ..rundir import CONFIG_FILE, METRICS_FILE
from ..scores.registry import METRICS, MetricOptions, scalars
from ..scores.resize import DEFAULT_RESIZE, resize_description
from ..scores.stats import load_ref
from .evaluation import check_reference_protocol
from .history import EVAL_HISTORY_FILE, append_record
from .report import write_report
from .samples import load_samples
from .session import open_session
from .weights import WEIGHTS_SHA256_PREFIX

REPORT_BYTES = 4 * 1000 * 1000  # report.json, report.md and the histogram of 1000 per-class FIDs, with room
# generated samples of a checkpoint when --num-samples is not given: the paper's 50k on a GPU; on a CPU, where
# 50k Inception passes take hours, 5k (FID is biased upwards at fewer samples: compare equal counts only)
DEFAULT_NUM_SAMPLES = {"cuda": 50_000, "cpu": 5_000}
PAPER_CLASSES, PAPER_RESOLUTION = 1000, 128  # the paper's rows: ImageNet 128x128


def default_num_samples(device) -> int:
    return DEFAULT_NUM_SAMPLES.get(getattr(device, "type", str(device)), DEFAULT_NUM_SAMPLES["cpu"])


def small_set_note(ref_images: int | None, num_samples: int, dim: int = 2048) -> str | None:
    """FID from fewer images a side than the features' dimensions (Inception pool3: 2048) is not meaningful:
    the covariance estimate is singular. The note saying so, or None (``ref_images`` None: a pytorch-fid
    file, which does not record its count: the generated side alone)."""
    n = num_samples if ref_images is None else min(ref_images, num_samples)
    if n >= dim:
        return None
    side = "reference" if ref_images is not None and ref_images <= num_samples else "generated"
    return (f"FID from {n} {side} images, fewer than the {dim} Inception feature dimensions: its "
            "covariance is singular and the value is not meaningful; compare KID (--metrics kid), which is unbiased "
            "at small sizes")


def paper_comparable(num_classes: int | None, resolution: int | None) -> bool:
    """Whether the SAGAN paper's ImageNet rows may stand beside this model's numbers."""
    return num_classes == PAPER_CLASSES and resolution == PAPER_RESOLUTION


def history_file(folder: Path) -> Path:
    """Where ``evaluate.py metrics`` appends its record: ``metrics.jsonl`` beside the report, except in a
    training run's folder, whose ``metrics.jsonl`` is the trainer's own history (RUN:best, the collapse
    watch and the experiments' reports read it): there ``evaluations.jsonl``."""
    is_run = (folder / CONFIG_FILE).is_file() or (folder / "checkpoints").is_dir()
    return folder / (EVAL_HISTORY_FILE if is_run else METRICS_FILE)


@dataclass
class MetricsRequest:
    ref: str
    out: Path
    samples: str | None = None  # exactly one of samples / checkpoint
    checkpoint: str | None = None
    num_samples: int = 50_000  # with a checkpoint: class-balanced samples
    seed: int = 0
    truncation: float | None = None
    ema: bool = True
    bn_stats: str | None = None  # with a checkpoint; running when unset
    standing_batches: int = 16
    metrics: str | None = None  # "fid,is,kid"; None: every metric the inputs allow
    exclude: tuple[str, ...] = ()
    resize: str = DEFAULT_RESIZE
    inception_weights: str | None = None
    batch_size: int = 50
    options: MetricOptions = field(default_factory=MetricOptions)


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def evaluate_request(req: MetricsRequest, accelerator, device, show: Callable[[str], None] = print,
                     note: Callable[[str], None] = _to_stderr) -> dict | None:
    """Run ``req`` on every accelerate process; returns the report (written to disk) on the main process.
    The main process ``show`` s the metrics line (stdout) and ``note`` s warnings and what it wrote (stderr)."""
    _check_request(req)
    main = accelerator.is_main_process
    ref = load_ref(req.ref)
    check_reference_protocol(ref, req.resize)  # a mismatched reference fails now, not after the Inception work
    provenance = {"ref": str(Path(req.ref).resolve()), "ref_num_images": ref.num_images}
    G, source, where, names, n, bn_mode = _open_source(req, device, provenance)
    labels = source.labels if G is None else class_balanced_labels(n, model_classes(G.num_classes)).numpy()
    # an unconditional model (num_classes 0; its samples file: an empty class_names) has no classes to compare
    labelled = G.num_classes > 0 if G is not None else names is None or len(names) > 0
    session = open_session(ref, num_samples=n, labels=labels, metrics=req.metrics, exclude=req.exclude,
                           options=dataclasses.replace(req.options, device=device), class_names=names, where=where, has_labels=labelled,
                           has_generator=G is not None, inception_weights=req.inception_weights, resize=req.resize,
                           device=device, accelerator=accelerator)
    if "intra_fid" in session.skipped and main:
        note(f"warning: skipping intra-FID: {session.skipped['intra_fid']}")
    inception = session.inception
    provenance.update(inception_weights=inception.weights_path, weights_sha256=inception.weights_sha256,
                      official_weights=inception.weights_sha256.startswith(WEIGHTS_SHA256_PREFIX))
    metric_protocol: dict = {}
    if G is not None:
        if bn_mode == "standing" and main:
            note(f"accumulating standing BN statistics over {req.standing_batches} batches")
        prepare_generator(G, bn_mode, standing_batches=req.standing_batches, seed=req.seed, device=device,
                          truncation=req.truncation)
        result = session.of_generator(G, req.num_samples, batch_size=req.batch_size, seed=req.seed,
                                      truncation=req.truncation, protocol=metric_protocol)
    else:
        result = session.of_samples(source.images, source.labels, batch_size=req.batch_size, protocol=metric_protocol)
    if not main:
        return None
    bn_line = (bn_mode_description(bn_mode, req.standing_batches) if G is not None else
               f"as drawn by sample.py: {bn_mode}" if bn_mode else "unknown (the samples file does not record it)")
    protocol = {"resize": resize_description(req.resize), "bn_stats": bn_line,
                "class_pairing": session.pairing.description, "intra_fid": "not computed", **metric_protocol}
    report = _assemble_report(result, ref, provenance=provenance, splits=req.options.splits, protocol=protocol,
                              generated=G is not None, resize=req.resize, bn_stats=bn_mode or "unknown",
                              skipped=session.skipped)
    small = small_set_note(ref.num_images, report["num_samples"], ref.dim) if report.get("fid") is not None else None
    if small:
        report["notes"].append(small)
        note(f"warning: {small}")
    classes = (G.num_classes if G is not None else len(names) if names is not None else
               int(source.labels.max()) + 1 if len(source.labels) else None)  # unnamed: the labels' range
    resolution = G.resolution if G is not None else int(source.images.shape[1])
    report["paper_comparison"] = paper_comparable(classes, resolution)
    report["model"] = {"num_classes": classes, "resolution": resolution}
    paths = write_report(report, req.out)
    history = append_record(history_file(req.out.parent), _history_record(report, req.out))
    shown = "  ".join(f"{METRICS[k].label} {METRICS[k].format(report)}" for k in scalars(report))
    show(f"{shown}  ({report['num_samples']} samples, resize {req.resize})")
    note("wrote " + ", ".join(str(p) for p in paths.values()) + f"; appended to {history}")
    return report


def _check_request(req: MetricsRequest) -> None:
    if (req.samples is None) == (req.checkpoint is None):
        raise UserError("pass exactly one of --samples FILE or --checkpoint CKPT")
    if req.bn_stats is not None and req.checkpoint is None:
        raise UserError("--bn-stats applies to --checkpoint; a samples file records the mode it was drawn with")
    splits = req.options.splits
    if req.num_samples < splits and req.checkpoint is not None:
        raise UserError(f"--num-samples {req.num_samples} cannot be cut into {splits} Inception Score splits; use more")


def _open_source(req: MetricsRequest, device, provenance: dict):
    """(G or None, SampleSet or None, where, class names, number of samples, BN mode) of --samples or
    --checkpoint; adds to ``provenance``."""
    if req.samples is not None:
        source = load_samples(req.samples)
        if len(source.images) < req.options.splits:
            raise UserError(f"{req.samples} holds {len(source.images)} images, fewer than the {req.options.splits} "
                            "Inception Score splits; use more samples or --splits")
        provenance["samples"] = str(Path(req.samples).resolve())
        return None, source, str(req.samples), source.class_names, len(source.images), source.bn_stats
    G, _, ckpt = load_generator(req.checkpoint, ema=req.ema, device=device)
    provenance.update(checkpoint=ckpt["path"], step=int(ckpt["step"]), used_ema=bool(ckpt["used_ema"]),
                      seed=req.seed, truncation=req.truncation)
    return (G, None, f"checkpoint {req.checkpoint}", ckpt.get("class_names"), req.num_samples,
            req.bn_stats or "running")


def _assemble_report(result: dict, ref, *, provenance: dict, splits: int, protocol: dict, generated: bool,
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
