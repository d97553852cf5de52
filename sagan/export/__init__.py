"""Use a trained generator anywhere: ONNX, TorchScript, a Hugging Face Hub folder.

``sagan-export --checkpoint RUN --format onnx|torchscript|hf --out PATH`` (also ``python -m sagan.commands.export``):

    fold.py         spectral norm folded into plain weights, BN statistics baked in, plain-op attention
    check.py        the fixed check batch every export must reproduce before it is written
    formats.py      the format registry (onnx.py, torchscript.py, hf.py; the hf folder format itself is
                    sagan.models.hf_folder with its card, sagan.models.card)
    exporter.py     one export: load, fold, build, check, write
    (``Generator.from_pretrained`` / ``push_to_hub`` via huggingface_hub: sagan.models.hub, ``[hub]`` extra)
"""

from .exporter import ExportResult, export_checkpoint
from .fold import folded_state, plain_generator

__all__ = ["ExportResult", "export_checkpoint", "folded_state", "plain_generator"]
