"""Watching a run's quality: evaluations every ``train.fid_every`` steps, the metric history, the best
checkpoint, and the collapse watch.

Every evaluation (metrics ``train.eval_metrics`` from the metric registry, resize protocol
``train.fid_resize``, ``train.fid_num_samples`` class-balanced samples of the EMA generator in eval mode)
appends one line to ``OUTDIR/metrics.jsonl`` (step, images seen, wall time, values, protocol,
branch; with ``train.augment: ada`` also ``"augment": {"name", "p", "signal"}``, the strength G was trained
at) and logs each value to TensorBoard under ``metrics/``. A new best value of ``train.best_metric`` (FID
unless set; better is lower or higher as the metric registry says) makes ``checkpoints/best.pt``
(StudioGAN's SAGAN log: FID 50.5 -> 58.8 -> 34.7, so the best checkpoint is not always the last).

Collapse watch: when that metric has been worse than the best by more than ``train.collapse_margin``
(relative) for ``train.collapse_patience`` evaluations in a row, or D's mean real/fake logit gap stays beyond
``train.collapse_logit_gap`` for that many log lines in a row, one warning line (and a TensorBoard text
entry) names the step of the best checkpoint; ``train.stop_on_collapse`` stops the run there instead.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..config import Config
from ..metrics.history import append_record
from ..metrics.registry import METRICS, MetricOptions, scalars
from ..metrics.session import open_session
from ..scores.stats import load_ref
from ..rundir import METRICS_FILE
from ..sampling.bn_stats import MODE_ATTR
from ..sampling.latents import class_balanced_labels, model_classes
from .monitor import Monitor


class RunWatch:
    def __init__(self, cfg: Config, outdir: Path, accelerator, monitor: Monitor, inception_weights: str | None,
                 state: dict | None = None, class_names: list[str] | None = None, branch: str = "0"):
        t, d = cfg.train, cfg.data
        self.cfg, self.outdir, self.acc, self.monitor = cfg, outdir, accelerator, monitor
        self.class_names = class_names
        self.history = outdir / METRICS_FILE
        state = state or {}
        self.best_metric = cfg.train.best_metric
        # {"step": int, <best_metric>: float}; a best of another metric (a resume that changed it) starts anew
        best = state.get("best")
        self.best: dict | None = best if best and self.best_metric in best else None
        # bad results in a row per source of the collapse watch (the best metric: evaluations, "logits": log lines)
        self.streaks: dict[str, int] = dict(state.get("streaks") or {})
        self.warned: dict[str, bool] = dict(state.get("warned") or {})  # one warning per episode and source
        self.started = time.time()
        self.session = None
        self.notes: list[str] = []  # start-up lines for the run's log (the monitor is not open yet)
        self.branch = branch  # the lineage branch its records belong to (training/lineage.py)
        if t.fid_every > 0 and not d.ref_stats:
            self.notes.append("warning: train.fid_every is set but data.ref_stats is not; no evaluations during "
                              "training (make reference statistics with `python evaluate.py stats`)")
        if t.fid_every > 0 and d.ref_stats:
            self._setup(inception_weights)

    def _setup(self, inception_weights: str | None) -> None:
        """Reference, metrics and Inception, checked now rather than at the first evaluation (step N)."""
        t = self.cfg.train
        ref = load_ref(self.cfg.data.ref_stats)  # a missing or damaged reference fails first
        labels = class_balanced_labels(t.fid_num_samples, model_classes(self.cfg.model.num_classes)).numpy()
        device = self.acc.device
        self.session = open_session(ref, num_samples=t.fid_num_samples, labels=labels, metrics=t.eval_metrics,
                                    options=MetricOptions(device=device, progress=False), class_names=self.class_names,
                                    where="the training data",
                                    has_labels=self.cfg.model.num_classes > 0,  # unconditional: no intra-FID
                                    inception_weights=inception_weights,
                                    resize=t.fid_resize, device=device, accelerator=self.acc)

    @property
    def enabled(self) -> bool:
        return self.session is not None

    def state(self) -> dict:
        """What a checkpoint keeps of the watch (``meta["watch"]``), so a resume continues it."""
        return {"best": self.best, "streaks": self.streaks, "warned": self.warned}

    def due(self, step: int, max_steps: int) -> bool:
        every = self.cfg.train.fid_every
        return self.enabled and (step % every == 0 or step == max_steps)

    # ---- evaluation -------------------------------------------------------------------------------

    def evaluate(self, G, step: int, images_seen: int, augment: dict[str, float] | None = None) -> tuple[bool, bool]:
        """Evaluate ``G`` (all processes); returns ``(new_best, stop)``. ``augment``: the augmentation's
        values at this step (ADA's p), recorded with the evaluation."""
        t = self.cfg.train
        result = self.session.of_generator(G, t.fid_num_samples, seed=t.seed, progress=False)
        flags = [False, False]
        if self.acc.is_main_process:
            values = scalars(result)
            self._record(step, images_seen, values, getattr(G, MODE_ATTR, "running"), augment)
            if self.best_metric in values:
                value = values[self.best_metric]
                flags = [self._update_best(step, value), self._metric_collapse(step, value)]
        if self.acc.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            broadcast_object_list(flags)
        return flags[0], flags[1]

    def _record(self, step: int, images_seen: int, values: dict[str, float], bn_stats: str,
                augment: dict[str, float] | None = None) -> None:
        t = self.cfg.train
        protocol = {"resize": t.fid_resize, "num_samples": t.fid_num_samples, "bn_stats": bn_stats,
                    "metrics": list(self.session.metrics),
                    "generator": "ema" if t.ema else "G", "reference": self.cfg.data.ref_stats,
                    "weights_sha256": getattr(self.session.inception, "weights_sha256", None)}
        record = {"step": step, "images_seen": images_seen, "time": time.time(),
                  "wall_s": round(time.time() - self.started, 3), "values": values, "protocol": protocol,
                  "branch": self.branch}
        if augment:  # ADA: the strength p (and its signal) the model was trained with at this step
            record["augment"] = {"name": t.augment, **augment}
        append_record(self.history, record)
        self.monitor.scalars({f"metrics/{k}": v for k, v in values.items()}, step)
        shown = ", ".join(f"{METRICS[k].label} {METRICS[k].format_value(v)}" if k in METRICS else f"{k} {v:.4g}"
                          for k, v in values.items())
        self.monitor.say(f"{self.cfg.name} step {step}: {shown} ({t.fid_num_samples} samples of the "
                         f"{'EMA ' if t.ema else ''}generator, {t.fid_resize} resize)")

    @property
    def _metric(self):
        return METRICS[self.best_metric]

    def _update_best(self, step: int, value: float) -> bool:
        if self.best is None or self._metric.better(value, self.best[self.best_metric]):
            self.best = {"step": step, self.best_metric: value}
            return True
        return False

    # ---- collapse watch ---------------------------------------------------------------------------

    def _warn(self, step: int, source: str, why: str) -> bool:
        """One warning per collapse episode of each source; returns whether the run should stop."""
        t = self.cfg.train
        if not self.warned.get(source):
            m = self._metric
            best = (f"the best checkpoint is step {self.best['step']} ({m.label} "
                    f"{m.format_value(self.best[self.best_metric])}): checkpoints/best.pt" if self.best
                    else "no evaluation has run yet, so there is no best checkpoint")
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

    def _metric_collapse(self, step: int, value: float) -> bool:
        t, m = self.cfg.train, self._metric
        bad = self.best is not None and m.worse_by(value, self.best[self.best_metric], t.collapse_margin)
        side = "below" if m.higher_is_better else "above"
        return self._streak(step, self.best_metric, bad,
                            lambda n: f"{m.label} has been more than {t.collapse_margin:.0%} {side} the best for {n} "
                                      f"evaluations in a row (now {m.format_value(value)})")

    def check_logits(self, step: int, stats: dict[str, float]) -> bool:
        """At each log line (main process decides; same result everywhere: the stats are reduced)."""
        t = self.cfg.train
        if t.collapse_logit_gap <= 0:
            return False
        gap = stats["d_logits_real"] - stats["d_logits_fake"]
        return self._streak(step, "logits", gap > t.collapse_logit_gap,
                            lambda n: f"D separates real from fake by a mean logit gap of {gap:.1f} (> "
                                      f"{t.collapse_logit_gap:g}) for {n} log lines in a row")
