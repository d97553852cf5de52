"""Reading back what the trackers' own libraries wrote: W&B's offline run folder (its ``run-<id>.wandb``
transaction log) and MLflow's store (through ``mlflow.tracking.MlflowClient``).

A ``.wandb`` file is W&B's record log: a 7-byte header (``:W&B``, magic 0xBEE1 little-endian, version 0),
then LevelDB-log framed records (github.com/google/leveldb doc/log_format.md: 32 KiB blocks, each
record a 7-byte header of CRC32C, little-endian length, and type FULL/FIRST/MIDDLE/LAST; a block's tail
shorter than a header is zero padding) whose payloads are ``wandb_internal_pb2.Record`` protobufs
(wandb's own message definitions, shipped with the package).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def wandb_records(path: Path):
    """The ``Record`` messages of a ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<H", data[4:6])[0] == 0xBEE1, "not a .wandb file"
    pos, parts = HEADER, []
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0 and length == 0:
            pos += left  # zero padding to the end of the block
            continue
        payload = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        parts.append(payload)
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            parts = []
            yield record


def wandb_run_files(root: Path) -> list[Path]:
    return sorted(Path(root).glob("wandb/offline-run-*/run-*.wandb"))


def wandb_history(path: Path) -> list[dict]:
    """The logged rows of a run: ``{"_step": int, key: value, ...}`` (values JSON-decoded)."""
    rows = []
    for r in wandb_records(path):
        if r.WhichOneof("record_type") == "history":
            row: dict = {}
            for item in r.history.item:
                keys = [item.key] if item.key else list(item.nested_key)  # a media value: one key per field
                node = row
                for k in keys[:-1]:
                    node = node.setdefault(k, {})
                node[keys[-1]] = json.loads(item.value_json)
            rows.append(row)
    return rows


def wandb_config(path: Path) -> dict:
    """The run's config as W&B recorded it (the last value of each key)."""
    config = {}
    for r in wandb_records(path):
        kind = r.WhichOneof("record_type")
        items = r.config.update if kind == "config" else r.run.config.update if kind == "run" else []
        for item in items:
            config[item.key or item.nested_key[0]] = json.loads(item.value_json)
    return {k: v.get("value", v) if isinstance(v, dict) and set(v) <= {"value", "desc"} else v
            for k, v in config.items() if not k.startswith("_")}


def wandb_run_id(path: Path) -> str:
    for r in wandb_records(path):
        if r.WhichOneof("record_type") == "run":
            return r.run.run_id
    raise AssertionError(f"{path} has no run record")


def mlflow_client(run_dir: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{(Path(run_dir) / 'mlflow.db').resolve()}")


def mlflow_history(client, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}
