"""Typed, frozen configuration loaded from YAML.

A config has three sections, each a frozen dataclass:

- ``model``: the networks (resolution, classes, widths, attention placement, conditioning),
- ``train``: the optimisation recipe (batch, TTUR learning rates, Adam betas, EMA, precision, cadence),
- ``data``: where images come from (``path: null`` means the built-in demo dataset).

``load_config(path, overrides)`` reads a YAML file (or a preset name such as ``demo``), applies
``section.key=value`` overrides and validates everything with one-line errors. ``Config.to_dict`` /
``Config.from_dict`` round-trip through plain dicts, which is how a config is stored in a checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

# CONFIG_DIR, config_chain, preset_names, resolve_config_path: public names of sagan.config as well
from .config_files import (CONFIG_DIR, SECTION_NAMES, config_chain, merge_chain, parse_override,  # noqa: F401
                           preset_names, resolve_config_path)
from .errors import ConfigError, short_repr


ATTN_MODES = ("embedded_gaussian", "gaussian", "dot_product", "concatenation")
BLOCK_TYPES = ("attention", "residual")  # what sits at the resolutions of model.g_attn / d_attn (SAGAN Table 1)
MIXED_PRECISION = ("no", "bf16", "fp16")
INITS = ("ortho", "orthogonal", "xavier", "normal")  # "orthogonal" = "ortho"
D_CONDS = ("projection", "ac")  # model.d_cond


@dataclass(frozen=True)
class ModelConfig:
    resolution: int = 128
    num_classes: int = 1000
    z_dim: int = 128
    g_ch: int = 64  # generator width multiplier: 4x4 stage has 16 * g_ch channels (official release)
    d_ch: int = 64  # discriminator width multiplier: first block has d_ch channels
    g_attn: tuple[int, ...] = (64,)  # resolutions (px) after which G applies self-attention
    d_attn: tuple[int, ...] = (64,)  # resolutions (px) after which D applies self-attention
    attn_mode: str = "embedded_gaussian"  # non-local pairwise function (Wang et al. 2018); SAGAN's is embedded Gaussian
    attn_pool: bool = True  # 2x2 max-pool on the key/value path (official SAGAN release)
    hierarchical_z: bool = False  # BigGAN-style shared class embedding + z chunks per block
    shared_dim: int = 128  # size of the shared class embedding when hierarchical_z
    bn_eps: float = 1e-5
    sn_eps: float = 1e-6
    init: str = "ortho"  # "ortho" / "orthogonal" (StudioGAN, BigGAN-PyTorch), "xavier" or "normal"
    g_sn: bool = True  # spectral norm in G (SAGAN section 4); D always has it (SAGAN section 5.1: "SN on D only")
    g_block_type: str = "attention"  # at each g_attn resolution: self-attention, or a plain residual block (Table 1)
    d_block_type: str = "attention"
    d_shortcut_relu: bool = False  # D blocks' shortcut sees relu(x) (StudioGAN's in-place ReLU), not x (the paper)
    # published networks other than the ImageNet pyramid (e.g. StudioGAN's CIFAR-10 SAGAN); empty = from g_ch / d_ch
    g_widths: tuple[int, ...] = ()  # G channels at 4px, then after each up-block (log2(resolution / 4) + 1 entries)
    d_widths: tuple[int, ...] = ()  # D channels after each block, the first one reading RGB
    d_down: tuple[bool, ...] = ()  # which D blocks halve the resolution (one per D block); empty = all but the last
    # conditioning: num_classes 0 = unconditional (plain BN in G, no class term in D)
    d_cond: str = "projection"  # D's class term: "projection" (Miyato & Koyama 2018) or "ac" (Odena et al. 2017)


# model keys a real dataset supplies (training and evaluation take them from the data unless the user pins them)
DATA_DERIVED = ("resolution", "num_classes")


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 256  # global batch (all processes, after gradient accumulation)
    grad_accum: int = 1
    lr_g: float = 1e-4  # TTUR (SAGAN section 4)
    lr_d: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.9  # the paper; the official TF code ran the default 0.999
    adam_eps: float = 1e-8
    d_steps: int = 1  # D steps per G step
    loss: str = "hinge"
    max_steps: int = 1_000_000
    ema: bool = True
    ema_decay: float = 0.9999  # BigGAN-PyTorch's SAGAN recipe
    ema_start: int = 2000
    mixed_precision: str = "no"
    sync_bn: bool = False
    channels_last: bool = False
    compile: bool = False
    seed: int = 0
    log_every: int = 10
    sample_every: int = 1000
    checkpoint_every: int = 2000
    keep_checkpoints: int = 3
    fid_every: int = 0  # evaluate every N steps (0 = off); needs data.ref_stats and an Inception weights file
    fid_num_samples: int = 5000
    fid_resize: str = "tf1"  # resize protocol of those evaluations (sagan.metrics.resize)
    eval_metrics: tuple[str, ...] = ("fid", "is")  # metrics of those evaluations (sagan.metrics.registry)
    # best checkpoint and collapse watch: the metric they follow (one of eval_metrics; direction from the registry)
    best_metric: str = "fid"
    collapse_margin: float = 0.25  # collapse watch: best_metric worse than the best by this fraction ...
    collapse_patience: int = 3  # ... for this many evaluations in a row
    collapse_logit_gap: float = 20.0  # or mean D(x) - D(G(z)) beyond this for collapse_patience logs in a row (0 = off)
    stop_on_collapse: bool = False  # stop the run (with a checkpoint) instead of only warning
    num_workers: int = 4
    # small data (issue 20): augmentation of all D sees (sagan.augment), ADA's p controller,
    # LeCam regularisation (sagan.training.regularisers)
    augment: str = "none"  # none (the paper), diffaugment, ada
    augment_policy: str = "color,translation,cutout"  # DiffAugment's ops, applied in this order
    ada_target: float = 0.6  # ADA: p follows r_t = E[sign(D(real))] towards this target (Karras et al. 2020)
    ada_interval: int = 4  # ADA: G steps between updates of p
    ada_kimg: float = 500.0  # ADA: p can go from 0 to 1 in this many thousand real images
    lecam_weight: float = 0.0  # LeCam regularisation lambda (Tseng et al. 2021; StudioGAN 0.3); 0 = off
    lecam_decay: float = 0.99  # decay of LeCam's moving averages of D's outputs
    lecam_start: int = 1000  # LeCam: steps before the term applies (the averages follow the last value until then)


@dataclass(frozen=True)
class DataConfig:
    path: str | None = None  # None = the built-in procedurally generated demo dataset
    hflip: bool = True
    demo_size: int = 5000  # images in the built-in demo dataset
    ref_stats: str | None = None  # .npz from `evaluate.py stats`, for FID during training
    # dataset formats (sagan.data.formats): choices within a CIFAR / Hugging Face folder; None = its default
    split: str | None = None  # train (default) | test ...
    labels: str | None = None  # CIFAR-100: fine (default) | coarse; Hugging Face: the ClassLabel column
    # training subset (issue 20): a fraction (0 < s < 1) or an image count per class (integer >= 1); null = all
    subset: float | None = None
    subset_seed: int = 0  # which images a subset takes (the same on every resume and process)


@dataclass(frozen=True)
class Config:
    name: str = "imagenet128"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, not tuples) that YAML, JSON and ``torch.load(weights_only=True)`` accept."""

        def plain(v):
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            return v

        return {
            "name": self.name,
            **{s: {k: plain(v) for k, v in dataclasses.asdict(getattr(self, s)).items()} for s in SECTIONS},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "config") -> "Config":
        return _build(d, where)

    def replace(self, **section_updates: Mapping[str, Any]) -> "Config":
        """New config with some keys of some sections changed, e.g. ``cfg.replace(train={"batch_size": 8})``."""
        d = self.to_dict()
        for section, upd in section_updates.items():
            if section not in SECTIONS:
                raise ConfigError(f"unknown config section {section!r}; sections are {', '.join(SECTIONS)}")
            d[section].update(upd)
        return _build(d, "config")


