"""The resize protocols, defined in :mod:`sagan.scores.resize` (a leaf that config validation and
``--help`` import without the evaluation stack); their names stay importable from here
(``from sagan.metrics.resize import RESIZE_MODES``)."""

from ..scores.resize import (DEFAULT_RESIZE, INPUT_SIZE, RESIZE_MODES, RESIZERS, Resizer, check_resize,
                             register_resizer, resize_description, tf1_bilinear, to_inception_input)

__all__ = ["DEFAULT_RESIZE", "INPUT_SIZE", "RESIZERS", "RESIZE_MODES", "Resizer", "check_resize", "register_resizer",
           "resize_description", "tf1_bilinear", "to_inception_input"]
