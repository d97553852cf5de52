"""Watching a run's quality: evaluations every ``train.fid_every`` steps, the metric history, the best
checkpoint, and the collapse watch.

Every evaluation (metrics ``train.eval_metrics`` from the metric registry, resize protocol
``train.fid_resize``, ``train.fid_num_samples`` class-balanced samples of the EMA generator in eval mode)
appends one line to ``OUTDIR/metrics.jsonl`` (step, images seen, wall time, values, protocol) and logs
each value to TensorBoard under ``metrics/``. A new lowest FID makes ``checkpoints/best.pt``
(StudioGAN's SAGAN log: FID 50.5 -> 58.8 -> 34.7, so the best checkpoint is not always the last).

Collapse watch: when FID has been worse than the best by more than ``train.collapse_margin`` (relative)
for ``train.collapse_patience`` evaluations in a row, or D's mean real/fake logit gap stays beyond
``train.collapse_logit_gap`` for that many log lines in a row, one warning line (and a TensorBoard text
entry) names the step of the best checkpoint; ``train.stop_on_collapse`` stops the run there instead.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..sampling.bn_stats import MODE_ATTR
from ..config import Config
from .monitor import Monitor
from .rundir import METRICS_FILE


class RunWatch:
    def __init__(self, cfg: Config, outdir: Path, accelerator, monitor: Monitor, inception_weights: str | None,
                 state: dict | None = None, class_names: list[str] | None = None, resumed_step: int | None = None):
        t, d = cfg.train, cfg.data
        self.cfg, self.outdir, self.acc, self.monitor = cfg, outdir, accelerator, monitor
        self.class_names = class_names
        self.history = outdir / METRICS_FILE
        state = state or {}
        self.best: dict | None = state.get("best")  # {"step": int, "fid": float}
        # bad results in a row per source of the collapse watch ("fid": evaluations, "logits": log lines)
        self.streaks: dict[str, int] = dict(state.get("streaks") or {})
        self.warned: dict[str, bool] = dict(state.get("warned") or {})  # one warning per episode and source
        self.started = time.time()
        self.inception = self.ref = None
        self.notes: list[str] = []  # start-up lines for the run's log (the monitor is not open yet)
        if resumed_step is not None and accelerator.is_main_process:
            self._truncate_history(resumed_step)
        if t.fid_every > 0 and not d.ref_stats:
            self.notes.append("warning: train.fid_every is set but data.ref_stats is not; no evaluations during "
                              "training (make reference statistics with `python evaluate.py stats`)")
        if t.fid_every > 0 and d.ref_stats:
            self._setup(inception_weights)

    def _setup(self, inception_weights: str | None) -> None:
        """Reference, metrics and Inception, checked now rather than at the first evaluation (step N)."""
        from ..metrics import load_inception, load_ref
        from ..metrics.classes import pair_classes
        from ..metrics.evaluation import check_same_inception
        from ..metrics.intra import check_intra_fid_inputs
        from ..metrics.registry import resolve_metrics
        from ..sampling.latents import class_balanced_labels

        t = self.cfg.train
        self.ref = load_ref(self.cfg.data.ref_stats)
        # an unconditional model (num_classes 0) has no labels: intra-FID is refused in one line
        self.metrics, _ = resolve_metrics(t.eval_metrics, self.ref, t.fid_num_samples,
                                          has_labels=self.cfg.model.num_classes > 0)
        pairing = pair_classes(self.class_names, self.ref, "the training data")
        if "intra_fid" in self.metrics:
            labels = class_balanced_labels(t.fid_num_samples, range(self.cfg.model.num_classes)).numpy()
            check_intra_fid_inputs(pairing.map(labels), self.ref)
        with self.acc.main_process_first():  # one download at most
            self.inception = load_inception(inception_weights, device=self.acc.device, resize=t.fid_resize)
        check_same_inception(self.ref, self.inception)

    def _truncate_history(self, step: int) -> None:
        """A resume from ``step`` abandons the evaluations a killed run recorded after it (as TensorBoard's
        purge_step does for the events), so the history has one line per step of the run's actual path."""
        from ..metrics.history import read_records, write_records

        if not self.history.is_file():
            return
        records = read_records(self.history)
        kept = [r for r in records if r.get("step", 0) <= step]
        if len(kept) < len(records):
            write_records(self.history, kept)
            self.notes.append(f"metrics.jsonl: dropped {len(records) - len(kept)} evaluation(s) after step {step} "
                             "(a branch the resume abandons)")

    @property
    def enabled(self) -> bool:
        return self.inception is not None

    def state(self) -> dict:
        """What a checkpoint keeps of the watch (``meta["watch"]``), so a resume continues it."""
        return {"best": self.best, "streaks": self.streaks, "warned": self.warned}

    def due(self, step: int, max_steps: int) -> bool:
        every = self.cfg.train.fid_every
        return self.enabled and (step % every == 0 or step == max_steps)

    # ---- evaluation -------------------------------------------------------------------------------

    def evaluate(self, G, step: int, images_seen: int) -> tuple[bool, bool]:
        """Evaluate ``G`` (all processes); returns ``(new_best, stop)``."""
        from ..metrics import evaluate_generator
        from ..metrics.registry import scalars

        t = self.cfg.train
        result = evaluate_generator(G, self.ref, num_samples=t.fid_num_samples, inception=self.inception,
                                    metrics=self.metrics, seed=t.seed, accelerator=self.acc, progress=False,
                                    class_names=self.class_names)
        flags = [False, False]
        if self.acc.is_main_process:
            values = scalars(result)
            self._record(step, images_seen, values, getattr(G, MODE_ATTR, "running"))
            if "fid" in values:
                flags = [self._update_best(step, values["fid"]), self._fid_collapse(step, values["fid"])]
        if self.acc.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            broadcast_object_list(flags)
        return flags[0], flags[1]

    def _record(self, step: int, images_seen: int, values: dict[str, float], bn_stats: str) -> None:
        from ..metrics.history import append_record
        from ..metrics.registry import METRICS

        t = self.cfg.train
        protocol = {"resize": t.fid_resize, "num_samples": t.fid_num_samples, "bn_stats": bn_stats,
                    "metrics": list(self.metrics),
                    "generator": "ema" if t.ema else "G", "reference": self.cfg.data.ref_stats,
                    "weights_sha256": getattr(self.inception, "weights_sha256", None)}
        append_record(self.history, {"step": step, "images_seen": images_seen, "time": time.time(),
                                     "wall_s": round(time.time() - self.started, 3), "values": values,
                                     "protocol": protocol})
        self.monitor.scalars({f"metrics/{k}": v for k, v in values.items()}, step)
        shown = ", ".join(f"{METRICS[k].label} {v * METRICS[k].scale:.{METRICS[k].digits}f}" if k in METRICS
                          else f"{k} {v:.4g}" for k, v in values.items())
        self.monitor.say(f"{self.cfg.name} step {step}: {shown} ({t.fid_num_samples} samples of the "
                         f"{'EMA ' if t.ema else ''}generator, {t.fid_resize} resize)")

    def _update_best(self, step: int, fid: float) -> bool:
        if self.best is None or fid < self.best["fid"]:
            self.best = {"step": step, "fid": fid}
            return True
        return False

    # ---- collapse watch ---------------------------------------------------------------------------

    def _warn(self, step: int, source: str, why: str) -> bool:
        """One warning per collapse episode of each source; returns whether the run should stop."""
        t = self.cfg.train
        if not self.warned.get(source):
            best = (f"the best checkpoint is step {self.best['step']} (FID {self.best['fid']:.2f}): "
                    f"checkpoints/best.pt" if self.best else "no evaluation has run yet, so there is no best checkpoint")
            action = "stopping (train.stop_on_collapse)" if t.stop_on_collapse else "set train.stop_on_collapse=true to stop"
            msg = f"warning: possible collapse at step {step}: {why}; {best}; {action}"
            self.monitor.say(msg)
            self.monitor.text("collapse", msg, step)
            self.warned[source] = True
        return t.stop_on_collapse

    def _streak(self, step: int, source: str, bad: bool, why) -> bool:
        """Count ``source``'s bad results in a row (a good one ends the episode); at ``collapse_patience``
        warn with ``why(count)``. Returns whether the run should stop."""
        n = self.streaks.get(source, 0) + 1 if bad else 0
        self.streaks[source] = n
        if not bad:
            self.warned[source] = False
        return n >= self.cfg.train.collapse_patience and self._warn(step, source, why(n))

    def _fid_collapse(self, step: int, fid: float) -> bool:
        t = self.cfg.train
        bad = self.best is not None and fid > self.best["fid"] * (1 + t.collapse_margin)
        return self._streak(step, "fid", bad, lambda n: f"FID has been more than {t.collapse_margin:.0%} above the "
                                                        f"best for {n} evaluations in a row (now {fid:.2f})")

    def check_logits(self, step: int, stats: dict[str, float]) -> bool:
        """At each log line (main process decides; same result everywhere: the stats are reduced)."""
        t = self.cfg.train
        if t.collapse_logit_gap <= 0:
            return False
        gap = stats["d_logits_real"] - stats["d_logits_fake"]
        return self._streak(step, "logits", gap > t.collapse_logit_gap,
                            lambda n: f"D separates real from fake by a mean logit gap of {gap:.1f} (> "
                                      f"{t.collapse_logit_gap:g}) for {n} log lines in a row")
