"""What a user watches while a run trains: the console / ``log.txt`` lines, TensorBoard scalars and
sample grids, and the stop request of Ctrl-C / SIGTERM. Only the main process writes anything.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..config import Config
from ..io import printable, progress_disable
from ..rundir import LOG_FILE, SAMPLES_DIR, write_run_config
from .trackers import RunTrackers, external_trackers, writes_tensorboard
from ..sampling.draw import generate, spread_classes
from ..sampling.latents import sample_latents
from ..sampling.viz import image_grid, save_png, upscale_factor

GRID_ROWS, GRID_COLS = 10, 8  # sample grid: up to 10 classes (rows) x 8 fixed latents
EVENTS_GLOB = "events.out.tfevents.*"


class StopRequest:
    """SIGINT / SIGTERM ask the run to stop: the loop finishes its step, saves a checkpoint and exits with
    128 + the signal number (so a scheduler can tell preemption from completion). The request goes through
    accelerate's trigger (``set_trigger`` here, ``check_trigger`` in the loop: every process stops at the
    same step). A second Ctrl-C aborts at once; the last checkpoint on disk stays intact.

    The handler acts only in the process that installed it: DataLoader workers forked later inherit it
    and must neither print nor raise (one message per run, from the main process)."""

    def __init__(self, accelerator, say):
        self.acc, self.say = accelerator, say
        self.signum: int | None = None
        self._pid = os.getpid()
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame):
        if os.getpid() != self._pid:
            return
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        self.acc.set_trigger()
        self.say(f"{signal.Signals(signum).name}: stopping after this step and saving a checkpoint "
                 "(Ctrl-C again to abort)")

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def requested(self) -> bool:
        """Whether any process was asked to stop: accelerate's trigger (a collective) under several
        processes; alone, the flag itself (no collective, no device sync)."""
        if self.acc.num_processes == 1:
            return self.signum is not None
        return self.acc.check_trigger()


class Monitor:
    """Console and ``log.txt`` lines, TensorBoard events and sample grids of one run (main process); the
    W&B / MLflow trackers of ``train.log_with`` (sagan.training.trackers) get the same scalars and grids."""

    def __init__(self, cfg: Config, outdir: Path, main: bool, class_names: list[str], progress: bool = True,
                 accelerator=None):
        self.cfg, self.outdir, self.main, self.progress = cfg, outdir, main, progress
        self.accelerator, self.trackers = accelerator, None
        self.class_names = class_names
        self.writer = self.logfile = self.pbar = None
        # fixed latents and labels for the sample grids: rows = classes (evenly spread over all classes)
        self.grid_classes = spread_classes(cfg.model.num_classes, GRID_ROWS)
        self.grid_labels = torch.tensor(self.grid_classes).repeat_interleave(GRID_COLS)
        self.grid_z = sample_latents(len(self.grid_labels), cfg.model.z_dim, seed=cfg.train.seed)

    def start_bar(self, step: int) -> None:
        """The progress bar over the steps (every process; disabled but for the main one)."""
        from tqdm.auto import tqdm

        # no bar where stderr is not a terminal (output redirected to a file: its frames would interleave with the
        # log lines); the step lines go to the console there instead (log_step)
        self.pbar = tqdm(total=self.cfg.train.max_steps, initial=step, unit="step", dynamic_ncols=True,
                         disable=progress_disable(self.main and self.progress))

    def open(self, step: int, purge: bool = False) -> None:
        """The config, log and event files (main process). ``purge``: a resumed or restarted run hides the
        TensorBoard events a killed attempt wrote after ``step`` (``SummaryWriter(purge_step=step)``; without it
        TensorBoard draws both attempts' curves over each other)."""
        if not self.main:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.outdir.mkdir(parents=True, exist_ok=True)
        write_run_config(self.outdir, self.cfg)
        # undecodable bytes of class-folder names are written escaped, never a crash
        self.logfile = open(self.outdir / LOG_FILE, "a", encoding="utf-8", errors="backslashreplace")
        if writes_tensorboard(self.cfg.train.log_with):
            before = set(self.outdir.glob(EVENTS_GLOB))
            self.writer = SummaryWriter(str(self.outdir), purge_step=step + 1 if purge else None)
            if purge:
                self._carry_events(sorted(before), step)
        if self.accelerator is not None and external_trackers(self.cfg.train.log_with):
            self.trackers = RunTrackers(self.accelerator, self.cfg, self.outdir, self.say)
            self.trackers.start(resumed=purge)

    def _carry_events(self, old: list[Path], step: int) -> None:
        """One events file per run, not one per killed attempt: the events earlier attempts wrote up to
        ``step`` move into this attempt's file, then their files are removed. A kill while copying leaves
        copies the next start recognises (byte-equal events) and skips."""
        from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
        from tensorboard.compat.proto.event_pb2 import Event

        seen, writer = set(), self.writer.file_writer
        for path in old:
            for raw in RawEventFileLoader(str(path)).Load():  # as written (the other loader converts them)
                event = Event.FromString(raw)
                if event.HasField("file_version") or event.HasField("session_log") or event.step > step:
                    continue
                if raw not in seen:
                    seen.add(raw)
                    writer.add_event(event)
        self.writer.flush()
        for path in old:
            path.unlink(missing_ok=True)

    def captions(self) -> list[str]:
        """The names of the sample grid's rows (class indices where the data has no name); none for an
        unconditional model."""
        if self.cfg.model.num_classes == 0:
            return None
        return [printable(self.class_names[c]) if c < len(self.class_names) else str(c) for c in self.grid_classes]

    def close(self) -> None:
        if self.pbar is not None:
            self.pbar.close()
        if self.writer is not None:
            self.writer.close()
        if self.trackers is not None:
            self.trackers.finish()
        if self.logfile is not None:
            self.logfile.close()
        self.writer = self.logfile = self.pbar = self.trackers = None

    def say(self, msg: str, console: bool = True) -> None:
        if not self.main:
            return
        msg = printable(msg)
        if console:
            from tqdm.auto import tqdm

            tqdm.write(msg, file=sys.stderr)
        if self.logfile is not None:
            self.logfile.write(msg + "\n")
            self.logfile.flush()

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k, float(v), step)
        if self.trackers is not None:
            self.trackers.log(values, step)

    def text(self, tag: str, text: str, step: int) -> None:
        if self.writer is not None:
            self.writer.add_text(tag, printable(text), step)

    def log_step(self, step: int, stats: dict[str, float], extra: dict[str, float]) -> None:
        """One log line and the TensorBoard scalars of the averaged statistics since the last log."""
        if not self.main:
            return
        losses = {k: v for k, v in stats.items() if k.endswith("_loss") or "_loss_" in k}
        scalars = {f"loss/{k}": v for k, v in losses.items()}
        scalars.update({"logits/real": stats["d_logits_real"], "logits/fake": stats["d_logits_fake"], **extra})
        self.scalars(scalars, step)
        parts = " ".join(f"{k.removeprefix('d_loss_')} {v:.4f}" for k, v in losses.items() if k.startswith("d_loss_"))
        g_parts = " ".join(f"{k.removeprefix('g_loss_')} {v:.4f}" for k, v in losses.items() if k.startswith("g_loss_"))
        g_parts = f" ({g_parts})" if g_parts else ""  # e.g. BigGAN's orthogonal regularisation: (ortho 0.0012)
        line = (f"step {step:>7d} | d_loss {stats['d_loss']:.4f} ({parts}) | g_loss {stats['g_loss']:.4f}{g_parts} | "
                f"D(x) {stats['d_logits_real']:+.3f} D(G(z)) {stats['d_logits_fake']:+.3f} | "
                f"|grad| G {extra['grad_norm/G']:.3g} D {extra['grad_norm/D']:.3g} | "
                f"{extra['perf/images_per_s']:.1f} img/s")
        augment = " ".join(f"{k.removeprefix('augment/')} {v:.4f}" for k, v in extra.items() if k.startswith("augment/"))
        if augment:
            line += f" | augment {self.cfg.train.augment}: {augment}"
        self.say(line, console=self.progress and self.pbar is not None and self.pbar.disable)  # bar wanted, no TTY
        if self.pbar is not None:
            self.pbar.set_postfix(d=f"{stats['d_loss']:.3f}", g=f"{stats['g_loss']:.3f}",
                                  ips=f"{extra['perf/images_per_s']:.0f}", refresh=False)

    def write_samples(self, G: torch.nn.Module, step: int, device: torch.device) -> Path | None:
        """Grid of ``G`` (eval mode) on fixed latents, one class per row with its name: PNG + TensorBoard."""
        if not self.main:
            return None
        images = torch.cat([b for b, _ in generate(G, self.grid_z, self.grid_labels, batch_size=64, device=device)])
        # small tiles (a 32px run) enlarged as sample.py's grids are, to be legible in TensorBoard and samples/
        grid = image_grid(images, GRID_COLS, self.captions(), zoom=upscale_factor(self.cfg.model.resolution))
        path = save_png(grid, self.outdir / SAMPLES_DIR / f"step_{step:07d}.png")
        if self.writer is not None:
            import numpy as np

            self.writer.add_image("samples", np.asarray(grid), step, dataformats="HWC")
        if self.trackers is not None:
            import numpy as np

            self.trackers.log_image("samples", np.asarray(grid), step)
        return path


