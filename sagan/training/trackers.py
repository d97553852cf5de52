"""Experiment trackers beside TensorBoard: Weights & Biases and MLflow through accelerate's tracker API
(``Accelerator(log_with=...)``, ``init_trackers``, each tracker's ``log``).

``train.log_with`` lists where a run's scalars go: ``tensorboard`` (the default; the run folder's events
file, written by :class:`~sagan.training.monitor.Monitor` itself), ``wandb``, ``mlflow``, or ``none``. The
trackers get the same scalars as TensorBoard, the sample grids as images, the run's config (flattened to
``section.key``) as hyper-parameters and the run folder's name as their run name.

Their own settings are honoured: ``WANDB_MODE`` (``offline`` sends nothing), ``WANDB_DIR`` (else W&B's
files go into the run folder), ``WANDB_PROJECT`` (else ``sagan``; also MLflow's experiment unless
``MLFLOW_EXPERIMENT_NAME``), ``MLFLOW_TRACKING_URI`` (else a SQLite store ``mlflow.db`` and artifacts
``mlartifacts/`` in the run folder: MLflow 3 refuses its plain file store unless
``MLFLOW_ALLOW_FILE_STORE=true``).

The tracker runs are recorded in ``trackers.json`` in the run folder, so that a resumed run continues them
(W&B: the same run id with ``resume="allow"``; MLflow: the same run id when its store still has it) or says
that it starts a new one. A tracker that fails while training (its process died, its disk is full) is
reported once and dropped; training and the other trackers go on, and the run folder's own logs
(``log.txt``, ``metrics.jsonl``, TensorBoard events) do not depend on it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..config_checks import TRACKER_NAMES  # noqa: F401  (public here too: the names train.log_with takes)
from ..errors import UserError, one_line
from ..io import write_text_atomic

EXTERNAL = ("wandb", "mlflow")  # the ones accelerate drives; TensorBoard stays the monitor's own writer
STATE_FILE = "trackers.json"
MLFLOW_DB, MLFLOW_ARTIFACTS = "mlflow.db", "mlartifacts"
DEFAULT_PROJECT = "sagan"


def external_trackers(log_with) -> list[str]:
    """The names of ``train.log_with`` that accelerate drives, each checked importable: a missing package
    is one line naming the extra that installs it."""
    names = [n for n in EXTERNAL if n in log_with]
    for name in names:
        try:
            __import__(name)
        except ImportError:
            raise UserError(f"train.log_with has {name}, but the {name} package is not installed; install it with "
                            f"pip install -e \".[{name}]\" (or drop {name} from train.log_with)") from None
    return names


def writes_tensorboard(log_with) -> bool:
    return "tensorboard" in log_with


def hyperparameters(cfg) -> dict[str, Any]:
    """The run's config as flat ``section.key`` hyper-parameters (lists as text: trackers take scalars)."""
    flat: dict[str, Any] = {"name": cfg.name}
    for section, values in cfg.to_dict().items():
        if isinstance(values, dict):
            for k, v in values.items():
                flat[f"{section}.{k}"] = str(v) if isinstance(v, list) else v
    return flat


