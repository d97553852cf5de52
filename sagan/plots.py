"""Every figure sagan draws with matplotlib (Agg backend, no display needed): the per-class FID histogram of
``report.md``, the experiment curves, and the colour map of the attention overlays.

Figures are written atomically (:mod:`sagan.io`) as PNG.
"""

from __future__ import annotations

import io as _io
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .io import atomic_write

ATTENTION_CMAP = "inferno"  # perceptually uniform, dark -> bright: readable over a grey image


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)  # no display; keeps a backend the user chose in a notebook
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    _pyplot().close(fig)
    with atomic_write(path) as f:
        f.write(buf.getvalue())
    return Path(path)


def histogram(values: Sequence[float], path: str | Path, xlabel: str, title: str | None = None,
              bins: int = 30) -> Path:
    """A histogram of ``values`` with its mean marked (e.g. per-class FID)."""
    plt = _pyplot()
    v = np.asarray(values, np.float64)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.hist(v, bins=bins, color="#4a6fb4", edgecolor="white")
    ax.axvline(v.mean(), color="#d55e00", linestyle="--", label=f"mean {v.mean():.2f}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title or f"{len(v)} values")
    ax.legend()
    return save_figure(fig, path)


def curves(panels: Mapping[str, Mapping[str, tuple]], path: str | Path,
           xlabel: str = "step", markers: Mapping[str, Mapping[str, float]] | None = None,
           lower_is_better: Mapping[str, bool] | None = None) -> Path:
    """One panel per metric, one line per series: ``panels[metric][series] = (xs, ys)``, or
    ``(xs, ys, band)`` to shade ys ± band (e.g. the standard deviation over seeds; None: no band).

    ``markers[metric][series] = value`` marks a reference value for a series (e.g. the paper's final
    number for that variant): a star at the right edge and a dotted line, in the series' colour.
    """
    plt = _pyplot()
    names = list(panels)
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(5.5 * max(1, len(names)), 4.0), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes[0], names):
        series = panels[metric]
        right = max((max(xs) for xs, *_ in series.values() if len(xs)), default=1)
        for i, (label, (xs, ys, *band)) in enumerate(sorted(series.items())):
            colour = colours[i % len(colours)]
            ax.plot(xs, ys, marker="o", markersize=3, color=colour, label=label)
            if band and band[0] is not None:
                y, b = np.asarray(ys, np.float64), np.asarray(band[0], np.float64)
                ax.fill_between(xs, y - b, y + b, color=colour, alpha=0.2, linewidth=0)
            value = (markers or {}).get(metric, {}).get(label)
            if value is not None:
                ax.axhline(value, color=colour, linestyle=":", linewidth=1)
                ax.plot([right], [value], marker="*", markersize=11, color=colour, linestyle="none")
        better = (lower_is_better or {}).get(metric)
        ax.set_title(metric + ("" if better is None else (" (lower is better)" if better else " (higher is better)")))
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=8)
    if markers:
        fig.text(0.01, -0.02, "stars and dotted lines: the paper's values", fontsize=8, color="grey")
    return save_figure(fig, path)


def colormap(values: np.ndarray, name: str = ATTENTION_CMAP) -> np.ndarray:
    """[0, 1] values (any shape) -> float RGB in 0..255 (shape + (3,)) through a matplotlib colour map."""
    import matplotlib

    rgba = matplotlib.colormaps[name](np.clip(values, 0.0, 1.0))
    return rgba[..., :3] * 255.0
