"""``sample.py`` / ``sagan-sample``: grids, sample sets, interpolations and attention maps from a checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import click
import numpy as np
import torch
from tqdm import tqdm

from ..sampling.bn_stats import bn_mode_description, prepare_generator
from ..models.loading import load_generator
from ..errors import UserError, report_user_errors
from ..io import (NotWritableError, check_free_space, check_replaceable, check_writable, progress_disable,
                  sweep_stale_temp_files)
from ..sampling.draw import generate, parse_classes
from ..sampling.figures import attention_maps_figure, class_name, grid_figure, interpolation_figure
from ..sampling.sets import (class_folder_names, clear_sample_folder, sample_folder_files, sample_set_bytes, write_npz,
                             write_png_folder)
from ..sampling.latents import class_balanced_labels, model_classes, sample_latents
from ..sampling.ema_check import checkpoint_notes as ema_checkpoint_notes
from ..sampling.viz import PNG_SOFTWARE, default_query_points, save_png
from .options import (Command, bn_stats_options, device_option, parse_device, seed_option, threads_option,
                      truncation_option, use_threads)

IMAGE_EXTS = (".png",)


def _device(name: str) -> torch.device:
    """``--device``; ``auto`` is the GPU when there is one."""
    dev = parse_device(name)
    if dev is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return dev


def _check_writable(out: Path, to_dir: bool) -> None:
    """Create the output folder and write a probe file into it (``os.access`` says yes to root on a
    read-only mount), before any sampling."""
    try:
        check_writable(out if to_dir else out.parent, "output folder")
    except NotWritableError as e:
        # io's advice names no option; on the command line the thing to change is --out
        raise NotWritableError(str(e).replace("pick another location", "pick another --out")) from None


def _check_sample_folder(folder: Path, overwrite: bool) -> int:
    """Refuse to mix a new sample set into a folder that holds one (or anything else) unless
    ``--overwrite``; returns the bytes that clearing it will free."""
    if not any(folder.iterdir()):
        return 0
    try:
        ours = sample_folder_files(folder)  # refuses what is not a sample folder: --overwrite would not help either
    except UserError as e:  # a photo folder: suggest what works, not --overwrite
        raise UserError(f"--out {e} (e.g. --out {folder / 'samples'}/)") from None
    if not overwrite:
        raise UserError(f"--out {folder}/ is not empty (an earlier sample set?); pass --overwrite to replace what "
                        "it holds, or pick an empty or new folder")
    return sum(f.stat().st_size for f in ours)


def _is_ours(path: Path) -> bool:
    """A file sample.py may replace without --overwrite: a PNG tagged by sagan, a sample-set .npz."""
    import zipfile

    from PIL import Image, UnidentifiedImageError

    try:
        if path.suffix.lower() == ".npz":
            with zipfile.ZipFile(path) as zf:
                return {"images.npy", "labels.npy", "seed.npy", "bn_stats.npy"} <= set(zf.namelist())
        with Image.open(path) as img:
            return img.format == "PNG" and getattr(img, "text", {}).get("Software") == PNG_SOFTWARE
    except (OSError, zipfile.BadZipFile, UnidentifiedImageError, ValueError):
        return False


def _parse_points(spec: str | None, n: int) -> list[tuple[float, float]]:
    if not spec:
        return default_query_points(n)
    pts = []
    for part in spec.split(";"):
        try:
            y, x = (float(v) for v in part.split(","))
        except ValueError:
            raise UserError(f"--query-points {spec!r}: expected row,col fractions like 0.3,0.3;0.7,0.5") from None
        if not (0 <= y <= 1 and 0 <= x <= 1):
            raise UserError(f"--query-points {spec!r}: {part!r} lies outside the image; use fractions in [0, 1]")
        pts.append((y, x))
    return pts


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--checkpoint", required=True, metavar="CKPT", help="A .pt checkpoint or a run directory (its checkpoints/last.pt).")
@click.option("--out", required=True, metavar="FILE|DIR/",
              help="grid.png, samples.npz, or a folder (trailing / or existing; empty unless --overwrite) for one PNG "
                   "per sample.")
@click.option("--classes", default=None, metavar="LIST", help="Class indices and ranges, e.g. 1,7,207 or 0-9.  [default: a spread]")
@click.option("--per-class", type=click.IntRange(min=1), default=8, show_default=True, help="Columns of a grid.")
@click.option("--num-samples", type=click.IntRange(min=1), default=50000, show_default=True,
              help="Samples for .npz / folder output (class-balanced).")
@truncation_option
@click.option("--interpolate", is_flag=True, help="Rows interpolating z at a fixed class, and the class at a fixed z.")
@click.option("--steps", type=click.IntRange(min=2), default=8, show_default=True, help="Columns of an interpolation.")
@click.option("--attention-maps", is_flag=True, help="The paper's figure: where query points look, per attention layer.")
@click.option("--num-images", type=click.IntRange(min=1), default=4, show_default=True, help="Images in the attention figure.")
@click.option("--num-queries", type=click.IntRange(min=1, max=7), default=3, show_default=True, help="Query points per image.")
@click.option("--query-points", default=None, metavar="R,C;R,C", help="Query points as row,col fractions, e.g. 0.3,0.3;0.7,0.5.")
@click.option("--no-ema", is_flag=True, help="Use the raw generator instead of the EMA one.")
@bn_stats_options
@click.option("--overwrite", is_flag=True,
              help="Replace what sample.py wrote in a non-empty --out folder (the files its .sagan-samples.json lists), "
                   "or an existing --out file that sagan did not write.")
@seed_option("Seed of latents and labels (the same at any batch size).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@device_option
@threads_option
@report_user_errors
def main(checkpoint, out, classes, per_class, num_samples, truncation, interpolate, steps, attention_maps, num_images,
         num_queries, query_points, no_ema, bn_stats, standing_batches, overwrite, seed, batch_size, device, threads):
    """Draw images from a SAGAN checkpoint (the EMA generator unless --no-ema).

    \b
    Examples:
      python sample.py --checkpoint runs/00000-demo --out runs/00000-demo/grid.png      # rows = classes
      python sample.py --checkpoint RUN --out RUN/grid.png --classes 1,7,207 --per-class 10
      python sample.py --checkpoint RUN --out RUN/samples.npz --num-samples 50000       # for evaluate.py
      python sample.py --checkpoint RUN --out RUN/samples.npz --bn-stats standing      # BigGAN's standing stats
      python sample.py --checkpoint RUN --out RUN/pngs/ --num-samples 500 --classes 0-4 [--overwrite]
      python sample.py --checkpoint RUN --out RUN/attn.png --attention-maps
      python sample.py --checkpoint RUN --out RUN/interp.png --interpolate --truncation 1.0

    With --bn-stats batch the images depend on the batch size; the mode is stored in a .npz as bn_stats.
    """
    out_path = Path(out)
    to_dir = out.endswith(("/", os.sep)) or out_path.is_dir()
    if not to_dir and out_path.suffix.lower() not in IMAGE_EXTS + (".npz",):
        raise UserError(f"--out {out}: unknown output type; use a .png grid, a .npz sample set or a folder ending in /")
    if (interpolate or attention_maps) and (to_dir or out_path.suffix.lower() != ".png"):
        raise UserError(f"--out {out}: --interpolate and --attention-maps draw a figure; give a .png file")
    sample_set = to_dir or out_path.suffix.lower() == ".npz"
    dev = _device(device)
    use_threads(threads)
    bn_stats = bn_stats or "running"
    G, cfg, ckpt = load_generator(checkpoint, ema=not no_ema, device=dev)
    if not no_ema and not ckpt["used_ema"]:
        click.echo("note: the checkpoint has no EMA generator; using the raw one", err=True)
    if not no_ema and bn_stats == "running":  # issue 26: a young EMA, or BN statistics unlike its weights
        for note in ema_checkpoint_notes(G, cfg, ckpt, dev):
            click.echo(note, err=True)
    names = ckpt.get("class_names")
    chosen = parse_classes(classes, G.num_classes)
    points = _parse_points(query_points, num_queries)
    _check_writable(out_path, to_dir)
    if not to_dir:
        check_replaceable(out_path, _is_ours, overwrite)
    if sample_set and not to_dir:
        sweep_stale_temp_files(out_path)  # before the space check: a killed writer's temp folder frees space
    if sample_set:  # every check before the first image, and before clearing anything
        reclaimed = _check_sample_folder(out_path, overwrite) if to_dir else 0
        check_free_space(out_path, sample_set_bytes(num_samples, G.resolution, to_dir) - reclaimed, "--out")
    if bn_stats == "standing":
        click.echo(f"accumulating standing BN statistics over {standing_batches} batches", err=True)
    prepare_generator(G, bn_stats, standing_batches=standing_batches, seed=seed, device=dev, truncation=truncation)
    bn = dict(mode=bn_stats, standing_batches=standing_batches)

    try:
        if attention_maps:
            _attention_figure(G=G, ckpt=ckpt, out_path=out_path, chosen=chosen, names=names, num_images=num_images,
                              points=points, seed=seed, truncation=truncation, dev=dev)
        elif interpolate:
            _interpolation(G=G, out_path=out_path, chosen=chosen, names=names, steps=steps, seed=seed,
                           truncation=truncation, batch_size=batch_size, dev=dev)
        elif sample_set:
            if to_dir and overwrite:
                clear_sample_folder(out_path)
            _sample_set(G=G, ckpt=ckpt, out_path=out_path, to_dir=to_dir, chosen=chosen, names=names,
                        num_samples=num_samples, seed=seed, truncation=truncation, batch_size=batch_size, dev=dev,
                        bn=bn)
        else:
            _grid(G=G, out_path=out_path, chosen=chosen, names=names, per_class=per_class, seed=seed,
                  truncation=truncation, batch_size=batch_size, dev=dev)
    except OSError as e:  # permissions changed mid-run, ... (a full disk is a DiskFullError already)
        raise UserError(f"cannot write {out_path}: {e.strerror or e}; check free space and permissions, "
                        "or pick another --out") from None
    which = f"{'EMA' if ckpt['used_ema'] else 'raw'} G at step {ckpt['step']}"
    click.echo(f"wrote {out_path} ({which}, seed {seed}, {bn_mode_description(bn_stats, standing_batches)})")


def _grid(G, out_path, chosen, names, per_class, seed, truncation, batch_size, dev) -> None:
    """Rows = classes, columns = samples; class names (or indices) in a caption strip on the left."""
    save_png(grid_figure(G, chosen, names, per_class, seed, truncation, batch_size, dev), out_path)


def _sample_set(G, ckpt, out_path, to_dir, chosen, names, num_samples, seed, truncation, batch_size, dev, bn) -> None:
    """Class-balanced samples streamed into an .npz (for evaluate.py) or one PNG per sample."""
    labels = class_balanced_labels(num_samples, chosen or model_classes(G.num_classes))
    z = sample_latents(num_samples, G.z_dim, seed, truncation)
    batches = tqdm(generate(G, z, labels, batch_size, dev), total=-(-num_samples // batch_size),
                   desc="sampling", unit="batch", disable=progress_disable(num_samples > batch_size))
    if to_dir:
        write_png_folder(out_path, batches, class_folder_names(names, G.num_classes), labels=labels.tolist())
        return
    # provenance next to the pixels; truncation NaN = none. class_names[label] (the indices as strings when
    # the checkpoint has no names) lets evaluate.py pair generated and real classes by name; a plain
    # unicode array, so that np.load(allow_pickle=False) reads it
    extra = {"seed": np.int64(seed), "truncation": np.float64(truncation if truncation is not None else np.nan),
             "step": np.int64(ckpt["step"]), "ema": np.bool_(ckpt["used_ema"]), "bn_stats": np.str_(bn["mode"]),
             "bn_standing_batches": np.int64(bn["standing_batches"] if bn["mode"] == "standing" else 0),
             "class_names": np.array([class_name(names, c) for c in range(G.num_classes)], dtype=str)}
    write_npz(out_path, batches, num_samples, G.resolution, extra)


def _interpolation(G, out_path, chosen, names, steps, seed, truncation, batch_size, dev) -> None:
    """Per class a row moving z at fixed class, then a row moving the class at fixed z."""
    save_png(interpolation_figure(G, chosen, names, steps, seed, truncation, batch_size, dev), out_path)


def _attention_figure(G, ckpt, out_path, chosen, names, num_images, points, seed, truncation, dev) -> None:
    """SAGAN fig. 1/5: generated images with query points, and where each query attends per layer."""
    if not G.attn:
        raise UserError(f"{ckpt['path']}: this generator has no attention layer (model.g_attn is empty); "
                        "drop --attention-maps")
    save_png(attention_maps_figure(G, chosen, names, num_images, points, seed, truncation, dev), out_path)


if __name__ == "__main__":
    main()
