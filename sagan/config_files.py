"""Reading config files: presets shipped in the package, YAML files with their ``base:`` chains, and
``section.key=value`` overrides; what is read is built and validated by :mod:`sagan.config`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # presets ship inside the package (pip install . finds them)
SECTION_NAMES = ("model", "train", "data")


def preset_names() -> list[str]:
    """Preset names (``demo``, ``imagenet128``, ``experiments/attention/feat32``, ...)."""
    return sorted(str(p.relative_to(CONFIG_DIR).with_suffix("")) for p in CONFIG_DIR.rglob("*.yaml"))


def resolve_config_path(path_or_name: str | Path, relative_to: Path | None = None) -> Path:
    """A YAML path (relative to ``relative_to``'s folder when given: a ``base:`` inside a file), or a preset
    name from the package's ``configs/`` (``demo``, ``imagenet128``, ...)."""
    p = Path(path_or_name).expanduser()
    for cand in ([relative_to.parent / p] if relative_to is not None and not p.is_absolute() else []) + [p]:
        if cand.is_file():
            return cand
    preset = CONFIG_DIR / f"{path_or_name}.yaml"
    if preset.is_file() and p.suffix == "":
        return preset
    where = f" (base of {relative_to})" if relative_to is not None else ""
    raise ConfigError(f"config file {str(path_or_name)!r}{where} not found; give a YAML path or a preset "
                      f"({', '.join(n for n in preset_names() if '/' not in n)})")


def _read_yaml(p: Path) -> dict:
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{loc}: not valid YAML ({getattr(e, 'problem', e)}); fix the file syntax") from None
    except OSError as e:
        raise ConfigError(f"cannot read config {p} ({e.strerror or e})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping with sections {', '.join(SECTION_NAMES)}, got {type(raw).__name__}")
    return raw


def config_chain(path_or_name: str | Path) -> list[tuple[Path, dict]]:
    """The file and every ``base:`` it inherits from, most basic first, as ``(path, raw mapping)``.

    ``base:`` names a preset or a YAML path (relative to the file that names it); a cycle or a missing base
    is a one-line :class:`ConfigError`.
    """
    chain: list[tuple[Path, dict]] = []
    p = resolve_config_path(path_or_name)
    while True:
        if any(p.resolve() == q.resolve() for q, _ in chain):
            names = " -> ".join(str(q) for q, _ in chain) + f" -> {p}"
            raise ConfigError(f"config base cycle: {names}; remove one of these base: keys")
        raw = _read_yaml(p)
        chain.append((p, raw))
        base = raw.get("base")
        if base is None:
            return chain[::-1]
        if not isinstance(base, str) or not base.strip():
            raise ConfigError(f"{p}: base must be a preset name or a YAML path, got {base!r}")
        p = resolve_config_path(base, relative_to=p)


def merge_chain(chain: list[tuple[Path, dict]]) -> dict:
    """Section-wise merge of a :func:`config_chain`: later files override keys of earlier ones. ``name``
    is the last file's own (or its file name), never inherited."""
    merged: dict[str, Any] = {}
    for p, raw in chain:
        for key, value in raw.items():
            if key in SECTION_NAMES and isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = {**merged[key], **value}
            elif key not in ("base", "name"):
                merged[key] = value
    last_path, last = chain[-1]
    merged["name"] = last.get("name", last_path.stem)
    return merged


def parse_override(s: str) -> tuple[str, Any]:
    if "=" not in s:
        raise ConfigError(f"override {s!r}: expected key=value, e.g. train.lr_g=2e-4")
    key, value = s.split("=", 1)
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed
