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
    return load_discriminator(checkpoint, device=device)[0]
