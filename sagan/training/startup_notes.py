"""The start-up notes of a training run: one line each on what the data implies (a subset, a single class,
an unpacked folder), on what a resume changes (optimiser settings, the batch split, missing state) and on
a precision the device only emulates."""

from __future__ import annotations

import torch

from ..config import Config
from ..data import FolderDataset
from ..data.batch_plan import BatchPlan
from ..io import printable


def data_notes(cfg: Config, dataset, class_names: list[str] | None) -> list[str]:
    notes = [dataset.note] if getattr(dataset, "note", "") else []  # data.subset: which part trains
    if cfg.data.path and cfg.model.num_classes == 1:
        notes.append(f"note: {cfg.data.path} has one class ({printable(class_names[0])}): this trains a "
                     "conditional model with a single class; for an unconditional model set model.num_classes: 0")
    if isinstance(getattr(dataset, "base", dataset), FolderDataset):  # a data.subset wraps it
        notes.append("note: training straight from an image folder decodes and resizes every image each epoch; "
                     "pack it once with sagan-prepare (about 50x faster per image) and train on that")
    return notes


def resume_notes(ckpt: dict, step: int, hparam_changes: list[str], split: str | None) -> list[str]:
    """What a resume at ``step`` from ``ckpt`` says: the optimiser settings the config replaced, the split
    note (:func:`split_note`), a checkpoint without optimiser state."""
    notes = [f"resumed at step {step} from {ckpt['path']}"]
    if hparam_changes:
        notes.append("optimiser settings from the config replace the checkpoint's: " + ", ".join(hparam_changes))
    if split:
        notes.append(split)
    if ckpt["opt_G"] is None or ckpt["opt_D"] is None:
        notes.append("the checkpoint has no optimiser state (a converted checkpoint?): fresh Adam moments")
    return notes


def split_note(plan: BatchPlan, ckpt: dict) -> str | None:
    """One line on how the batch split changed since the checkpoint (None when it did not): ``plan`` is the
    run's, compared with the one the checkpoint was written under. The same global batch and micro-batch
    size under another processes x accumulation split continues the same run (split-invariant randomness,
    sagan.training.step); another global batch or micro-batch size does not."""
    before, now = BatchPlan.of_checkpoint(ckpt), plan
    if before == now:
        return None
    split = (f"{before.processes} process(es) x {before.accumulation} accumulation -> {now.processes} x "
             f"{now.accumulation}")
    if before.global_batch != now.global_batch:
        return (f"note: global batch {before.global_batch} -> {now.global_batch} since the checkpoint ({split}): the "
                f"run continues differently from one that kept {before.global_batch}")
    if before.micro_batch != now.micro_batch:
        return (f"note: micro-batch {before.micro_batch} -> {now.micro_batch} images since the checkpoint ({split}): "
                f"G's batch norm sees other micro-batches, so the run continues differently from one that kept "
                f"{before.micro_batch}")
    return f"note: same global batch and micro-batch under another split ({split}): the same run continues"


def cpu_bf16_supported() -> bool | None:
    """Whether oneDNN has native bf16 kernels on this CPU (AVX-512 BF16 or AMX); None when torch cannot say."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return None


def device_notes(cfg: Config, device: torch.device) -> list[str]:
    """A bf16 run on a CPU without bf16 units: autocast then emulates it, far slower than fp32."""
    if device.type == "cpu" and cfg.train.mixed_precision == "bf16" and cpu_bf16_supported() is False:
        return ["note: this CPU has no bf16 units (no AVX-512 BF16 / AMX), so bf16 autocast is emulated and much "
                "slower than fp32 (the demo: 20x); on a CPU use --mixed-precision no"]
    return []
