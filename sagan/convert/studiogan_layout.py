"""What a PyTorch-StudioGAN checkpoint's tensors say about its networks: where its residual blocks and
self-attention sit, and (``inferred_config``) the whole architecture: resolution from G's block count,
widths and ``z_dim`` from the conv and linear shapes, SN in G from ``weight_orig``, D's downsampling from
StudioGAN's table for the resolution (its ``src/models/resnet.py`` ``d_down``)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import torch

from ..config import Config, d_layout, g_block_resolutions, g_widths, load_config, model_d_layout
from .studiogan_files import ConversionError

# StudioGAN's D downsampling per resolution (resnet.py's d_down) and our preset of its recipe there
STUDIOGAN_D_DOWN = {32: (True, True, False, False), 64: (True,) * 4 + (False,), 128: (True,) * 5 + (False,),
                    256: (True,) * 6 + (False,), 512: (True,) * 7 + (False,)}
PRESET_FOR_RESOLUTION = {32: "cifar10", 64: "tiny_imagenet"}  # otherwise imagenet128
# big_resnet (BigGAN: a G.shared tensor) on our preset of its recipe at that resolution
BIGGAN_PRESET_FOR_RESOLUTION = {32: "cifar10_biggan", 128: "biggan128"}


class SourceState:
    """One StudioGAN state dict; remembers which tensors were used, so that leftovers can be refused."""

    def __init__(self, state: dict[str, torch.Tensor], name: str):
        self.state, self.name, self.taken = state, name, set()

    def has(self, key: str) -> bool:
        return key in self.state

    def take(self, key: str) -> torch.Tensor:
        if key not in self.state:
            raise ConversionError(f"{self.name}: missing tensor {key}; only StudioGAN's SAGAN (resnet backbone, "
                                  "conditional BN in G, projection D, spectral norm) and BigGAN (big_resnet) convert")
        self.taken.add(key)
        return self.state[key]

    def leftover(self) -> list[str]:
        return [k for k in self.state if k not in self.taken]



def split_blocks(src: SourceState) -> tuple[list[str], dict[int, str]]:
    """StudioGAN's block list -> (prefixes of the residual blocks, {j: prefix of the self-attention that
    follows residual block j})."""
    indices = sorted({int(m.group(1)) for k in src.state if (m := re.match(r"blocks\.(\d+)\.0\.", k))})
    if indices != list(range(len(indices))):
        raise ConversionError(f"{src.name}: block entries {indices[:8]} are not numbered 0, 1, 2, ...; "
                              "not a StudioGAN resnet checkpoint")
    blocks: list[str] = []
    attn: dict[int, str] = {}
    for i in indices:
        prefix = f"blocks.{i}.0."
        if not src.has(prefix + "sigma"):
            blocks.append(prefix)
        elif not blocks or (len(blocks) - 1) in attn:
            raise ConversionError(f"{src.name}: self-attention {prefix}sigma does not follow a residual block; "
                                  "not a StudioGAN SAGAN checkpoint")
        else:
            attn[len(blocks) - 1] = prefix
    return blocks, attn


@dataclass(frozen=True)
class Layout:
    """What the tensors say: resolution, classes, and where the residual blocks and attention sit."""

    resolution: int
    num_classes: int
    g_blocks: list[str]
    g_attn: dict[int, str]
    d_blocks: list[str]
    d_attn: dict[int, str]
    d_px: tuple[int, ...] = ()  # output px of D's blocks (its downsampling): from the config, see with_d_px
    shared_dim: int = 0  # big_resnet (BigGAN): G.shared's width; 0: resnet (SAGAN / SNGAN)

    def block_px(self, net: str, j: int) -> int:
        """Output resolution of residual block j of ``net`` ("G" or "D")."""
        return g_block_resolutions(self.resolution)[j] if net == "G" else self.d_px[j]

    def attn(self, net: str) -> dict[int, str]:
        return self.g_attn if net == "G" else self.d_attn

    def attn_px(self, net: str) -> list[int]:
        return [self.block_px(net, j) for j in sorted(self.attn(net))]


def read_layout(g: SourceState, d: SourceState) -> Layout:
    g_blocks, g_attn = split_blocks(g)
    d_blocks, d_attn = split_blocks(d)
    n = len(g_blocks)
    if n < 2:
        raise ConversionError(f"{g.name}: {n} residual blocks (blocks.K.0.conv2d1...); StudioGAN's SAGAN G has one "
                              "per doubling from 4px (5 at 128px)")
    resolution = 4 * 2**n
    if len(d_blocks) - 1 in d_attn:
        raise ConversionError(f"{d.name}: self-attention {d_attn[len(d_blocks) - 1]}sigma follows D's last (4px) block, "
                              "a placement sagan's discriminator does not have")
    if not d.has("embedding.weight_orig"):
        d.take("embedding.weight_orig")  # the one-line "missing tensor" refusal
    num_classes = d.state["embedding.weight_orig"].shape[0]
    shared_dim = 0
    if g.has("shared.weight"):  # big_resnet: the class enters G through the shared embedding only
        classes_g, shared_dim = g.state["shared.weight"].shape
        g_classes = int(classes_g)
        if not (g.has(g_blocks[0] + "bn1.gain.weight_orig") or g.has(g_blocks[0] + "bn1.gain.weight")):
            g.take(g_blocks[0] + "bn1.gain.weight_orig")  # the one-line "missing tensor" refusal
    else:
        g_classes = _g_classes(g, g_blocks[0] + "bn1.")
    if g_classes is not None and g_classes != num_classes:
        raise ConversionError(f"{g.name} conditions on {g_classes} classes but {d.name} on {num_classes}; use the G "
                              "and D of one run")
    return Layout(resolution=resolution, num_classes=num_classes, g_blocks=g_blocks, g_attn=g_attn, d_blocks=d_blocks,
                  d_attn=d_attn, shared_dim=int(shared_dim))


def _g_classes(g: SourceState, cbn: str) -> int | None:
    """Classes of G's conditional BN tables: SN embeddings (K, C) up to v0.3, SN linears (C, K) since
    (plain linears without SN in G)."""
    for key, dim in (("embed0.weight_orig", 0), ("gain.weight_orig", 1), ("gain.weight", 1)):
        t = g.state.get(cbn + key)
        if t is not None and t.dim() == 2:
            return int(t.shape[dim])
    return None


def with_d_px(layout: Layout, d: SourceState, cfg: Config) -> Layout:
    """The layout with D's block resolutions from ``cfg``'s D (``model.d_down``); its block count must be
    the file's."""
    blocks = model_d_layout(cfg.model)
    if len(blocks) != len(layout.d_blocks):
        raise ConversionError(f"{d.name}: {len(layout.d_blocks)} residual blocks, but config {cfg.name}'s "
                              f"{layout.resolution}px D has {len(blocks)}; use the G and D of one run and the "
                              "config they were trained with (or no --config: read from the tensors)")
    return dataclasses.replace(layout, d_px=tuple(px for *_, px in blocks))


