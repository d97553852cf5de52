"""One registry type for every extension point: losses, regularisers, augmentations, metrics, resize
protocols, dataset formats and export formats.

A :class:`Registry` maps names to entries in registration order. ``register`` refuses a name that is
taken (a second registration of the *same* entry, e.g. a module imported again, is a no-op); looking up
an unknown name is one line listing the registered ones (:class:`UnknownName`, a :class:`UserError`
that is also a ``KeyError``); iteration, ``in`` and :attr:`Registry.names` follow the live contents, so a
name registered later (by a plugin, :mod:`sagan.plugins`) is valid everywhere: config validation,
``--help`` texts and option choices ask the registry, never a copy taken at import.

The seven registries are created here, each with the module that registers its built-in entries (its
*provider*, imported by name the first time the registry is read), so that config validation and
``--help`` ask a leaf for names without importing the training, metrics or data stacks themselves.
The entries and their register functions stay with their code (``sagan.objectives.losses.register_loss``,
``sagan.scores.registry.register``, ...), which also re-export the registry under its old name.

This module is a leaf: it imports nothing of sagan but :mod:`sagan.errors`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Generic, TypeVar

from .errors import UserError

T = TypeVar("T")


class UnknownName(UserError, KeyError):
    """A name that no entry is registered under (one line that lists the registered ones)."""

    __str__ = Exception.__str__  # a plain message, not KeyError's quoted repr


class DuplicateName(ValueError):
    """A second, different entry registered under a taken name."""


class Names(Sequence):
    """A live, read-only view of a registry's names in registration order; equal to the tuple of them."""

    def __init__(self, registry: "Registry"):
        self._registry = registry

    def __getitem__(self, index):
        return tuple(self._registry)[index]

    def __len__(self) -> int:
        return len(self._registry)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._registry))

    def __contains__(self, name: object) -> bool:
        return name in self._registry

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (tuple, list, Names)):
            return tuple(self) == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  (mutable: it follows the registry)

    def __repr__(self) -> str:
        return repr(tuple(self))


class Registry(Mapping, Generic[T]):
    """Named entries of one kind (``kind`` names it in messages: "loss", "dataset format")."""

    def __init__(self, kind: str, provider: str | None = None):
        self.kind = kind
        self.provider = provider  # the module that registers the built-in entries (imported on first read)
        self._entries: dict[str, T] = {}
        self._provided = provider is None

    def _entries_read(self) -> dict[str, T]:
        """The entries, once the provider of the built-in ones has been imported."""
        if not self._provided:
            self._provided = True  # before the import: the provider reads the registry while it fills it
            importlib.import_module(self.provider)
        return self._entries

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name``; a name that is taken by another entry is a :class:`DuplicateName`."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} needs a non-empty name, got {name!r}")
        if name in self._entries:
            if self._entries[name] == entry:
                return self._entries[name]
            raise DuplicateName(f"{self.kind} {name!r} is registered twice; register yours under another name "
                                f"(taken: {', '.join(self._entries)})")
        self._entries[name] = entry
        return entry

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries_read()[name]
        except (KeyError, TypeError):
            raise UnknownName(f"unknown {self.kind} {name!r}; registered: {self.listing()}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries_read()))

    def __len__(self) -> int:
        return len(self._entries_read())

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries_read()
        except TypeError:  # an unhashable value from a config file is simply not a name
            return False

    @property
    def names(self) -> Names:
        """The registered names, live (a view, not a copy)."""
        return Names(self)

    def listing(self, sep: str = ", ") -> str:
        """The registered names as one line, for messages and help texts."""
        return sep.join(self._entries_read())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {self.listing()})"

    @contextmanager
    def scratch(self):
        """Registrations made inside the block are undone when it ends (tests, notebooks)."""
        saved = dict(self._entries_read())
        try:
            yield self
        finally:
            self._entries.clear()
            self._entries.update(saved)

    @contextmanager
    def replaced(self, name: str, entry: T):
        """The registered ``name`` stands for ``entry`` inside the block (a test's faulty loss or format)."""
        old = self[name]
        self._entries[name] = entry
        try:
            yield entry
        finally:
            self._entries[name] = old


# --------------------------------------------------------------------------------------------------
# the seven registries (each documented where its entries are defined)

LOSSES: Registry = Registry("loss", "sagan.objectives.losses")  # train.loss
REGULARISERS: Registry = Registry("regulariser", "sagan.objectives.regularisers")  # switched on by train keys
AUGMENTS: Registry = Registry("augmentation", "sagan.augment")  # train.augment
METRICS: Registry = Registry("metric", "sagan.scores.registry")  # --metrics, train.eval_metrics
RESIZERS: Registry = Registry("resize protocol", "sagan.scores.resize")  # --resize, train.fid_resize
DATASET_FORMATS: Registry = Registry("dataset format", "sagan.data.formats")  # --data, sagan-prepare --source
EXPORT_FORMATS: Registry = Registry("export format", "sagan.export.formats")  # sagan-export --format

REGISTRIES: tuple[Registry, ...] = (LOSSES, REGULARISERS, AUGMENTS, METRICS, RESIZERS, DATASET_FORMATS, EXPORT_FORMATS)
