"""sagan-serve's answer time for a grid, through the page's HTTP API, beside the same grid drawn in-process
by sample.py's figure code (the reference: the cost of the generator and the PNG alone).

A run of the demo preset (32px, 10 classes, g_ch 32) is written with random weights (the architecture sets
the cost, not the training), the page is served on a free 127.0.0.1 port by ``python -m sagan.commands.serve``, and a
grid of ``--images`` images of one class is asked for ``--repeats`` times with gradio_client (the client
the page's own JavaScript mirrors: the same queue and file transfer).

    python benchmarks/serve_latency.py                       # CPU, 16 images, 1 thread
    python benchmarks/serve_latency.py --images 64 --threads 2
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def demo_run(root: Path) -> Path:
    from sagan.checkpoint import save_checkpoint
    from sagan.config import load_config
    from sagan.data.demo import CLASS_NAMES
    from sagan.models import Discriminator, Generator

    cfg = load_config("demo")
    G, D = Generator.from_config(cfg), Discriminator.from_config(cfg)
    save_checkpoint(root / "checkpoints" / "last.pt", dict(
        step=1, config=cfg.to_dict(), G=G.state_dict(), D=D.state_dict(), G_ema=G.state_dict(), opt_G=None,
        opt_D=None, rng=None, data=None, class_names=list(CLASS_NAMES), meta={}))
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reference_times(run: Path, per_class: int, repeats: int) -> list[float]:
    import torch

    from sagan.sampling.bn_stats import prepare_generator
    from sagan.checkpoint import load_generator
    from sagan.sampling.figures import grid_figure

    G, _, ckpt = load_generator(run)
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        prepare_generator(G, "running", seed=i, device=torch.device("cpu"))
        grid_figure(G, [3], ckpt["class_names"], per_class, i, None, 64, "cpu").save(os.devnull, format="PNG")
        times.append(time.perf_counter() - t)
    return times


def page_times(run: Path, per_class: int, repeats: int, threads: int) -> list[float]:
    from gradio_client import Client

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen([sys.executable, "-m", "sagan.commands.serve", "--checkpoint", str(run),
                             "--port", str(port), "--device", "cpu"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        client = Client(url, verbose=False)
        times = []
        for i in range(repeats + 1):  # the first answer warms the server up; not counted
            t = time.perf_counter()
            image, message, _ = client.predict([3], i, per_class, "", "EMA", "running", api_name="/grid")
            if not str(message).startswith("grid: "):
                raise SystemExit(f"the page answered {message!r}")
            times.append(time.perf_counter() - t)
        return times[1:]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        run = demo_run(Path(tmp) / "demo")
        ref = reference_times(run, args.images, args.repeats)
        page = page_times(run, args.images, args.repeats, args.threads)
    med_ref, med_page = statistics.median(ref), statistics.median(page)
    print(f"grid of {args.images} demo images (32px, one class), CPU, {args.threads} thread(s), {args.repeats} repeats")
    print(f"  sample.py's figure code in-process: median {med_ref * 1e3:.0f} ms (max {max(ref) * 1e3:.0f} ms)")
    print(f"  sagan-serve page over HTTP:         median {med_page * 1e3:.0f} ms (max {max(page) * 1e3:.0f} ms)")
    print(f"  page / in-process: {med_page / med_ref:.2f}x")


if __name__ == "__main__":
    main()
