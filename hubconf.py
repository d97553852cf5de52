"""torch.hub entry points: a trained SAGAN generator or discriminator in two lines.

From a clone (or any local copy) of this repository::

    import torch
    G = torch.hub.load("path/to/sagan", "generator", source="local", checkpoint="runs/00000-demo:best")
    D = torch.hub.load("path/to/sagan", "discriminator", source="local", checkpoint="sagan_studiogan.pt")

From GitHub, ``torch.hub.load("OWNER/sagan", "generator", checkpoint=...)`` (torch.hub downloads the
repository; ``source="github"`` is the default). ``checkpoint`` is a run directory, ``RUN:best``, a
``.pt`` checkpoint (read with ``torch.load(weights_only=True)``: no code runs) or, for the generator, a
folder written by ``sagan-export --format hf`` (a Hub repo id: ``Generator.from_pretrained("user/name")``). Without a checkpoint an untrained network
of the preset ``config`` is returned. The networks come in eval mode on ``device``.

A relative ``checkpoint`` is looked up in the caller's working directory first, then in the repository
folder that holds this file (with ``source="local"``, the clone whose ``runs/`` train.py wrote); when it
is in neither, the error names both places. An absolute path is taken as it is.
"""

dependencies = ["torch", "numpy", "yaml"]  # what importing sagan.models needs


def generator(checkpoint: str | None = None, ema: bool = True, config: str = "imagenet128", device: str = "cpu"):
    """The generator of ``checkpoint`` (the EMA one unless ``ema=False``): ``G(z, y)`` -> images in [-1, 1]."""
    from pathlib import Path

    from sagan.models import load_generator
    from sagan.config import load_config
    from sagan.models import Generator

    if checkpoint is None:
        return Generator.from_config(load_config(config)).to(device).eval()
    checkpoint = _resolve(checkpoint)
    if Path(str(checkpoint)).is_dir() and (Path(str(checkpoint)) / "config.json").is_file():
        return Generator.from_pretrained(str(checkpoint), map_location=device)
    return load_generator(checkpoint, ema=ema, device=device)[0]


def discriminator(checkpoint: str | None = None, config: str = "imagenet128", device: str = "cpu"):
    """The discriminator of ``checkpoint``: ``D(x, y)`` -> logits."""
    from sagan.models import load_discriminator
    from sagan.config import load_config
    from sagan.models import Discriminator

    if checkpoint is None:
        return Discriminator.from_config(load_config(config)).to(device).eval()
    return load_discriminator(_resolve(checkpoint), device=device)[0]


def _resolve(checkpoint) -> str:
    """``checkpoint`` (``RUN``, ``RUN:best``, a file or folder) found in the working directory, else in this
    repository's folder; one line naming both places when it is in neither."""
    import os
    import re

    from sagan.errors import CheckpointError

    spec = os.path.expanduser(str(checkpoint))
    m = re.match(r"^(.*):(best|last)$", spec)
    path, suffix = (m.group(1), f":{m.group(2)}") if m and not os.path.exists(spec) else (spec, "")
    if os.path.isabs(path) or os.path.exists(path):
        return spec
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), path)
    if os.path.exists(here):
        return here + suffix
    raise CheckpointError(f"checkpoint {spec} not found: looked in the working directory ({os.path.abspath(path)}) and "
                          f"in the repository ({here}); pass an absolute path")
