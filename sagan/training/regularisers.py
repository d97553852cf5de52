"""The regularisers of D's loss, defined in :mod:`sagan.objectives.regularisers` (a leaf that config
validation can import without the trainer); their names stay importable from here."""

from ..objectives.regularisers import (REGULARISERS, LeCam, Regulariser, RegulariserEntry, build_regularisers,
                                       input_gradient_norms, math_attention, orthogonal_penalty,
                                       register_regulariser, squared_gradient_norms)

__all__ = ["LeCam", "REGULARISERS", "Regulariser", "RegulariserEntry", "build_regularisers", "input_gradient_norms",
           "math_attention", "orthogonal_penalty", "register_regulariser", "squared_gradient_norms"]
