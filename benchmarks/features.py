"""Inception feature extraction, images/s: ours (uint8 NHWC -> channels_last, resize on tensors, batch
norm folded into the convolutions, inference_mode) vs pytorch-fid's pipeline (ToTensor-style float NCHW,
its InceptionV3 under no_grad), same random-but-calibrated weights, same device and batch size. Target on
CPU: at least 1.5x pytorch-fid's images/s, features within 1e-4 of it.

    python benchmarks/features.py                               # CPU: 32 images of 128x128, batch 16
    python benchmarks/features.py --device cuda --num 2000 --batch 200

Timing: the two pipelines alternate ``--repeats`` times and each keeps its best pass, so that other work
on a shared machine inflates the ratio less.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from metrics_utils import calibrated_inception_state, smooth_images  # noqa: E402  (shared test helpers)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_ours(net, images, batch, device):
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i : i + batch]).to(device).permute(0, 3, 1, 2)
            out.append(net.pool_features(net.preprocess(x)).cpu())
    sync(device)
    return torch.cat(out).numpy()


def run_pytorch_fid(model, images, batch, device):
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i : i + batch]).permute(0, 3, 1, 2).float().div(255).to(device)
            out.append(model(x)[0].squeeze(3).squeeze(2).cpu())
    sync(device)
    return torch.cat(out).numpy()


def timed(fn, *args):
    """``fn(*args)``, its wall time and its CPU time (this process's, all threads: less sensitive to other
    jobs on a shared machine than the wall clock)."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - t, time.process_time() - c


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--num", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    device = torch.device(args.device)

    import pytorch_fid.inception as pfi

    from sagan.scores.inception import InceptionV3

    state = calibrated_inception_state(seed=0)
    pfi.load_state_dict_from_url = lambda *a, **k: state  # no download: our random weights in their graph
    theirs = pfi.InceptionV3([3]).to(device).eval()
    ours = InceptionV3(resize="pytorch-fid")  # pytorch-fid's protocol, so the features are comparable
    ours.load_state_dict(state)
    ours = ours.to(device).eval().to(memory_format=torch.channels_last)
    images = smooth_images(args.num, args.size, seed=1)
    warm = images[: args.batch]
    run_ours(ours, warm, args.batch, device), run_pytorch_fid(theirs, warm, args.batch, device)  # warm-up

    t_ref = t_ours = c_ref = c_ours = float("inf")
    for _ in range(args.repeats):
        f_ref, t, c = timed(run_pytorch_fid, theirs, images, args.batch, device)
        t_ref, c_ref = min(t_ref, t), min(c_ref, c)
        f_ours, t, c = timed(run_ours, ours, images, args.batch, device)
        t_ours, c_ours = min(t_ours, t), min(c_ours, c)
    print(f"{args.num} images {args.size}x{args.size}, batch {args.batch}, {device}, {torch.get_num_threads()} threads")
    diff = np.abs(f_ours - f_ref).max()
    print(f"ours {args.num / t_ours:.1f} img/s | pytorch-fid {args.num / t_ref:.1f} img/s | "
          f"ratio {t_ref / t_ours:.2f}x (CPU time {c_ref / c_ours:.2f}x) | max |feature diff| {diff:.1e} (relative to the largest feature "
          f"{diff / np.abs(f_ref).max():.1e})")


if __name__ == "__main__":
    main()
