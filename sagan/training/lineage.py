"""A run's line of ancestry: which checkpoints and evaluation records belong to the path a resumed run
continues, and what a resume onto another point of the run (``RUN:best``, an older ``step_*.pt``, an
``abandoned_*.pt``) keeps of the path it leaves.

Every checkpoint carries ``meta["lineage"]``: ``[[from_step, branch_id], ...]``, the branches its path
went through (``[[0, "0"]]`` for a run never resumed onto an older point; checkpoints without the field
count as that). A branch is one linear path: step ``t`` of a path was made by the last branch with
``from_step < t``. Evaluation records carry the ``branch`` that made them. Two things agree at step ``t``
when the same branch made them there; a branch id is new for every branching resume, so agreeing at a
step means being the same state.

A resume from the run's newest point (``--resume RUN``, also after a ``kill -9``) continues its branch:
files and records a killed attempt wrote after that point are made again bit for bit, so they are
dropped. A resume from an older or another point starts a new branch; everything off the new path is
abandoned, never silently deleted: the left path's newest checkpoint becomes
``abandoned_last_step_N.pt``, a ``best.pt`` off the path ``abandoned_best_step_N.pt``, and its evaluation
records move to ``metrics_abandoned.jsonl`` (a later resume onto an abandoned checkpoint brings its
records back). Then ``best.pt`` is linked to the checkpoint of the resumed path's recorded best.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..checkpoint import BEST, LAST, check_checkpoint_file, step_file_name, step_files
from ..io import link_atomic
from ..metrics.history import read_records, write_records

ROOT = [[0, "0"]]
ABANDONED_METRICS = "metrics_abandoned.jsonl"


def lineage_of(meta: dict | None) -> list[list]:
    lin = (meta or {}).get("lineage")
    ok = isinstance(lin, list) and lin and all(isinstance(e, list) and len(e) == 2 and isinstance(e[0], int)
                                                 and isinstance(e[1], str) for e in lin)
    return [list(e) for e in lin] if ok else [list(e) for e in ROOT]


def branch_at(lineage: list[list], step: int) -> str:
    """The branch that made step ``step`` of a path."""
    made = lineage[0][1]
    for start, branch in lineage:
        if start < step:
            made = branch
    return made


def on_path(lineage: list[list], step: int, other_lineage: list[list], other_step: int) -> bool:
    """Whether the state at ``other_step`` (of a path ``other_lineage``) lies on the path ``lineage`` up to
    ``step``."""
    return other_step <= step and branch_at(lineage, other_step) == branch_at(other_lineage, other_step)


def _stored(path: Path) -> tuple[int, list[list], dict] | None:
    """``(step, lineage, meta)`` of a checkpoint file through a memory map; None if unreadable."""
    try:
        check_checkpoint_file(path)  # a planted FIFO or device named step_*.pt is skipped, never opened
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        step, meta = ckpt["step"], ckpt.get("meta") or {}
    except Exception:  # noqa: BLE001  (an unreadable file is not ours to judge here)
        return None
    return (step, lineage_of(meta), meta) if isinstance(step, int) and isinstance(meta, dict) else None


def _free_name(folder: Path, stem: str) -> Path:
    """``folder/stem.pt``, or ``stem-2.pt``, ``stem-3.pt``, ... when that is taken (never overwrite)."""
    p, n = folder / f"{stem}.pt", 1
    while p.exists():
        n += 1
        p = folder / f"{stem}-{n}.pt"
    return p


class Reconciliation:
    """The reconciliation of a run folder with the point a run resumes from (main process, under the run's
    lock): which of its checkpoint files and evaluation records lie on the path the run continues.

    ``step``/``lineage``/``best``: the resumed checkpoint's (``lineage`` None: a restart from step 0);
    ``path``: its file when it lies in ``ckpt_dir``. After :meth:`checkpoints`, ``self.lineage`` is the
    path the run continues (a new branch when it branches) and ``self.notes`` says what was done."""

    def __init__(self, ckpt_dir: Path, step: int, lineage: list[list] | None, best: dict | None,
                 path: Path | None = None):
        self.dir, self.step, self.path = ckpt_dir, step, path
        self.base = lineage if lineage is not None else [list(e) for e in ROOT]
        self.best_step = best.get("step") if isinstance(best, dict) else None
        self.notes: list[str] = []
        self.files = {p: s for p in self._candidates() if (s := _stored(p)) is not None}
        self.branching = self._branches()
        self.lineage = self.base + [[step, os.urandom(6).hex()]] if self.branching else self.base

    def _candidates(self) -> list[Path]:
        names = [*step_files(self.dir).values(), *self.dir.glob("abandoned_*.pt"), self.dir / LAST, self.dir / BEST]
        return [p for p in names if p.is_file()]

    def _on_path(self, p: Path) -> bool:
        step, lin, _ = self.files[p]
        return on_path(self.base, self.step, lin, step)

    def _branches(self) -> bool:
        """A new branch unless this resumes the newest point of its path: ``last.pt`` is on the path (not
        past it), and no abandoned file continued the resumed branch past this step before."""
        last = self.dir / LAST
        if last in self.files and not self._on_path(last):
            return True
        mine = self.base[-1][1]
        return any(s > self.step and branch_at(lin, s) == mine
                   for p, (s, lin, _) in self.files.items() if p.name.startswith("abandoned_"))

    def keep(self, record: dict) -> str:
        """Where an evaluation record goes: "path" (metrics.jsonl), "abandoned" or "drop" (made again)."""
        step, branch = record.get("step", 0), record.get("branch", ROOT[0][1])
        if isinstance(step, int) and step <= self.step and branch_at(self.base, step) == branch:
            return "path"
        return "abandoned" if self.branching or branch != self.base[-1][1] else "drop"

    def checkpoints(self) -> list[str]:
        """Abandon or drop what is off the path, then point ``last.pt`` and ``best.pt`` at the path's."""
        last, best = self.dir / LAST, self.dir / BEST
        kept = set()
        if best in self.files and not self._on_path(best):
            kept.add(self._abandon(best, "best"))
        if last in self.files and not self._on_path(last) and not any(self._same(p, last) for p in kept):
            kept.add(self._abandon(last, "last", keep_name=True))
        for p in sorted(p for p in self.files if p.name.startswith("step_") and p.exists()):
            if not self._on_path(p):
                p.unlink(missing_ok=True)
                self.notes.append(f"removed {p.name}")
        if self.path is not None and (not last.is_file() or not last.samefile(self.path)) and \
                (last not in self.files or not self._on_path(last) or self.files[last][0] > self.step):
            link_atomic(self.path, last)
            self.notes.append(f"last.pt now points at step {self.step}")
        self._link_best()
        return self.notes

    def _same(self, a: Path, b: Path) -> bool:
        """The same state: the same step made by the same branch (a second copy is not kept)."""
        (sa, la, _), (sb, lb, _) = self.files[a], self.files[b]
        return sa == sb and branch_at(la, sa) == branch_at(lb, sb)

    def _abandon(self, p: Path, what: str, keep_name: bool = False) -> Path:
        step = self.files[p][0]
        target = _free_name(self.dir, f"abandoned_{what}_{step_file_name(step)[:-3]}")
        if keep_name:  # last.pt stays until relinked: the abandoned name is a second link to the file
            link_atomic(p, target)
        else:
            p.replace(target)
        self.notes.append(f"renamed {p.name} (step {step}) to {target.name}" if not keep_name else
                          f"kept {p.name} (step {step}) of the branch left as {target.name}")
        self.files[target] = self.files[p]
        return target

    def _link_best(self) -> None:
        """``best.pt`` = the checkpoint of the recorded best of the path (a kill between a checkpoint and
        its ``best.pt`` link, or a path resumed onto an abandoned point)."""
        best = self.dir / BEST
        if self.best_step is None:
            return
        if best.is_file() and best in self.files and self._on_path(best) and self.files[best][0] == self.best_step:
            return
        if self.path is not None and self.best_step == self.step:
            found = self.path
        else:
            found = next((p for p, (s, lin, _) in sorted(self.files.items()) if p.exists() and p.name != BEST
                          and s == self.best_step and on_path(self.base, self.step, lin, s)), None)
        if found is None:
            self.notes.append(f"warning: the recorded best (step {self.best_step}) has no checkpoint file left; "
                              "best.pt follows at the next new best")
            if best.is_file() and best in self.files and self._on_path(best):
                best.unlink()
            return
        link_atomic(found, best)
        self.notes.append(f"best.pt now points at step {self.best_step} (the recorded best of this path)")


