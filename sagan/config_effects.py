"""Keys a user set that do nothing in the resolved config: refused or reported in one line, never ignored
silently (``--set model.g_ch=16`` on a preset that pins ``model.g_widths`` used to change nothing).

Two kinds:

- overridden: another key decides instead and the user's value can never take effect in this config
  (``model.g_ch`` / ``d_ch`` under explicit ``g_widths`` / ``d_widths``): a :class:`ConfigError` naming the
  key, the key that overrides it and what to set instead;
- dormant: the key belongs to a feature that is switched off (``ema_decay`` with ``ema: false``,
  ``lecam_decay`` with ``lecam_weight: 0``, ...): one ``note:`` line naming the switch.

Only keys the user set count (``--set`` / command-line options and their own YAML files, not the built-in
presets' values, which are defaults for whatever the user turns on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from .architecture import d_layout, g_widths
from .config import Config
from .config_files import CONFIG_DIR, config_chain
from .errors import ConfigError


def user_set_keys(config: str | Path | None, overrides: Iterable[str] = ()) -> set[str]:
    """``section.key`` names the user set: ``overrides`` (``section.key=value`` or bare ``section.key``) and
    every key of a YAML file in ``config``'s ``base:`` chain that is not a built-in preset."""
    keys = {str(o).split("=", 1)[0].strip() for o in overrides}
    if config is None:
        return keys
    presets = CONFIG_DIR.resolve()
    for path, raw in config_chain(config):
        if presets in path.resolve().parents:
            continue
        for section, values in raw.items():
            if isinstance(values, dict):
                keys |= {f"{section}.{k}" for k in values if isinstance(k, str)}
    return keys


def _set_by(key: str, config: str | Path | None, user: set[str]) -> str:
    """Who set ``key``: you, or the file of the chain that gives it last (``preset uncond64's base tiny_imagenet``)."""
    if key in user:
        return "which you set too"
    section, name = key.split(".")
    found = None
    for path, raw in config_chain(config) if config is not None else ():
        if name in (raw.get(section) or {}):
            found = path
    if found is None:
        return "from the config"
    return f"from preset {found.stem}" if CONFIG_DIR.resolve() in found.resolve().parents else f"from {found}"


def overridden_key_problem(cfg: Config, user: set[str], config: str | Path | None = None) -> str | None:
    """The first user-set key that another key overrides, as one line saying what to do; None when none is."""
    m = cfg.model
    for ch, widths, net in (("g_ch", "g_widths", "G"), ("d_ch", "d_widths", "D")):
        if f"model.{ch}" not in user or not getattr(m, widths):
            continue
        value = getattr(m, ch)
        derived = (g_widths(m.resolution, value) if net == "G"
                   else [w for _, w, _, _ in d_layout(m.resolution, value)])
        by = _set_by(f"model.{widths}", config, user)
        down = ", with a matching model.d_down" if net == "D" and m.d_down else ""
        return (f"model.{ch}={value} has no effect: model.{widths} {list(getattr(m, widths))} ({by}) fixes {net}'s "
                f"channels; set model.{widths} instead (the {ch}={value} pyramid is "
                f"--set model.{widths}=[{','.join(map(str, derived))}]{down})")
    return None


# dormant keys: (keys, is off for this config, the switch and how to turn it on)
DORMANT: list[tuple[tuple[str, ...], Callable[[Config], bool], str]] = [
    (("train.ema_decay", "train.ema_start"), lambda c: not c.train.ema,
     "train.ema is false (no EMA generator); set train.ema=true to use it"),
    (("train.augment_policy",), lambda c: c.train.augment != "diffaugment",
     "it is DiffAugment's policy and train.augment is {augment}; set train.augment=diffaugment to use it"),
    (("train.ada_target", "train.ada_interval", "train.ada_kimg"), lambda c: c.train.augment != "ada",
     "train.augment is {augment}, not ada; set train.augment=ada to use it"),
    (("train.lecam_decay", "train.lecam_start"), lambda c: c.train.lecam_weight == 0,
     "train.lecam_weight is 0 (LeCam off); set train.lecam_weight (e.g. 0.3) to use it"),
    (("model.shared_dim",), lambda c: not c.model.hierarchical_z,
     "model.hierarchical_z is false (no shared class embedding); set model.hierarchical_z=true to use it"),
    (("train.fid_num_samples", "train.fid_resize", "train.eval_metrics", "train.best_metric", "train.collapse_margin",
      "data.ref_stats"), lambda c: c.train.fid_every == 0,
     "train.fid_every is 0 (no evaluations during training); set train.fid_every=N to use it"),
    (("data.subset_seed",), lambda c: c.data.subset is None,
     "data.subset is null (all the data trains); set data.subset to use it"),
    (("data.demo_size",), lambda c: c.data.path is not None,
     "it sizes the built-in demo dataset and data.path is set"),
    (("model.g_block_type",), lambda c: not c.model.g_attn, "model.g_attn is empty (no G block it would apply to)"),
    (("model.d_block_type",), lambda c: not c.model.d_attn, "model.d_attn is empty (no D block it would apply to)"),
    (("model.attn_mode", "model.attn_pool"), lambda c: not _has_attention(c),
     "the config has no self-attention layer (model.g_attn / d_attn empty or their block types residual)"),
]


def _has_attention(cfg: Config) -> bool:
    m = cfg.model
    return bool((m.g_attn and m.g_block_type == "attention") or (m.d_attn and m.d_block_type == "attention"))


def dormant_key_notes(cfg: Config, user: set[str]) -> list[str]:
    """One ``note:`` line per user-set key whose feature is off in ``cfg``."""
    notes = []
    for keys, off, why in DORMANT:
        chosen = [k for k in keys if k in user]
        if chosen and off(cfg):
            notes.append(f"note: {', '.join(chosen)} {'has' if len(chosen) == 1 else 'have'} no effect: "
                         + why.format(augment=cfg.train.augment))
    return notes


def check_user_keys(cfg: Config, user: set[str], config: str | Path | None = None) -> list[str]:
    """Refuse a user-set key that another key overrides (:class:`ConfigError`, one line); return the notes
    on the dormant ones."""
    problem = overridden_key_problem(cfg, user, config)
    if problem:
        raise ConfigError(problem)
    return dormant_key_notes(cfg, user)
