"""The report of a ``stacked_mnist`` experiment directory, from whatever runs have finished so far:

    summary.json   settings; the digit classifier (accuracy on MNIST's test images, ``reliable``) and the
                   modes it finds in the stacked training set itself; one row per variant: status, per
                   seed {seed, step, modes, kl}, ``modes`` and ``kl`` {mean, std, n} over the seeds,
                   R3GAN's published value where it has one; ``published``: R3GAN's Table 1
    summary.md     the same as tables: ours (mean ± std over seeds) and R3GAN's rows beside them

Mode counts are marked unreliable when the classifier reads under 98% of MNIST's test images correctly
(:data:`sagan.experiments.modes.RELIABLE_ACCURACY`): a misread channel moves an image to another mode.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..io import write_text_atomic
from .modes import CLASSIFIER_RECORD, NUM_MODES, RELIABLE_ACCURACY, max_kl
from .runner import mean_std, seed_runs, variant_status
from .stacked_mnist import RUN_MODES

# R3GAN (Huang, Gokaslan, Kuleshov & Tompkin, NeurIPS 2024) Table 1: StackedMNIST, their own networks and
# training length, 26k samples; "fails": the run did not converge.
R3GAN_TABLE1 = [
    {"objective": "RpGAN + R1 + R2", "variant": "rpgan_r1r2", "modes": 1000, "kl": 0.0781},
    {"objective": "GAN + R1 + R2 (non-saturating)", "variant": None, "modes": 693, "kl": 0.9270},
    {"objective": "RpGAN + R1", "variant": None, "result": "fails"},
    {"objective": "GAN + R1", "variant": None, "result": "fails"},
    {"objective": "R3GAN, their final model", "variant": None, "modes": 1000, "kl": 0.029},
]
R3GAN_SOURCE = ("R3GAN (Huang et al., NeurIPS 2024) Table 1: StackedMNIST with their own architecture and "
                "training length; lazy R1 + R2 fails there too (their appendix)")


def read_classifier(out: Path) -> dict | None:
    path = out / CLASSIFIER_RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def reliable(classifier: dict | None) -> bool:
    """Whether mode counts can be trusted: a classifier exists and reads >= 98% of MNIST's test digits."""
    return classifier is not None and classifier["accuracy"] >= RELIABLE_ACCURACY


def run_modes(run: Path, step: int) -> dict | None:
    """The run's measured modes, if measured at its current step."""
    path = run / RUN_MODES
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record if record.get("step") == step else None


def variant_row(out: Path, name: str, settings: dict) -> dict:
    seeds = []
    for folder, offset in seed_runs(name, int(settings.get("seeds", 1))):
        status, step = variant_status(out / folder, settings["steps"])
        measured = run_modes(out / folder, step) if status == "finished" else None
        seeds.append({"run": folder, "status": status, "step": step, **(measured or {})})
    done = [s for s in seeds if "modes" in s]
    statuses = {s["status"] for s in seeds}
    status = "finished" if statuses == {"finished"} else ("not started" if statuses == {"not started"} else "stopped")
    paper = next(({"modes": p["modes"], "kl": p["kl"]} for p in R3GAN_TABLE1 if p["variant"] == name), {})
    return {"variant": name, "status": status, "seeds": seeds, "modes": mean_std([s["modes"] for s in done]),
            "kl": mean_std([s["kl"] for s in done]), "paper": paper}


def summarise(out: Path, settings: dict, variants: list[str]) -> dict:
    classifier = read_classifier(out)
    return {"settings": settings, "classifier": classifier, "reliable": reliable(classifier),
            "reliable_accuracy": RELIABLE_ACCURACY, "num_modes": NUM_MODES,
            "kl": "KL(p_gen || uniform) = sum_k p_k log(1000 p_k), natural log, over the generated modes",
            "variants": [variant_row(out, v, settings) for v in variants],
            "published": R3GAN_TABLE1, "published_source": R3GAN_SOURCE}


def _cell(stats: dict, digits: int) -> str:
    if not stats.get("n"):
        return "—"
    spread = f" ± {stats['std']:.{digits}f}" if stats.get("std") is not None else ""
    return f"{stats['mean']:.{digits}f}{spread}"


def markdown(summary: dict) -> str:
    s, clf = summary["settings"], summary["classifier"]
    lines = [f"# Experiment `stacked_mnist`", "",
             f"Base `{s['base']}` at {s['resolution']}px, unconditional, {s['steps']} steps per run, {s['seeds']} "
             f"seed(s) per variant, trained on {s['train_size']} StackedMNIST images (three independent MNIST "
             f"digits as R, G, B: {summary['num_modes']} modes). Modes counted over {s['num_samples']} generated "
             f"images of each run's final generator; KL is KL(p_gen ‖ uniform) (natural log; 0 = uniform, "
             f"{max_kl():.2f} = a single mode).", ""]
    if clf is None:
        lines += ["No digit classifier yet: run `sagan-experiments run stacked_mnist` first.", ""]
    else:
        real = clf.get("stacked_data") or {}
        lines += [f"Digit classifier: {100 * clf['accuracy']:.2f}% right on the {clf['test_images']} images of "
                  f"{clf.get('test_set', 'the test split')} "
                  f"({clf['epochs']} epochs on {clf['train_images']} training images). It finds "
                  f"{real.get('modes', '—')} modes, KL {real.get('kl', float('nan')):.4f}, in "
                  f"{real.get('samples', '—')} images of the stacked training set itself.", ""]
    if not summary["reliable"]:
        lines += [f"**Mode counts unreliable**: the classifier reads under {100 * RELIABLE_ACCURACY:g}% of MNIST's "
                  "test digits correctly, so misread channels move images between modes. Train it longer "
                  "(`--classifier-epochs`, in a fresh --outdir) or check --data.", ""]
    flag = "" if summary["reliable"] else " (unreliable)"
    lines += [f"| variant | status | modes ↑ (of {summary['num_modes']}){flag} | KL ↓{flag} | per seed (modes / KL) | "
              "R3GAN Table 1 |", "|---|---|---|---|---|---|"]
    for r in summary["variants"]:
        per_seed = ", ".join(f"{x['modes']} / {x['kl']:.3f}" for x in r["seeds"] if "modes" in x) or "—"
        paper = f"{r['paper']['modes']} / {r['paper']['kl']:.4f}" if r["paper"] else "—"
        lines.append(f"| {r['variant']} | {r['status']} | {_cell(r['modes'], 1)} | {_cell(r['kl'], 4)} | {per_seed} | "
                     f"{paper} |")
    lines += ["", f"R3GAN's published rows ({summary['published_source']}):", "",
              "| objective | modes | KL |", "|---|---|---|"]
    for p in summary["published"]:
        lines.append(f"| {p['objective']} | {p.get('modes', p.get('result'))} | "
                     f"{format(p['kl'], '.4f') if 'kl' in p else p.get('result')} |")
    lines += ["", "Ours come from far smaller networks and runs: compare the ordering of the objectives, not "
              "the numbers.", ""]
    return "\n".join(lines)


def write_summary(out: Path, record: dict) -> dict[str, Path]:
    summary = summarise(out, record["settings"], record["variants"])
    paths = {"json": out / "summary.json", "md": out / "summary.md"}
    write_text_atomic(paths["json"], json.dumps(summary, indent=2) + "\n")
    write_text_atomic(paths["md"], markdown(summary))
    return paths