def reconcile_history(history: Path, reconciliation: Reconciliation) -> list[str]:
    """Split ``metrics.jsonl`` and ``metrics_abandoned.jsonl`` into the resumed path's records and the
    abandoned ones (records of a killed attempt after the resumed step are dropped: they are made again).
    The abandoned file is written first, so a kill in between loses nothing (duplicates are merged)."""
    store = history.with_name(ABANDONED_METRICS)
    current, old = read_records(history), read_records(store)
    path, abandoned, seen = [], [], set()
    moved = {"out": 0, "in": 0, "drop": 0}
    for i, r in enumerate(current + old):
        key = repr(sorted(r.items()))
        if key in seen:
            continue
        seen.add(key)
        mine, where = i < len(current), reconciliation.keep(r)
        if where == "path":
            path.append(r)
            moved["in"] += not mine
        elif where == "abandoned" or not mine:  # never delete what an earlier resume kept
            abandoned.append(r)
            moved["out"] += mine
        else:
            moved["drop"] += 1
    path.sort(key=lambda r: r.get("step", 0))
    if abandoned != old:
        write_records(store, abandoned)
    if path != current:
        write_records(history, path)
    notes = [f"metrics.jsonl: dropped {moved['drop']} evaluation(s) after step {reconciliation.step} (made again by "
             "this run)"] if moved["drop"] else []
    if moved["out"]:
        notes.append(f"metrics.jsonl: moved {moved['out']} evaluation(s) off this path to {ABANDONED_METRICS}")
    if moved["in"]:
        notes.append(f"metrics.jsonl: restored {moved['in']} evaluation(s) of this path from {ABANDONED_METRICS}")
    return notes
