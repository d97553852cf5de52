"""Helpers of the conversion tests: a StudioGAN-style SAGAN at narrow widths (``studiogan_reference``) saved in
StudioGAN's file layout, sagan-convert driven through click, and its one-line refusals."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from sagan.commands.convert import main as convert_main
from studiogan_reference import RefDiscriminator, RefGenerator, make_trained_like, save_run

RES, CLASSES, Z, CH, STEP = 32, 10, 64, 8, 1234
G_ATTN, D_ATTN = (2,), (1,)  # StudioGAN's attn_g_loc / attn_d_loc: after G's 16px block, D's first block (16px)
NAMES = [f"class_{c}" for c in range(CLASSES)]  # --class-names; also the evaluation tree's folders
NARROW = ["--config", "demo", "--set", f"model.g_ch={CH}", "--set", f"model.d_ch={CH}"]


def convert(*args):
    return CliRunner().invoke(convert_main, ["studiogan", *[str(a) for a in args]])


def reference(cbn: str = "onehot", seed: int = 0, g_attn=G_ATTN, d_attn=D_ATTN):
    torch.manual_seed(seed)
    G, D = RefGenerator(RES, CLASSES, Z, CH, g_attn, cbn), RefDiscriminator(RES, CLASSES, CH, d_attn)
    make_trained_like(G, D, CLASSES, Z, seed)
    return G, D


def perturbed_copy(G: RefGenerator) -> RefGenerator:
    """A second generator (the 'EMA' one) with different weights (fresh module: legacy SN breaks deepcopy)."""
    other = RefGenerator(RES, CLASSES, Z, CH, G_ATTN)
    other.load_state_dict(G.state_dict())
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return other.eval()


@pytest.fixture(scope="module")
def studiogan(tmp_path_factory):
    G, D = reference()
    G_ema = perturbed_copy(G)
    folder = save_run(tmp_path_factory.mktemp("studiogan") / "checkpoints", G, D, STEP, G_ema=G_ema)
    return folder, G, G_ema, D


def refused(r, out, *fragments):
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    assert "Traceback" not in r.output and not out.exists()
    return lines[0]
