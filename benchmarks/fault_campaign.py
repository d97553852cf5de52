#!/usr/bin/env python
"""Fault-injection campaign of issue 26, items 9-15: every probe of those findings again, on this checkout.

Each probe runs one command (a CLI as a user types it, or a few lines of Python through the public API)
in its own process, in a fresh temp tree, with a timeout and its address space capped (``RLIMIT_AS``, set
in the child), so a probe that reads without end stops with a MemoryError or is killed at its timeout,
never reaching the OOM killer. A probe *holds* when the command does what the issue asks (mostly: exit 2
with one ``error:`` line and no traceback, nothing written, nothing run), and *fails* otherwise; the
output is held / failed per area and the total.

Areas: 9 sagan-export overwriting files; 10 checkpoint paths that are not regular files; 11 untrusted
config.json of a Hugging Face folder; 12 path traversal in dataset listings; 13 silent wrong results;
14 tracebacks; 15 misleading or lenient behaviour.

    python benchmarks/fault_campaign.py                 # ~25 min on 2 busy cores (~15 s a probe)
    python benchmarks/fault_campaign.py --areas 10,12   # some areas only
    python benchmarks/fault_campaign.py --skip-slow     # without the 2-process kill probe
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # the fixtures' writes: no bars in the report
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

MEMORY_CAP = 6 << 30  # address space per probe: torch's import maps ~3.2 GB, the rest is for the probe
TIMEOUT = 180.0
TINY = ["model.g_ch=16", "model.d_ch=16"]

# a probe through the public API: a user error is the CLI's "error: ..." and exit 2, as in every script
API = """
import sys
from sagan.errors import UserError
try:
{body}
except UserError as e:
    print(f"error: {{e}}", file=sys.stderr)
    sys.exit(2)
