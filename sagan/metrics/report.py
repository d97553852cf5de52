"""Writing an evaluation: ``report.json``, a ``report.md`` table next to it, and a histogram of the
per-class FIDs (``<stem>_per_class_fid.png``, drawn by :func:`sagan.plots.histogram`).

The table's columns are the registry's metrics (:mod:`registry`) that the report holds, beside the
SAGAN paper's numbers. Those came from TF code that resized like ``tf1``; a report made under another
resize protocol says that the two are not directly comparable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..io import write_text_atomic
from ..plots import histogram
from ..scores.registry import METRICS

# SAGAN paper, Table 2 (ImageNet 128x128, 50k samples), by registry name
PAPER_NUMBERS = {
    "SAGAN (paper)": {"is": 52.52, "fid": 18.65, "intra_fid": 83.7},
    "SNGAN-projection (paper)": {"is": 36.8, "fid": 27.62, "intra_fid": 92.4},
}
PAPER_RESIZE = "tf1"  # the paper's numbers came from TF code: TF1 bilinear resize, TF Inception


def write_report(report: dict, out: str | os.PathLike) -> dict[str, Path]:
    """Write ``out`` (JSON), ``<out stem>.md`` and, with per-class FIDs, ``<out stem>_per_class_fid.png``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {"json": out, "md": out.with_suffix(".md")}
    per_class = report.get("per_class_fid") or {}
    if per_class:
        paths["png"] = out.with_name(f"{out.stem}_per_class_fid.png")
        histogram(np.array(list(per_class.values()), np.float64), paths["png"], xlabel="per-class FID",
                  title=f"intra-FID: per-class FID of {len(per_class)} classes")
    write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    write_text_atomic(paths["md"], markdown(report, paths.get("png")))
    return paths


def _table(report: dict) -> list[str]:
    """This run beside the paper: a column per metric the report holds or the paper gives."""
    paper = PAPER_NUMBERS if report.get("paper_comparison", True) else {}
    names = [n for n, m in METRICS.items() if report.get(m.key) is not None or any(n in p for p in paper.values())]
    lines = ["| model | " + " | ".join(METRICS[n].header for n in names) + " |", "|---" * (len(names) + 1) + "|",
             f"| {_this_run(report)} | " + " | ".join(METRICS[n].format(report) for n in names) + " |"]
    for model, numbers in paper.items():
        cells = [METRICS[n].format({METRICS[n].key: numbers[n]}) if n in numbers else "—" for n in names]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return lines


def _this_run(report: dict) -> str:
    """The table's label of this run; it carries the warning when the numbers cannot stand beside the paper's."""
    if (report.get("provenance") or {}).get("official_weights") is False:
        return "this run (**not comparable** with the paper: non-official Inception weights)"
    return "this run"


def _comparability(report: dict) -> str:
    resize = report.get("resize")
    if not report.get("paper_comparison", True):  # reports written before the key existed: as before
        model = report.get("model") or {}
        classes = model.get("num_classes")
        what = ("an unconditional model" if classes == 0 else
                f"a {classes}-class model" if classes else "a model of unknown classes")
        return (f"No paper numbers: the SAGAN paper (Zhang et al. 2019, Table 2) reports ImageNet 128x128 with 1000 "
                f"classes; this is {what} at {model.get('resolution', '?')}px. Compare runs evaluated alike (same "
                "reference, resize protocol and sample count).")
    if resize == PAPER_RESIZE:
        return ("Paper numbers: SAGAN (Zhang et al. 2019) Table 2, from TF code with the same resize protocol "
                f"({PAPER_RESIZE}) and 50k samples; this run used {report.get('num_samples')} samples.")
    return (f"Paper numbers: SAGAN (Zhang et al. 2019) Table 2. **Not directly comparable**: they were computed "
            f"with TF code that resizes like `{PAPER_RESIZE}`, this report with `{resize}` (rerun with "
            f"`--resize {PAPER_RESIZE}` and a {PAPER_RESIZE} reference to compare).")


def markdown(report: dict, png: Path | None = None) -> str:
    lines = ["# Evaluation report", ""] + _table(report)
    lines += ["", f"{report.get('num_samples')} generated samples; resize protocol `{report.get('resize')}`; "
              f"generator BN statistics: {report.get('bn_stats')}.", "", _comparability(report), ""]
    if report.get("fid_ci"):
        low, high = report["fid_ci"]
        lines += [f"FID 95% bootstrap interval: [{low:.2f}, {high:.2f}] (resampling the generated samples; "
                  "resamples hold ~63% distinct images, which biases FID upwards, so read its width).", ""]
    for note in report.get("notes") or []:
        lines.append(f"- note: {note}")
    lines += ["", "## Protocol", ""] + [f"- **{k}**: {_plain(v)}" for k, v in (report.get("protocol") or {}).items()]
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
