"""Validation of a built config: every key's type was checked when it was read, here are the ranges,
the choices (the registries of losses, metrics, resize protocols and augmentations) and the keys that
must agree with each other. Every problem is one :class:`~sagan.errors.ConfigError` line naming the key.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .architecture import attention_sites, d_channel_mults, g_channel_mults, model_d_layout, resolution_problem
from .errors import ConfigError
from .registry import AUGMENTS, LOSSES, METRICS, RESIZERS  # the leaf registries: live names, no stacks imported

if TYPE_CHECKING:
    from .config import Config, ModelConfig

ATTN_MODES = ("embedded_gaussian", "gaussian", "dot_product", "concatenation")
BLOCK_TYPES = ("attention", "residual")  # what sits at the resolutions of model.g_attn / d_attn (SAGAN Table 1)
MIXED_PRECISION = ("no", "bf16", "fp16")
INITS = ("ortho", "orthogonal", "xavier", "normal")  # "orthogonal" = "ortho"
D_CONDS = ("projection", "ac")  # model.d_cond


def validate_widths(m: ModelConfig, bad) -> None:
    """model.g_widths / d_widths / d_down and the attention placements they allow."""
    r, n_g = m.resolution, len(g_channel_mults(m.resolution)) + 1
    if m.g_widths and len(m.g_widths) != n_g:
        bad(f"model.g_widths needs {n_g} entries at {r}px (4px, then after each of G's {n_g - 1} up-blocks), "
            f"got {len(m.g_widths)}")
    for k in ("g_widths", "d_widths"):
        if any(w < 1 for w in getattr(m, k)):
            bad(f"model.{k} must be positive channel counts, got {list(getattr(m, k))}")
    n_d = len(m.d_widths) if m.d_widths else len(d_channel_mults(r))
    if m.d_down and len(m.d_down) != n_d:
        bad(f"model.d_down needs one entry per D block ({n_d}), got {len(m.d_down)}")
    layout = model_d_layout(m)
    if layout[-1][3] < 4:
        bad(f"model.d_down halves {r}px {sum(d for _, _, d, _ in layout)} times, below 4px; downsample fewer blocks")
    for k, widths in attention_sites(m).items():
        for res in getattr(m, k):
            if res not in widths:
                bad(f"model.{k} has {res}px but the {k[0].upper()} at {r}px has blocks at {list(widths)}px; "
                    "pick from those")
            if widths[res] % 8:
                bad(f"model.{k} at {res}px: {widths[res]} channels, attention needs a multiple of 8 (it uses C/8)")


def validate(cfg: Config, where: str = "config") -> None:
    """Raise a one-line :class:`ConfigError` (prefixed by ``where``) for the first problem of ``cfg``."""

    def bad(msg: str) -> None:
        raise ConfigError(f"{where}: {msg}")

    check_model(cfg.model, bad)
    check_train(cfg.train, bad)
    check_data(cfg, bad)


def check_model(m: ModelConfig, bad) -> None:
    """The ``model`` section: sizes, widths, attention, conditioning, initialisation."""
    r = m.resolution
    if resolution_problem(r):
        bad(f"model.resolution {resolution_problem(r)}")
    if m.num_classes < 0:
        bad(f"model.num_classes must be >= 0 (0 = unconditional), got {m.num_classes}")
    if m.z_dim < 1:
        bad(f"model.z_dim must be >= 1, got {m.z_dim}")
    for k in ("g_ch", "d_ch"):
        v = getattr(m, k)
        if v < 8 or v % 8:
            bad(f"model.{k} must be a positive multiple of 8 (attention uses C/8 channels), got {v}")
    if m.attn_mode not in ATTN_MODES:
        bad(f"model.attn_mode must be one of {', '.join(ATTN_MODES)}, got {m.attn_mode!r}")
    validate_widths(m, bad)
    if m.hierarchical_z:
        chunks = len(g_channel_mults(r)) + 1  # BigGAN: one chunk for G's input layer, one per G block
        if m.z_dim % chunks:
            near = max(chunks, round(m.z_dim / chunks) * chunks)
            bad(f"model.z_dim={m.z_dim} must split evenly into {chunks} chunks with hierarchical_z at {r}px "
                f"(G's input + {chunks - 1} blocks); use a multiple of {chunks} such as {near}")
    if m.d_cond not in D_CONDS:
        bad(f"model.d_cond must be one of {', '.join(D_CONDS)}, got {m.d_cond!r}")
    if m.num_classes == 0 and (m.d_cond == "ac" or m.hierarchical_z or m.shared_embedding):
        key = "d_cond: ac" if m.d_cond == "ac" else ("hierarchical_z" if m.hierarchical_z else "shared_embedding")
        bad(f"model.{key} needs classes, but model.num_classes is 0 "
            "(unconditional); use labelled data or drop that setting")
    if (m.hierarchical_z or m.shared_embedding) and m.shared_dim < 1:
        bad(f"model.shared_dim must be >= 1 (BigGAN: 128), got {m.shared_dim}")
    if m.init not in INITS:
        bad(f"model.init must be one of {', '.join(INITS)}, got {m.init!r}")
    for k in ("g_block_type", "d_block_type"):
        if getattr(m, k) not in BLOCK_TYPES:
            bad(f"model.{k} must be one of {', '.join(BLOCK_TYPES)}, got {getattr(m, k)!r}")
    for k in ("bn_eps", "sn_eps"):
        if getattr(m, k) <= 0:
            bad(f"model.{k} must be > 0")


def check_train(t, bad) -> None:
    """The ``train`` section: batch split, optimiser, cadence and the registries' names."""
    if t.batch_size < 1 or t.grad_accum < 1:
        bad("train.batch_size and train.grad_accum must be >= 1")
    if t.batch_size % t.grad_accum:
        bad(f"train.batch_size={t.batch_size} must be divisible by train.grad_accum={t.grad_accum}")
    for k in ("lr_g", "lr_d", "adam_eps"):
        if getattr(t, k) <= 0:
            bad(f"train.{k} must be > 0, got {getattr(t, k)}")
    for k in ("beta1", "beta2"):
        if not 0 <= getattr(t, k) < 1:
            bad(f"train.{k} must be in [0, 1), got {getattr(t, k)}")
    if not 0 <= t.ema_decay < 1:
        bad(f"train.ema_decay must be in [0, 1), got {t.ema_decay}")
    if t.d_steps < 1:
        bad(f"train.d_steps must be >= 1, got {t.d_steps}")
    if t.loss not in LOSSES:
        bad(f"train.loss must be one of {', '.join(LOSSES)}, got {t.loss!r}")
    if t.mixed_precision not in MIXED_PRECISION:
        bad(f"train.mixed_precision must be one of {', '.join(MIXED_PRECISION)}, got {t.mixed_precision!r}")
    for k in ("max_steps", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "fid_num_samples"):
        if getattr(t, k) < 1:
            bad(f"train.{k} must be >= 1, got {getattr(t, k)}")
    if t.fid_resize not in RESIZERS:
        bad(f"train.fid_resize must be one of {', '.join(RESIZERS)}, got {t.fid_resize!r}")
    unknown = [m for m in t.eval_metrics if m not in METRICS]
    if unknown or not t.eval_metrics:
        bad(f"train.eval_metrics must be a non-empty list of {', '.join(METRICS)}; got {list(t.eval_metrics)}")
    if t.best_metric not in t.eval_metrics:
        bad(f"train.best_metric={t.best_metric!r} must be one of train.eval_metrics {list(t.eval_metrics)}; add it "
            "there or pick one of those")
    if "is" in t.eval_metrics and t.fid_num_samples < 10:
        bad(f"train.fid_num_samples={t.fid_num_samples} cannot be cut into the Inception Score's 10 splits; use >= 10")
    if t.collapse_margin < 0 or t.collapse_logit_gap < 0 or t.collapse_patience < 1:
        bad("train.collapse_margin and collapse_logit_gap must be >= 0 and train.collapse_patience >= 1")
    for k in ("ema_start", "fid_every", "num_workers", "seed", "ema_standing_batches", "threads"):
        if getattr(t, k) < 0:
            bad(f"train.{k} must be >= 0, got {getattr(t, k)}")
    problem = _log_with_problem(t.log_with)  # experiment trackers (sagan.training.trackers)
    if problem:
        bad(problem)
    objective = objective_problem(t)  # issue 28: penalties, lazy regularisation, schedules
    if objective:
        bad(objective)
    if t.ortho_reg < 0:  # BigGAN's orthogonal regularisation (issue 29)
        bad(f"train.ortho_reg must be >= 0 (0 = off; BigGAN uses 1e-4), got {t.ortho_reg}")


