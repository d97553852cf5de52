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

OPSET = 17  # BatchNormalization, Resize and Softmax in their current forms; onnxruntime >= 1.11 runs it
OUTPUT = "images"


def input_names(module: ExportedGenerator) -> list[str]:
    return ["z", "y"] if module.conditional else ["z"]


def to_onnx(module: ExportedGenerator, example: tuple[torch.Tensor, ...], opset: int = OPSET) -> bytes:
    """The ONNX model (serialized) of ``module`` traced at ``example``, with every batch axis dynamic."""
    names = input_names(module)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notes; the result is checked instead
        torch.onnx.export(module, example, buf, dynamo=False, input_names=names, output_names=[OUTPUT],
                          dynamic_axes={n: {0: "batch"} for n in [*names, OUTPUT]}, opset_version=opset)
    return buf.getvalue()


def session(model: bytes):
    """An onnxruntime CPU session of a serialized model."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("--format onnx checks the export in onnxruntime, which is not installed; "
                        "pip install 'sagan[export]' (or onnxruntime)") from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def run_onnx(model: bytes, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    sess = session(model)
    feed = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs)}
    return torch.from_numpy(sess.run([OUTPUT], feed)[0])
