"""Per-image loading time: our packed dataset vs torchvision ImageFolder with PIL decode + resize.

Builds a temporary class-per-folder tree of ImageNet-like JPEGs (about 500x375, quality 90, ~100 KB),
packs it with sagan-prepare (timed, to estimate the ImageNet packing time), then times, in one process
and in the same shuffled order, ``dataset[i]`` for

- reference: ``ImageFolder(root, Compose([Resize(R), CenterCrop(R), ToTensor(), Normalize(.5, .5)]))``,
  the usual GAN pipeline (PIL loader, antialiased bilinear resize);
- ours: ``PackedDataset`` (memory-mapped uint8 -> float in [-1, 1]).

Both read from the page cache (one warm-up pass each), so this measures decode + resize against a
memory copy, not the disk. Prints both, the ratio and whether it meets the 5x target (exit 1 if not).

    python benchmarks/data_loading.py                       # 200 images, 128 px
    python benchmarks/data_loading.py --images 1000 --resolution 64 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

TARGET = 5.0


def make_tree(root: Path, num_images: int, num_classes: int, seed: int = 0) -> None:
    """JPEGs with smooth structure plus grain (so they compress like photos, not like noise or flat fields)."""
    rng = np.random.default_rng(seed)
    for i in range(num_images):
        folder = root / f"n{i % num_classes:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        w, h = int(rng.integers(400, 501)), int(rng.integers(333, 376))
        coarse = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
        grain = rng.normal(0, 12, (h, w, 3))
        img = np.clip(np.asarray(coarse, np.float32) + grain, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img_{i:06d}.JPEG", quality=90)


def time_per_image(dataset, order: np.ndarray, repeats: int) -> float:
    """Best-of-``repeats`` mean seconds per ``dataset[i]`` over ``order`` (after one warm-up pass)."""
    for i in order:
        dataset[i]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in order:
            dataset[i]
        best = min(best, (time.perf_counter() - start) / len(order))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="packing processes")
    args = parser.parse_args()

    import torch
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    from sagan.data import PackedDataset
    from sagan.data.prepare import pack

    torch.set_num_threads(1)  # per-image work in one process, as in one DataLoader worker
    r = args.resolution
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "train", Path(tmp) / "packed"
        make_tree(src, args.images, args.classes)
        mb = sum(f.stat().st_size for f in src.rglob("*.JPEG")) / 1e6
        start = time.perf_counter()
        pack(src, out, r, workers=args.workers, progress=False)
        pack_s = time.perf_counter() - start

        reference = ImageFolder(str(src), transform=T.Compose([
            T.Resize(r), T.CenterCrop(r), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)]))
        ours = PackedDataset(out)
        assert len(reference) == len(ours) == args.images
        order = np.random.default_rng(0).permutation(args.images)
        t_ref = time_per_image(reference, order, args.repeats)
        t_ours = time_per_image(ours, order, args.repeats)

    ratio = t_ref / t_ours
    per_core = pack_s * args.workers / args.images
    print(f"{args.images} JPEGs ~500x375 ({mb / args.images * 1e3:.0f} KB avg) -> {r}px, 1 thread, page cache warm")
    print(f"  reference ImageFolder + PIL decode/resize: {t_ref * 1e6:9.1f} us/image")
    print(f"  ours PackedDataset (memory map):           {t_ours * 1e6:9.1f} us/image")
    print(f"  ratio: {ratio:.1f}x faster (target >= {TARGET:g}x): {'PASS' if ratio >= TARGET else 'FAIL'}")
    print(f"  packing: {args.images / pack_s:.0f} images/s with {args.workers} workers "
          f"({per_core * 1e3:.1f} ms/image/core; ImageNet train, 1.28M images: ~{1.28e6 * per_core / 3600:.1f} "
          f"core-hours)")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