def plain_weight(src: SourceState, prefix: str) -> bool:
    """The layer has no legacy spectral norm: a ``weight`` and no ``weight_orig`` (``apply_g_sn: False``)."""
    return not src.has(prefix + "weight_orig") and src.has(prefix + "weight")


def layer_weight(src: SourceState, prefix: str) -> torch.Tensor:
    """The layer's stored weight (SN's ``weight_orig``, or a plain ``weight``), read without taking it; a
    layer with neither is the one-line "missing tensor" refusal."""
    key = prefix + ("weight" if plain_weight(src, prefix) else "weight_orig")
    if not src.has(key):
        src.take(key)
    return src.state[key]


def _out_channels(src: SourceState, prefix: str) -> int:
    return int(layer_weight(src, prefix).shape[0])


def inferred_config(layout: Layout, g: SourceState, d: SourceState) -> Config:
    """The architecture the tensors state, on the preset of that resolution (module docstring); widths and
    D's downsampling stay the preset's own keys where they agree."""
    res = layout.resolution
    presets = BIGGAN_PRESET_FOR_RESOLUTION if layout.shared_dim else PRESET_FOR_RESOLUTION
    base = load_config(presets.get(res, "biggan128" if layout.shared_dim else "imagenet128"))
    g_sn = g.has("linear0.weight_orig")
    lin = layer_weight(g, "linear0.")
    gw = [lin.shape[0] // 16] + [_out_channels(g, p + "conv2d1.") for p in layout.g_blocks]
    # big_resnet: linear0 reads the first of (blocks + 1) equal z chunks
    z_dim = int(lin.shape[1]) * (len(layout.g_blocks) + 1 if layout.shared_dim else 1)
    dw = [_out_channels(d, p + "conv2d1.") for p in layout.d_blocks]
    down = STUDIOGAN_D_DOWN.get(res)
    if down is None or len(down) != len(dw):
        raise ConversionError(f"{d.name}: {len(dw)} residual blocks, StudioGAN's {res}px D has "
                              f"{len(down) if down else 'no table for this size'}; pass --config with model.d_down")
    d_px = tuple(px for *_, px in d_layout(res, 1, dw, down))
    model = {"resolution": res, "z_dim": z_dim, "g_sn": g_sn, "g_attn": layout.attn_px("G"),
             "d_attn": [d_px[j] for j in sorted(layout.d_attn)]}
    m = base.model
    if g_widths(res, m.g_ch, m.g_widths if m.resolution == res else ()) != gw:
        model["g_widths"] = gw
    if [(o, dn) for _, o, dn, _ in d_layout(res, m.d_ch, *((m.d_widths, m.d_down) if m.resolution == res else ()))] \
            != list(zip(dw, down)):
        model.update(d_widths=dw, d_down=list(down))
    return base.replace(model=model)


def check_attention(layout: Layout, g: SourceState, d: SourceState, cfg: Config) -> None:
    """The chosen config must place attention where the checkpoint has it (by resolution)."""
    for net, src in (("G", g), ("D", d)):
        key = f"{net.lower()}_attn"
        found, wanted = layout.attn_px(net), sorted(getattr(cfg.model, key))
        if found == wanted:
            continue
        fix = f"use the config it was trained with, or --set model.{key}=[{','.join(map(str, found))}]"
        extra = [(j, p) for j, p in sorted(layout.attn(net).items()) if layout.block_px(net, j) not in wanted]
        if extra:
            j, p = extra[0]
            raise ConversionError(f"{src.name}: tensor {p}conv1x1_theta.weight_orig is self-attention after {net}'s "
                                  f"{layout.block_px(net, j)}px block, but config {cfg.name} has model.{key}={wanted}; "
                                  + fix)
        missing = [r for r in wanted if r not in found]
        raise ConversionError(f"{src.name}: config {cfg.name} has self-attention after {net}'s {missing[0]}px block "
                              f"(model.{key}={wanted}), the checkpoint has none there (its attention: {found or 'none'}); "
                              + fix)


