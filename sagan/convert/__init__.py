"""Start from released weights: convert other codebases' checkpoints into sagan checkpoints.

``python -m sagan.convert studiogan --ckpt-dir DIR --out FILE.pt`` (also ``sagan-convert``) turns
PyTorch-StudioGAN's SAGAN files into one checkpoint that ``sample.py``, ``evaluate.py`` and
``train.py --resume`` accept (:mod:`sagan.convert.studiogan` has the mapping).
"""

from .cli import main

__all__ = ["main"]
