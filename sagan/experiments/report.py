"""The report of an experiment directory, from whatever variants have run so far:

    summary.json   one row per variant: status, best FID and its step, IS / KID / intra-FID at that
                   evaluation, the last evaluation, final gamma values, the paper's values; with
                   ``--seeds N`` also ``seeds`` (per seed: seed, best, last) and ``best_fid`` {mean, std, n}
                   (best, last, curve and gamma stay those of the first seed)
    summary.md     the same as a table (best FID as mean ± std over the seeds), with the protocol and the
                   paper's numbers beside ours
    curves.png     FID and IS against steps, one line per variant (the seeds' mean, a band of ± one
                   standard deviation), the paper's values as markers
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..checkpoint import load_checkpoint
from ..errors import UserError
import numpy as np

from ..io import write_text_atomic
from ..metrics.history import read_records
from ..metrics.registry import METRICS
from ..plots import curves
from ..rundir import METRICS_FILE, has_checkpoint
from .definitions import PAPER_SOURCE, PAPER_SOURCES, PAPER_VALUES, build_variant
from .runner import SETTINGS_FILE, mean_std, read_settings, seed_runs  # noqa: F401  (mean_std: public here too)
from .stacked_mnist_report import write_summary as write_modes_summary

CURVE_METRICS = {"fid": ("FID", True), "is": ("IS", False)}  # name: (label, lower is better)
# drawn where the runs evaluated them (the objectives experiment): how much of the data the samples cover
COVERAGE_CURVES = {"recall": ("Recall", False), "coverage": ("Coverage", False)}
PRDC = ("precision", "recall", "density", "coverage")


def _gammas(ckpt: dict) -> dict[str, float]:
    """Final attention gammas of G and D (``G 16px: 0.123``) of a (the last) checkpoint."""
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


def run_summary(run: Path, settings: dict) -> dict:
    """One run of a variant: its step, curve, best (lowest FID) and last evaluation, final gammas."""
    records = own_records(run, settings)
    row = {"step": 0, "curve": [{"step": r["step"], **(r.get("values") or {})} for r in records]}
    if has_checkpoint(run):
        ckpt = load_checkpoint(run, verify=False)
        row["step"], row["gamma"] = ckpt["step"], _gammas(ckpt)
    with_fid = [r for r in row["curve"] if r.get("fid") is not None]
    if with_fid:
        row["best"] = min(with_fid, key=lambda r: r["fid"])
        row["last"] = row["curve"][-1]
    return row


def mean_curve(curves: list[list[dict]]) -> list[dict]:
    """The seeds' curves averaged at the steps every seed has evaluated: {step, fid, fid_std, is, is_std}."""
    by_step = [{p["step"]: p for p in c} for c in curves]
    common = sorted(set.intersection(*(set(s) for s in by_step))) if by_step else []
    out = []
    for step in common:
        point = {"step": step}
        for metric in {**CURVE_METRICS, **COVERAGE_CURVES}:
            vals = [s[step][metric] for s in by_step if s[step].get(metric) is not None]
            if len(vals) == len(by_step):
                stats = mean_std(vals)
                point[metric], point[f"{metric}_std"] = stats["mean"], stats["std"] or 0.0
        out.append(point)
    return out


def variant_row(out: Path, experiment: str, name: str, settings: dict) -> dict:
    variant = build_variant(experiment, name, settings["base"], {"train.max_steps": settings["steps"]})
    row = {"variant": name, "notes": variant.notes, "paper": PAPER_VALUES.get(experiment, {}).get(name, {})}
    if variant.config is None:
        return {**row, "status": "not available", "step": 0}
    base_seed = variant.config.train.seed
    runs = [(base_seed + i, run_summary(out / d, settings)) for d, i in seed_runs(name, int(settings.get("seeds", 1)))]
    row.update(runs[0][1])  # the first seed's run: the row as before seeds existed
    step = min(r["step"] for _, r in runs)
    row["status"] = "finished" if step >= settings["steps"] else ("stopped" if step else "not started")
    row["step"] = step
    row["seeds"] = [{"seed": s, "best": r.get("best"), "last": r.get("last")} for s, r in runs]
    row["best_fid"] = mean_std([r["best"]["fid"] for _, r in runs if r.get("best")])
    row["at_best"] = at_best([r for _, r in runs])
    if len(runs) > 1:
        row["mean_curve"] = mean_curve([r["curve"] for _, r in runs])
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
    return {"settings": settings, "protocol": protocol,
            "paper_source": PAPER_SOURCES.get(settings["experiment"], PAPER_SOURCE), "variants": rows}


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


