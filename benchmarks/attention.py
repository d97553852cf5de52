"""Self-attention at 64x64 features: ours (SDPA, no N x N matrix) vs the explicit (B, N, N/4) softmax.

The reference is the formulation of the official release and StudioGAN: bmm(theta^T, phi), softmax,
bmm with g, written out here with the same weights. Both run forward + backward; each variant runs in
its own subprocess so that its peak memory (ru_maxrss on CPU, max_memory_allocated on CUDA) is its own.

    python benchmarks/attention.py                      # CPU defaults: batch 4, 128 channels, 64x64
    python benchmarks/attention.py --device cuda --batch 64 --dtype bf16
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F


def explicit(m, x):
    B, C, H, W = x.shape
    f = m.theta(x).flatten(2)
    g = F.max_pool2d(m.phi(x), 2).flatten(2)
    h = F.max_pool2d(m.g(x), 2).flatten(2)
    beta = torch.softmax(torch.bmm(f.transpose(1, 2), g), dim=-1)  # (B, N, N/4): the memory hog
    o = torch.bmm(h, beta.transpose(1, 2)).view(B, C // 2, H, W)
    return x + m.gamma * m.o(o)


def child(args) -> None:
    from sagan.models.attention import SelfAttention

    dev = torch.device(args.device)
    torch.manual_seed(0)
    m = SelfAttention(args.channels).to(dev)
    with torch.no_grad():
        m.gamma.fill_(0.5)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    x = torch.randn(args.batch, args.channels, args.size, args.size, device=dev).to(memory_format=fmt).requires_grad_()
    dtype = {"fp32": None, "bf16": torch.bfloat16}[args.dtype]
    fn = explicit if args.variant == "explicit" else (lambda mod, inp: mod(inp))

    def step(inp=x):
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            y = fn(m, inp)
        y.float().square().mean().backward()

    step(x[:1, :, :16, :16].detach().requires_grad_())  # load kernels and libraries before measuring

    # peak memory counts from here (inputs and weights exist), over the warm-up and the timed steps
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    step()  # warm-up (allocator, kernels)
    t0 = time.perf_counter()
    for _ in range(args.iters):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    dt = (time.perf_counter() - t0) / args.iters
    print(json.dumps({"seconds": dt, "peak_bytes": max(peak, 0)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--channels", type=int, default=128, help="128 = G's attention layer at 64px in the paper preset")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--variant", choices=["ours", "explicit"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.variant:
        return child(args)

    results = {}
    for variant in ("ours", "explicit"):
        cmd = [sys.executable, __file__, "--variant", variant] + [a for a in sys.argv[1:]]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        results[variant] = json.loads(out)
    o, r = results["ours"], results["explicit"]
    n = args.size * args.size
    print(f"self-attention fwd+bwd, {args.batch}x{args.channels}x{args.size}x{args.size} ({n} queries, {n // 4} keys), "
          f"{args.device}, {args.dtype}")
    print(f"{'':12s}{'ms/iter':>10s}{'peak MiB':>12s}")
    for name, res in (("ours (SDPA)", o), ("explicit", r)):
        print(f"{name:12s}{res['seconds'] * 1e3:10.1f}{res['peak_bytes'] / 2**20:12.1f}")
    print(f"speed-up (explicit / ours): {r['seconds'] / o['seconds']:.2f}x")
    if o["peak_bytes"] > 0:
        print(f"memory ratio (explicit / ours): {r['peak_bytes'] / o['peak_bytes']:.2f}x")
    else:
        print("memory ratio: ours added no measurable peak memory")


if __name__ == "__main__":
    main()
