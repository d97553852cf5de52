"""``--format onnx``: an ONNX file with inputs ``z`` (float32, N x z_dim) and ``y`` (int64, N; absent for
an unconditional generator), output ``images`` (float32, N x 3 x R x R in [-1, 1]) and a dynamic batch
axis, checked in onnxruntime.

Exported with torch's TorchScript-based exporter (``dynamo=False``): it traces the folded generator and
needs no onnxscript; the graph holds only convolutions, matrix products, softmax, batch norm in
inference form, nearest resizing and elementwise ops (no random ops, no spectral-norm iteration).
"""

from __future__ import annotations

import io
import warnings

import torch

from ..errors import UserError
from .fold import ExportedGenerator
from .metadata import METADATA_KEY

OPSET = 17  # BatchNormalization, Resize and Softmax in their current forms; onnxruntime >= 1.11 runs it
OUTPUT = "images"


def input_names(module: ExportedGenerator) -> list[str]:
    return ["z", "y"] if module.conditional else ["z"]


EXTRA = "pip install 'sagan[export]' (onnx and onnxruntime)"


def require_onnx() -> None:
    """Both packages the format needs, before any work: torch's exporter writes through ``onnx`` and the
    check runs in ``onnxruntime`` (without them, one line naming the extra, not the exporter's traceback)."""
    missing = [name for name in ("onnx", "onnxruntime") if not _importable(name)]
    if missing:
        raise UserError(f"--format onnx needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                        f"not installed; {EXTRA}")


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def to_onnx(module: ExportedGenerator, example: tuple[torch.Tensor, ...], opset: int = OPSET,
            metadata: str | None = None) -> bytes:
    """The ONNX model (serialized) of ``module`` traced at ``example``, with every batch axis dynamic;
    ``metadata``: the JSON stored in ``metadata_props`` under ``sagan`` (sagan.export.metadata)."""
    require_onnx()
    names = input_names(module)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notes; the result is checked instead
        torch.onnx.export(module, example, buf, dynamo=False, input_names=names, output_names=[OUTPUT],
                          dynamic_axes={n: {0: "batch"} for n in [*names, OUTPUT]}, opset_version=opset)
    if metadata is None:
        return buf.getvalue()
    import onnx

    model = onnx.load_from_string(buf.getvalue())
    onnx.helper.set_model_props(model, {METADATA_KEY: metadata})
    return model.SerializeToString()


def session(model: bytes):
    """An onnxruntime CPU session of a serialized model."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError(f"--format onnx checks the export in onnxruntime, which is not installed; {EXTRA}") from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def run_onnx(model: bytes, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    sess = session(model)
    feed = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs)}
    return torch.from_numpy(sess.run([OUTPUT], feed)[0])