def _best_fid_cell(r: dict) -> str:
    """Best FID (its step) of one seed; mean ± std (n seeds) of several."""
    stats, best = r.get("best_fid") or {}, r.get("best") or {}
    if stats.get("n", 0) > 1 or len(r.get("seeds") or []) > 1:
        spread = f" ± {stats['std']:.2f}" if stats.get("std") is not None else ""
        return f"{_fmt(stats.get('mean'), 'fid')}{spread} (n={stats.get('n', 0)})"
    return f"{_fmt(best.get('fid'), 'fid')} ({best.get('step', '—')})"


def _at_best_cell(r: dict, metric: str, several: bool) -> str:
    """A metric at the best-FID evaluation: the first seed's value, or mean ± std over several seeds."""
    stats = (r.get("at_best") or {}).get(metric) or {}
    if not several or not stats.get("n"):
        return _fmt((r.get("best") or {}).get(metric), metric)
    spread = f" ± {_fmt(stats['std'], metric)}" if stats.get("std") is not None else ""
    return f"{_fmt(stats['mean'], metric)}{spread}"


def markdown(summary: dict) -> str:
    s, proto = summary["settings"], summary["protocol"]
    prdc = any("recall" in (r.get("at_best") or {}) for r in summary["variants"])
    lines = [f"# Experiment `{s['experiment']}`", "",
             f"Base `{s['base']}`, {s['steps']} steps per variant, evaluation every {s['eval_every']} steps on "
             f"{s['num_samples']} samples (resize `{proto.get('resize', '?')}`, BN `{proto.get('bn_stats', '?')}`, "
             f"{proto.get('generator', '?')} generator).", "",
             f"| variant | status | best FID ↓ ({'mean ± std over seeds' if s.get('seeds', 1) > 1 else 'step'}) | "
             "IS ↑ at best | KID ×10³ ↓ at best | " + ("precision / recall / density / coverage ↑ at best | " if prdc else "")
             + "last FID | gamma | paper FID / IS |", "|---|---|---|---|---|" + ("---|" if prdc else "") + "---|---|---|"]
    for r in summary["variants"]:
        best, last = r.get("best") or {}, r.get("last") or {}
        gamma = ", ".join(f"{k} {v:+.3f}" for k, v in (r.get("gamma") or {}).items()) or "—"
        paper = r.get("paper") or {}
        paper_txt = f"{_fmt(paper.get('fid'), 'fid')} / {_fmt(paper.get('is'), 'is')}" if paper else "—"
        status = r["status"] + (f" ({r['step']})" if r["status"] == "stopped" else "")
        several = len(r.get("seeds") or []) > 1
        prdc_cell = " / ".join(_at_best_cell(r, m, several) for m in PRDC) + " | " if prdc else ""
        lines.append(f"| {r['variant']} | {status} | {_best_fid_cell(r)} | "
                     f"{_at_best_cell(r, 'is', several)} | {_at_best_cell(r, 'kid', several)} | {prdc_cell}"
                     f"{_fmt(last.get('fid'), 'fid')} | {gamma} | {paper_txt} |")
    notes = [f"- **{r['variant']}**: {'; '.join(r['notes'])}" for r in summary["variants"] if r["notes"]]
    if notes:
        lines += ["", "Placement notes:", ""] + notes
    lines += at_best_table(summary)
    lines += ["", f"Paper values: {summary['paper_source']}. Ours come from the protocol above, usually far fewer "
              "steps and samples: compare the ordering of the variants, not the numbers.", "",
              "![FID and IS against steps](curves.png)", ""]
    return "\n".join(lines)