def check_data(cfg: Config, bad) -> None:
    """The ``data`` section, and the small-data keys of ``train`` and ``data`` together."""
    if cfg.data.demo_size < 1:
        bad(f"data.demo_size must be >= 1, got {cfg.data.demo_size}")
    for k in ("split", "labels"):  # dataset formats: the values are checked against the dataset when opened
        v = getattr(cfg.data, k)
        if v is not None and (not isinstance(v, str) or not v.strip() or v != v.strip()):
            bad(f"data.{k} must be a name such as {'test' if k == 'split' else 'coarse'} (or null), got {v!r}")
    small_data_problem = _small_data_problem(cfg)
    if small_data_problem:
        bad(small_data_problem)


def _small_data_problem(cfg: Config) -> str | None:
    """What is wrong with the augmentation, LeCam and subset keys, or None."""
    t, d = cfg.train, cfg.data
    if t.augment not in AUGMENTS:
        return f"train.augment must be one of {', '.join(AUGMENTS)}, got {t.augment!r}"
    try:
        policy = parse_policy(t.augment_policy)
    except ValueError as e:
        return f"train.augment_policy: {e}"
    if t.augment == "diffaugment" and not policy:
        return "train.augment_policy is empty; give a comma list of color, translation, cutout"
    for k, lo, hi in (("ada_target", 0.0, 1.0), ("lecam_decay", 0.0, 1.0)):
        v = getattr(t, k)
        if not (math.isfinite(v) and lo <= v < hi):
            return f"train.{k} must be in [{lo:g}, {hi:g}), got {v}"
    if not (math.isfinite(t.ada_kimg) and t.ada_kimg > 0) or t.ada_interval < 1:
        return f"train.ada_kimg must be > 0 and train.ada_interval >= 1, got {t.ada_kimg} and {t.ada_interval}"
    if not (math.isfinite(t.lecam_weight) and t.lecam_weight >= 0) or t.lecam_start < 0:
        return f"train.lecam_weight and train.lecam_start must be >= 0, got {t.lecam_weight} and {t.lecam_start}"
    s = d.subset
    if s is not None and not (math.isfinite(s) and (0 < s < 1 or (s >= 1 and float(s).is_integer()))):
        return (f"data.subset must be a fraction in (0, 1) (0.1 = 10% of each class) or a whole number of images "
                f"per class (500), got {s}")
    if d.subset_seed < 0:
        return f"data.subset_seed must be >= 0, got {d.subset_seed}"
    return None


