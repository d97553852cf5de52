"""PyTorch-StudioGAN's SAGAN / SNGAN / BigGAN weights -> a sagan checkpoint, the same function output for output
(eval mode).

StudioGAN's ``resnet`` backbone with ``g_cond_mtd: cBN``, ``d_cond_mtd: PD`` and self-attention is our
paper preset at 128px, tensor for tensor (G 42,017,412 + D 39,448,258 parameters), its CIFAR-10 SAGAN our
``cifar10`` preset (G 4,386,308 + D 1,075,586), its SNGAN (no attention, ``apply_g_sn: False``)
``cifar10_sngan``, its Tiny-ImageNet SAGAN ``tiny_imagenet``. Without ``--config`` the architecture is
read from the tensors: resolution (G's block count), classes, ``z_dim`` and every width (the conv
shapes), attention placement, SN in G (``weight_orig`` or plain ``weight``); D's downsampling is
StudioGAN's per resolution (its ``d_down``), the training recipe the preset of that resolution's. The names
and the places where the two formulations differ (facts from its ``src/models/resnet.py``, ``src/utils/ops.py``):

    StudioGAN                                       sagan
    linear0, bn4 (affine BN), conv2d5               linear, out_bn, out_conv
    blocks.k.0 (a residual block)                   blocks.j  (j counts residual blocks only)
      G: bn1, bn2, conv2d1, conv2d2, conv2d0          bn1, bn2, conv1, conv2, shortcut
      D: conv2d1, conv2d2, conv2d0 (when present)     conv1, conv2, shortcut
    blocks.k.0 (self-attention, its own list entry  attn.<R> after the block whose output is R px:
      after the block it attends)                     theta, phi, g, o, gamma
      conv1x1_theta/phi/g/attn, sigma (shape [1])
    linear1, embedding (projection)                 linear, embed
    legacy SN: weight_orig, weight_u, weight_v      parametrization: original, _u, _v (same u, v: eval mode
                                                    computes sigma = u . W v from them in both)
    CBN gain = 1 + (W/sigma(W)) onehot(y),          per-class tables gain = 1 + (W/sigma(W))^T,
      bias = (W_b/sigma(W_b)) onehot(y), SN linear    bias = (W_b/sigma(W_b))^T (sigma from the stored u, v);
      without bias, W (C, num_classes) (v0.4);        up to v0.3 SN embeddings embed0/embed1 (K, C):
                                                      the same without the transpose
    BN eps 1e-4, SN eps 1e-6                        model.bn_eps, model.sn_eps
    nn.ReLU(inplace=True) in D: in every block      model.d_shortcut_relu: the shortcut sees relu(x)
      after the first it overwrites the block's       (G is unaffected: each G block normalises into
      input, which the shortcut then reads            a new tensor before its ReLU)

StudioGAN's BigGAN (``big_resnet``, ``src/models/big_resnet.py``) is our networks with ``model.hierarchical_z``
(presets ``cifar10_biggan``, ``biggan128``): its ``shared`` is our ``shared``, its CBNs' SN linears of
[shared(y), z chunk] (``bn1/bn2.gain/bias``, (C, shared_dim + chunk)) are ours tensor for tensor, and ``z_dim`` is
``linear0``'s input times (blocks + 1); its D is resnet.py's D.

After conversion the (SAGAN) CBN tables are plain (not spectrally normalised) embeddings, as in our generator:
the forward pass is StudioGAN's, but fine-tuning no longer constrains them by SN.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import torch

from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import Config, apply_overrides, load_config
from ..errors import CheckpointError
from ..io import check_replaceable, check_writable
from ..models.networks import Discriminator, Generator
from .studiogan_files import ConversionError, StudioGANFiles, find_files, load_file, plain, state_dict_of
from .studiogan_layout import (Layout, SourceState, check_attention, inferred_config, plain_weight, read_layout,
                               with_d_px)

# model options that StudioGAN's SAGAN fixes, whatever the chosen preset says
STUDIOGAN_MODEL = {
    "bn_eps": 1e-4,  # ops.batchnorm_2d and its conditional BN: eps=1e-4
    "sn_eps": 1e-6,  # ops.snconv2d / snlinear / sn_embedding: spectral_norm(..., eps=1e-6)
    "d_shortcut_relu": True,  # DiscBlock's in-place ReLU (see the module docstring)
    "attn_mode": "embedded_gaussian",  # ops.SelfAttention: softmax(theta^T phi), max-pooled phi and g
    "attn_pool": True,
    "hierarchical_z": False,
    "g_block_type": "attention",
    "d_block_type": "attention",
}
SN_KEYS = ("weight_orig", "weight_u", "weight_v")
ATTENTION_CONVS = (("theta", "conv1x1_theta"), ("phi", "conv1x1_phi"), ("g", "conv1x1_g"), ("o", "conv1x1_attn"))


def sn_weight(src: SourceState, prefix: str) -> torch.Tensor:
    """W / sigma of a legacy spectral-norm layer in eval mode: sigma = u . (W v) with the stored u, v
    (torch.nn.utils.spectral_norm, dim 0 for linear and embedding layers); float64, then float32. A layer
    without SN (StudioGAN's ``apply_g_sn: False``): its weight."""
    if plain_weight(src, prefix):
        return src.take(prefix + "weight").float()
    w, u, v = (src.take(prefix + k).double() for k in SN_KEYS)
    try:
        sigma = torch.dot(u, w.reshape(w.shape[0], -1) @ v)
    except RuntimeError:
        raise ConversionError(f"{src.name}: {prefix}weight_orig {tuple(w.shape)} does not fit its stored u "
                              f"{tuple(u.shape)} / v {tuple(v.shape)}; the file is damaged") from None
    if not torch.isfinite(sigma) or sigma <= 0:
        raise ConversionError(f"{src.name}: spectral norm of {prefix}weight_orig is {sigma.item():.3g} from its stored "
                              "u, v; the file is damaged")
    return (w / sigma).float()


def converted_config(base: Config, layout: Layout) -> tuple[Config, list[str]]:
    """The chosen preset with StudioGAN's formulation and the checkpoint's resolution and classes; also
    the list of model options that changed (to tell the user)."""
    model = {**STUDIOGAN_MODEL, "resolution": layout.resolution, "num_classes": layout.num_classes}
    if layout.shared_dim:  # big_resnet: BigGAN's shared embedding and hierarchical latents
        model.update(hierarchical_z=True, shared_dim=layout.shared_dim)
    before = base.to_dict()["model"]
    changed = [f"model.{k}={json.dumps(v)}" for k, v in model.items() if before[k] != v]  # --set syntax
    converted = base.replace(model=model).to_dict()
    return Config.from_dict({**converted, "name": f"{base.name}-studiogan"}), changed


class Mapped:
    """Our state dict being filled from a StudioGAN one, with the source name of every entry."""

    def __init__(self, src: SourceState):
        self.src = src
        self.tensors: dict[str, torch.Tensor] = {}
        self.origin: dict[str, str] = {}

    def put(self, ours: str, theirs: str, tensor: torch.Tensor | None = None) -> None:
        self.tensors[ours] = self.src.take(theirs) if tensor is None else tensor
        self.origin[ours] = theirs

    def sn(self, ours: str, theirs: str) -> None:
        """A spectrally normalised conv/linear/embedding: the same weight and power-iteration vectors; a
        plain one (no ``weight_orig``: StudioGAN's ``apply_g_sn: False``): the same weight."""
        if plain_weight(self.src, theirs):
            self.put(ours + "weight", theirs + "weight")
        else:
            for our_key, their_key in zip(("original", "0._u", "0._v"), SN_KEYS):
                self.put(f"{ours}parametrizations.weight.{our_key}", theirs + their_key)
        if self.src.has(theirs + "bias"):
            self.put(ours + "bias", theirs + "bias")

    def bn(self, ours: str, theirs: str, affine: bool) -> None:
        for k in ("running_mean", "running_var") + (("weight", "bias") if affine else ()):
            self.put(ours + k, theirs + k)
        if self.src.has(theirs + "num_batches_tracked"):  # absent in files of torch < 0.4.1
            self.put(ours + "num_batches_tracked", theirs + "num_batches_tracked")
        else:
            self.tensors[ours + "num_batches_tracked"] = torch.tensor(0)

    def cbn(self, ours: str, theirs: str) -> None:
        """StudioGAN's conditional BN -> per-class gain/bias tables (module docstring)."""
        if self.src.has(theirs + "embed0.weight_orig"):  # up to v0.3: SN embeddings (K, C)
            names = theirs + "embed0.weight_orig", theirs + "embed1.weight_orig"
            gain, bias = sn_weight(self.src, theirs + "embed0."), sn_weight(self.src, theirs + "embed1.")
        else:  # v0.4: SN linear maps (C, K) of the one-hot label (plain ones without SN in G)
            sn_key = "weight_orig" if self.src.has(theirs + "gain.weight_orig") else "weight"
            names = theirs + f"gain.{sn_key}", theirs + f"bias.{sn_key}"
            gain, bias = sn_weight(self.src, theirs + "gain.").t(), sn_weight(self.src, theirs + "bias.").t()
        self.put(ours + "gain.weight", names[0], 1 + gain)
        self.put(ours + "bias.weight", names[1], bias)
        self.bn(ours + "bn.", theirs + "bn.", affine=False)

    def attention(self, ours: str, theirs: str) -> None:
        for our_conv, their_conv in ATTENTION_CONVS:
            self.sn(f"{ours}{our_conv}.", f"{theirs}{their_conv}.")
        sigma = self.src.take(theirs + "sigma")
        self.put(ours + "gamma", theirs + "sigma", sigma.reshape(()) if sigma.numel() == 1 else sigma)


def map_generator(src: SourceState, layout: Layout) -> Mapped:
    m = Mapped(src)
    m.sn("linear.", "linear0.")
    if layout.shared_dim:
        m.put("shared.weight", "shared.weight")
    for j, p in enumerate(layout.g_blocks):
        for bn in ("bn1", "bn2"):
            if layout.shared_dim:  # big_resnet: the same SN linear maps of [shared(y), z chunk], tensor for tensor
                m.sn(f"blocks.{j}.{bn}.gain.", f"{p}{bn}.gain.")
                m.sn(f"blocks.{j}.{bn}.bias.", f"{p}{bn}.bias.")
                m.bn(f"blocks.{j}.{bn}.bn.", f"{p}{bn}.bn.", affine=False)
            else:
                m.cbn(f"blocks.{j}.{bn}.", f"{p}{bn}.")
        for ours, theirs in (("conv1", "conv2d1"), ("conv2", "conv2d2"), ("shortcut", "conv2d0")):
            m.sn(f"blocks.{j}.{ours}.", f"{p}{theirs}.")
    for j, p in layout.g_attn.items():
        m.attention(f"attn.{layout.block_px('G', j)}.", p)
    m.bn("out_bn.", "bn4.", affine=True)
    m.sn("out_conv.", "conv2d5.")
    return m


def map_discriminator(src: SourceState, layout: Layout, D: Discriminator) -> Mapped:
    m = Mapped(src)
    for j, p in enumerate(layout.d_blocks):
        m.sn(f"blocks.{j}.conv1.", p + "conv2d1.")
        m.sn(f"blocks.{j}.conv2.", p + "conv2d2.")
        if D.blocks[j].shortcut is not None:  # StudioGAN too: only when the block changes width or size
            m.sn(f"blocks.{j}.shortcut.", p + "conv2d0.")
    for j, p in layout.d_attn.items():
        m.attention(f"attn.{layout.block_px('D', j)}.", p)
    m.sn("linear.", "linear1.")
    m.sn("embed.", "embedding.")
    return m


def load_mapped(module: torch.nn.Module, mapped: Mapped, cfg: Config) -> None:
    """Fill ``module`` from ``mapped``; refuse (naming the StudioGAN tensor) on the first shape that does not
    fit the config, and on any StudioGAN tensor that found no place."""
    src, state = mapped.src, {}
    for key, ours in module.state_dict().items():
        if key not in mapped.tensors:
            raise ConversionError(f"{src.name}: nothing in the file fills {key} of the network config {cfg.name} "
                                  "builds; not a StudioGAN SAGAN checkpoint of this architecture")
        got = mapped.tensors[key]
        if got.shape != ours.shape:
            raise ConversionError(f"{src.name}: tensor {mapped.origin[key]} gives {key} the shape {tuple(got.shape)}, "
                                  f"config {cfg.name} needs {tuple(ours.shape)}; pass the config the checkpoint was "
                                  "trained with (--config, or --set model.g_ch / d_ch / z_dim)")
        state[key] = got.to(ours.dtype)
    leftover = src.leftover()
    if leftover:
        raise ConversionError(f"{src.name}: tensor {leftover[0]} has no place in sagan's networks (another StudioGAN "
                              "model, e.g. an AC/contrastive head?); only StudioGAN's SAGAN / SNGAN (resnet) and "
                              "BigGAN (big_resnet) convert")
    module.load_state_dict(state)


def read_class_names(path: str | Path) -> list[str]:
    p = Path(path).expanduser()
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConversionError(f"cannot read --class-names {p} ({getattr(e, 'strerror', None) or e}); pass a UTF-8 "
                              "text file with one class name per line") from None
    while lines and not lines[-1].strip():
        lines.pop()
    blank = [i + 1 for i, line in enumerate(lines) if not line.strip()]
    if not lines or blank:
        raise ConversionError(f"--class-names {p}: line {blank[0] if blank else 1} is empty; give one name per line, "
                              "in class-index order")
    return [line.strip() for line in lines]


@dataclass
class Conversion:
    out: Path
    files: StudioGANFiles
    step: int
    config: Config
    changed: list[str]


def _is_checkpoint(path: Path) -> bool:
    try:
        load_checkpoint(path, verify=False)
        return True
    except CheckpointError:
        return False


def convert_studiogan(ckpt_dir: str | Path, out: str | Path, which: str = "best", config: str | None = None,
                      overrides: Sequence[str] = (), class_names_file: str | Path | None = None,
                      overwrite: bool = False) -> Conversion:
    """Convert the G (+ G_ema) and D files of one StudioGAN save into one sagan checkpoint at ``out``
    (an existing ``out`` only when it is a sagan checkpoint, or with ``overwrite``); ``config`` None: the
    architecture read from the tensors (module docstring)."""
    out = Path(out).expanduser()
    if out.is_dir():
        raise ConversionError(f"--out {out} is a folder; give a file name such as {out / 'sagan_studiogan.pt'}")
    check_replaceable(out, _is_checkpoint, overwrite)
    files = find_files(ckpt_dir, which)
    base = load_config(config, overrides=list(overrides)) if config is not None else None
    names = read_class_names(class_names_file) if class_names_file is not None else None
    check_writable(out.parent, "output folder")

    raw = {net: load_file(p) for net, p in (("G", files.G), ("G_ema", files.G_ema), ("D", files.D)) if p is not None}
    for obj in raw.values():
        obj.pop("optimizer", None)  # Adam moments: twice the weights' memory, not converted
    src = {net: SourceState(state_dict_of(obj, getattr(files, net)), getattr(files, net).name) for net, obj in raw.items()}
    layout = read_layout(src["G"], src["D"])
    if base is None:  # from the tensors, then the user's --set
        base = apply_overrides(inferred_config(layout, src["G"], src["D"]), list(overrides))
    base = base.replace(model={"g_sn": src["G"].has("linear0.weight_orig")})  # SNGAN: no SN in G
    layout = with_d_px(layout, src["D"], base.replace(model={"resolution": layout.resolution}))
    check_attention(layout, src["G"], src["D"], base)
    cfg, changed = converted_config(base, layout)
    if names is not None and len(names) != layout.num_classes:
        raise ConversionError(f"--class-names {class_names_file} has {len(names)} names, the checkpoint "
                              f"{layout.num_classes} classes; give one name per class")
    step = _step(raw, files)

    nets = {}
    build_cfg = cfg.replace(model={"init": "normal"})  # every weight is overwritten: skip orthogonal init's QRs
    for net in src:
        module = Discriminator.from_config(build_cfg) if net == "D" else Generator.from_config(build_cfg)
        mapped = map_discriminator(src[net], layout, module) if net == "D" else map_generator(src[net], layout)
        load_mapped(module, mapped, cfg)
        nets[net] = module.state_dict()
    meta = _provenance(raw, files, which, step)
    save_checkpoint(out, {
        "step": step, "config": cfg.to_dict(), "G": nets["G"], "D": nets["D"], "G_ema": nets.get("G_ema"),
        # no optimizer, RNG or data state: a resume starts fresh Adam moments and the data from its start
        "opt_G": None, "opt_D": None, "rng": None, "data": None, "class_names": names, "meta": meta,
    })
    return Conversion(out, files, step, cfg, changed)


def _step(raw: dict[str, dict], files: StudioGANFiles) -> int:
    """The step of the save: the file names' N, which the files' own ``step`` entries must agree with."""
    for net, obj in raw.items():
        stored = plain(obj.get("step"))
        if isinstance(stored, int) and stored != files.step:
            raise ConversionError(f"{getattr(files, net).name} says step {stored} inside but step={files.step} in its "
                                  "name; the file was renamed or is from another save")
    return files.step


def _provenance(raw: dict[str, dict], files: StudioGANFiles, which: str, step: int) -> dict:
    d = raw["D"]  # StudioGAN keeps the run's bookkeeping (best FID, ...) with D (src/utils/ckpt.py)
    info = {k: plain(d.get(k)) for k in ("run_name", "seed", "best_step", "best_fid", "ada_p", "aa_p")}
    best_path = d.get("best_fid_checkpoint_path", d.get("best_fid_ckpt"))
    return {
        "converted_from": "studiogan",
        "source_dir": str(files.G.parent.resolve()),
        "source_files": [p.name for p in files.paths()],
        "source_step": step,
        "which": which,
        "best_fid_checkpoint_path": plain(best_path),
        **{k: v for k, v in info.items() if v is not None},
        "note": "StudioGAN's own FID/IS used its evaluation protocol; evaluate.py reports ours",
        "time": time.time(),
        "torch": str(torch.__version__),
    }


def describe(result: Conversion) -> Iterable[str]:
    """Lines for the CLI: what was read, what was written, what changed in the preset."""
    f, m = result.files, result.config.model
    yield f"read {', '.join(p.name for p in f.paths())} from {f.G.parent}" + ("" if f.G_ema else " (no G_ema file)")
    yield (f"StudioGAN step {result.step}: {m.resolution}px, {m.num_classes} classes, attention G {list(m.g_attn)}px "
           f"D {list(m.d_attn)}px")
    if result.changed:
        yield f"config {result.config.name}: {', '.join(result.changed)} (StudioGAN's formulation)"
    yield f"wrote {result.out}"
