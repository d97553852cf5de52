"""Helpers of the experiments tests: the demo preset at narrow widths as a base YAML for sagan-experiments."""

from __future__ import annotations

import pytest

from conftest import TINY_TRAIN

@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """The demo preset with narrow networks and tiny batches, as a YAML the experiments use as --base."""
    path = tmp_path_factory.mktemp("base") / "tiny.yaml"
    sections: dict = {}
    for item in TINY_TRAIN:
        key, value = item.split("=")
        section, k = key.split(".")
        sections.setdefault(section, {})[k] = int(value) if value.isdigit() else value
    import yaml

    path.write_text(yaml.safe_dump({"base": "demo", **sections}))
    return path