def read_state(outdir: Path) -> dict:
    """``trackers.json`` of a run folder (empty when absent or unreadable: a new tracker run then starts)."""
    try:
        state = json.loads((outdir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


class RunTrackers:
    """The W&B / MLflow runs of one training run (main process only), started with accelerate's
    ``init_trackers`` on the accelerator built with ``log_with``; each failure is isolated."""

    def __init__(self, accelerator, cfg, outdir: Path, say):
        self.acc, self.cfg, self.outdir, self.say = accelerator, cfg, Path(outdir), say
        self.names = external_trackers(cfg.train.log_with)
        self.active: dict[str, Any] = {}

    def start(self, resumed: bool) -> None:
        """Start (or continue) the tracker runs, record them in ``trackers.json``, log the config."""
        if not self.names:
            return
        previous = read_state(self.outdir) if resumed else {}
        kwargs, notes = {}, []
        if "wandb" in self.names:
            kwargs["wandb"], note = self._wandb_kwargs(previous.get("wandb") or {}, resumed)
            notes.append(note)
        if "mlflow" in self.names:
            kwargs["mlflow"], note = self._mlflow_kwargs(previous.get("mlflow") or {}, resumed)
            notes.append(note)
        project = os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT
        try:
            self.acc.init_trackers(project, init_kwargs=kwargs)
            for tracker in self.acc.trackers:
                notes.append(self._store_config(tracker, hyperparameters(self.cfg)))
        except Exception as e:  # a login, a server or a store that is not there: the user's setup
            self.acc.trackers, started = [], self.acc.trackers
            for tracker in started:
                _finish_quietly(tracker)
            raise UserError(f"cannot start the tracker(s) {', '.join(self.names)} of train.log_with ({one_line(e, 200)}); "
                            "check their settings (WANDB_MODE, MLFLOW_TRACKING_URI) or drop them from "
                            "train.log_with") from None
        self.active = {t.name: t for t in self.acc.trackers if t.name in self.names}
        for note in notes:
            if note:
                self.say(note)
        self._record()

    def _wandb_kwargs(self, before: dict, resumed: bool) -> tuple[dict, str | None]:
        # always passed: W&B reads WANDB_DIR once per process, so a later run of the same process (the
        # experiments' variants, tests) would otherwise write into the first one's folder
        kwargs: dict[str, Any] = {"name": self.outdir.name, "dir": os.environ.get("WANDB_DIR") or str(self.outdir)}
        if before.get("id"):
            kwargs.update(id=before["id"], resume="allow")
            return kwargs, f"wandb: continuing W&B run {before['id']} (its id is kept in {STATE_FILE})"
        return kwargs, "wandb: no W&B run recorded in this run folder; starting a new one" if resumed else None

    def _mlflow_kwargs(self, before: dict, resumed: bool) -> tuple[dict, str | None]:
        import mlflow

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        kwargs: dict[str, Any] = {"run_name": self.outdir.name}
        if not uri:
            uri = f"sqlite:///{(self.outdir / MLFLOW_DB).resolve()}"
            kwargs["logging_dir"] = (self.outdir / MLFLOW_ARTIFACTS).resolve().as_uri()
        mlflow.set_tracking_uri(uri)  # every time: an earlier run in this process may have set another
        run_id = before.get("run_id")
        if run_id and _mlflow_has_run(run_id):
            kwargs["run_id"] = run_id
            return kwargs, f"mlflow: continuing MLflow run {run_id} in {_shown_uri(uri)}"
        if run_id:
            return kwargs, f"mlflow: run {run_id} is not in {_shown_uri(uri)}; starting a new MLflow run"
        return kwargs, "mlflow: no MLflow run recorded in this run folder; starting a new one" if resumed else None

    @staticmethod
    def _store_config(tracker, config: dict) -> str | None:
        """The config as the tracker's hyper-parameters. A continued MLflow run keeps the values it was
        started with (MLflow refuses to change a param): only new keys are added, and the changed ones are
        named in a note and kept as ``resumed.<key>`` tags."""
        if tracker.name != "mlflow":
            tracker.store_init_configuration(config)
            return None
        import mlflow

        before = mlflow.get_run(tracker.active_run.info.run_id).data.params
        changed = {k: v for k, v in config.items() if k in before and before[k] != str(v)}
        tracker.store_init_configuration({k: v for k, v in config.items() if k not in before})
        if not changed:
            return None
        mlflow.set_tags({f"resumed.{k}": str(v) for k, v in changed.items()})
        return ("mlflow: this run keeps its first hyper-parameters; the changed ones are tags resumed.<key>: "
                + ", ".join(f"{k} {before[k]} -> {v}" for k, v in changed.items()))

    def _record(self) -> None:
        state = read_state(self.outdir)
        if "wandb" in self.active:
            run = self.active["wandb"].run
            state["wandb"] = {"id": run.id, "project": run.project, "name": run.name}
        if "mlflow" in self.active:
            import mlflow

            state["mlflow"] = {"run_id": self.active["mlflow"].active_run.info.run_id,
                               "tracking_uri": mlflow.get_tracking_uri()}
        write_text_atomic(self.outdir / STATE_FILE, json.dumps(state, indent=1) + "\n")

    def log(self, values: dict[str, float], step: int) -> None:
        for name, tracker in list(self.active.items()):
            self._guard(name, f"at step {step}", tracker.log, {k: float(v) for k, v in values.items()}, step=step)

    def log_image(self, tag: str, image, step: int) -> None:
        """An HWC uint8 image (a sample grid): W&B as an image, MLflow as an image artifact at that step."""
        if "wandb" in self.active:
            self._guard("wandb", f"at step {step}", self.active["wandb"].log_images, {tag: [image]}, step=step)
        if "mlflow" in self.active:
            import mlflow

            self._guard("mlflow", f"at step {step}", mlflow.log_image, image, key=tag, step=step)

    def _guard(self, name: str, when: str, fn, *args, **kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as e:  # any failure of a tracker's library; ours must not stop the run
            tracker = self.active.pop(name, None)
            if tracker is not None and when != "while finishing":
                _finish_quietly(tracker)  # MLflow's active run would block the next run in this process
            self.say(f"warning: the {name} tracker failed {when} ({one_line(e, 160)}); training goes on "
                     "without it (log.txt, metrics.jsonl and the TensorBoard events in the run folder are unaffected)")

    def finish(self) -> None:
        for name, tracker in list(self.active.items()):
            self._guard(name, "while finishing", tracker.finish)
        self.active = {}
        self.acc.trackers = []  # a later init_trackers on this accelerator starts afresh


def _finish_quietly(tracker) -> None:
    try:
        tracker.finish()
    except Exception:  # already failing; the first error is the one reported
        pass


def _mlflow_has_run(run_id: str) -> bool:
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient().get_run(run_id)
        return True
    except Exception:  # MlflowException (not found) or a store that cannot be read
        return False


def _shown_uri(uri: str) -> str:
    return uri if len(uri) < 100 else "..." + uri[-96:]