"""


def api(body: str, *args: str) -> list[str]:
    code = API.format(body="\n".join("    " + line for line in body.strip().splitlines()))
    return [sys.executable, "-c", code, *args]


@dataclass
class Outcome:
    rc: int | None  # None: killed at the timeout
    out: str
    err: str
    seconds: float


@dataclass
class Probe:
    area: str
    name: str
    command: list[str]
    holds: Callable[[Outcome], str | None]  # None when it holds, else why not
    other_branch: bool = False  # its fix is on another branch of issue 26
    timeout: float = TIMEOUT
    run: Callable[[Probe], Outcome] | None = None  # a probe that drives its processes itself


def cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    os.setsid()  # its own process group: a timeout kills every process it started


def run_command(probe: Probe, cwd: Path) -> Outcome:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(probe.command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=cap_memory)
    try:
        out, err = proc.communicate(timeout=probe.timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rc = None
    return Outcome(rc, out, err, time.perf_counter() - started)


# --------------------------------------------------------------------------------------------------
# what holding means


def one_line_error(*needles: str, untouched: dict[Path, bytes] | None = None, absent: tuple[Path, ...] = ()):
    """Exit 2, one ``error:`` line and no traceback; the line holds ``needles``; ``untouched`` files keep their
    bytes; ``absent`` paths were not created."""

    def judge(o: Outcome) -> str | None:
        if o.rc is None:
            return f"no answer in {o.seconds:.0f} s (a hang or an endless read)"
        errors = [line for line in o.err.splitlines() if line.startswith("error: ")]
        if "Traceback" in o.err or "MemoryError" in o.err:
            return "a traceback: " + (o.err.strip().splitlines() or ["?"])[-1][:160]
        if o.rc != 2 or len(errors) != 1:
            return f"exit {o.rc} with {len(errors)} error line(s): {(o.err.strip().splitlines() or [''])[-1][:160]}"
        missing = [n for n in needles if n not in errors[0]]
        if missing:
            return f"the error does not say {missing[0]!r}: {errors[0][:200]}"
        for path, data in (untouched or {}).items():
            if not path.exists() or path.read_bytes() != data:
                return f"{path.name} was changed"
        made = [p for p in absent if p.exists()]
        return f"{made[0].name} was written" if made else None

    return judge


def succeeds(*needles: str, check: Callable[[], str | None] = lambda: None):
    def judge(o: Outcome) -> str | None:
        if o.rc != 0:
            why = "no answer" if o.rc is None else f"exit {o.rc}"
            return f"{why}: {(o.err.strip().splitlines() or [''])[-1][:200]}"
        missing = [n for n in needles if n not in o.out + o.err]
        return f"the output does not say {missing[0]!r}" if missing else check()

    return judge


# --------------------------------------------------------------------------------------------------
# the fixtures, written in their real formats


def tiny_checkpoint(path: Path) -> Path:
    from sagan.checkpoint import save_checkpoint
    from sagan.config import load_config
    from sagan.models import Discriminator, Generator

    cfg = load_config("demo", overrides=TINY)
    G, D, G_ema = Generator.from_config(cfg), Discriminator.from_config(cfg), Generator.from_config(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(path, {"step": 3, "config": cfg.to_dict(), "G": G.state_dict(), "D": D.state_dict(),
                                  "G_ema": G_ema.state_dict(), "opt_G": None, "opt_D": None, "rng": None,
                                  "data": None})


def trained_run(run: Path) -> Path:
    from sagan.config import load_config
    from sagan.training import train

    cfg = load_config("demo", overrides=TINY + ["data.demo_size=32", "train.batch_size=8", "train.num_workers=0",
                                                "train.max_steps=2", "train.checkpoint_every=1",
                                                "train.sample_every=1000"])
    return train(cfg, outdir=run, progress=False)


def py(script: str) -> list[str]:
    return [sys.executable, str(REPO / script)]


def prepare(src: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sagan.commands.prepare", "--source", str(src), "--out", str(out), "--workers", "0",
            "--quiet", *extra]


def export(ckpt: Path, fmt: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "sagan.commands.export", "--checkpoint", str(ckpt), "--format", fmt,
            "--out", str(out), "--check-images", "2"]


# --------------------------------------------------------------------------------------------------
# the probes, area by area


def area9(w: Path) -> list[Probe]:
    ckpt = tiny_checkpoint(w / "export" / "model.pt")
    run = w / "export" / "run"
    tiny_checkpoint(run / "checkpoints" / "last.pt")
    probes = []
    for fmt in ("onnx", "torchscript"):
        user = w / "export" / f"notes-{fmt}.txt"
        user.write_text("a user's own file\n")
        probes.append(Probe("9 export overwrite", f"--format {fmt} --out <a user's file>", export(ckpt, fmt, user),
                            one_line_error(untouched={user: user.read_bytes()}), other_branch=True))
    probes.append(Probe("9 export overwrite", "--format onnx --out <the --checkpoint itself>",
                        export(ckpt, "onnx", ckpt), one_line_error(untouched={ckpt: ckpt.read_bytes()}),
                        other_branch=True))
    last = run / "checkpoints" / "last.pt"
    probes.append(Probe("9 export overwrite", "--format torchscript --out RUN/checkpoints/last.pt",
                        export(run, "torchscript", last), one_line_error(untouched={last: last.read_bytes()}),
                        other_branch=True))
    return probes


def area10(w: Path) -> list[Probe]:
    root = w / "paths"
    root.mkdir()
    fifo = root / "fifo.pt"
    os.mkfifo(fifo)  # no writer: an open() for reading blocks forever
    (root / "zero.pt").symlink_to("/dev/zero")
    (root / "to_fifo.pt").symlink_to(fifo)
    planted = root / "shared_run"
    (planted / "checkpoints").mkdir(parents=True)
    (planted / "config.yaml").write_text("base: demo\n")
    os.mkfifo(planted / "checkpoints" / "last.pt")  # a last.pt planted in a shared run folder
    sparse = root / "sparse.pt"
    with open(sparse, "wb") as f:
        f.truncate(64 << 30)  # 64 GB that take no disk: more than any checkpoint
    ref = root / "ref.npz"
    import numpy as np

    np.savez(ref, mu=np.zeros(2048), sigma=np.eye(2048))  # pytorch-fid's layout: the checkpoint is read next
    targets = {"/dev/zero": "/dev/zero", "a FIFO": str(fifo), "a symlink to /dev/zero": str(root / "zero.pt"),
               "a symlink to a FIFO": str(root / "to_fifo.pt"), "a run whose last.pt is a FIFO": str(planted)}
    entries = {
        "sample.py": lambda t, k: py("sample.py") + ["--checkpoint", t, "--out", str(root / f"grid{k}.png")],
        "evaluate.py metrics": lambda t, k: py("evaluate.py") + [
            "metrics", "--ref", str(ref), "--resize", "pytorch-fid", "--metrics", "fid", "--checkpoint", t,
            "--out", str(root / f"eval{k}" / "report.json")],
        "train.py --resume": lambda t, k: py("train.py") + ["--resume", t, "--no-progress"],
        "hubconf.generator": lambda t, k: api("import hubconf\nhubconf.generator(checkpoint=sys.argv[1])", t),
        "sagan-export": lambda t, k: export(Path(t), "torchscript", root / f"g{k}.pt"),
    }
    probes = []
    for k, (entry, command) in enumerate(entries.items()):
        for j, (what, target) in enumerate(targets.items()):
            probes.append(Probe("10 not a regular file", f"{entry} on {what}", command(target, f"{k}{j}"),
                                one_line_error("not a regular file")))
    probes.append(Probe("10 not a regular file", "sample.py on a 64 GB sparse file",
                        entries["sample.py"](str(sparse), "s"), one_line_error("more than any sagan checkpoint")))
    run = trained_run(w / "paths" / "resumed")
    os.mkfifo(run / "checkpoints" / "step_0000009.pt")  # a planted step file beside real checkpoints
    probes.append(Probe("10 not a regular file", "train.py --resume of a run with a FIFO named step_0000009.pt",
                        py("train.py") + ["--resume", str(run), "--no-progress", "--max-steps", "3"],
                        succeeds("done: 3 steps")))
    return probes


def hf_folder(w: Path, name: str) -> Path:
    from sagan.export.exporter import export_checkpoint

    ckpt = w / "hf" / "model.pt"
    if not ckpt.exists():
        tiny_checkpoint(ckpt)
        export_checkpoint(ckpt, "hf", w / "hf" / "clean", num_checked=2)
    folder = w / "hf" / name
    shutil.copytree(w / "hf" / "clean", folder)
    return folder


def edit_hf_config(folder: Path, **model) -> Path:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config["sagan_config"]["model"].update(model)
    path.write_text(json.dumps(config))
    return folder


HUB_LOAD = "import hubconf\nhubconf.generator(checkpoint=sys.argv[1])"


def area11(w: Path) -> list[Probe]:
    cases = {"model.g_ch 1000000": {"g_ch": 1_000_000}, "model.g_widths of 1e6": {"g_widths": [1_000_000] * 4},
             "model.z_dim 1e9": {"z_dim": 1_000_000_000}, "model.num_classes 1e9": {"num_classes": 1_000_000_000}}
    probes = [Probe("11 HF config.json", f"hubconf.generator on a folder with {name}",
                    api(HUB_LOAD, str(edit_hf_config(hf_folder(w, f"c{k}"), **values))), one_line_error(),
                    other_branch=True)
              for k, (name, values) in enumerate(cases.items())]
    bad_json = hf_folder(w, "not_json")
    (bad_json / "config.json").write_text('{"format": "sagan-generator", ')
    probes.append(Probe("11 HF config.json", "hubconf.generator on a config.json that is not JSON",
                        api(HUB_LOAD, str(bad_json)), one_line_error("config.json"), other_branch=True))
    return probes


def area12(w: Path) -> list[Probe]:
    from PIL import Image

    from format_files import hf_path_cells, write_hf_parquet, write_tiny_imagenet

    root = w / "traversal"
    root.mkdir()
    outside = root / "outside.JPEG"
    Image.new("RGB", (64, 64), (255, 0, 0)).save(outside)
    probes = []
    for k, listed in enumerate(["../../../outside.JPEG", str(outside), "link.JPEG"]):
        src = root / f"tiny{k}" / "tiny-imagenet-200"
        write_tiny_imagenet(src)
        if listed == "link.JPEG":
            (src / "val" / "images" / listed).symlink_to(outside)
        annotations = src / "val" / "val_annotations.txt"
        annotations.write_text(annotations.read_text() + f"{listed}\tn01443537\t0\t0\t63\t63\n")
        out = root / f"tiny{k}-out"
        shown = listed.replace(str(root), "<tmp>")
        probes.append(Probe("12 path traversal", f"Tiny-ImageNet val_annotations.txt listing {shown}",
                            prepare(src, out, "--split", "val"), one_line_error("val_annotations.txt:5", "outside",
                                                                                absent=(out,))))
    etc = "/etc/passwd"
    for k, listed in enumerate(["../outside.JPEG", str(outside), etc]):
        src = root / f"hf{k}"
        (src / "images").mkdir(parents=True)
        Image.new("RGB", (16, 16)).save(src / "images" / "a.png")
        cwd = os.getcwd()
        os.chdir(src)  # datasets sizes listed files from the working directory when writing
        try:
            write_hf_parquet(src, {"train": hf_path_cells(["images/a.png", listed], ["x", "y"])})
        finally:
            os.chdir(cwd)
        out = root / f"hf{k}-out"
        shown = listed.replace(str(root), "<tmp>")
        probes.append(Probe("12 path traversal", f"Hugging Face parquet image cell with path {shown}",
                            prepare(src, out, "--resolution", "16"), one_line_error("row 1", "outside", absent=(out,))))
    return probes


def cifar10_with_label(root: Path, label) -> Path:
    from format_files import write_cifar10

    write_cifar10(root)
    batch = pickle.loads((root / "data_batch_2").read_bytes(), encoding="latin1")
    batch["labels"][1] = label
    (root / "data_batch_2").write_bytes(pickle.dumps(batch, protocol=2))
    return root


def hf_with_labels(root: Path, labels: list, layout: str) -> Path:
    from format_files import hf_split, with_labels, write_hf_parquet

    ds = with_labels(hf_split(len(labels), 0, ["apple", "bear", "cloud"])[0], labels)
    ds.save_to_disk(str(root)) if layout == "save_to_disk" else write_hf_parquet(root, {"train": ds})
    return root


def area13(w: Path) -> list[Probe]:
    from format_files import write_cifar100, write_tiny_imagenet

    root = w / "silent"
    probes = []
    for layout in ("save_to_disk", "parquet"):
        src = hf_with_labels(root / f"hf-{layout}", [0, 1, 2, 7, 0, 1], layout)
        probes.append(Probe("13 silent wrong results", f"Hugging Face ({layout}) label 7 of 3 ClassLabel names",
                            prepare(src, root / f"o-{layout}", "--resolution", "16"),
                            one_line_error("row 3 has label 7", absent=(root / f"o-{layout}",))))
    for short in ("train", "test"):
        src = root / f"c100-{short}" / "cifar-100-binary"
        write_cifar100(src, binary=True)
        data = (src / f"{short}.bin").read_bytes()
        (src / f"{short}.bin").write_bytes(data[:-2 * 3074])
        probes.append(Probe("13 silent wrong results", f"CIFAR-100 binary {short}.bin short by 2 records",
                            prepare(src, root / f"o-c100-{short}"),
                            one_line_error(f"{short}.bin", absent=(root / f"o-c100-{short}",))))
    src = cifar10_with_label(root / "c10-float" / "cifar-10-batches-py", 1.7)
    probes.append(Probe("13 silent wrong results", "CIFAR-10 label 1.7", prepare(src, root / "o-float"),
                        one_line_error("labels[1] is 1.7", absent=(root / "o-float",))))
    src = root / "tiny-dup" / "tiny-imagenet-200"
    write_tiny_imagenet(src)
    annotations = src / "val" / "val_annotations.txt"
    annotations.write_text(annotations.read_text() + "val_0.JPEG\tn01641577\t0\t0\t63\t63\n")
    probes.append(Probe("13 silent wrong results", "Tiny-ImageNet image listed twice with different classes",
                        prepare(src, root / "o-dup", "--split", "val"),
                        one_line_error("listed again", absent=(root / "o-dup",))))
    nan = hf_folder(w, "nan_weights")
    from safetensors.torch import load_file, save_file

    weights = load_file(str(nan / "model.safetensors"))
    first = sorted(k for k, v in weights.items() if v.is_floating_point())[0]
    weights[first] = weights[first].clone().fill_(float("nan"))
    save_file(weights, str(nan / "model.safetensors"))
    probes.append(Probe("13 silent wrong results", "Hugging Face folder whose weights hold NaN",
                        api(HUB_LOAD, str(nan)), one_line_error("NaN"), other_branch=True))
    return probes


def area14(w: Path, slow: bool) -> list[Probe]:
    root = w / "tracebacks"
    probes = []
    for label in (None, 2 ** 70):
        src = cifar10_with_label(root / f"c10-{label}" / "cifar-10-batches-py", label)
        probes.append(Probe("14 tracebacks", f"CIFAR-10 label {label}", prepare(src, root / f"o-{label}"),
                            one_line_error(f"labels[1] is {label}")))
    for layout in ("save_to_disk", "parquet"):
        src = hf_with_labels(root / f"hf-{layout}", [0, 1, None, 2, 0, 1], layout)
        probes.append(Probe("14 tracebacks", f"Hugging Face ({layout}) row without a label (null)",
                            prepare(src, root / f"o-{layout}", "--resolution", "16"), one_line_error("row 2")))
    bad_json = hf_folder(w, "not_json_14")
    (bad_json / "config.json").write_text("not json at all")
    probes.append(Probe("14 tracebacks", "sample from a Hugging Face folder whose config.json is not JSON",
                        api(HUB_LOAD, str(bad_json)), one_line_error("config.json"), other_branch=True))
    if slow:
        probes.append(Probe("14 tracebacks", "a rank killed (SIGKILL) in a 2-process gloo run", [],
                            one_line_error("process rank 1 of this 2-process run stopped", "--resume"),
                            timeout=400, run=lambda p: kill_a_rank(root / "two")))
    return probes


def kill_a_rank(run: Path) -> Outcome:
    """``accelerate launch`` 2 CPU processes, SIGKILL rank 1 after the step-4 checkpoint; the outcome is rank
    0's (the text before the launcher's own report), exit 2 standing for "one error line, then stopped"."""
    from launch_utils import rank_pid, two_process_train

    cmd = two_process_train(run, TINY + ["data.demo_size=64", "train.batch_size=8", "train.num_workers=0",
                                         "train.log_every=1", "train.sample_every=1000", "train.checkpoint_every=2",
                                         "train.max_steps=1000"])
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=cap_memory)
    try:
        while not (run / "checkpoints" / "step_0000004.pt").exists():
            if proc.poll() is not None or time.perf_counter() - started > 300:
                raise TimeoutError
            time.sleep(0.2)
        os.kill(rank_pid(run, 1), signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    except (TimeoutError, subprocess.TimeoutExpired, TypeError):
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        return Outcome(None, "", err, time.perf_counter() - started)
    ours = err.split("Traceback (most recent call last)")[0]  # the launcher's ChildFailedError report follows
    traceback = "[rank0]: Traceback" in err
    return Outcome(1 if traceback else 2, "", ours + ("Traceback" if traceback else ""),
                   time.perf_counter() - started)


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def area15(w: Path) -> list[Probe]:
    from format_files import write_cifar10

    root = w / "lenient"
    probes = []
    for protocol in (0, 2, 5):
        src = root / f"resaved{protocol}" / "cifar-10-batches-py"
        write_cifar10(src)
        for name in ("data_batch_1", "batches.meta"):
            obj = pickle.loads((src / name).read_bytes(), encoding="bytes")  # the CIFAR page's Python 3 reader
            (src / name).write_bytes(pickle.dumps(obj, protocol=protocol))
        probes.append(Probe("15 misleading or lenient", f"CIFAR-10 batch re-saved by Python 3 at protocol {protocol}",
                            prepare(src, root / f"o{protocol}"), succeeds("packed 30 images of 10 classes")))
        src = root / f"evil{protocol}" / "cifar-10-batches-py"
        write_cifar10(src)
        marker = root / f"pwned{protocol}"
        (src / "data_batch_3").write_bytes(pickle.dumps({"data": _RunsCode(marker), "labels": [0] * 6},
                                                        protocol=protocol))
        probes.append(Probe("15 misleading or lenient", f"a pickle that runs code, protocol {protocol}",
                            prepare(src, root / f"oe{protocol}"),
                            one_line_error("refused", "nothing in it was run", absent=(marker,))))
    src = root / "long" / "cifar-10-batches-bin"
    write_cifar10(src, binary=True)
    with open(src / "data_batch_4.bin", "ab") as f:
        f.write(bytes(3073))
    probes.append(Probe("15 misleading or lenient", "a binary CIFAR-10 batch one record long: the long one named",
                        prepare(src, root / "olong"), one_line_error("data_batch_4.bin: 7 images")))
    src = root / "double" / "cifar-10-batches-py"
    write_cifar10(src)
    (src / "data_batch_1").write_bytes(pickle.dumps(["not", "a", "dict"], protocol=2))
    probes.append(Probe("15 misleading or lenient", "the dataset's name in a message has one space",
                        prepare(src, root / "odouble"), one_line_error("CIFAR-10 batch")))
    probes.append(Probe("15 misleading or lenient", "--dry-run --batch-size 100000000 --memory 1GiB",
                        py("train.py") + ["--dry-run", "--batch-size", "100000000", "--memory", "1GiB",
                                          *[a for o in TINY for a in ("--set", o)]],
                        lambda o: "says even 1 image does not fit" if "even 1 image" in o.out + o.err else (
                            None if o.rc in (0, 2) and "Traceback" not in o.err else f"exit {o.rc}"),
                        other_branch=True))
    probes.append(Probe("15 misleading or lenient", "train.augment_policy with train.augment none",
                        py("train.py") + ["--dry-run", "--memory", "1GiB", "--set", "train.augment_policy=color",
                                          *[a for o in TINY for a in ("--set", o)]],
                        lambda o: None if "augment_policy" in o.out + o.err else "ignored without a note",
                        other_branch=True))
    return probes


# --------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--areas", default="9,10,11,12,13,14,15", help="comma-separated area numbers")
    parser.add_argument("--skip-slow", action="store_true", help="leave out the 2-process kill probe")
    parser.add_argument("--keep", action="store_true", help="keep the temp tree (its path is printed)")
    args = parser.parse_args()
    wanted = {a.strip() for a in args.areas.split(",")}
    work = Path(tempfile.mkdtemp(prefix="sagan-faults-"))
    builders = {"9": area9, "10": area10, "11": area11, "12": area12, "13": area13,
                "14": lambda w: area14(w, not args.skip_slow), "15": area15}
    started = time.perf_counter()
    try:
        probes = [p for key, build in builders.items() if key in wanted for p in build(work)]
        print(f"{len(probes)} probes in {work} (cap {MEMORY_CAP >> 30} GiB of address space, {TIMEOUT:.0f} s each)\n")
        results: dict[str, list[tuple[Probe, str | None]]] = {}
        for probe in probes:
            outcome = probe.run(probe) if probe.run else run_command(probe, work)
            why = probe.holds(outcome)
            results.setdefault(probe.area, []).append((probe, why))
            mark = "held  " if why is None else "FAILED"
            tag = " [fix on another branch]" if probe.other_branch else ""
            print(f"  {mark} {probe.area}: {probe.name}{tag} ({outcome.seconds:.1f} s)"
                  + ("" if why is None else f"\n         {why}"), flush=True)
        print(f"\n{'area':<28} held failed")
        held_all = failed_all = other_failed = 0
        for area, rows in results.items():
            held = sum(why is None for _, why in rows)
            failed = len(rows) - held
            other = sum(why is not None and p.other_branch for p, why in rows)
            held_all, failed_all, other_failed = held_all + held, failed_all + failed, other_failed + other
            note = f"  ({other} with the fix on another branch)" if other else ""
            print(f"{area:<28} {held:>4} {failed:>6}{note}")
        print(f"{'total':<28} {held_all:>4} {failed_all:>6}  of {held_all + failed_all} probes, "
              f"{time.perf_counter() - started:.0f} s")
        if other_failed:
            print(f"({other_failed} failed probe(s) are fixed on another branch of issue 26, not merged here)")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
