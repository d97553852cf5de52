"""``Generator.from_pretrained``: the generator with huggingface_hub's ``ModelHubMixin`` (the ``[hub]``
extra): ``from_pretrained`` of a local folder or a Hub repo id, ``save_pretrained`` and ``push_to_hub``,
all in the file layout of :mod:`sagan.models.hf_folder`.

huggingface_hub is optional, so the class that mixes it in is made on first use, from the generator
class ``from_pretrained`` was called on (:func:`hub_class`); nothing here imports the networks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..checkpoint import load_state
from ..errors import CheckpointError, UserError, one_line
from .hf_folder import (CONFIG_NAME, HUB_EXTRA, WEIGHTS_NAME, load_weights, plain_config, read_hf_config,
                        write_hf_folder)
from .limits import (check_generator_size, check_weights_finite, check_weights_match, expected_shapes, read_config_json,
                     weights_header)

_HUB_CLASSES: dict[type, type] = {}


def _huggingface_hub():
    try:
        import huggingface_hub
    except ImportError:
        raise UserError(f"Generator.from_pretrained needs huggingface_hub; {HUB_EXTRA}") from None
    return huggingface_hub


def hub_class(generator_class: type) -> type:
    """``generator_class`` (a :class:`sagan.models.Generator`) with ``ModelHubMixin``: without spectral-norm
    parametrizations (its weights are folded), in eval mode; ``hub_config`` is the ``config.json`` it came
    with (written back by ``save_pretrained``)."""
    hub = _huggingface_hub()  # every time: a missing extra is one line, even after an earlier success
    if generator_class not in _HUB_CLASSES:
        _HUB_CLASSES[generator_class] = _make_hub_class(generator_class, hub)
    return _HUB_CLASSES[generator_class]


def _make_hub_class(base: type, hub) -> type:
    class HubGenerator(base, hub.ModelHubMixin, library_name="sagan",
                       tags=["gan", "sagan", "self-attention-gan", "image-generation"]):
        hub_config: dict | None = None
        # the mixin's loader, not Generator.from_pretrained (which comes first in the MRO and delegates here)
        from_pretrained = hub.ModelHubMixin.__dict__["from_pretrained"]

        @classmethod
        def _from_pretrained(cls, *, model_id: str, revision, cache_dir, force_download, local_files_only, token,
                             config: dict | None = None, map_location: str = "cpu", **model_kwargs):
            if model_kwargs:
                raise TypeError(f"unexpected arguments to from_pretrained: {', '.join(model_kwargs)}")
            cfg = read_hf_config(config, model_id)
            # untrusted sizes: the generator is sized, and the weights' shapes checked, before anything is allocated
            shapes = expected_shapes(plain_config(cfg), base)
            check_generator_size(shapes, cfg, model_id)
            if os.path.isdir(model_id):
                weights = Path(model_id) / WEIGHTS_NAME
            else:
                weights = hub.hf_hub_download(repo_id=model_id, filename=WEIGHTS_NAME, revision=revision,
                                              cache_dir=cache_dir, force_download=force_download, token=token,
                                              local_files_only=local_files_only)
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

    HubGenerator.__qualname__ = HubGenerator.__name__ = "HubGenerator"
    return HubGenerator


def from_pretrained(path_or_repo_id: str | os.PathLike, generator_class: type | None = None, **kwargs):
    """A folder written by ``sagan-export --format hf`` or a Hub repo id, loaded as a generator in eval mode
    (with ``save_pretrained`` / ``push_to_hub``); ``generator_class``: the Generator class to build (default:
    :class:`sagan.models.Generator`, which passes itself)."""
    if generator_class is None:
        raise TypeError("from_pretrained needs the generator class; call sagan.models.Generator.from_pretrained")
    loader = hub_class(generator_class)
    local = Path(path_or_repo_id) / CONFIG_NAME
    if local.exists():  # read by us first: bounded, one line if not JSON (the mixin's json.load is neither)
        read_config_json(local, str(path_or_repo_id))
    try:
        return loader.from_pretrained(path_or_repo_id, **kwargs)
    except json.JSONDecodeError as e:  # a Hub repo's config.json, read by the mixin
        raise CheckpointError(f"config.json of {path_or_repo_id} is not JSON ({one_line(e, 80)}); the repo is "
                              "damaged or not written by sagan-export --format hf") from None
