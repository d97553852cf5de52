"""``python -m sagan.commands.augment preview``: real images beside their augmented versions (what D sees)."""

from __future__ import annotations

from pathlib import Path

import click
import torch

from ..data import open_dataset
from ..data.formats.packed import MANIFEST
from ..errors import UserError, report_user_errors
from ..sampling import to_uint8
from ..sampling.viz import image_grid, save_png, upscale_factor
from ..augment import ada_pipeline, diffaugment, parse_policy
from .options import Group


def preview_grid(images: torch.Tensor, augment, copies: int, seed: int) -> torch.Tensor:
    """Rows of one real image (B, 3, H, W in [-1, 1]) followed by ``copies`` augmented versions, as
    uint8 (B * (1 + copies), H, W, 3) in row order."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        versions = [images] + [augment(images, gen) for _ in range(copies)]
    tiles = torch.stack(versions, dim=1).flatten(0, 1)  # image 0: real, aug, aug, ...; image 1: ...
    return to_uint8(tiles)


def _augmenter(augment: str, policy: str, p: float):
    if augment == "ada":
        return lambda x, gen: ada_pipeline(x, p, gen)
    try:
        ops = parse_policy(policy)
    except ValueError as e:
        raise UserError(f"--policy: {e}") from None
    if not ops:
        raise UserError("--policy is empty; give a comma list of color, translation, cutout")
    return lambda x, gen: diffaugment(x, ops, gen)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def main():
    """Augmentations of what D sees (train.augment: none, diffaugment, ada).

    \b
    Examples:
      python -m sagan.commands.augment preview --data data/cifar10 --policy color,translation,cutout --out grid.png
      python -m sagan.commands.augment preview --augment ada --p 0.8 --out ada.png        # the built-in demo data
    """


@main.command()
@click.option("--data", default=None, metavar="PATH", help="Packed dataset or class-per-folder tree.  [default: the built-in demo data]")
@click.option("--resolution", type=click.IntRange(min=4), default=None, help="Resize a class-per-folder tree to this size.  [default: 64 for a tree]")
@click.option("--augment", "kind", type=click.Choice(["diffaugment", "ada"]), default="diffaugment", show_default=True)
@click.option("--policy", default="color,translation,cutout", show_default=True, help="DiffAugment ops, comma separated.")
@click.option("--p", "p", type=click.FloatRange(0, 1), default=0.5, show_default=True, help="ADA's strength p.")
@click.option("--num", type=click.IntRange(1, 64), default=8, show_default=True, help="Real images (rows).")
@click.option("--copies", type=click.IntRange(1, 16), default=4, show_default=True, help="Augmented versions per image.")
@click.option("--seed", type=int, default=0, show_default=True, help="Which images and which augmentations.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
@report_user_errors
def preview(data, resolution, kind, policy, p, num, copies, seed, out):
    """Write a PNG grid: each row one real image, then its augmented versions."""
    augment = _augmenter(kind, policy, p)
    is_tree = data is not None and not (Path(data).expanduser() / MANIFEST).exists()
    ds = open_dataset(data, resolution=resolution or (64 if is_tree else None), seed=seed)
    if len(ds) == 0:
        raise UserError(f"dataset {data} has no images; nothing to preview")
    pick = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:num]
    items = [ds[int(i)] for i in pick]
    images = torch.stack([img for img, _ in items])
    tiles = preview_grid(images, augment, copies, seed)
    captions = [ds.class_names[label] if label < len(ds.class_names) else str(label) for _, label in items]
    grid = image_grid(tiles, 1 + copies, captions, zoom=upscale_factor(ds.resolution))
    path = save_png(grid, out)
    what = f"ADA p={p:g}" if kind == "ada" else f"DiffAugment {policy}"
    click.echo(f"wrote {path}: {len(items)} real images (first column) and {copies} versions each ({what})")


if __name__ == "__main__":
    main()
