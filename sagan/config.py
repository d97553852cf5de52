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
from typing import Any, Iterable, Mapping

# CONFIG_DIR, config_chain, preset_names, resolve_config_path: public names of sagan.config as well
from .config_files import (CONFIG_DIR, SECTION_NAMES, config_chain, merge_chain, parse_override,  # noqa: F401
                           preset_names, resolve_config_path)
from .errors import ConfigError, short_repr
# the networks' shape from the config, and the config's validation: public names of sagan.config as well
from .architecture import (MIN_RESOLUTION, d_attn_blocks, d_block_resolutions, d_channel_mults,  # noqa: F401
                           d_layout, g_block_resolutions, g_channel_mults, g_widths, model_d_layout,
                           resolution_problem)
from .config_checks import (ATTN_MODES, BLOCK_TYPES, D_CONDS, INITS, MIXED_PRECISION, validate,  # noqa: F401
                            validate_widths)


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
    # BigGAN (issue 29): G's CBNs read linear maps of a shared class embedding G.shared (hierarchical_z implies it)
    shared_embedding: bool = False


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
    fid_resize: str = "tf1"  # resize protocol of those evaluations (sagan.scores.resize)
    eval_metrics: tuple[str, ...] = ("fid", "is")  # metrics of those evaluations (sagan.scores.registry)
    # best checkpoint and collapse watch: the metric they follow (one of eval_metrics; direction from the registry)
    best_metric: str = "fid"
    collapse_margin: float = 0.25  # collapse watch: best_metric worse than the best by this fraction ...
    collapse_patience: int = 3  # ... for this many evaluations in a row
    collapse_logit_gap: float = 20.0  # or mean D(x) - D(G(z)) beyond this for collapse_patience logs in a row (0 = off)
    stop_on_collapse: bool = False  # stop the run (with a checkpoint) instead of only warning
    num_workers: int = 4
    # small data: augmentation of all D sees (sagan.augment), ADA's p controller,
    # LeCam regularisation (sagan.objectives.regularisers)
    augment: str = "none"  # none (the paper), diffaugment, ada
    augment_policy: str = "color,translation,cutout"  # DiffAugment's ops, applied in this order
    ada_target: float = 0.6  # ADA: p follows r_t = E[sign(D(real))] towards this target (Karras et al. 2020)
    ada_interval: int = 4  # ADA: G steps between updates of p
    ada_kimg: float = 500.0  # ADA: p can go from 0 to 1 in this many thousand real images
    lecam_weight: float = 0.0  # LeCam regularisation lambda (Tseng et al. 2021; StudioGAN 0.3); 0 = off
    lecam_decay: float = 0.99  # decay of LeCam's moving averages of D's outputs
    lecam_start: int = 1000  # LeCam: steps before the term applies (the averages follow the last value until then)
    # experiment trackers (sagan.training.trackers): tensorboard, wandb, mlflow (several at once) or none
    log_with: tuple[str, ...] = ("tensorboard",)
    # EMA generator's BN statistics (issue 26): recomputed for its averaged weights over this many batches of
    # fresh latents whenever it is read (grids, evaluations, checkpoints); 0 = G's statistics, as before
    ema_standing_batches: int = 16
    threads: int = 0  # CPU threads of torch's kernels (sagan.threads); 0 = automatic, fewer on loaded cores
    # today's objectives (issue 28; sagan.training.objective): zero-centred gradient penalties on D's input,
    # StyleGAN2's lazy regularisation, R3GAN's cosine schedules ("burn-in"); the *_end keys: null = constant
    r1_gamma: float = 0.0  # R1: (gamma / 2) E||grad_x D(x)||^2 on real images (0 = off)
    r2_gamma: float = 0.0  # R2: the same on generated images (0 = off); R3GAN = loss rpgan + R1 + R2
    reg_interval: int = 1  # penalties every k-th D update, times k, D's Adam lr x k/(k+1), betas ^ k/(k+1)
    schedule_kimg: float = 0.0  # the *_end values are reached on a cosine over this many thousand images seen
    r1_gamma_end: float | None = None
    r2_gamma_end: float | None = None
    lr_g_end: float | None = None
    lr_d_end: float | None = None
    beta2_end: float | None = None
    # BigGAN (issue 29): orthogonal regularisation of G, strength beta (BigGAN 1e-4); 0 = off
    ortho_reg: float = 0.0


@dataclass(frozen=True)
class DataConfig:
    path: str | None = None  # None = the built-in procedurally generated demo dataset
    hflip: bool = True
    demo_size: int = 5000  # images in the built-in demo dataset
    ref_stats: str | None = None  # .npz from `evaluate.py stats`, for FID during training
    # dataset formats (sagan.data.formats): choices within a CIFAR / Hugging Face folder; None = its default
    split: str | None = None  # train (default) | test ...
    labels: str | None = None  # CIFAR-100: fine (default) | coarse; Hugging Face: the ClassLabel column
    # training subset: a fraction (0 < s < 1) or an image count per class (integer >= 1); null = all
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