SECTIONS: dict[str, type] = dict(zip(SECTION_NAMES, (ModelConfig, TrainConfig, DataConfig)))


# --------------------------------------------------------------------------------------------------
# architecture derived from the config


def g_channel_mults(resolution: int) -> list[tuple[int, int]]:
    """(in, out) channel multipliers of G's up-blocks, 4px -> resolution.

    128px gives the official release's 16->16, 16->8, 8->4, 4->2, 2->1: the last block ends at 1x ch,
    each earlier block doubles, capped at 16x.
    """
    n = int(math.log2(resolution // 4))
    outs = [min(16, 2 ** (n - 1 - i)) for i in range(n)]
    ins = [outs[0]] + outs[:-1]
    return list(zip(ins, outs))


def d_channel_mults(resolution: int) -> list[tuple[int, int, bool]]:
    """(in, out, downsample) channel multipliers of D's blocks, resolution -> 4px, plus a last block at 4px.

    128px gives 3->1 (optimized block), 1->2, 2->4, 4->8, 8->16, then 16->16 without downsampling.
    The first entry's ``in`` is 0, meaning the RGB input.
    """
    n = int(math.log2(resolution // 4))
    outs = [min(16, 2**i) for i in range(n)]
    ins = [0] + outs[:-1]
    return [(i, o, True) for i, o in zip(ins, outs)] + [(outs[-1], outs[-1], False)]


def g_widths(resolution: int, ch: int, widths: Sequence[int] = ()) -> list[int]:
    """G's channels at 4px, then after each up-block: ``widths`` (``model.g_widths``) when given, else the
    official release's pyramid from ``ch`` (``model.g_ch``)."""
    if widths:
        return list(widths)
    mults = g_channel_mults(resolution)
    return [mults[0][0] * ch] + [o * ch for _, o in mults]


def d_layout(resolution: int, ch: int, widths: Sequence[int] = (), down: Sequence[bool] = ()) -> list[tuple[int, int, bool, int]]:
    """``(in, out, downsample, output px)`` of each D block, ``in`` 3 for the RGB input.

    ``widths`` / ``down`` are ``model.d_widths`` / ``d_down``; without widths, the release's pyramid from
    ``ch`` (``d_channel_mults``); without ``down``, every block but the last halves the resolution.
    """
    if not widths:
        mults = d_channel_mults(resolution)
        widths = [o * ch for _, o, _ in mults]
    down = list(down) if down else [True] * (len(widths) - 1) + [False]
    layout, cin, px = [], 3, resolution
    for w, dn in zip(widths, down):
        px = px // 2 if dn else px
        layout.append((cin, w, dn, px))
        cin = w
    return layout


def d_attn_blocks(layout: Sequence[tuple[int, int, bool, int]]) -> dict[int, int]:
    """{output px: index of the first D block reaching it}, over all blocks but the last: where D's
    self-attention (``model.d_attn``, by resolution) can sit."""
    first: dict[int, int] = {}
    for k, (*_, px) in enumerate(layout[:-1]):
        first.setdefault(px, k)
    return first


def model_d_layout(m: "ModelConfig") -> list[tuple[int, int, bool, int]]:
    return d_layout(m.resolution, m.d_ch, m.d_widths, m.d_down)


def g_block_resolutions(resolution: int) -> list[int]:
    """Output resolution of each G up-block."""
    return [8 * 2**i for i in range(len(g_channel_mults(resolution)))]


def d_block_resolutions(resolution: int) -> list[int]:
    """Output resolution of each D block (the last block keeps 4px)."""
    n = len(d_channel_mults(resolution)) - 1
    return [resolution // 2 ** (i + 1) for i in range(n)] + [4]


# --------------------------------------------------------------------------------------------------
# loading and validation


def load_config(path: str | Path, overrides: Mapping[str, Any] | Iterable[str] | None = None) -> Config:
    """Load a YAML config (path or preset name, with its ``base:`` chain), apply overrides, validate.

    ``overrides`` is a mapping ``{"train.lr_g": 2e-4}`` or an iterable of ``"train.lr_g=2e-4"`` strings
    (values parsed as YAML, so ``model.g_attn=[32,64]`` and ``data.path=null`` work).
    """
    chain = config_chain(path)
    return apply_overrides(_build(merge_chain(chain), str(chain[-1][0])), overrides)


def apply_overrides(cfg: Config, overrides: Mapping[str, Any] | Iterable[str] | None) -> Config:
    if not overrides:
        return cfg
    items = overrides.items() if isinstance(overrides, Mapping) else (parse_override(s) for s in overrides)
    d = cfg.to_dict()
    for key, value in items:
        parts = key.split(".")
        if len(parts) == 1 and parts[0] == "name":
            d["name"] = value
            continue
        if len(parts) != 2 or parts[0] not in SECTIONS:
            raise ConfigError(f"override {key!r}: expected section.key with section one of {', '.join(SECTIONS)}")
        section, k = parts
        if k not in {f.name for f in dataclasses.fields(SECTIONS[section])}:
            raise ConfigError(f"override {key!r}: unknown key {k!r} in section {section!r}{_suggest(k, SECTIONS[section])}")
        d[section][k] = value
    return _build(d, "overrides")


def _suggest(key: str, cls: type) -> str:
    import difflib

    close = difflib.get_close_matches(key, [f.name for f in dataclasses.fields(cls)], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(value, non_none[0], where)
    if origin is tuple:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if value is None:
            value = []
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {short_repr(value)}")
        return tuple(_coerce(v, args[0], where) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {short_repr(value)}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{where}: expected an integer, got {short_repr(value)}")
        return int(value)
    if tp is float:
        if isinstance(value, str):
            try:
                value = float(value)  # YAML 1.1 reads "1e-4" as a string
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {short_repr(value)}")
        if not math.isfinite(value):  # NaN passes every `v <= 0` range check below
            raise ConfigError(f"{where}: must be a finite number, got {value}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {short_repr(value)}")
        return value
    return value


def _build(raw: Mapping[str, Any], where: str) -> Config:
    unknown = set(raw) - set(SECTIONS) - {"name"}
    if unknown:
        shown = ", ".join(sorted(k if isinstance(k, str) else short_repr(k, 40) for k in unknown)[:5])
        raise ConfigError(f"{where}: unknown section(s) {short_repr(shown, 120)[1:-1]}; sections are name, "
                          f"{', '.join(SECTIONS)}")
    sections = {}
    for sname, cls in SECTIONS.items():
        vals = raw.get(sname) or {}
        if not isinstance(vals, Mapping):
            raise ConfigError(f"{where}: section {sname!r} must be a mapping, got {short_repr(vals)}")
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        for k in vals:
            if k not in known:
                shown = short_repr(k, 60)[1:-1] if isinstance(k, str) else short_repr(k, 60)
                raise ConfigError(f"{where}: unknown key {sname}.{shown}{_suggest(k, cls) if isinstance(k, str) else ''}")
        sections[sname] = cls(**{k: _coerce(v, hints[k], f"{where}: {sname}.{k}") for k, v in vals.items()})
    name = raw.get("name", "config")
    if not isinstance(name, (str, int, float)) or isinstance(name, bool):  # str() of a nested list could explode
        raise ConfigError(f"{where}: name must be a string, got {short_repr(name)}")
    cfg = Config(name=str(name), **sections)
    validate(cfg, where)
    return cfg


MIN_RESOLUTION = 16


def resolution_problem(r: int) -> str | None:
    """Why ``r`` cannot be a model resolution (the networks halve / double it down to 4px), or None."""
    if r < MIN_RESOLUTION or r & (r - 1):
        return f"must be a power of two >= {MIN_RESOLUTION}, got {r}"
    return None


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
    gw = g_widths(r, m.g_ch, m.g_widths)
    for k, widths in (("g_attn", dict(zip(g_block_resolutions(r), gw[1:]))),
                      ("d_attn", {px: layout[i][1] for px, i in d_attn_blocks(layout).items()})):
        for res in getattr(m, k):
            if res not in widths:
                bad(f"model.{k} has {res}px but the {k[0].upper()} at {r}px has blocks at {list(widths)}px; "
                    "pick from those")
            if widths[res] % 8:
                bad(f"model.{k} at {res}px: {widths[res]} channels, attention needs a multiple of 8 (it uses C/8)")


def validate(cfg: Config, where: str = "config") -> None:
    m, t = cfg.model, cfg.train

    def bad(msg: str) -> None:
        raise ConfigError(f"{where}: {msg}")

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
        chunks = len(g_channel_mults(r)) + 1
        if m.z_dim % chunks:
            bad(f"model.z_dim={m.z_dim} must split evenly into {chunks} chunks with hierarchical_z at {r}px")
    if m.d_cond not in D_CONDS:
        bad(f"model.d_cond must be one of {', '.join(D_CONDS)}, got {m.d_cond!r}")
    if m.num_classes == 0 and (m.d_cond == "ac" or m.hierarchical_z):
        bad(f"model.{'d_cond: ac' if m.d_cond == 'ac' else 'hierarchical_z'} needs classes, but model.num_classes is 0 "
            "(unconditional); use labelled data or drop that setting")
    if m.init not in INITS:
        bad(f"model.init must be one of {', '.join(INITS)}, got {m.init!r}")
    for k in ("g_block_type", "d_block_type"):
        if getattr(m, k) not in BLOCK_TYPES:
            bad(f"model.{k} must be one of {', '.join(BLOCK_TYPES)}, got {getattr(m, k)!r}")
    for k in ("bn_eps", "sn_eps"):
        if getattr(m, k) <= 0:
            bad(f"model.{k} must be > 0")
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
    from .training.losses import LOSSES  # the registry (a new loss registers itself there)

    if t.loss not in LOSSES:
        bad(f"train.loss must be one of {', '.join(LOSSES)}, got {t.loss!r}")
    if t.mixed_precision not in MIXED_PRECISION:
        bad(f"train.mixed_precision must be one of {', '.join(MIXED_PRECISION)}, got {t.mixed_precision!r}")
    for k in ("max_steps", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "fid_num_samples"):
        if getattr(t, k) < 1:
            bad(f"train.{k} must be >= 1, got {getattr(t, k)}")
    from .metrics.registry import METRIC_NAMES  # the registries: a new metric or protocol registers itself
    from .metrics.resize import RESIZE_MODES

    if t.fid_resize not in RESIZE_MODES:
        bad(f"train.fid_resize must be one of {', '.join(RESIZE_MODES)}, got {t.fid_resize!r}")
    unknown = [m for m in t.eval_metrics if m not in METRIC_NAMES]
    if unknown or not t.eval_metrics:
        bad(f"train.eval_metrics must be a non-empty list of {', '.join(METRIC_NAMES)}; got {list(t.eval_metrics)}")
    if t.best_metric not in t.eval_metrics:
        bad(f"train.best_metric={t.best_metric!r} must be one of train.eval_metrics {list(t.eval_metrics)}; add it "
            "there or pick one of those")
    if "is" in t.eval_metrics and t.fid_num_samples < 10:
        bad(f"train.fid_num_samples={t.fid_num_samples} cannot be cut into the Inception Score's 10 splits; use >= 10")
    if t.collapse_margin < 0 or t.collapse_logit_gap < 0 or t.collapse_patience < 1:
        bad("train.collapse_margin and collapse_logit_gap must be >= 0 and train.collapse_patience >= 1")
    for k in ("ema_start", "fid_every", "num_workers", "seed"):
        if getattr(t, k) < 0:
            bad(f"train.{k} must be >= 0, got {getattr(t, k)}")
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
    """What is wrong with the augmentation, LeCam and subset keys (issue 20), or None."""
    from .augment import AUGMENTS, parse_policy  # the registry (a new augmentation registers itself there)

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