# the experiment trackers train.log_with names (sagan.training.trackers drives them)
TRACKER_NAMES = ("tensorboard", "wandb", "mlflow", "none")


def _log_with_problem(log_with: tuple[str, ...]) -> str | None:
    """What is wrong with ``train.log_with`` (experiment trackers), or None."""
    unknown = [n for n in log_with if n not in TRACKER_NAMES]
    if unknown or not log_with:
        return f"train.log_with must be a non-empty list of {', '.join(TRACKER_NAMES)}; got {list(log_with)}"
    if "none" in log_with and len(log_with) > 1:
        return f"train.log_with: none cannot be combined with trackers; got {list(log_with)}"
    if len(set(log_with)) < len(log_with):
        return f"train.log_with lists a tracker twice: {list(log_with)}"
    return None


# --------------------------------------------------------------------------------------------------
# issue 28: gradient penalties (train.r1_gamma / r2_gamma), lazy regularisation, schedules


def objective_problem(t) -> str | None:
    """What is wrong with the penalty, lazy-regularisation and schedule keys of ``train``, or None."""
    for k in ("r1_gamma", "r2_gamma", "schedule_kimg"):
        if getattr(t, k) < 0:
            return f"train.{k} must be >= 0 (0 = off), got {getattr(t, k)}"
    if t.reg_interval < 1:
        return f"train.reg_interval must be >= 1 (1 = a penalty in every D update), got {t.reg_interval}"
    ends = {k: getattr(t, f"{k}_end") for k in ("r1_gamma", "r2_gamma", "lr_g", "lr_d", "beta2")}
    given = [f"train.{k}_end" for k, v in ends.items() if v is not None]
    if given and t.schedule_kimg <= 0:
        return f"{given[0]} needs train.schedule_kimg > 0 (the thousands of images over which it is reached)"
    for k in ("r1_gamma", "r2_gamma"):
        if ends[k] is not None and (ends[k] < 0 or getattr(t, k) <= 0):
            return (f"train.{k}_end={ends[k]} needs train.{k} > 0 (the start value; 0 = off) and must be >= 0, "
                    f"got train.{k}={getattr(t, k)}")
    for k in ("lr_g", "lr_d"):
        if ends[k] is not None and ends[k] <= 0:
            return f"train.{k}_end must be > 0, got {ends[k]}"
    if ends["beta2"] is not None and not 0 <= ends["beta2"] < 1:
        return f"train.beta2_end must be in [0, 1), got {ends['beta2']}"
    if t.r1_gamma > 0 or t.r2_gamma > 0:
        if t.compile:
            return ("train.compile with a gradient penalty (train.r1_gamma / r2_gamma): torch.compile silently drops "
                    "the double-backward graph the penalty needs (pytorch/pytorch#181581); set train.compile=false")
        if t.mixed_precision == "fp16":
            return ("train.mixed_precision fp16 with a gradient penalty: the input gradients are taken without loss "
                    "scaling and underflow in fp16 (R3GAN found fp16 unusable); use bf16 or no")
    return None
# DiffAugment's policy (train.augment_policy), its vocabulary here so that validation needs no augment import
POLICY_OPS = ("color", "translation", "cutout")


def parse_policy(policy: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"color,translation,cutout"`` -> ``["color", "translation", "cutout"]``; ValueError names a bad op."""
    names = [p.strip() for p in policy.split(",")] if isinstance(policy, str) else [str(p).strip() for p in policy]
    names = [n for n in names if n]
    bad = [n for n in names if n not in POLICY_OPS]
    if bad:
        raise ValueError(f"unknown DiffAugment op {bad[0]!r}; ops are {', '.join(POLICY_OPS)}")
    return names
