"""Loading the pickles of CIFAR's python batches without trusting them.

``pickle.load`` runs whatever a file asks for (any importable callable, e.g. ``os.system``). CIFAR's
batches are Python 2 pickles (protocol 2) of dicts, lists, strings, ints and numpy uint8 arrays; the
only globals they name are numpy's array reconstructor, ``numpy.ndarray`` and ``numpy.dtype``. The same
batch loaded and saved again by Python 3 names two more: at protocols 0-2 every ``bytes`` object (an
array's raw data) is a call ``_codecs.encode(text, "latin1")`` (an empty one ``bytes()``), and at protocol
5 an array is ``numpy's _frombuffer(buffer, dtype, shape, order)`` (NumPy's ``ndarray.__reduce_ex__``).
This unpickler resolves exactly those, the codec call only for latin-1 text and ``bytes`` only without
arguments (anything else is refused as if unknown), and refuses every other global before anything is
called, so a file that needs more is an error naming it and nothing in it runs. Python 2 ``str`` objects
are read as latin-1 text, as numpy's array state expects (the same as torchvision's reader).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ...errors import UserError, one_line
from ...io import printable

try:  # numpy >= 2 keeps them in numpy._core; pickles written by numpy 1 (all CIFAR files) name numpy.core
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # pragma: no cover - numpy 1
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer


class RefusedGlobal(pickle.UnpicklingError):
    pass


def _latin1_bytes(text, encoding=None, *rest):
    """``_codecs.encode`` as Python 3's pickler calls it for bytes (protocols 0-2), and nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or rest:
        raise RefusedGlobal(f"_codecs.encode with {type(text).__name__} and encoding {str(encoding)[:20]!r}")
    return text.encode("latin1")


def _empty_bytes(*args):
    """``bytes()``, as Python 3's pickler writes an empty bytes object (protocols 0-2); nothing else."""
    if args:
        raise RefusedGlobal("builtins.bytes with arguments")
    return b""


ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,
    ("builtins", "bytes"): _empty_bytes,
    ("__builtin__", "bytes"): _empty_bytes,
}


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
