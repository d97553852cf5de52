"""Helpers of the export tests: a tiny run folder whose generator depends on label and attention, the
checkpoint's generator as the reference, the CLI and its one-line errors."""

from __future__ import annotations

from pathlib import Path

import torch
from click.testing import CliRunner

from sagan.checkpoint import save_checkpoint
from sagan.models import load_generator
from sagan.commands.export import main
from sagan.metrics.history import append_record
from sagan.models import Discriminator, Generator

from model_utils import spread_class_conditioning

NAMES = [f"class_{i}" for i in range(10)]
STEP = 5


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(r) -> str:
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.output
    return errors[0]


def make_generator(cfg, seed: int = 0) -> Generator:
    """A generator whose images depend on the label and on attention (gamma != 0), with running BN
    statistics off their init (a forward in train mode)."""
    torch.manual_seed(seed)
    G = Generator.from_config(cfg)
    if G.num_classes > 0:
        spread_class_conditioning(G, std=0.5)
    with torch.no_grad():
        for attn in G.attn.values():
            attn.gamma.fill_(0.8)
        G(torch.randn(16, G.z_dim), torch.arange(16) % G.num_classes if G.num_classes > 0 else None)
    return G


def write_run(root: Path, cfg, class_names=NAMES, metrics: bool = True) -> Path:
    """A run folder with ``checkpoints/last.pt`` (an EMA generator different from the raw one) and a
    ``metrics.jsonl`` line for its step."""
    G, G_ema, D = make_generator(cfg, 0), make_generator(cfg, 1), Discriminator.from_config(cfg)
    save_checkpoint(root / "checkpoints" / "last.pt", dict(
        step=STEP, config=cfg.to_dict(), G=G.state_dict(), D=D.state_dict(), G_ema=G_ema.state_dict(), opt_G=None,
        opt_D=None, rng=None, data=None, class_names=class_names, meta={"images_seen": 160}))
    if metrics:
        append_record(root / "metrics.jsonl", {"step": STEP, "values": {"fid": 123.456, "is": 1.5}, "protocol": {
            "resize": "tf1", "num_samples": 10, "bn_stats": "running", "generator": "ema",
            "reference": "/home/someone/refs/demo.npz"}})
    return root


def reference(run_dir, n: int, seed: int = 3, ema: bool = True):
    """The checkpoint's generator in eval mode on ``n`` fresh latents and labels."""
    G, _, _ = load_generator(run_dir, ema=ema)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=g)
    y = torch.randint(G.num_classes, (n,), generator=g) if G.num_classes > 0 else None
    with torch.no_grad():
        return z, y, G(z, y)


def assert_labels_matter(G_fn, z, y, images):
    """Not vacuous: another label gives other images."""
    assert (G_fn(z, (y + 1) % 10) - images).abs().max() > 1e-2
