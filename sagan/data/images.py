"""Reading class-per-folder trees and turning any image file into a square uint8 RGB array.

Used by the packer (``sagan.prepare``) and by :class:`FolderDataset`, so a packed dataset and the tree
it came from give the same pixels. Decoding is PIL's (torchvision's JPEG decoding is deprecated from
0.29).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import UserError

# torchvision's IMG_EXTENSIONS (ImageFolder), compared case-insensitively: ImageNet uses ".JPEG"
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

# Lanczos is PIL's sharpest antialiased filter: when downscaling PIL widens the kernel by the scale
# factor, so it averages over the whole source footprint (no aliasing), as the antialiased PIL resizes
# of the BigGAN-PyTorch (bilinear) and StudioGAN packers do.
RESAMPLE = Image.Resampling.LANCZOS
# JPEGs are decoded at a reduced DCT scale (Image.draft) while they stay >= DRAFT_GAP x the target
# size, then Lanczos does the rest: the same trade as Image.thumbnail's reducing_gap (Pillow docs: at
# 3.0 "indistinguishable from" a full-size resize), and 2-4x faster on multi-megapixel photos.
DRAFT_GAP = 3.0


class ImageDecodeError(Exception):
    """An image file that cannot be decoded (truncated, empty, not an image, too large)."""


def is_hidden(name: str) -> bool:
    """Dot files: .DS_Store, macOS ._resource forks, .git ...; skipped silently everywhere."""
    return name.startswith(".")


def is_image_file(name: str) -> bool:
    return not is_hidden(name) and name.lower().endswith(IMG_EXTENSIONS)


def class_folders(root: Path) -> list[str]:
    """Sorted names of the non-hidden sub-folders of ``root``: class k is the k-th (ImageFolder's order)."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not is_hidden(e.name))


def list_class_tree(root: str | Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names and ``(relative path, label)`` of every image of a class-per-folder tree.

    Files are sorted within each class (sub-folders are walked, as ImageFolder does); hidden files and
    files without an image extension are ignored. Raises :class:`UserError` for a tree with no class
    folders, an empty class folder (it would shift every label after it) or no images.
    """
    root = Path(root)
    classes = class_folders(root)
    if not classes:
        raise UserError(f"{root}: no class folders; expected one sub-folder of images per class "
                        f"(e.g. ImageNet's train/n01440764/*.JPEG)")
    if set(classes) <= {"train", "val", "test"}:
        raise UserError(f"{root}: holds {'/'.join(classes)} folders, not classes; point at the train folder "
                        f"(e.g. {root / classes[0]})")
    per_class = []
    for name in classes:
        found = []
        for dirpath, dirnames, filenames in os.walk(root / name, followlinks=True):
            dirnames[:] = [d for d in dirnames if not is_hidden(d)]
            rel = os.path.relpath(dirpath, root)
            found += [os.path.join(rel, f) for f in filenames if is_image_file(f)]
        per_class.append(sorted(found))
    if not any(per_class):
        raise UserError(f"{root}: no images in its {len(classes)} class folder(s) (looked for "
                        f"{', '.join(IMG_EXTENSIONS)}); check the path")
    for name, found in zip(classes, per_class):
        if not found:
            raise UserError(f"{root / name}: class folder without images (it would shift every label after "
                            f"it); add images or remove the folder")
    files = [(f, label) for label, found in enumerate(per_class) for f in found]
    return classes, files


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit greyscale: PIL's convert clips values > 255 to white instead of scaling; keep the top byte
        a = np.asarray(im, dtype=np.int64)
        return Image.fromarray(np.clip(a >> 8, 0, 255).astype(np.uint8), "L").convert("RGB")
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float32)
        scale = 255.0 if a.size and a.max() <= 1.0 else 1.0  # float images are usually in [0, 1]
        return Image.fromarray(np.clip(a * scale, 0, 255).round().astype(np.uint8), "L").convert("RGB")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        # transparent pixels hold arbitrary colours (often black): composite onto white, as viewers show them
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    return im.convert("RGB")  # L, 1, CMYK (PIL undoes Adobe's inverted CMYK JPEGs), YCbCr, LAB, HSV


def center_crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The centred square of side min(width, height) (torchvision CenterCrop's rounding)."""
    side = min(width, height)
    left, top = int(round((width - side) / 2.0)), int(round((height - side) / 2.0))
    return left, top, left + side, top + side


def load_image(path: str | Path, resolution: int) -> np.ndarray:
    """Decode ``path``, apply its EXIF orientation, centre-crop to a square, resize: uint8 (R, R, 3).

    Raises :class:`ImageDecodeError` with a short reason for files that cannot be decoded.
    """
    try:
        with warnings.catch_warnings():
            # "Corrupt EXIF data", "Palette images with Transparency ..." and the like: harmless here
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                if im.format == "JPEG":
                    w, h = im.size
                    target = DRAFT_GAP * resolution / min(w, h)
                    if target < 1:
                        im.draft("RGB" if im.mode == "RGB" else None, (int(w * target) + 1, int(h * target) + 1))
                im.load()  # decode now: truncated files fail here
                im = ImageOps.exif_transpose(im)
                im = _to_rgb(im)
                im = im.resize((resolution, resolution), RESAMPLE, box=center_crop_box(*im.size))
                return np.asarray(im, dtype=np.uint8)
    except Exception as e:  # noqa: BLE001
        # PIL raises UnidentifiedImageError (an OSError) for empty / non-image files, OSError "image file
        # is truncated", SyntaxError / ValueError / struct.error for malformed headers and EXIF,
        # DecompressionBombError for absurd sizes: one odd file among a million must not stop a run
        raise ImageDecodeError(_reason(e)) from None


def _reason(e: BaseException) -> str:
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if isinstance(e, Image.UnidentifiedImageError):
        msg = "not an image or unsupported format"
    return msg.replace("\t", " ")[:200]
