"""``sagan-prepare`` (``python -m sagan.commands.prepare``): the packer's command line.

This module parses options and prints; the packer itself (``pack``, ``summary``, resumable chunks) is the
library module :mod:`sagan.data.prepare`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import report_user_errors
from ..io import printable
from ..data.formats.packed import PROGRESS
from ..data.prepare import CHUNK_SIZE, pack, summary
from .options import Command


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--source", required=True,
              help="Dataset folder: a class-per-folder tree SOURCE/<class>/**/<image>, a flat folder of images "
                   "(unlabelled), a CIFAR folder (cifar-10-batches-py, cifar-10-batches-bin, cifar-100-python), "
                   "tiny-imagenet-200, or a Hugging Face dataset (save_to_disk folder, or data/train-*.parquet).")
@click.option("--out", required=True, help="Folder to write the packed dataset to.")
@click.option("--resolution", default=None, type=int,
              help="Output size in px (square); one training accepts as model.resolution.  [default: the source's "
                   "image size (CIFAR: 32), the power of two at or below it]")
@click.option("--split", default=None, help="CIFAR / Hugging Face: the split to pack, train or test (Tiny-ImageNet: "
                                            "train or val).  [default: train]")
@click.option("--labels", default=None,
              help="CIFAR-100: fine (100 classes, default) or coarse (20); Hugging Face: the ClassLabel column.")
@click.option("--workers", default=None, type=int, help="Decoding processes [default: all CPUs].")
@click.option("--chunk-size", default=CHUNK_SIZE, show_default=True, type=int,
              help="Images per unit of work and of resume.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@report_user_errors
def main(source, out, resolution, workers, chunk_size, quiet, split, labels):
    """Pack a dataset folder (class tree, flat folder, CIFAR, Hugging Face) for fast training.

    \b
    Examples:
      sagan-prepare --source ~/imagenet/train --out ~/data/imagenet128 --resolution 128
      sagan-prepare --source ./my_images --out ./data/mine64 --resolution 64 --workers 8
      sagan-prepare --source ./digits --out ./data/digits          # at the images' own size (e.g. 32px)
      sagan-prepare --source ~/data/cifar-10-batches-py --out ~/data/cifar10-packed
      sagan-prepare --source ~/data/cifar-10-batches-py --split test --out ~/data/cifar10-test-packed
      sagan-prepare --source ~/data/cifar-100-python --labels coarse --out ~/data/cifar100-coarse
      sagan-prepare --source ~/hf/my_dataset --split train --out ~/data/mine64 --resolution 64

    In a tree, class k is the k-th folder name in sorted order (torchvision ImageFolder's); a flat
    folder is unlabelled (0 classes). Images are
    EXIF-rotated, converted to RGB, centre-cropped and resized with antialiased Lanczos; files that
    cannot be decoded are skipped and listed in OUT/skipped.txt, as are symlink loops and second links
    to a folder or file already taken (symlinks are followed, each real folder and file packed once).
    The output's disk space is allocated before decoding starts. An interrupted run (Ctrl-C, a full
    disk) resumes where it stopped when run again with the same options; OUT/manifest.json is written
    last.
    """
    try:
        manifest = pack(source, out, resolution, workers=workers, chunk_size=chunk_size, progress=not quiet,
                        split=split, labels=labels)
    except KeyboardInterrupt:
        click.echo(f"interrupted: the finished chunks are kept in {printable(Path(out) / PROGRESS)}; run the same "
                   f"command again to resume", err=True)
        sys.exit(130)
    click.echo(summary(manifest, Path(out)))


if __name__ == "__main__":
    main()
