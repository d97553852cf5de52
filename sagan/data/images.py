"""Reading class-per-folder trees and turning any image file into a square uint8 RGB array.

Used by the packer (``sagan.data.prepare``) and by :class:`FolderDataset`, so a packed dataset and the tree
it came from give the same pixels. Decoding is PIL's (torchvision's JPEG decoding is deprecated from
0.29).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import UserError
from ..io import printable

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


def loose_images(root: Path) -> list[str]:
    """Sorted names of the image files directly in ``root`` (not in a sub-folder)."""
    return sorted(e.name for e in os.scandir(root) if is_image_file(e.name) and e.is_file())


@dataclass
class ClassTree:
    """What :func:`scan_class_tree` found.

    ``classes``: class names (folder names through :func:`printable`), class k = k-th sorted folder;
    ``files``: ``(path relative to the root, label)`` of every image, sorted within each class, the
    path as the file system spells it (to open it); ``skipped``: ``(relative path, reason)`` of the
    folders and files that were not listed because they were already seen (symlink loops, links or
    hard links to something listed before) or could not be read.
    """

    classes: list[str]
    files: list[tuple[str, int]]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def scan_class_tree(root: str | Path) -> ClassTree:
    """Every image of a class-per-folder tree, each real folder and file once.

    Sub-folders are walked as ImageFolder does, following symlinks (class folders and files linked in
    from other disks are common), but each folder and file is identified by ``(st_dev, st_ino)`` and
    visited once: ``os.walk(followlinks=True)`` follows a ``loop -> ..`` link ~40 levels deep and lists
    every image ~40 times. Hidden entries and files without an image extension are ignored. Raises
    :class:`UserError` for a tree with no class folders, an empty class folder (it would shift every
    label after it) or no images.
    """
    root = Path(root)
    names = class_folders(root)
    if not names:
        raise UserError(f"{printable(root)}: no class folders; expected one sub-folder of images per class "
                        f"(e.g. ImageNet's train/n01440764/*.JPEG)")
    if set(names) <= {"train", "val", "test"}:
        raise UserError(f"{printable(root)}: holds {'/'.join(names)} folders, not classes; point at the train "
                        f"folder (e.g. {printable(root / names[0])})")
    walk = _TreeWalk(root)
    per_class = [sorted(walk.images(name)) for name in names]
    if not any(per_class):
        raise UserError(f"{printable(root)}: no images in its {len(names)} class folder(s) (looked for "
                        f"{', '.join(IMG_EXTENSIONS)}); check the path")
    for name, found in zip(names, per_class):
        if not found:
            repeats = [printable(f"{rel}: {reason}") for rel, reason in walk.skipped
                       if rel == name or rel.startswith(name + os.sep)]
            why = f" ({repeats[0]})" if repeats else ""
            raise UserError(f"{printable(root / name)}: class folder without images{why} (it would shift every "
                            f"label after it); add images or remove the folder")
    files = [(f, label) for label, found in enumerate(per_class) for f in found]
    return ClassTree([printable(n) for n in names], files, walk.skipped)


def list_class_tree(root: str | Path) -> tuple[list[str], list[tuple[str, int]]]:
    """``(classes, files)`` of :func:`scan_class_tree` (what a dataset needs; the packer also reports
    the skipped entries)."""
    tree = scan_class_tree(root)
    return tree.classes, tree.files


class _TreeWalk:
    """Depth-first walk of class folders that remembers every folder and file it has seen."""

    def __init__(self, root: Path):
        self.root = root
        self.seen: dict[tuple[int, int], str] = {}  # (st_dev, st_ino) -> first relative path
        self.skipped: list[tuple[str, str]] = []

    def images(self, class_name: str) -> list[str]:
        found: list[str] = []
        try:
            self._folder(class_name, os.stat(self.root / class_name), {}, found)
        except OSError as e:
            self.skipped.append((class_name, f"cannot read folder ({e.strerror or e})"))
        return found

    def _folder(self, rel: str, st: os.stat_result, ancestors: dict, found: list[str]) -> None:
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            self.skipped.append((rel, f"symlink loop: leads back to {ancestors[key]}"))
            return
        if key in self.seen:
            self.skipped.append((rel, f"folder already listed as {self.seen[key]}"))
            return
        self.seen[key] = rel
        ancestors = {**ancestors, key: rel}
        try:
            with os.scandir(self.root / rel) as it:
                # real entries before symlinks, so a link to a sibling is the one reported as the repeat
                entries = sorted(it, key=lambda e: (e.is_symlink(), e.name))
        except OSError as e:
            self.skipped.append((rel, f"cannot list folder ({e.strerror or e})"))
            return
        for entry in entries:
            if is_hidden(entry.name):
                continue
            child = os.path.join(rel, entry.name)
            try:
                if entry.is_dir():
                    self._folder(child, entry.stat(), ancestors, found)
                elif is_image_file(entry.name) and entry.is_symlink():  # it may lead anywhere: follow it
                    target = entry.stat()
                    self._file(child, (target.st_dev, target.st_ino), found)
                elif is_image_file(entry.name):
                    # a plain file lies on its folder's device and readdir gave its inode: no stat call
                    # per file (a stat each made the listing 3x slower: 50k files in 0.7 s, not 0.25 s)
                    self._file(child, (st.st_dev, entry.inode()), found)
            except OSError:
                # a dangling symlink: listed, so the decoder reports it like any unreadable file
                if is_image_file(entry.name):
                    found.append(child)

    def _file(self, rel: str, key: tuple[int, int], found: list[str]) -> None:
        if key in self.seen:
            self.skipped.append((rel, f"same file as {self.seen[key]}"))
            return
        self.seen[key] = rel
        found.append(rel)


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


def _crop_resize(im: Image.Image, resolution: int) -> np.ndarray:
    return np.asarray(im.resize((resolution, resolution), RESAMPLE, box=center_crop_box(*im.size)), dtype=np.uint8)


def resize_square(image: np.ndarray, resolution: int) -> np.ndarray:
    """A uint8 (H, W, 3) array centre-cropped and resized to (R, R, 3) as :func:`load_image` does a file."""
    return _crop_resize(Image.fromarray(image, "RGB"), resolution)


def image_side(path) -> int | None:
    """The shorter side of the image file ``path`` (or binary file object) from its header, None if it does
    not open."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                return min(im.size)
    except Exception:  # noqa: BLE001 - as load_image: an odd file is reported when it is decoded
        return None


def load_image(path, resolution: int) -> np.ndarray:
    """Decode ``path`` (or a binary file object), apply its EXIF orientation, centre-crop to a square,
    resize: uint8 (R, R, 3).

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
                return _crop_resize(_to_rgb(im), resolution)
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
