"""The generator behind the web page: loaded once from a run folder, a checkpoint file or an ``hf``
export folder, and drawn with the figure code ``sample.py`` uses (:mod:`sagan.sampling.figures`), so a
grid on the page equals ``sample.py``'s grid for the same inputs pixel for pixel.

Every request is checked first (classes in range, at most :data:`MAX_IMAGES` images, truncation > 0,
query points inside the image); a bad one raises :class:`~sagan.errors.UserError`, which the page shows
as a message. Nothing is ever written next to the checkpoint.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from ..errors import CheckpointError, UserError
from ..models import Generator
from ..models.hf_folder import CONFIG_NAME, WEIGHTS_NAME
from ..models.loading import load_generator
from ..sampling.bn_stats import BN_MODES, prepare_generator
from ..sampling.figures import attention_maps_figure, class_name, grid_figure, strip_figure

MAX_IMAGES = 256  # images per request: a grid, a strip (a 128px model draws 256 in seconds on a GPU)
MAX_STEPS = 32  # columns of an interpolation strip
BATCH_SIZE = 64  # sample.py's default --batch-size (per-batch BN statistics depend on it)
STANDING_BATCHES = 16  # sample.py's default --standing-batches
EMA, RAW = "EMA", "raw"


def is_hf_folder(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


@dataclass
class Request:
    """What the page asks for, as the page sends it (numbers may be None or floats: checked here)."""

    classes: list | None = None
    seed: float | None = 0
    per_class: float | None = 8
    truncation: float | None = None
    generator: str = EMA
    bn_stats: str = "running"


class ServedModel:
    """A generator (its EMA and raw weights for a checkpoint; the exported one for an hf folder), its class
    names and where it came from. Requests are served one at a time (a BN mode is set on the module)."""

    def __init__(self, source: str | Path, device: str | torch.device = "cpu"):
        self.source, self.device = Path(source), torch.device(device)
        self._lock = threading.Lock()
        self._generators: dict[str, torch.nn.Module] = {}
        if is_hf_folder(self.source):
            self._load_hf()
        else:
            self._load_checkpoint()

    def _load_checkpoint(self) -> None:
        G, cfg, ckpt = load_generator(self.source, ema=True, device=self.device)
        self.generators = [EMA, RAW] if ckpt["used_ema"] else [RAW]
        self._generators[self.generators[0]] = G
        self.names, self.step, self.name = ckpt.get("class_names"), ckpt["step"], cfg.name

    def _load_hf(self) -> None:
        G = Generator.from_pretrained(self.source).to(self.device)
        config = G.hub_config
        self.generators = [EMA if config.get("generator") == "ema" else RAW]
        self._generators[self.generators[0]] = G
        self.names, self.step, self.name = config.get("class_names"), config.get("step"), config["sagan_config"]["name"]

    def generator(self, which: str) -> torch.nn.Module:
        if which not in self.generators:
            raise UserError(f"generator {which!r} is not in {self.source.name}; choose {' or '.join(self.generators)}")
        if which not in self._generators:  # the raw G of a checkpoint, loaded when first asked for
            self._generators[which] = load_generator(self.source, ema=False, device=self.device)[0]
        return self._generators[which]

    @property
    def _any(self) -> torch.nn.Module:
        return next(iter(self._generators.values()))

    @property
    def num_classes(self) -> int:
        return self._any.num_classes

    @property
    def has_attention(self) -> bool:
        return bool(self._any.attn)

    def class_choices(self) -> list[tuple[str, int]]:
        return [(f"{c}: {class_name(self.names, c)}", c) for c in range(self.num_classes)]

    def describe(self) -> str:
        G = self._any
        classes = f"{G.num_classes} classes" if G.num_classes else "unconditional"
        return f"{self.name}, {G.resolution}x{G.resolution}, {classes}, step {self.step}, from {self.source.name}"

    # ---- checks -----------------------------------------------------------------------------------

    def classes(self, values, what: str = "class") -> list[int] | None:
        """Picked classes (indices, or names typed in) checked against the model; None = sample.py's spread."""
        if not values:
            return None
        if not self.num_classes:
            raise UserError(f"this model is unconditional; it has no {what} to pick")
        out = []
        for v in values if isinstance(values, (list, tuple)) else [values]:
            out.append(self._class_index(v, what))
        return out

    def _class_index(self, v, what: str) -> int:
        names = list(self.names or [])
        if isinstance(v, str) and v.strip() in names:
            return names.index(v.strip())
        try:
            c = int(str(v).split(":")[0].strip())
        except ValueError:
            raise UserError(f"{what} {str(v)[:40]!r} is neither a class index nor a class name of this model") from None
        if not 0 <= c < self.num_classes:
            raise UserError(f"{what} {c} is out of range; this model has classes 0-{self.num_classes - 1}")
        return c

    @staticmethod
    def whole(value, what: str, lo: int, hi: int | None = None) -> int:
        if value is None or float(value) != int(float(value)):
            raise UserError(f"{what} must be a whole number, got {value}")
        v = int(float(value))
        if v < lo or (hi is not None and v > hi):
            raise UserError(f"{what} must be {f'between {lo} and {hi}' if hi is not None else f'>= {lo}'}, got {v}")
        return v

    @staticmethod
    def truncation(value) -> float | None:
        if value is None or not str(value).strip():
            return None
        try:
            t = float(value)
        except ValueError:
            raise UserError(f"truncation {str(value)[:40]!r} is not a number; give one > 0, or leave it empty") from None
        if not t > 0 or t == float("inf"):  # NaN fails t > 0
            raise UserError(f"truncation must be > 0 (or empty for none), got {value}")
        return t

    def _prepared(self, r: Request, seed: int, truncation: float | None) -> torch.nn.Module:
        """The chosen G with the BN statistics of the request, as sample.py prepares it."""
        if r.bn_stats not in BN_MODES:
            raise UserError(f"BN statistics {r.bn_stats!r} unknown; use one of {', '.join(BN_MODES)}")
        G = self.generator(r.generator)
        prepare_generator(G, r.bn_stats, standing_batches=STANDING_BATCHES, seed=seed, device=self.device,
                          truncation=truncation)
        return G

    # ---- figures ----------------------------------------------------------------------------------

    def grid(self, r: Request) -> Image.Image:
        """``sample.py --classes ... --per-class N --seed S [--truncation T] [--no-ema] [--bn-stats M]``."""
        chosen, seed, truncation = self.classes(r.classes), self.whole(r.seed, "seed", 0), self.truncation(r.truncation)
        per_class = self.whole(r.per_class, "images per class", 1)
        rows = len(chosen) if chosen else min(self.num_classes or 10, 10)  # sample.py's spread: up to 10 rows
        if rows * per_class > MAX_IMAGES:
            raise UserError(f"{rows} x {per_class} = {rows * per_class} images is more than this page draws at once "
                            f"({MAX_IMAGES}); pick fewer classes or images per class")
        with self._lock:
            G = self._prepared(r, seed, truncation)
            return grid_figure(G, chosen, self.names, per_class, seed, truncation, BATCH_SIZE, self.device)

    def strip(self, r: Request, seed_b, class_a, class_b, steps) -> Image.Image:
        """A row from (seed, class A) to (seed B, class B)."""
        seed, truncation = self.whole(r.seed, "seed", 0), self.truncation(r.truncation)
        ends = (self.whole(seed, "seed", 0), self.whole(seed_b, "second seed", 0))
        steps = self.whole(steps, "steps", 2, MAX_STEPS)
        pair = (self._class_index(class_a, "first class"), self._class_index(class_b, "second class")) \
            if self.num_classes else (0, 0)
        with self._lock:
            G = self._prepared(r, seed, truncation)
            return strip_figure(G, ends, pair, steps, truncation, self.device)

    def attention(self, r: Request, row, col) -> Image.Image:
        """``sample.py --attention-maps --num-images 1 --query-points ROW,COL`` for the first picked class."""
        if not self.has_attention:
            raise UserError("this generator has no attention layer (model.g_attn is empty)")
        chosen, seed, truncation = self.classes(r.classes), self.whole(r.seed, "seed", 0), self.truncation(r.truncation)
        point = tuple(float(v) if v is not None else -1.0 for v in (row, col))
        if not all(0 <= v <= 1 for v in point):
            raise UserError(f"the query point {point} lies outside the image; use fractions in [0, 1]")
        with self._lock:
            G = self._prepared(r, seed, truncation)
            return attention_maps_figure(G, chosen, self.names, 1, [point], seed, truncation, self.device)


def load_served(source: str | Path, device: str | torch.device = "cpu") -> ServedModel:
    """The model of ``--checkpoint``: one line when it is not a checkpoint, a run or an hf export."""
    path = Path(source)
    if not path.exists():
        raise CheckpointError(f"--checkpoint {source}: no such file or folder; give a run folder, a .pt checkpoint "
                              "or a folder written by sagan-export --format hf")
    return ServedModel(path, device)
