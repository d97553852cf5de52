"""Drawing images from a generator: latents, labels, truncation, batching, uint8 quantisation.

Shared by ``sample.py``, ``evaluate.py metrics --checkpoint`` and the training loop's sample grids.
Every latent is drawn up front from one seeded CPU generator, so the same seed gives the same latents
and labels whatever the batch size or device, and the generator runs in eval mode (batch norm uses its
running statistics), so each image is independent of the others in its batch. Pixels are bit-identical
for the same batch size and device; across batch sizes, batched conv/GEMM kernels sum in a
shape-dependent order (differences ~1e-7), which moves the rare value that sits on a rounding boundary
by one uint8 level (about 1 in 10^5 values), never more.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from .errors import UserError
from .io import atomic_write
from .viz import save_png


def class_balanced_labels(num_samples: int, classes: Sequence[int]) -> torch.Tensor:
    """``num_samples`` labels cycling through ``classes`` (50 per class for 50k samples of 1000 classes)."""
    if len(classes) == 0:
        raise UserError("no classes to sample from; pass at least one class index")
    idx = torch.arange(num_samples) % len(classes)
    return torch.as_tensor(list(classes), dtype=torch.long)[idx]


def sample_latents(num: int, z_dim: int, seed: int, truncation: float | None = None) -> torch.Tensor:
    """Standard-normal latents (num, z_dim) on CPU; with ``truncation`` T, entries with |z| > T are redrawn
    until all lie in [-T, T] (the truncation trick as BigGAN defines it)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(num, z_dim, generator=g)
    if truncation is not None:
        if truncation <= 0:
            raise UserError(f"truncation must be > 0, got {truncation}")
        out = z.abs() > truncation
        while out.any():
            z[out] = torch.randn(int(out.sum()), generator=g)
            out = z.abs() > truncation
    return z


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images (B, 3, H, W) -> uint8 (B, H, W, 3), rounded as PNG saving would (x*255 + 0.5, floor)."""
    x = (x.float() + 1) * 127.5
    return x.add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


@torch.inference_mode()
def generate(
    G: torch.nn.Module,
    z: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images, labels)`` batches: images uint8 (B, H, W, 3) on CPU, from G in eval mode.

    ``labels`` are class indices (N,), or soft class weights (N, num_classes) for class interpolation.
    """
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    device = torch.device(device) if device is not None else next(G.parameters()).device
    was_training = G.training
    G.eval()
    try:
        for i in range(0, len(z), batch_size):
            zb = z[i : i + batch_size].to(device)
            yb = labels[i : i + batch_size].to(device)
            yield to_uint8(G(zb, yb)).cpu(), labels[i : i + batch_size]
    finally:
        G.train(was_training)


# --------------------------------------------------------------------------------------------------
# class selection


