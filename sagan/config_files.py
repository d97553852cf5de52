"""Reading config files: presets shipped in the package, YAML files with their ``base:`` chains (safely:
no duplicate keys, alias bombs or huge and binary files), and ``section.key=value`` overrides; what is
read is built and validated by :mod:`sagan.config`."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ConfigError, one_line, short_repr

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


# config files: a few KB in practice; a large file is a mistake (a dataset, weights), never parsed
MAX_CONFIG_BYTES = 4 * 1000 * 1000
MAX_YAML_VALUES = 100_000  # values a document may expand to through its aliases (an alias bomb: 10**9)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a mapping with the same key twice (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, typing.Hashable) and key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {short_repr(key)}",
                                                            key_node.start_mark)
                seen.add(key) if isinstance(key, typing.Hashable) else None
        return super().construct_mapping(node, deep=deep)


def _expanded_values(node, memo: dict) -> int:
    """How many values ``node`` stands for once every alias is expanded (shared nodes counted each time)."""
    if id(node) in memo:
        if memo[id(node)] is None:  # an alias inside its own anchor
            return MAX_YAML_VALUES + 1
        return memo[id(node)]
    memo[id(node)] = None
    children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else
                node.value if isinstance(node, yaml.SequenceNode) else [])
    total = 1
    for child in children:
        total += _expanded_values(child, memo)
        if total > MAX_YAML_VALUES:
            break
    memo[id(node)] = total
    return total


def parse_yaml(text: str, where: str):
    """A YAML document with the safe loader, refusing duplicate keys and alias bombs (ConfigError naming
    ``where``); syntax errors stay ``yaml.YAMLError``."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_values(node, {}) > MAX_YAML_VALUES:
            raise ConfigError(f"{where}: its YAML aliases expand to more than {MAX_YAML_VALUES} values (an alias "
                              "bomb?); write the values out instead of nesting aliases")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _read_yaml(p: Path) -> dict:
    try:
        size = p.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config {p} is {size / 1e6:.0f} MB, not a config file (those are a few KB; the limit "
                              f"is {MAX_CONFIG_BYTES // 1000000} MB); check --config / base:")
        text = p.read_bytes().decode("utf-8")
        raw = parse_yaml(text, str(p)) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"config {p} is not a YAML text file (it holds bytes that are not UTF-8 text: a "
                          "checkpoint or another binary file?); check --config / base:") from None
    except yaml.reader.ReaderError as e:
        raise ConfigError(f"config {p} is not a YAML text file ({one_line(Exception(e.reason), 60)} at byte "
                          f"{e.position}); check --config / base:") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = f" line {mark.line + 1}" if mark is not None else ""
        problem = one_line(Exception(getattr(e, "problem", None) or e), 120)
        raise ConfigError(f"{p}{loc}: not valid YAML ({problem}); fix the file syntax") from None
    except RecursionError:
        raise ConfigError(f"{p}: YAML nested too deeply to be a config; fix the file") from None
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
            raise ConfigError(f"{p}: base must be a preset name or a YAML path, got {short_repr(base)}")
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
        parsed = parse_yaml(value, f"override {key.strip()}") if value.strip() else None
    except (yaml.YAMLError, RecursionError):
        parsed = value
    return key.strip(), parsed
