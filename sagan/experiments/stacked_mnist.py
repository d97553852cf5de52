"""``sagan-experiments run stacked_mnist``: the objectives' variants on StackedMNIST, scored by mode coverage.

StackedMNIST (Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN; Huang et al. 2024, R3GAN Table 1):
each image stacks three MNIST training digits drawn independently and uniformly (with replacement) as its
red, green and blue channels, so the set has 10^3 = 1000 modes, mode ``100 * d_R + 10 * d_G + d_B``.
PacGAN's released experiment (fjxmlzn/PacGAN ``stacked_MNIST_experiments/VEEGAN_experiment/config.py``)
trains on 128,000 stacked images and counts modes over 26,000 generated ones: the defaults here.

    OUT/experiment.json        settings and variants (as every experiment)
    OUT/stacked_mnist/         the stacked training set as a packed dataset (unlabelled: the GANs train
                               unconditionally) plus ``modes.npy``, the mode of each image
    OUT/classifier.*           the digit classifier (safetensors) and its record: accuracy on MNIST's
                               test images, and the modes the classifier finds in the stacked set itself
    OUT/<variant>[.seed<i>]/   ordinary run directories; ``modes.json`` in each: the final generator's
                               modes covered and KL(p_gen || uniform) over --num-samples images

Everything is resumable: the stacked set and the classifier are built once, finished runs are skipped.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from ..config import load_config
from ..data.formats import FormatOptions, find_format
from ..data.formats.mnist import read_split, resize_grey
from ..data.formats.packed import FORMAT, IMAGES, LABELS, MANIFEST, SKIPPED
from ..errors import UserError
from ..io import check_writable, printable, write_text_atomic
from ..models.loading import load_generator
from ..sampling.draw import generate
from ..sampling.latents import sample_latents
from ..training.loop import make_accelerator
from .definitions import select_variants
from .modes import (NUM_MODES, RELIABLE_ACCURACY, accuracy, image_modes, load_classifier, mode_coverage,
                    save_classifier, train_classifier)
from .runner import FIXED_SETTINGS, _run_one, _say, record_settings, variant_runs

EXPERIMENT, DATA_DIR, MODES_FILE, RUN_MODES = "stacked_mnist", "stacked_mnist", "modes.npy", "modes.json"
TRAIN_SIZE, NUM_SAMPLES = 128_000, 26_000  # PacGAN's released StackedMNIST experiment
DATA_SEED = 0  # which digits each stacked image takes: the same for every variant and seed
FIXED = FIXED_SETTINGS + ("resolution", "train_size", "classifier_epochs")


def draw_stacks(num_digits: int, n: int, seed: int) -> np.ndarray:
    """Which digits each of ``n`` stacked images takes: int64 (n, 3), column c the digit of channel c
    (R, G, B), each drawn independently and uniformly (with replacement) from ``num_digits`` by ``seed``."""
    return np.random.default_rng(seed).integers(0, num_digits, size=(n, 3))


def stack_images(digits: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """uint8 (n, R, R, 3): channel c of image i is the grey digit ``digits[idx[i, c]]`` (digits (N, R, R))."""
    return np.stack([digits[idx[:, c]] for c in range(3)], axis=-1)


def stacked_modes(labels: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The mode of each stacked image: ``100 * label_R + 10 * label_G + label_B``."""
    return labels[idx[:, 0]] * 100 + labels[idx[:, 1]] * 10 + labels[idx[:, 2]]


