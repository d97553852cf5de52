"""The report of an experiment directory, from whatever variants have run so far:

    summary.json   one row per variant: status, best FID and its step, IS / KID / intra-FID at that
                   evaluation, the last evaluation, final gamma values, the paper's values
    summary.md     the same as a table, with the protocol and the paper's numbers beside ours
    curves.png     FID and IS against steps, one line per variant, the paper's values as markers
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..checkpoint import load_checkpoint
from ..errors import UserError
from ..io import write_text_atomic
from ..metrics.history import read_records
from ..metrics.registry import METRICS
from ..plots import curves
from ..training.rundir import METRICS_FILE, has_checkpoint
from .definitions import PAPER_SOURCE, PAPER_VALUES, build_variant
from .runner import SETTINGS_FILE, read_settings

CURVE_METRICS = {"fid": ("FID", True), "is": ("IS", False)}  # name: (label, lower is better)


def _gammas(run: Path) -> dict[str, float]:
    """Final attention gammas of G and D (``G 16px: 0.123``) from the last checkpoint."""
    ckpt = load_checkpoint(run, verify=False)
    out = {}
    for net in ("G", "D"):
        for key, value in ckpt[net].items():
            if key.endswith("gamma") and key.startswith("attn."):
                out[f"{net} {key.split('.')[1]}px"] = float(torch.as_tensor(value).float())
    return out


def own_records(run: Path, settings: dict) -> list[dict]:
    """The training evaluations of a variant under the experiment's protocol: not ``evaluate.py`` records
    (they name a report) and not those of another sample count (a run evaluated by hand)."""
    return [r for r in read_records(run / METRICS_FILE)
            if "report" not in r and (r.get("protocol") or {}).get("num_samples") == settings["num_samples"]]


def variant_row(out: Path, experiment: str, name: str, settings: dict) -> dict:
    run = out / name
    variant = build_variant(experiment, name, settings["base"], {"train.max_steps": settings["steps"]})
    row = {"variant": name, "notes": variant.notes, "paper": PAPER_VALUES.get(experiment, {}).get(name, {})}
    if variant.config is None:
        return {**row, "status": "not available", "step": 0}
    records = own_records(run, settings)
    step = 0
    if has_checkpoint(run):
        step = load_checkpoint(run, verify=False)["step"]
        row["gamma"] = _gammas(run)
    row["status"] = "finished" if step >= settings["steps"] else ("stopped" if step else "not started")
    row["step"] = step
    row["curve"] = [{"step": r["step"], **(r.get("values") or {})} for r in records]
    with_fid = [r for r in row["curve"] if r.get("fid") is not None]
    if with_fid:
        best = min(with_fid, key=lambda r: r["fid"])
        row["best"] = best
        row["last"] = row["curve"][-1]
    return row


def summarise(outdir: str | Path) -> dict:
    out = Path(outdir)
    path = out / SETTINGS_FILE
    if not path.is_file():
        raise UserError(f"{out} is not an experiment directory (no {SETTINGS_FILE}); run `sagan-experiments run` first")
    record = read_settings(path)
    settings = record["settings"]
    rows = [variant_row(out, settings["experiment"], v, settings) for v in record["variants"]]
    protocol = _protocol(out, settings, rows)
    return {"settings": settings, "protocol": protocol, "paper_source": PAPER_SOURCE, "variants": rows}


def _protocol(out: Path, settings: dict, rows: list[dict]) -> dict:
    first = next((r for r in rows if r.get("curve")), None)
    proto = {}
    if first is not None:
        records = own_records(out / first["variant"], settings)
        proto = dict(records[-1].get("protocol") or {}) if records else {}
    proto.update({"base": settings["base"], "steps": settings["steps"], "evaluation_every": settings["eval_every"],
                  "samples_per_evaluation": settings["num_samples"]})
    return proto


def _fmt(v, metric: str) -> str:
    """A value as the metric registry formats it (KID x 10^3, two digits, ...)."""
    return "—" if v is None else METRICS[metric].format_value(v)


def markdown(summary: dict) -> str:
    s, proto = summary["settings"], summary["protocol"]
    lines = [f"# Experiment `{s['experiment']}`", "",
             f"Base `{s['base']}`, {s['steps']} steps per variant, evaluation every {s['eval_every']} steps on "
             f"{s['num_samples']} samples (resize `{proto.get('resize', '?')}`, BN `{proto.get('bn_stats', '?')}`, "
             f"{proto.get('generator', '?')} generator).", "",
             "| variant | status | best FID ↓ (step) | IS ↑ at best | KID ×10³ ↓ at best | last FID | gamma | paper FID / IS |",
             "|---|---|---|---|---|---|---|---|"]
    for r in summary["variants"]:
        best, last = r.get("best") or {}, r.get("last") or {}
        gamma = ", ".join(f"{k} {v:+.3f}" for k, v in (r.get("gamma") or {}).items()) or "—"
        paper = r.get("paper") or {}
        paper_txt = f"{_fmt(paper.get('fid'), 'fid')} / {_fmt(paper.get('is'), 'is')}" if paper else "—"
        status = r["status"] + (f" ({r['step']})" if r["status"] == "stopped" else "")
        lines.append(f"| {r['variant']} | {status} | {_fmt(best.get('fid'), 'fid')} ({best.get('step', '—')}) | "
                     f"{_fmt(best.get('is'), 'is')} | {_fmt(best.get('kid'), 'kid')} | "
                     f"{_fmt(last.get('fid'), 'fid')} | {gamma} | {paper_txt} |")
    notes = [f"- **{r['variant']}**: {'; '.join(r['notes'])}" for r in summary["variants"] if r["notes"]]
    if notes:
        lines += ["", "Placement notes:", ""] + notes
    lines += ["", f"Paper values: {summary['paper_source']}. Ours come from the protocol above, usually far fewer "
              "steps and samples: compare the ordering of the variants, not the numbers.", "",
              "![FID and IS against steps](curves.png)", ""]
    return "\n".join(lines)


def write_summary(outdir: str | Path) -> dict[str, Path]:
    out = Path(outdir)
    summary = summarise(out)
    paths = {"json": out / "summary.json", "md": out / "summary.md", "png": out / "curves.png"}
    panels, markers = {}, {}
    for metric, (label, _) in CURVE_METRICS.items():
        panels[label] = {r["variant"]: ([p["step"] for p in r["curve"] if p.get(metric) is not None],
                                        [p[metric] for p in r["curve"] if p.get(metric) is not None])
                         for r in summary["variants"] if r.get("curve")}
        markers[label] = {r["variant"]: r["paper"][metric] for r in summary["variants"]
                          if metric in (r.get("paper") or {}) and r.get("curve")}
    curves(panels, paths["png"], markers=markers,
           lower_is_better={label: low for label, low in CURVE_METRICS.values()})
    write_text_atomic(paths["json"], json.dumps(summary, indent=2) + "\n")
    write_text_atomic(paths["md"], markdown(summary))
    return paths