def write_summary(outdir: str | Path) -> dict[str, Path]:
    out = Path(outdir)
    if (out / SETTINGS_FILE).is_file():
        record = read_settings(out / SETTINGS_FILE)
        if record["settings"].get("experiment") == "stacked_mnist":  # mode counts, not FID curves
            return write_modes_summary(out, record)
    summary = summarise(out)
    paths = {"json": out / "summary.json", "md": out / "summary.md", "png": out / "curves.png"}
    panels, markers = {}, {}
    evaluated = {m for r in summary["variants"] for p in r.get("curve") or [] for m in p}
    drawn = {**CURVE_METRICS, **{m: v for m, v in COVERAGE_CURVES.items() if m in evaluated}}
    for metric, (label, _) in drawn.items():
        panels[label] = {}
        for r in summary["variants"]:
            points = [p for p in r.get("mean_curve") or r.get("curve") or [] if p.get(metric) is not None]
            if points:  # several seeds: their mean, with a band of one standard deviation
                band = [p[f"{metric}_std"] for p in points] if "mean_curve" in r else None
                panels[label][r["variant"]] = ([p["step"] for p in points], [p[metric] for p in points], band)
        markers[label] = {r["variant"]: r["paper"][metric] for r in summary["variants"]
                          if metric in (r.get("paper") or {}) and r.get("curve")}
    curves(panels, paths["png"], markers=markers,
           lower_is_better={label: low for label, low in drawn.values()})
    write_text_atomic(paths["json"], json.dumps(summary, indent=2) + "\n")
    write_text_atomic(paths["md"], markdown(summary))
    return paths


# --------------------------------------------------------------------------------------------------
# every metric at each seed's best evaluation, mean ± std over the seeds (issue 29: FID / KID / PRDC)

AT_BEST_METRICS = ("fid", "is", "kid", "precision", "recall", "density", "coverage")


def _scalar(v):
    return v.get("mean") if isinstance(v, dict) else v


def at_best(runs: list[dict]) -> dict:
    """{metric: {mean, std, n}} over the runs (seeds) of each metric at that run's best (lowest-FID) evaluation."""
    bests = [r["best"] for r in runs if r.get("best")]
    out = {}
    for metric in AT_BEST_METRICS:
        values = [_scalar(b.get(metric)) for b in bests]
        if values and all(v is not None for v in values):
            out[metric] = mean_std(values)
    return out


def at_best_table(summary: dict) -> list[str]:
    """Markdown lines: the metrics at the best FID, mean ± std over seeds; empty unless an experiment
    evaluated more than FID / IS / KID (the BigGAN ablation's precision, recall, density, coverage)."""
    rows = [r for r in summary["variants"] if "precision" in (r.get("at_best") or {})]
    if not rows:
        return []
    shown = [m for m in AT_BEST_METRICS if any(m in r["at_best"] for r in rows)]
    lines = ["", f"At each seed's best FID, mean ± std over seeds (n):", "",
             "| variant | " + " | ".join(METRICS[m].label + (" ↓" if not METRICS[m].higher_is_better else " ↑")
                                       for m in shown) + " |", "|---" * (len(shown) + 1) + "|"]
    for r in rows:
        cells = []
        for m in shown:
            st = r["at_best"].get(m)
            if st is None:
                cells.append("—")
                continue
            spread = f" ± {METRICS[m].format_value(st['std'])}" if st["std"] is not None else ""
            cells.append(f"{METRICS[m].format_value(st['mean'])}{spread} (n={st['n']})")
        lines.append(f"| {r['variant']} | " + " | ".join(cells) + " |")
    return lines