def write_stacked_dataset(folder: Path, digits: np.ndarray, labels: np.ndarray, n: int, seed: int,
                          source: str, chunk: int = 16_000) -> dict:
    """The stacked set as a packed dataset in ``folder`` (unlabelled, so a model trains on it
    unconditionally) with ``modes.npy`` beside it; returns its manifest. An existing complete one with the
    same source, size and seed is kept."""
    r = digits.shape[1]
    header = {"format": FORMAT, "source": source, "source_format": EXPERIMENT, "resolution": r, "num_slots": n,
              "stacked_seed": seed}
    if (folder / MANIFEST).is_file():
        manifest = json.loads((folder / MANIFEST).read_text())
        if all(manifest.get(k) == v for k, v in header.items()):
            return manifest
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)  # the manifest, written last, marks a complete folder
    idx = draw_stacks(len(digits), n, seed)
    images = np.lib.format.open_memmap(folder / IMAGES, "w+", np.uint8, (n, r, r, 3))
    digest = hashlib.sha256()
    for start in range(0, n, chunk):  # memory stays one chunk
        images[start:start + chunk] = part = stack_images(digits, idx[start:start + chunk])
        digest.update(part.data)
    images.flush()
    del images
    np.save(folder / LABELS, np.zeros(n, np.int64))
    np.save(folder / MODES_FILE, stacked_modes(labels, idx))
    (folder / SKIPPED).write_text("")
    manifest = {**header, "source_kind": f"StackedMNIST, {n} images of three independent digits",
                "num_classes": 0, "num_images": n, "num_skipped": 0, "classes": [], "class_counts": [],
                "checksum": f"sha256:{digest.hexdigest()}", "checksum_method": "sha256 of the image bytes",
                "layout": f"{IMAGES}: uint8 (n, R, R, 3) RGB; {LABELS}: all 0 (unlabelled); {MODES_FILE}: int64 "
                          f"(n,) mode 100 * d_R + 10 * d_G + d_B",
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_text_atomic(folder / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def read_digits(data: str | Path, split: str, resolution: int) -> tuple[np.ndarray, np.ndarray, str]:
    """MNIST's ``split`` digits resized to ``resolution``: (uint8 (N, R, R), labels, what)."""
    fmt, root = find_format(data)
    if fmt.name != "mnist":
        raise UserError(f"--data {printable(data)} is {fmt.describe}; stacked_mnist needs MNIST's IDX files (the "
                        f"folder holding MNIST/raw/train-images-idx3-ubyte, as torchvision downloads it)")
    what, classes, images, labels, _ = read_split(root, FormatOptions(split=split))
    if len(classes) != 10:
        raise UserError(f"--data {printable(data)}: {what} has {len(classes)} classes; StackedMNIST stacks the 10 "
                        f"digits of MNIST")
    return resize_grey(images, resolution), labels, what


def prepare(out: Path, data: str, resolution: int, train_size: int, epochs: int, num_samples: int, main: bool):
    """The stacked set and the classifier (built once); returns the classifier and its record."""
    loaded = load_classifier(out)
    if loaded is not None and (out / DATA_DIR / MANIFEST).is_file():
        return loaded
    digits, labels, what = read_digits(data, "train", resolution)
    _say(f"building StackedMNIST: {train_size} images, each three digits of {what} at {resolution}px", main)
    write_stacked_dataset(out / DATA_DIR, digits, labels, train_size, DATA_SEED,
                          source=printable(Path(data).expanduser().resolve()))
    if loaded is not None:
        return loaded
    test, test_labels, test_what = read_digits(data, "test", resolution)
    _say(f"training the digit classifier on the {len(digits)} images of {what} ({epochs} epochs)", main)
    started = time.perf_counter()
    model = train_classifier(digits, labels, epochs)
    acc = accuracy(model, test, test_labels)
    stacked = np.load(out / DATA_DIR / IMAGES, mmap_mode="r")
    count = min(num_samples, len(stacked))
    real = mode_coverage(image_modes(model, stacked[:count]))
    record = {"accuracy": acc, "test_images": len(test), "test_set": test_what, "train_images": len(digits),
              "epochs": epochs, "resolution": resolution, "seconds": round(time.perf_counter() - started, 1),
              "reliable": acc >= RELIABLE_ACCURACY, "stacked_data": real}
    save_classifier(out, model, record)
    _say(f"digit classifier: {100 * acc:.2f}% right on the {len(test)} images of {test_what}"
         f"{'' if record['reliable'] else f' (below {100 * RELIABLE_ACCURACY:g}%: mode counts are unreliable)'}; "
         f"the stacked training set itself shows {real['modes']} modes, KL {real['kl']:.4f} over {count} images", main)
    return model, record


def measure_run(run: Path, classifier, num_samples: int, seed: int, batch_size: int = 500) -> dict:
    """Modes covered and KL(p_gen || uniform) of the final generator of ``run`` (EMA if it has one) over
    ``num_samples`` images from latents of ``seed``; cached in ``run/modes.json`` for that step."""
    G, _, ckpt = load_generator(run)
    step, cached = ckpt["step"], run / RUN_MODES
    if cached.is_file():
        record = json.loads(cached.read_text())
        if record.get("step") == step and record.get("samples") == num_samples:
            return record
    z = sample_latents(num_samples, G.z_dim, seed)
    modes = [image_modes(classifier, images.numpy())
             for images, _ in generate(G, z, torch.zeros(num_samples, dtype=torch.long), batch_size=batch_size)]
    record = {"step": step, "seed": seed, "ema": ckpt["used_ema"], **mode_coverage(np.concatenate(modes))}
    write_text_atomic(cached, json.dumps(record, indent=2) + "\n")
    return record


def run_stacked_mnist(outdir: str | Path, *, data: str | None, steps: int, eval_every: int, num_samples: int,
                      base: str = "demo", variants: str | None = None, seeds: int = 1, resolution: int = 32,
                      train_size: int = TRAIN_SIZE, classifier_epochs: int = 3,
                      progress: bool = True) -> tuple[int | None, bool]:
    """Build StackedMNIST from MNIST's IDX files at ``data``, train the classifier, train every chosen
    variant ``seeds`` times unconditionally and measure its modes; returns (stopping signal or None,
    whether this is the main process)."""
    if data is None:
        raise UserError("stacked_mnist needs --data: the folder holding MNIST's IDX files (MNIST/raw/"
                        "train-images-idx3-ubyte and the rest, as torchvision downloads them)")
    out = Path(outdir)
    chosen = select_variants(EXPERIMENT, variants)
    load_config(base)
    find_format(data)  # a bad --data fails before anything is written
    check_writable(out, "--outdir")
    settings = {"experiment": EXPERIMENT, "base": base, "data": str(data), "steps": steps, "eval_every": eval_every,
                "num_samples": num_samples, "ref": None, "seeds": seeds, "resolution": resolution,
                "train_size": train_size, "classifier_epochs": classifier_epochs}
    acc = make_accelerator("no")
    main = acc.is_main_process
    record_settings(out, settings, chosen, main, fixed=FIXED)
    if main:
        prepare(out, data, resolution, train_size, classifier_epochs, num_samples, main)
    acc.wait_for_everyone()
    classifier, _ = load_classifier(out)
    overrides = {"train.max_steps": steps, "train.checkpoint_every": eval_every, "train.sample_every": eval_every,
                 "train.fid_every": 0, "data.path": str((out / DATA_DIR).resolve()), "data.hflip": False,
                 "data.subset": None, "model.num_classes": 0, "model.resolution": resolution}
    for run_name, cfg in variant_runs(EXPERIMENT, chosen, base, overrides, seeds, main):
        stopped = _run_one(cfg=cfg, run=out / run_name, label=run_name, steps=steps, eval_every=eval_every,
                           inception_weights=None, progress=progress, main=main)
        if stopped is not None:
            return stopped, main
        if main:
            m = measure_run(out / run_name, classifier, num_samples, seed=cfg.train.seed)
            _say(f"[{run_name}] {m['modes']} of {NUM_MODES} modes, KL(p_gen || uniform) {m['kl']:.4f} over "
                 f"{m['samples']} samples", main)
    return None, main
