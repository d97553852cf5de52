"""The built-in procedural demo dataset (:mod:`sagan.data.demo`): no path, no download."""

from __future__ import annotations

from ..demo import DemoDataset
from . import DatasetFormat, OpenRequest, register_format

DEMO_RESOLUTION = 32


def open_demo(root: None, request: OpenRequest) -> DemoDataset:
    # demo_classes 0 (an unconditional model): all ten designs, their labels unused
    return DemoDataset(resolution=request.resolution or DEMO_RESOLUTION, num_classes=request.demo_classes or 10,
                       size=request.demo_size, seed=request.seed, hflip=request.hflip, uint8=request.uint8)


# never detected in a folder: open_dataset(None) / no data.path asks for it by name
register_format(DatasetFormat("demo", "the built-in demo dataset (no path)", lambda root: False, open=open_demo))