def parse_classes(spec: str | None, num_classes: int) -> list[int] | None:
    """``"1,7,207"`` or ranges ``"0-9,207"`` -> class indices, checked against ``num_classes``."""
    if spec is None or not spec.strip():
        return None
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                out.extend(range(lo_i, hi_i + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise UserError(f"--classes {spec!r}: cannot read {part!r}; use indices and ranges like 1,7,200-205") from None
    bad = [c for c in out if not 0 <= c < num_classes]
    if bad:
        raise UserError(f"--classes {spec!r}: class {bad[0]} is out of range; this model has classes 0-{num_classes - 1}")
    return out


def spread_classes(num_classes: int, n: int = 10) -> list[int]:
    """Up to ``n`` evenly spaced classes (all of them when there are few)."""
    if num_classes <= n:
        return list(range(num_classes))
    return [round(i * (num_classes - 1) / (n - 1)) for i in range(n)]


# --------------------------------------------------------------------------------------------------
# interpolation


def interpolation_inputs(z_dim: int, num_classes: int, classes: Sequence[int], steps: int, seed: int, truncation: float | None = None):
    """Latents and soft class weights for an interpolation figure, one row per entry of ``classes``:

    - rows ``2i``: z moves linearly between two draws, class ``classes[i]`` fixed;
    - rows ``2i + 1``: z fixed, the class conditioning moves linearly from ``classes[i]`` to the next
      class in the list (G mixes its class embeddings, see ``sagan.layers.embed``).

    Returns ``z`` (rows * steps, z_dim), ``y`` (rows * steps, num_classes) and per row the classes
    ``(from, to)`` (equal for the z rows).
    """
    t = torch.linspace(0, 1, steps)[:, None]
    ends = sample_latents(2 * len(classes), z_dim, seed, truncation)
    eye = torch.eye(num_classes)
    zs, ys, rows = [], [], []
    for i, c in enumerate(classes):
        za, zb = ends[2 * i], ends[2 * i + 1]
        nxt = classes[(i + 1) % len(classes)]
        zs += [(1 - t) * za + t * zb, za.expand(steps, -1)]
        ys += [eye[c].expand(steps, -1), (1 - t) * eye[c] + t * eye[nxt]]
        rows += [(c, c), (c, nxt)]
    return torch.cat(zs), torch.cat(ys), rows


# --------------------------------------------------------------------------------------------------
# writing many samples


def write_npz(path: str | Path, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num: int, resolution: int,
              extra: dict[str, np.ndarray] | None = None) -> Path:
    """Stream ``(images uint8 (B,H,W,3), labels)`` batches into ``path`` (.npz with ``images``, ``labels``).

    Images go into a memory-mapped .npy in a temp folder beside the target, which is then stored
    (uncompressed, so readers can memory-map it) into the zip without loading it, written atomically:
    50k x 128px never sits in memory, and an interrupted run leaves no partial ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
        tmp = Path(tmp)
        images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(num, resolution, resolution, 3))
        labels = np.empty(num, dtype=np.int64)
        i = 0
        for imgs, ys in batches:
            images[i : i + len(imgs)] = imgs.numpy()
            labels[i : i + len(ys)] = ys.numpy()
            i += len(imgs)
        if i != num:
            raise RuntimeError(f"write_npz: got {i} images, expected {num}")
        images.flush()
        del images
        np.save(tmp / "labels.npy", labels)
        for k, v in (extra or {}).items():
            np.save(tmp / f"{k}.npy", np.asarray(v))
        with atomic_write(path) as out, zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for f in sorted(tmp.glob("*.npy")):
                zf.write(f, arcname=f.name)
    return path


def class_folder_names(names: Sequence[str] | None, num_classes: int) -> list[str]:
    """One folder name per class: its name when the checkpoint has names, else its index. Path
    separators are replaced, and a name shared by several classes (ImageNet's two "crane"s and two
    "maillot"s) gets the index appended, so that no two classes write into one folder. Decided over all
    classes, so a class's folder is the same whichever classes a run draws."""
    out = []
    for c in range(num_classes):
        name = str(names[c]).strip() if names and c < len(names) else ""
        out.append(name.replace("/", "_").replace("\\", "_") if name and name not in (".", "..") else str(c))
    counts = Counter(out)
    return [n if counts[n] == 1 else f"{n}_{c}" for c, n in enumerate(out)]


def write_png_folder(folder: str | Path, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                     folder_names: Sequence[str]) -> Path:
    """Stream ``(images, labels)`` batches into ``folder/<class>/<k>.png`` (k counts per class from 0).

    Each PNG is written atomically, so an interrupted run leaves only whole files.
    """
    folder = Path(folder)
    counts: dict[int, int] = {}
    for imgs, ys in batches:
        for img, c in zip(imgs.numpy(), ys.tolist()):
            k = counts.get(c, 0)
            # all-or-nothing per file, without an fsync per image (50k of them)
            save_png(Image.fromarray(img), folder / folder_names[c] / f"{k:06d}.png", durable=False)
            counts[c] = k + 1
    return folder
