"""The SAGAN paper's experiments in one command (``sagan-experiments``, ``python -m sagan.commands.experiments``).

- ``stabilisation`` (section 5.1, Figure 3): ``sn_d_only``, ``sn_gd``, ``sn_gd_ttur``;
- ``attention`` (section 5.2, Table 1): ``no_attention``, ``feat8`` ... ``feat64`` and the residual-block
  controls ``residual_feat8`` ... ``residual_feat64``.

Variant presets live in ``sagan/configs/experiments/`` (:mod:`.definitions`), training and evaluation
in :mod:`.runner`, the summary and curves in :mod:`.report`, the command line in :mod:`sagan.commands.experiments`.
"""
