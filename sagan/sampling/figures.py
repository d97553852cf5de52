"""The figures ``sample.py`` draws, as PIL images: the class grid, the interpolation figure, the attention
maps, and a one-row interpolation strip between two (seed, class) ends. Shared by ``sample.py`` (which
saves them) and the web page of ``sagan-serve`` (which shows them), so both draw the same pixels."""

from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image

from .bn_stats import sampling_mode
from .draw import generate, interpolation_inputs, spread_classes, to_uint8
from .latents import sample_latents
from .viz import attention_figure, image_grid, upscale_factor


def class_name(names: Sequence[str] | None, c: int) -> str:
    return names[c] if names and c < len(names) else str(c)


def grid_figure(G, chosen: list[int] | None, names, per_class: int, seed: int, truncation: float | None,
                batch_size: int, device) -> Image.Image:
    """Rows = classes, columns = samples; class names (or indices) in a caption strip on the left."""
    cls = chosen or spread_classes(G.num_classes)
    labels = torch.as_tensor(cls).repeat_interleave(per_class)
    z = sample_latents(len(labels), G.z_dim, seed, truncation)
    images = torch.cat([b for b, _ in generate(G, z, labels, batch_size, device)])
    captions = [class_name(names, c) for c in cls] if G.num_classes and (names or len(cls) > 1) else None
    return image_grid(images, per_class, captions, zoom=upscale_factor(G.resolution))


def interpolation_figure(G, chosen: list[int] | None, names, steps: int, seed: int, truncation: float | None,
                         batch_size: int, device) -> Image.Image:
    """Per class a row moving z at fixed class, then a row moving the class at fixed z."""
    cls = chosen or spread_classes(G.num_classes, 4)
    z, y, rows = interpolation_inputs(z_dim=G.z_dim, num_classes=G.num_classes, classes=cls, steps=steps, seed=seed,
                                      truncation=truncation)
    captions = [f"{class_name(names, a)}: z" if a == b else f"{class_name(names, a)} -> {class_name(names, b)}"
                for a, b in rows] if G.num_classes else None
    images = torch.cat([b for b, _ in generate(G, z, y, batch_size, device)])
    return image_grid(images, steps, captions, zoom=upscale_factor(G.resolution))


def strip_figure(G, seeds: tuple[int, int], classes: tuple[int, int], steps: int, truncation: float | None,
                 device) -> Image.Image:
    """One row walking linearly from (z of ``seeds[0]``, class ``classes[0]``) to (z of ``seeds[1]``,
    class ``classes[1]``); each z is the first latent ``sample.py`` draws for that seed."""
    t = torch.linspace(0, 1, steps)[:, None]
    za, zb = (sample_latents(1, G.z_dim, s, truncation)[0] for s in seeds)
    z = (1 - t) * za + t * zb
    if G.num_classes:
        eye = torch.eye(G.num_classes)
        y = (1 - t) * eye[classes[0]] + t * eye[classes[1]]  # G mixes its class embeddings
    else:
        y = torch.zeros(steps, dtype=torch.long)
    images = torch.cat([b for b, _ in generate(G, z, y, steps, device)])
    return image_grid(images, steps, zoom=upscale_factor(G.resolution))


def attention_maps_figure(G, chosen: list[int] | None, names, num_images: int, points, seed: int,
                          truncation: float | None, device) -> Image.Image:
    """SAGAN fig. 1/5: generated images with query points, and where each query attends per layer."""
    cls = chosen or spread_classes(G.num_classes, num_images)
    labels = torch.as_tensor([cls[i % len(cls)] for i in range(num_images)])
    z = sample_latents(num_images, G.z_dim, seed, truncation).to(device)
    with torch.inference_mode(), sampling_mode(G):  # the BN mode as generate() applies it
        x, maps = G(z, labels.to(device), return_attn=True)
    return attention_figure(to_uint8(x).cpu(), {r: m.cpu() for r, m in maps.items()}, points,
                            captions=[class_name(names, int(c)) if G.num_classes else "" for c in labels],
                            size=max(128, G.resolution))
