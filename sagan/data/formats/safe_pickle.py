"""Loading the pickles of CIFAR's python batches without trusting them.

``pickle.load`` runs whatever a file asks for (any importable callable, e.g. ``os.system``). CIFAR's
batches are Python 2 pickles (protocol 2) of dicts, lists, strings, ints and numpy uint8 arrays; the
only globals they name are numpy's array reconstructor, ``numpy.ndarray`` and ``numpy.dtype``. This
unpickler resolves those three and refuses every other global before anything is called, so a file that
needs more is an error naming it and nothing in it runs. Python 2 ``str`` objects are read as latin-1
text, as numpy's array state expects (the same as torchvision's reader).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ...errors import UserError, one_line
from ...io import printable

try:  # numpy >= 2 keeps it in numpy._core; pickles written by numpy 1 (all CIFAR files) name numpy.core
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1
    from numpy.core.multiarray import _reconstruct

ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RefusedGlobal(pickle.UnpicklingError):
    pass


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"{module}.{name}") from None

    def persistent_load(self, pid):
        raise RefusedGlobal(f"a persistent id ({type(pid).__name__})")


def load_arrays_pickle(path: Path, what: str, advice: str):
    """The object pickled in ``path`` if it holds only plain data and numpy arrays; else a one-line
    :class:`UserError` (``what`` names the file's role, ``advice`` says how to get a good copy)."""
    try:
        with open(path, "rb") as f:
            return _ArraysOnlyUnpickler(f, encoding="latin1").load()
    except RefusedGlobal as e:
        raise UserError(f"{printable(path)}: refused, it is not a {what}: its pickle calls {e}, which such a file "
                        f"never holds (only numpy arrays, dicts, lists, strings, numbers); nothing in it was run; "
                        f"{advice}") from None
    except OSError as e:
        raise UserError(f"{printable(path)}: cannot read ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001 - EOFError, UnpicklingError, ValueError ...: a damaged file
        raise UserError(f"{printable(path)}: not a readable {what} ({one_line(e, 120)}); a truncated download? "
                        f"{advice}") from None
