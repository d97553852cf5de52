"""Plugins: your own module registers losses, regularisers, augmentations, metrics, resize protocols,
dataset formats and export formats with the documented calls, and every command uses them.

A plugin is a module that, when imported, registers what it brings (``register_loss(...)``,
``register(Metric(...))``, ``register_format(...)``, ...), or a function that does so when called. Every
command loads them before it validates a config or prints ``--help``, from three places, in this order:

1. installed packages: the entry points of the group ``sagan.plugins`` (each names a module,
   ``name = my_package.sagan_plugin``, or a function to call, ``name = my_package.plugin:register``), e.g.
   in ``setup.cfg``::

       [options.entry_points]
       sagan.plugins =
           my_losses = my_package.sagan_plugin

2. the environment variable ``SAGAN_PLUGINS``: comma-separated modules on the path
   (``SAGAN_PLUGINS=my_losses,my_metrics train.py ...``);
3. ``--plugin MODULE`` on the command line (repeatable; ``MODULE:FUNCTION`` calls a function).

Each is loaded once per process. A plugin that fails to import (or whose registration fails, e.g. a name
that is taken) is one line naming it. From Python, call :func:`load_plugins` yourself.

This module is a leaf: it imports nothing of sagan but :mod:`sagan.errors`; the plugins import the
registries they use.
"""

from __future__ import annotations

import importlib
import os
from importlib import metadata
from typing import Iterable, Mapping

from .errors import UserError, one_line

ENTRY_POINT_GROUP = "sagan.plugins"
ENV_VAR = "SAGAN_PLUGINS"
PLUGIN_OPTION = "--plugin"

_loaded: dict[str, str] = {}  # plugin spec -> where it came from (entry point, SAGAN_PLUGINS, --plugin)
_entry_points_loaded = False


def loaded_plugins() -> dict[str, str]:
    """The plugins loaded in this process: {module or module:function: where it was named}."""
    return dict(_loaded)


def _call_or_import(spec: str):
    """``module`` is imported; ``module:function`` is imported and ``function()`` called."""
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    if attr:
        target = module
        for part in attr.split("."):
            target = getattr(target, part)
        target()


def load_plugin(spec: str, origin: str) -> None:
    """Load one plugin (``module`` or ``module:function``) named by ``origin``, once."""
    spec = spec.strip()
    if not spec or spec in _loaded:
        return
    try:
        _call_or_import(spec)
    except Exception as e:  # an import or a registration that fails is the plugin's problem: one line
        raise UserError(f"plugin {spec!r} (named by {origin}) failed to load: {type(e).__name__}: "
                        f"{one_line(e)}") from None
    _loaded[spec] = origin


def entry_point_plugins() -> list[metadata.EntryPoint]:
    """The ``sagan.plugins`` entry points of the installed packages (the same one once)."""
    unique = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        unique.setdefault((ep.name, ep.value), ep)
    return list(unique.values())


def env_plugins(environ: Mapping[str, str] | None = None) -> list[str]:
    """The modules that ``SAGAN_PLUGINS`` names (comma-separated; blanks ignored)."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return [m.strip() for m in value.split(",") if m.strip()]


def load_plugins(modules: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> list[str]:
    """Load the installed entry points, then ``SAGAN_PLUGINS``, then ``modules``; returns what is loaded."""
    global _entry_points_loaded
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for ep in entry_point_plugins():
            dist = getattr(ep, "dist", None)
            where = f"entry point {ENTRY_POINT_GROUP}:{ep.name}" + (f" of {dist.name}" if dist is not None else "")
            load_plugin(ep.value, where)
    for module in env_plugins(environ):
        load_plugin(module, f"{ENV_VAR}={module}")
    for module in modules:
        load_plugin(module, f"{PLUGIN_OPTION} {module}")
    return list(_loaded)


def plugin_arguments(argv: Iterable[str]) -> list[str]:
    """The values of ``--plugin MODULE`` / ``--plugin=MODULE`` in a command line (up to a ``--``), read
    before the command parses it, so that ``--help`` and the choices already know what they register."""
    argv, found = list(argv), []
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == PLUGIN_OPTION and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif arg.startswith(PLUGIN_OPTION + "="):
            found.append(arg.split("=", 1)[1])
    return found
