"""The networks' shape as pure functions of the model config: G's and D's block widths, which D blocks
downsample, the resolution after each block, and where self-attention can sit. Both the config's
validation (:mod:`sagan.config_checks`) and the networks (:mod:`sagan.models`) read them; names are
re-exported by :mod:`sagan.config`.

Without explicit widths the pyramid is the official SAGAN release's (ImageNet 128px: G 16, 16, 8, 4, 2, 1
times ``g_ch`` from 4x4; D 1, 2, 4, 8, 16, 16 times ``d_ch``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .config import ModelConfig

MIN_RESOLUTION = 16


def resolution_problem(r: int) -> str | None:
    """Why ``r`` cannot be a model resolution (the networks halve / double it down to 4px), or None."""
    if r < MIN_RESOLUTION or r & (r - 1):
        return f"must be a power of two >= {MIN_RESOLUTION}, got {r}"
    return None



def g_channel_mults(resolution: int) -> list[tuple[int, int]]:
    """(in, out) channel multipliers of G's up-blocks, 4px -> resolution.

    128px gives the official release's 16->16, 16->8, 8->4, 4->2, 2->1: the last block ends at 1x ch,
    each earlier block doubles, capped at 16x.
    """
    n = int(math.log2(resolution // 4))
    outs = [min(16, 2 ** (n - 1 - i)) for i in range(n)]
    ins = [outs[0]] + outs[:-1]
    return list(zip(ins, outs))


def d_channel_mults(resolution: int) -> list[tuple[int, int, bool]]:
    """(in, out, downsample) channel multipliers of D's blocks, resolution -> 4px, plus a last block at 4px.

    128px gives 3->1 (optimized block), 1->2, 2->4, 4->8, 8->16, then 16->16 without downsampling.
    The first entry's ``in`` is 0, meaning the RGB input.
    """
    n = int(math.log2(resolution // 4))
    outs = [min(16, 2**i) for i in range(n)]
    ins = [0] + outs[:-1]
    return [(i, o, True) for i, o in zip(ins, outs)] + [(outs[-1], outs[-1], False)]


def g_widths(resolution: int, ch: int, widths: Sequence[int] = ()) -> list[int]:
    """G's channels at 4px, then after each up-block: ``widths`` (``model.g_widths``) when given, else the
    official release's pyramid from ``ch`` (``model.g_ch``)."""
    if widths:
        return list(widths)
    mults = g_channel_mults(resolution)
    return [mults[0][0] * ch] + [o * ch for _, o in mults]


def d_layout(resolution: int, ch: int, widths: Sequence[int] = (), down: Sequence[bool] = ()) -> list[tuple[int, int, bool, int]]:
    """``(in, out, downsample, output px)`` of each D block, ``in`` 3 for the RGB input.

    ``widths`` / ``down`` are ``model.d_widths`` / ``d_down``; without widths, the release's pyramid from
    ``ch`` (``d_channel_mults``); without ``down``, every block but the last halves the resolution.
    """
    if not widths:
        mults = d_channel_mults(resolution)
        widths = [o * ch for _, o, _ in mults]
    down = list(down) if down else [True] * (len(widths) - 1) + [False]
    layout, cin, px = [], 3, resolution
    for w, dn in zip(widths, down):
        px = px // 2 if dn else px
        layout.append((cin, w, dn, px))
        cin = w
    return layout


def d_attn_blocks(layout: Sequence[tuple[int, int, bool, int]]) -> dict[int, int]:
    """{output px: index of the first D block reaching it}, over all blocks but the last: where D's
    self-attention (``model.d_attn``, by resolution) can sit."""
    first: dict[int, int] = {}
    for k, (*_, px) in enumerate(layout[:-1]):
        first.setdefault(px, k)
    return first


def model_d_layout(m: "ModelConfig") -> list[tuple[int, int, bool, int]]:
    return d_layout(m.resolution, m.d_ch, m.d_widths, m.d_down)


def g_block_resolutions(resolution: int) -> list[int]:
    """Output resolution of each G up-block."""
    return [8 * 2**i for i in range(len(g_channel_mults(resolution)))]


def d_block_resolutions(resolution: int) -> list[int]:
    """Output resolution of each D block (the last block keeps 4px)."""
    n = len(d_channel_mults(resolution)) - 1
    return [resolution // 2 ** (i + 1) for i in range(n)] + [4]


def attention_sites(m: "ModelConfig") -> dict[str, dict[int, int]]:
    """Where ``model.g_attn`` / ``d_attn`` can place a block, by resolution: ``{"g_attn": {px: channels after
    that G block}, "d_attn": {px: channels of the first D block reaching px}}``."""
    gw = g_widths(m.resolution, m.g_ch, m.g_widths)
    layout = model_d_layout(m)
    return {"g_attn": dict(zip(g_block_resolutions(m.resolution), gw[1:])),
            "d_attn": {px: layout[i][1] for px, i in d_attn_blocks(layout).items()}}
