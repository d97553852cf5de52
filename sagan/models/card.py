"""The model card (``README.md``) of an ``hf`` export: what the model is, how it was trained, its metrics
and their protocol, and how to load it."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any, Sequence

from ..registry import METRICS


def _name(path: str | None) -> str:
    """A local path as its last component (a card is meant to be shared; home folders stay private)."""
    return PurePath(path).name if path else "none"


def _front_matter(config: dict, extra: Sequence[str] = ()) -> str:
    m = config["sagan_config"]["model"]
    tags = ["gan", "sagan", "self-attention-gan", "image-generation", "pytorch",
            "class-conditional" if m["num_classes"] > 0 else "unconditional"]
    lines = ["---", "library_name: sagan", *extra, "tags:", *[f"- {t}" for t in tags]]
    if m["num_classes"] == 0:
        lines.append("pipeline_tag: unconditional-image-generation")
    return "\n".join(lines + ["---", ""])


def _model_section(config: dict) -> list[str]:
    m = config["sagan_config"]["model"]
    bn = config["bn_stats"]
    bn_line = ("the checkpoint's running statistics" if bn["mode"] == "running"
               else f"standing statistics over {bn['standing_batches']} batches of fresh latents (BigGAN), baked in")
    classes = f"{m['num_classes']} classes" if m["num_classes"] > 0 else "unconditional"
    return [
        "## Model", "",
        f"- {m['resolution']}x{m['resolution']} RGB images in [-1, 1], {classes}, latent z of {m['z_dim']} "
        f"standard-normal entries; generator width g_ch = {m['g_ch']}",
        f"- self-attention ({m['attn_mode']}) after the blocks at {', '.join(map(str, m['g_attn'])) or 'no'} px"
        if m["g_block_type"] == "attention" else f"- residual blocks at {m['g_attn']} px (no attention)",
        f"- weights: the {'EMA' if config['generator'] == 'ema' else 'raw (non-EMA)'} generator at step "
        f"{config['step']}, spectral norm folded into the weights (W / sigma as eval mode computes it)",
        f"- batch norm: {bn_line}",
        "",
    ]


def _training_section(config: dict) -> list[str]:
    c = config["sagan_config"]
    t, d, prov = c["train"], c["data"], config.get("provenance") or {}
    if prov.get("converted_from"):
        src = f"Converted from {prov['converted_from']}'s release"
        if prov.get("run_name"):
            src += f" (run {prov['run_name']})"
        lines = [f"{src} with `sagan-convert`, at its step {config['step']}."]
        if prov.get("best_fid") is not None:
            lines.append(f"Its own log gives a best FID of {prov['best_fid']} (its evaluation protocol, not ours).")
        return ["## Training", "", *lines, ""]
    data = "the built-in procedural demo dataset" if d["path"] is None else f"`{_name(d['path'])}`"
    seen = f", {prov['images_seen']} real images seen" if "images_seen" in prov else ""
    return [
        "## Training", "",
        f"Trained with sagan (preset `{c['name']}`) on {data} for {config['step']} generator steps{seen}: "
        f"{t['loss']} loss, batch {t['batch_size']}, Adam lr G {t['lr_g']:g} / D {t['lr_d']:g} (TTUR), "
        f"betas ({t['beta1']:g}, {t['beta2']:g}), {t['d_steps']} D step(s) per G step"
        + (f", EMA decay {t['ema_decay']:g} from step {t['ema_start']}" if t["ema"] else "") + ".",
        "",
    ]


def _metrics_section(config: dict) -> list[str]:
    rec = config.get("metrics")
    if not rec:
        return ["## Metrics", "", f"No evaluation was recorded at step {config['step']} (the run's metrics.jsonl "
                                  "has none); `sagan-evaluate metrics` measures one.", ""]
    rows = ["| metric | value |", "|---|---|"]
    for k, v in rec["values"].items():
        m = METRICS.get(k)
        shown = "n/a" if v is None else m.format_value(v) if m else f"{v:.4g}"
        rows.append(f"| {m.label if m else k} | {shown} |")
    p = rec.get("protocol", {})
    protocol = (f"{p.get('num_samples', '?')} samples of the {p.get('generator', '?')} generator, "
                f"{p.get('resize', '?')} resize, BN {p.get('bn_stats', '?')}, reference `{_name(p.get('reference'))}`")
    return ["## Metrics", "", *rows, "", f"Protocol: {protocol}.", ""]


def _usage_section(config: dict) -> list[str]:
    conditional = config["sagan_config"]["model"]["num_classes"] > 0
    call = "images = G(z, y)" if conditional else "images = G(z, None)"
    return [
        "## Use", "",
        "```python",
        "import torch",
        "from sagan.models import Generator  # pip install 'sagan[hub]'",
        "",
        'G = Generator.from_pretrained("user/name")  # this Hub repo, or the folder holding this card',
        "z = torch.randn(8, G.z_dim)",
        *(["y = torch.arange(8) % G.num_classes  # class indices"] if conditional else []),
        "with torch.no_grad():",
        f"    {call}  # (8, 3, R, R) in [-1, 1]",
        "```", "",
        "`model.safetensors` holds tensors only: loading it runs no code. `sagan-export --format onnx` or "
        "`--format torchscript` gives the same generator for runtimes without sagan.",
        "",
    ]


def model_card(config: dict[str, Any], front_matter: Sequence[str] = (), sections: Sequence[str] = ()) -> str:
    """The card of an export's ``config.json`` (:func:`sagan.export.hf.hub_config`; the format: :mod:`sagan.models.hf_folder`);
    ``front_matter`` / ``sections``: lines the export adds (its Hugging Face Space, :mod:`sagan.serve.space`)."""
    m = config["sagan_config"]["model"]
    title = f"# SAGAN generator `{config['sagan_config']['name']}` ({m['resolution']}x{m['resolution']})"
    maps = "`G(z, y)` maps a latent and a class label" if m["num_classes"] > 0 else "`G(z, None)` maps a latent"
    intro = f"A Self-Attention GAN generator (Zhang et al. 2019, arXiv:1805.08318) exported by sagan: {maps} to an image."
    lines = [_front_matter(config, front_matter), title, "", intro, "", *_model_section(config), *_training_section(config),
             *_metrics_section(config), *_usage_section(config), *sections]
    return "\n".join(lines)
