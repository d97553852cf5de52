"""``metrics.jsonl``: one JSON object per evaluation, appended (training writes ``OUTDIR/metrics.jsonl``,
``evaluate.py metrics`` writes one beside its report, or ``evaluations.jsonl`` when that folder is a
training run's: the two histories never mix).

A line is written with one ``write`` and flushed, so a crash can leave at most the last line torn; the
next append starts on a fresh line and :func:`read_records` skips torn lines. Call from the main process
only (appends from several processes would interleave).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..io import NotWritableError, disk_full_error, is_disk_full, write_text_atomic

EVAL_HISTORY_FILE = "evaluations.jsonl"  # evaluate.py's records in a training run's folder (apart from training's)


def _plain(value):
    """JSON-safe: NaN/inf (a diverged run's FID) become null instead of invalid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def append_record(path: str | os.PathLike, record: dict) -> Path:
    """Append ``record`` as one JSON line to ``path`` (created with its folder if needed)."""
    path = Path(path)
    line = json.dumps(_plain(record), sort_keys=False) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as f:
            if f.tell():  # a torn last line (no newline) must not swallow this record
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        if is_disk_full(e):
            raise disk_full_error(path, len(line)) from None
        raise NotWritableError(f"cannot append to {path} ({e.strerror or e}); pick another location or fix its "
                               "permissions") from None
    return path


def write_records(path: str | os.PathLike, records: list[dict]) -> Path:
    """Replace ``path`` with ``records``, atomically (a resume cutting off an abandoned branch)."""
    return write_text_atomic(path, "".join(json.dumps(_plain(r)) + "\n" for r in records))


def read_records(path: str | os.PathLike) -> list[dict]:
    """All records of ``path`` in order ([] when it does not exist), skipping torn or foreign lines."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    with open(path, "rb") as f:
        for raw in f:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records
