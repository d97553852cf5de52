"""The generator with huggingface_hub's ``ModelHubMixin`` (needs the ``[hub]`` extra): ``from_pretrained``
of a local folder or a Hub repo id, ``save_pretrained`` and ``push_to_hub``, all in the file layout of
:mod:`sagan.export.hf`."""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import ModelHubMixin, hf_hub_download

from ..checkpoint import load_state
from ..models import Generator
from .fold import plain_config
from .hf import WEIGHTS_NAME, load_weights, read_hf_config, write_hf_folder
from .limits import check_generator_size, check_weights_finite, check_weights_match, expected_shapes, weights_header


class HubGenerator(Generator, ModelHubMixin, library_name="sagan",
                   tags=["gan", "sagan", "self-attention-gan", "image-generation"]):
    """A :class:`sagan.models.Generator` without spectral-norm parametrizations (its weights are folded),
    in eval mode; ``hub_config`` is the ``config.json`` it came with (written back by ``save_pretrained``)."""

    hub_config: dict | None = None
    # the mixin's loader, not Generator.from_pretrained (which comes first in the MRO and delegates here)
    from_pretrained = ModelHubMixin.__dict__["from_pretrained"]

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision, cache_dir, force_download, local_files_only, token,
                         config: dict | None = None, map_location: str = "cpu", **model_kwargs):
        if model_kwargs:
            raise TypeError(f"unexpected arguments to from_pretrained: {', '.join(model_kwargs)}")
        cfg = read_hf_config(config, model_id)
        # untrusted sizes: the generator is sized, and the weights' shapes checked, before anything is allocated
        shapes = expected_shapes(plain_config(cfg))
        check_generator_size(shapes, cfg, model_id)
        if os.path.isdir(model_id):
            weights = Path(model_id) / WEIGHTS_NAME
        else:
            weights = hf_hub_download(repo_id=model_id, filename=WEIGHTS_NAME, revision=revision, cache_dir=cache_dir,
                                      force_download=force_download, token=token, local_files_only=local_files_only)
        check_weights_match(weights_header(weights, model_id), shapes, weights, model_id)
        state = load_weights(weights)
        check_weights_finite(state, weights, model_id)
        G = cls.from_config(plain_config(cfg))
        load_state(G, state, f"{WEIGHTS_NAME} of {model_id}")
        G.hub_config = config
        G.class_names = config.get("class_names")
        return G.to(map_location).eval()

    def _save_pretrained(self, save_directory: Path) -> None:
        if self.hub_config is None:
            raise ValueError("save_pretrained needs a generator loaded with from_pretrained (its config.json); "
                             "export a checkpoint with sagan-export --format hf")
        write_hf_folder(save_directory, self.state_dict(), self.hub_config)
