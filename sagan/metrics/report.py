"""Writing an evaluation: ``report.json``, a ``report.md`` table next to it, and a PNG histogram of the
per-class FIDs drawn with PIL (no matplotlib dependency)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..io import atomic_write, write_text_atomic

# SAGAN paper, Table 2 (ImageNet 128x128, 50k samples)
PAPER_NUMBERS = {
    "SAGAN (paper)": {"inception_score": 52.52, "fid": 18.65, "intra_fid": 83.7},
    "SNGAN-projection (paper)": {"inception_score": 36.8, "fid": 27.62, "intra_fid": 92.4},
}


def write_report(report: dict, out: str | os.PathLike) -> dict[str, Path]:
    """Write ``out`` (JSON), ``<out stem>.md`` and, with per-class FIDs, ``<out stem>_per_class_fid.png``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {"json": out, "md": out.with_suffix(".md")}
    per_class = report.get("per_class_fid") or {}
    if per_class:
        paths["png"] = out.with_name(f"{out.stem}_per_class_fid.png")
        histogram_png(np.array(list(per_class.values()), np.float64), paths["png"])
    write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    write_text_atomic(paths["md"], markdown(report, paths.get("png")))
    return paths


def _fmt(v, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def markdown(report: dict, png: Path | None = None) -> str:
    is_ = report.get("inception_score") or {}
    ours_is = f"{is_['mean']:.2f} ± {is_['std']:.2f}" if is_ else "—"
    rows = [("this run", ours_is, _fmt(report.get("fid")), _fmt(report.get("intra_fid")))]
    for name, p in PAPER_NUMBERS.items():
        rows.append((name, _fmt(p["inception_score"]), _fmt(p["fid"]), _fmt(p["intra_fid"], 1)))
    lines = ["# Evaluation report", "", "| model | IS ↑ | FID ↓ | intra-FID ↓ |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += ["", f"{report.get('num_samples')} generated samples. Paper numbers: SAGAN (Zhang et al. 2019) Table 2; "
              "they were computed with TF Inception code and 50k samples, so compare with care.", ""]
    lines += ["## Protocol", ""] + [f"- **{k}**: {_plain(v)}" for k, v in (report.get("protocol") or {}).items()]
    lines += ["", "## Provenance", ""] + [f"- **{k}**: {_plain(v)}" for k, v in (report.get("provenance") or {}).items()]
    per_class = report.get("per_class_fid") or {}
    if per_class:
        names = report.get("class_names") or {}
        ranked = sorted(per_class.items(), key=lambda kv: kv[1])
        vals = np.array([v for _, v in ranked])
        lines += ["", "## Per-class FID", "",
                  f"{len(vals)} classes: mean {vals.mean():.2f}, median {np.median(vals):.2f}, "
                  f"min {vals.min():.2f}, max {vals.max():.2f}.", ""]
        if png is not None:
            lines += [f"![per-class FID histogram]({png.name})", ""]
        for title, part in (("Best classes", ranked[:10]), ("Worst classes", ranked[::-1][:10])):
            lines += [f"{title}: " + ", ".join(f"{names.get(c, c)} ({v:.1f})" for c, v in part), ""]
    return "\n".join(lines) + "\n"


def _plain(v) -> str:
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_plain(x)}" for k, x in v.items())
    return str(v)


def histogram_png(values: np.ndarray, path: Path, bins: int = 30, size: tuple[int, int] = (640, 400)) -> Path:
    """A bar histogram of ``values`` with labelled axes, drawn with PIL."""
    w, h = size
    left, right, top, bottom = 60, 20, 30, 50
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        hi = lo + 1.0
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    peak = max(int(counts.max()), 1)
    pw, ph = w - left - right, h - top - bottom
    for i, n in enumerate(counts):
        x0 = left + pw * i / bins
        x1 = left + pw * (i + 1) / bins
        y0 = top + ph * (1 - n / peak)
        if n:
            draw.rectangle([x0 + 1, y0, x1 - 1, top + ph], fill=(70, 110, 180))
    draw.line([left, top, left, top + ph, left + pw, top + ph], fill="black")
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):  # x ticks
        x = left + pw * frac
        draw.line([x, top + ph, x, top + ph + 4], fill="black")
        label = f"{lo + (hi - lo) * frac:.1f}"
        draw.text((x - 3 * len(label), top + ph + 6), label, fill="black", font=font)
    for count in sorted({0, peak // 2, peak}):  # y ticks at whole counts
        y = top + ph * (1 - count / peak)
        label = str(count)
        draw.line([left - 4, y, left, y], fill="black")
        draw.text((left - 8 - 6 * len(label), y - 6), label, fill="black", font=font)
    draw.text((left + pw / 2 - 40, h - 20), "per-class FID", fill="black", font=font)
    draw.text((8, 8), f"classes ({len(values)}), mean {values.mean():.2f}", fill="black", font=font)
    with atomic_write(path) as f:
        img.save(f, format="PNG")
    return path
