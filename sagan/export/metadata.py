"""What an ONNX or TorchScript export says about itself, so that an app needs nothing else to use it:
one JSON object, the same in both formats,

- ONNX: ``metadata_props`` under the key ``sagan`` (onnxruntime:
  ``json.loads(sess.get_modelmeta().custom_metadata_map["sagan"])``);
- TorchScript: the extra file ``sagan.json`` (``files = {"sagan.json": ""}; torch.jit.load(PATH,
  _extra_files=files); json.loads(files["sagan.json"])``).

Keys: ``z_dim``, ``num_classes`` (0: unconditional, no ``y`` input), ``class_names`` (one per class),
``resolution``, ``output_range`` ([-1, 1]), ``output_layout`` (NCHW, RGB), ``inputs``, ``step``,
``generator`` (ema or G), ``bn_stats``. The tag also tells ``sagan-export`` that a file at ``--out`` is an
earlier export it may replace (:func:`is_sagan_export`).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from .hf import FORMAT

METADATA_KEY = "sagan"  # ONNX metadata_props key
TORCHSCRIPT_EXTRA = "sagan.json"  # TorchScript extra file
OUTPUT_RANGE = [-1.0, 1.0]
MAX_PARSED_BYTES = 2 << 30  # protobuf's own limit for one ONNX message: a larger file is not an export


def export_metadata(hub_config: dict[str, Any]) -> dict[str, Any]:
    """The metadata of an export, from the ``config.json`` the hf format writes (sagan.export.hf.hub_config)."""
    model = hub_config["sagan_config"]["model"]
    n = int(model["num_classes"])
    names = hub_config.get("class_names")
    if n and (not isinstance(names, list) or len(names) != n):
        names = [str(i) for i in range(n)]  # a checkpoint without names: the indices
    return {
        "format": FORMAT, "z_dim": int(model["z_dim"]), "num_classes": n, "class_names": list(names or [])[:n],
        "resolution": int(model["resolution"]), "output_range": OUTPUT_RANGE, "output_layout": "NCHW RGB",
        "inputs": ["z", "y"] if n else ["z"], "step": hub_config.get("step"),
        "generator": hub_config.get("generator"), "bn_stats": hub_config.get("bn_stats"),
    }


def metadata_json(meta: dict[str, Any]) -> str:
    return json.dumps(meta, ensure_ascii=False, sort_keys=True)


def _tagged(text: str | bytes | None) -> bool:
    try:
        meta = json.loads(text)
    except (TypeError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def read_onnx_metadata(path: Path) -> str | None:
    """The ``sagan`` entry of an ONNX file's ``metadata_props`` (None: not an ONNX file, or none)."""
    try:
        import onnx

        if path.stat().st_size > MAX_PARSED_BYTES:
            return None
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001  (protobuf's decode errors, onnx absent, unreadable: not ours)
        return None
    return next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None)


def read_torchscript_metadata(path: Path) -> str | None:
    """The ``sagan.json`` extra file of a TorchScript archive, read as a zip (nothing is unpickled)."""
    try:
        with zipfile.ZipFile(path) as zf:
            name = next((n for n in zf.namelist() if n.endswith(f"/extra/{TORCHSCRIPT_EXTRA}")), None)
            return zf.read(name).decode("utf-8") if name is not None else None
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, ValueError):
        return None


def is_sagan_export(path: Path) -> bool:
    """Whether ``path`` is an ONNX or TorchScript file sagan-export wrote (it carries the sagan tag)."""
    return _tagged(read_torchscript_metadata(path)) or _tagged(read_onnx_metadata(path))
