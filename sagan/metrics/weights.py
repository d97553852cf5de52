"""Finding, checking and loading the Inception weights file (pytorch-fid's port of the 2015 TF graph).

Resolution order (first hit wins):

1. an explicit path (``--inception-weights PATH``),
2. the environment variable ``SAGAN_INCEPTION_WEIGHTS``,
3. the torch hub cache, ``torch.hub.get_dir()/checkpoints/pt_inception-2015-12-05-6726825d.pth``
   (where pytorch-fid itself caches the file),
4. a download from pytorch-fid's release into that cache, checked like torch hub's ``check_hash``:
   the hex suffix of the file name (``6726825d``) must prefix the file's sha256.

Offline with no file: one :class:`UserError` line saying how to provide it.
"""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from pathlib import Path

import torch

from ..errors import UserError, one_line
from ..scores.inception import InceptionV3
from ..scores.resize import DEFAULT_RESIZE, check_resize

WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_SHA256_PREFIX = "6726825d"  # torch hub convention: the file name's hex suffix
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_FILENAME}"
ENV_VAR = "SAGAN_INCEPTION_WEIGHTS"
WEIGHTS_HELP = (f"pytorch-fid's {WEIGHTS_FILENAME}; default: ${ENV_VAR}, then the torch hub cache, then a "
                "download")  # the --inception-weights help of every command


def hub_cache_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILENAME


def _how_to_provide() -> str:
    return (f"download {WEIGHTS_URL} on a machine with internet and pass --inception-weights PATH, "
            f"set {ENV_VAR}=PATH, or copy it to {hub_cache_path()}")


def download_weights(dest: Path) -> Path:
    """Download the official file to ``dest``, verifying the sha256 prefix; any failure is a UserError."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(WEIGHTS_URL, str(dest), hash_prefix=WEIGHTS_SHA256_PREFIX, progress=True)
    except RuntimeError as e:  # torch hub raises RuntimeError on a hash mismatch
        if "hash" in str(e).lower():
            raise UserError(f"downloaded Inception weights from {WEIGHTS_URL} fail the sha256 check "
                            f"(expected prefix {WEIGHTS_SHA256_PREFIX}); retry, or {_how_to_provide()}") from None
        raise UserError(f"Inception weights not found and the download failed ({_one_line(e)}); {_how_to_provide()}") from None
    except Exception as e:  # URLError, socket errors, HTTP errors: offline or blocked
        raise UserError(f"Inception weights not found and the download failed ({_one_line(e)}); {_how_to_provide()}") from None
    print(f"downloaded Inception weights to {dest}", file=sys.stderr)
    return dest


def _one_line(e: BaseException) -> str:
    """The exception with its type (a download's URLError / socket errors say little without it)."""
    return f"{type(e).__name__}: {one_line(e, 160)}" if str(e).strip() else type(e).__name__


def resolve_weights(path: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The weights file to use, following the resolution order in the module docstring."""
    for source, value in (("--inception-weights", path), (ENV_VAR, os.environ.get(ENV_VAR) or None)):
        if value is not None:
            p = Path(value).expanduser()
            if not p.is_file():
                raise UserError(f"Inception weights {p} (from {source}) do not exist; {_how_to_provide()}")
            return p
    cached = hub_cache_path()
    if cached.is_file():
        return cached
    if not download:
        raise UserError(f"Inception weights not found; {_how_to_provide()}")
    return download_weights(cached)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_inception(weights: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                   channels_last: bool = True, resize: str = DEFAULT_RESIZE) -> InceptionV3:
    """The FID Inception network with the resolved weights, in eval mode on ``device``, resizing its
    inputs under the protocol ``resize`` (:mod:`sagan.scores.resize`; default ``tf1``, the paper's).

    The returned module carries ``resize``, ``weights_path`` and ``weights_sha256`` for provenance; a
    file whose sha256 does not start with ``6726825d`` still loads (e.g. a test network) but triggers a
    warning, because its FIDs are not comparable with published ones.
    """
    check_resize(resize)  # a typo fails before any download
    path = resolve_weights(weights)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise UserError(f"cannot read Inception weights {path} ({_one_line(e)}); re-download {WEIGHTS_URL}") from None
    except Exception as e:  # unpickling errors under weights_only come in many types
        raise UserError(f"cannot read Inception weights {path} ({type(e).__name__}); re-download {WEIGHTS_URL}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"Inception weights {path} hold a {type(state).__name__}, not a state dict; use {WEIGHTS_FILENAME}")
    net = InceptionV3(resize)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"Inception weights {path} do not fit pytorch-fid's Inception ({one_line(e, 200)}); "
                        f"use {WEIGHTS_FILENAME}") from None
    sha = file_sha256(path)
    if not sha.startswith(WEIGHTS_SHA256_PREFIX) and os.environ.get("RANK", "0") == "0":  # once under accelerate
        print(f"warning: Inception weights {path} are not the official {WEIGHTS_FILENAME} (sha256 {sha[:16]}...); "
              "scores are not comparable with published ones", file=sys.stderr)
    net.weights_path = str(Path(path).resolve())
    net.weights_sha256 = sha
    net = net.to(device).eval()
    net.channels_last = channels_last
    if channels_last:
        net = net.to(memory_format=torch.channels_last)  # faster convolutions on CPU (oneDNN) and GPU (cuDNN)
    return net
