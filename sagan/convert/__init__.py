"""Start from released weights: convert other codebases' checkpoints into sagan checkpoints.

``sagan-convert studiogan --ckpt-dir DIR --out FILE.pt`` (also ``python -m sagan.commands.convert``) turns
PyTorch-StudioGAN's SAGAN files into one checkpoint that ``sample.py``, ``evaluate.py`` and
``train.py --resume`` accept (:mod:`sagan.convert.studiogan` has the mapping; the command line is
:mod:`sagan.commands.convert`).
"""
