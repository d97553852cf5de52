"""Tiny-ImageNet as it unpacks from http://cs231n.stanford.edu/tiny-imagenet-200.zip (``tiny-imagenet-200``).

``wnids.txt`` (the 200 classes), ``train/<wnid>/images/*.JPEG`` (500 per class), ``val/images/*.JPEG``
with their classes in ``val/val_annotations.txt`` (``name<TAB>wnid<TAB>box``), ``test/images`` without
labels. ``--split train`` (default) or ``val`` (the split StudioGAN evaluates on); class k is the k-th
sorted wnid, as for an ImageNet tree. Images are 64x64, which packing and training keep by default.
Counts are checked: every class of ``wnids.txt`` has a train folder, all with the same number of
images, and every validation image listed is there, listed once, and inside the folder once symlinks
and ``..`` are resolved (the path checked is the path read).
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path

from ...errors import UserError
from ...io import printable
from ..images import scan_class_tree
from . import DatasetFormat, FormatOptions, register_format
from .source import FileReader, Source, listing_digest, path_inside

SIDE = 64
ADVICE = "a truncated download or extraction? unzip tiny-imagenet-200.zip again"


def detect(root: Path) -> bool:
    return (root / "wnids.txt").is_file() and (root / "train").is_dir()


def _wnids(root: Path) -> list[str]:
    wnids = sorted(line.strip() for line in (root / "wnids.txt").read_text().splitlines() if line.strip())
    folders = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if folders != wnids:
        missing = sorted(set(wnids) - set(folders)) or sorted(set(folders) - set(wnids))
        raise UserError(f"{printable(root)}: {len(folders)} train folders for the {len(wnids)} classes of wnids.txt "
                        f"(first difference: {missing[0]}); {ADVICE}")
    return wnids


def _train(root: Path, wnids: list[str]) -> tuple[list[str], list[int], list]:
    tree = scan_class_tree(root / "train")
    per_class = Counter(label for _, label in tree.files)  # one pass over the 100k files
    counts = [per_class[k] for k in range(len(wnids))]
    if len(set(counts)) > 1:
        short = min(range(len(counts)), key=counts.__getitem__)
        raise UserError(f"{printable(root / 'train' / wnids[short])}: {counts[short]} images but other classes have "
                        f"{max(counts)}; {ADVICE}")
    return [f"train/{f}" for f, _ in tree.files], [label for _, label in tree.files], tree.skipped


def _val(root: Path, wnids: list[str]) -> tuple[list[str], list[int], list]:
    path = root / "val" / "val_annotations.txt"
    if not path.is_file():
        raise UserError(f"{printable(root)}: no val/val_annotations.txt; {ADVICE}")
    index = {w: k for k, w in enumerate(wnids)}
    files, labels, first = [], [], {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split("\t")
        if not line.strip():
            continue
        if len(fields) < 2 or fields[1] not in index:
            raise UserError(f"{printable(path)}:{n}: expected <image><TAB><wnid of wnids.txt>..., got {line[:60]!r}")
        rel = path_inside(root, fields[0], root / "val" / "images")
        if rel is None:
            raise UserError(f"{printable(path)}:{n}: image {printable(fields[0])!r} lies outside {printable(root)}; "
                            f"refused (the file lists names in val/images); {ADVICE}")
        if rel in first:
            line, before = first[rel]
            other = (f" with class {fields[1]}, there {wnids[labels[before]]}" if labels[before] != index[fields[1]]
                     else "")
            raise UserError(f"{printable(path)}:{n}: {printable(fields[0])} is listed again{other} (first on line "
                            f"{line}); each image has one class: {ADVICE}")
        if not (root / rel).is_file():
            raise UserError(f"{printable(root / rel)} (listed in {path.name}) is missing; {ADVICE}")
        first[rel] = (n, len(files))
        files.append(rel.as_posix())
        labels.append(index[fields[1]])
    return files, labels, []


def tiny_imagenet_source(root: Path, options: FormatOptions) -> Source:
    split = options.split or "train"
    if split not in ("train", "val"):
        raise UserError(f"--split {split}: Tiny-ImageNet has the labelled splits train and val (its test images have "
                        f"no labels)")
    if options.labels is not None:
        raise UserError(f"--labels {options.labels}: Tiny-ImageNet has one label set; drop --labels")
    wnids = _wnids(root)
    files, labels, skipped = (_train if split == "train" else _val)(root, wnids)
    digest = partial(listing_digest, files, labels, prefix=f"tiny-imagenet {split}\n")
    return Source(f"Tiny-ImageNet, {split} split", wnids, files, labels, FileReader(root), skipped=skipped,
                  resolution=SIDE, fingerprint_of=digest)


register_format(DatasetFormat("tiny_imagenet", "Tiny-ImageNet's tiny-imagenet-200 folder (wnids.txt, train/, val/)",
                              detect, source=tiny_imagenet_source, priority=85, options=("split", "labels"),
                              sized=True))