class RecentSteps:
    """The statistics of the steps since the last log line, summed on the device (no host sync per step),
    the images they consumed, and the first step whose statistics were not finite (-1: none yet)."""

    def __init__(self, device: torch.device):
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self._reset()

    def _reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count, self.images, self.since = 0, 0, time.perf_counter()

    def add(self, step: int, stats: dict[str, torch.Tensor], images: int,
            grad_norms: dict[str, torch.Tensor] | None = None) -> None:
        """One step's statistics; ``grad_norms`` (``{"G": ..., "D": ...}``) are averaged as ``grad_norm/G`` ...
        over the same steps as the losses beside them in the log line (the last step's alone read 0 for D
        whenever that one step's hinge loss was 0), and left out of the finiteness check (a skipped fp16 step
        has infinite gradients)."""
        finite = torch.stack(list(stats.values())).isfinite().all()
        stats = {**stats, **{f"grad_norm/{k}": v for k, v in (grad_norms or {}).items()}}
        for k, v in stats.items():
            self.sums[k] = self.sums.get(k, 0) + v
        self.count += 1
        self.images += images
        self.first_bad = torch.where(finite | (self.first_bad >= 0), self.first_bad, step)

    def take(self, accelerator) -> tuple[dict[str, float], float]:
        """Mean statistics over the steps (and processes) since the last call, and images per second."""
        means = torch.stack([v / self.count for v in self.sums.values()])
        if accelerator.num_processes > 1:
            means = accelerator.reduce(means, "mean")
        values = dict(zip(self.sums, means.tolist()))
        ips = self.images / max(time.perf_counter() - self.since, 1e-9)
        self._reset()
        return values, ips
