"""Pairing generated classes with the reference's classes, by name.

A model's class order and a reference's need not agree: a reference built from a class-per-folder tree
(e.g. the folders ``sample.py --out DIR/`` writes, named by class) orders its classes alphabetically,
while the model keeps its training data's order. Pairing by index would then compare generated red
circles with real blue triangles and print a plausible, wrong intra-FID. So when both sides carry class
names (a checkpoint's ``class_names``, a samples file's ``class_names`` array, a reference's
``class_names``), generated label ``c`` is paired with the reference class of the same name, and class
sets that differ are refused. Names that are only the indices ("0", "1", ...) carry no information and
count as no names; without names on one side, classes pair by index and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import UserError
from ..sampling.sets import class_folder_names
from ..scores.stats import RefStats, informative_names


@dataclass(frozen=True)
class ClassPairing:
    to_ref: np.ndarray | None  # generated label -> reference class index (None: the same index)
    description: str  # one line for the report's protocol

    def map(self, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels, np.int64)
        if self.to_ref is None:
            return labels
        bad = labels[(labels < 0) | (labels >= len(self.to_ref))]
        if len(bad):
            raise UserError(f"generated class label {int(bad[0])} has no class name ({len(self.to_ref)} names); "
                            "labels must be indices into the class names")
        return self.to_ref[labels]


def _index_of(names: list[str]) -> dict[str, int] | None:
    index = {n: c for c, n in enumerate(names)}
    return index if len(index) == len(names) else None  # duplicated names cannot pair by name


def pair_classes(gen_names: Sequence[str] | None, ref: RefStats, where: str) -> ClassPairing:
    """How the generated classes of ``where`` (a checkpoint or samples file, with ``gen_names``) map onto
    the reference's classes; a one-line error when both have names and the class sets differ."""
    if not ref.has_classes:
        return ClassPairing(None, "none needed (the reference has no classes)")
    ref_names, gen = informative_names(ref.class_names), informative_names(gen_names)
    if ref_names is None or gen is None:
        missing = "the reference" if ref_names is None else where
        return ClassPairing(None, f"by index: {missing} has no class names, so generated class c is compared "
                                  f"with reference class c")
    if gen == ref_names:
        return ClassPairing(None, f"by name ({len(gen)} classes, same order)")

    ref_index = _index_of(ref_names)
    # a reference built from sample.py's class folders holds the folder form of the names
    for form in (gen, class_folder_names(gen, len(gen))):
        if ref_index is not None and set(form) == set(ref_index) and _index_of(form) is not None:
            to_ref = np.array([ref_index[n] for n in form], np.int64)
            return ClassPairing(to_ref, f"by name ({len(gen)} classes; the reference orders them differently)")
    only_gen = sorted(set(gen) - set(ref_names))
    only_ref = sorted(set(ref_names) - set(gen))
    detail = "; ".join(part for part in (
        f"{where} has {len(only_gen)} class(es) the reference lacks (e.g. {only_gen[0]!r})" if only_gen else "",
        f"the reference has {len(only_ref)} the model lacks (e.g. {only_ref[0]!r})" if only_ref else "") if part)
    detail = detail or "duplicated class names"
    raise UserError(f"the classes of {where} and of the reference {ref.path} differ ({detail}); pairing them would "
                    "compare different classes: use the reference of the dataset the model was trained on")
