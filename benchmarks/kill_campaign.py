#!/usr/bin/env python
"""kill -9 campaign: a training run with evaluations, killed at random moments again and again (each kill
lands after the attempt's start-up, past step 4) and resumed with ``--resume RUN``, must end bit-identical to
a straight run of the same config: ``last.pt`` and ``best.pt`` (every tensor and field but the wall time),
``metrics.jsonl`` (every field but the wall times), and one TensorBoard events file.

The run is the demo preset with narrow networks on a 32-image demo set, FID/IS every 4 steps on 10 samples
with an Inception of calibrated random weights (the tests' file) and checkpoints every 4 steps (an
evaluation's best.pt then links the checkpoint of the same step: the kill window between the two is
covered). ``--kills 20`` is the issue's campaign; the default is a quick 5.

    python benchmarks/kill_campaign.py            # ~2 min on 2 cores
    python benchmarks/kill_campaign.py --kills 20 # ~6 min
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

OVERRIDES = ["model.g_ch=16", "model.d_ch=16", "data.demo_size=32", "train.batch_size=8", "train.log_every=1",
             "train.num_workers=0", "train.sample_every=5", "train.checkpoint_every=4", "train.keep_checkpoints=3",
             "train.fid_every=4", "train.fid_num_samples=10", "train.eval_metrics=[fid,is]"]
STEP_LINE = re.compile(r"^step +(\d+) \|", re.M)


def setup(work: Path) -> tuple[Path, Path]:
    """Random calibrated Inception weights (as the tests build them) and the demo set's reference."""
    from metrics_utils import calibrated_inception_state, save_state

    from sagan.config import load_config
    from sagan.experiments.runner import ensure_reference
    from sagan.training import make_accelerator

    weights = save_state(calibrated_inception_state(seed=0), work / "random_inception.pth")
    cfg = load_config("demo", overrides=OVERRIDES)
    ref = ensure_reference(work / "ref", cfg, str(weights), make_accelerator("no"))
    return weights, Path(ref)


def command(run: Path, resume: bool, steps: int, weights: Path, ref: Path) -> list[str]:
    sets = [a for o in OVERRIDES + [f"data.ref_stats={ref}"] for a in ("--set", o)]
    where = ["--resume", str(run)] if resume else ["--outdir", str(run)]
    return [sys.executable, str(REPO / "train.py"), "--no-progress", *sets, *where, "--max-steps", str(steps),
            "--inception-weights", str(weights)]


def steps_logged(run: Path) -> list[int]:
    log = run / "log.txt"
    return [int(m) for m in STEP_LINE.findall(log.read_text(errors="replace"))] if log.is_file() else []


def attempt(cmd: list[str], run: Path, rng: random.Random, max_delay: float, kill: bool) -> tuple[bool, int]:
    """One trainer process; killed with SIGKILL at a random moment once it has logged a random step past
    step 4 and past its own start (1-4 steps past the last one logged: start-up is over, and the run moves on
    between kills). Returns (killed, the last step it logged)."""
    before = len(steps_logged(run))
    start = (steps_logged(run) or [0])[-1]
    target = rng.randint(max(5, start + 1), max(5, start + 1) + 3)
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    if not kill:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"the final attempt failed ({proc.returncode}): {err[-2000:]}")
        return False, steps_logged(run)[-1]
    while proc.poll() is None:
        new = steps_logged(run)[before:]
        if new and new[-1] >= target:
            time.sleep(rng.uniform(0, max_delay))
            break
        time.sleep(0.02)
    if proc.poll() is not None:  # reached max_steps before the kill
        if proc.returncode != 0:
            raise SystemExit(f"an attempt failed ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        return False, steps_logged(run)[-1]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True, steps_logged(run)[-1]


def _same(a, b, where: str, diffs: list[str]) -> None:
    import torch

    if torch.is_tensor(a) or torch.is_tensor(b):
        if not (torch.is_tensor(a) and torch.is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape
                and torch.equal(a, b)):
            diffs.append(where)
    elif isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            _same(a.get(k), b.get(k), f"{where}.{k}", diffs)
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]", diffs)
    elif a != b:
        diffs.append(where)


def compare(straight: Path, killed: Path) -> list[str]:
    """What differs between the two runs (empty: bit-identical but for wall times)."""
    import torch

    diffs: list[str] = []
    for name in ("last.pt", "best.pt"):
        a, b = (torch.load(r / "checkpoints" / name, map_location="cpu", weights_only=True) for r in (straight, killed))
        for c in (a, b):
            c.get("meta", {}).pop("time", None)
        _same(a, b, name, diffs)
    from sagan.metrics.history import read_records

    def plain(run):
        return [{k: v for k, v in r.items() if k not in ("time", "wall_s")} for r in read_records(run / "metrics.jsonl")]

    _same(plain(straight), plain(killed), "metrics.jsonl", diffs)
    events = len(list(killed.glob("events.out.tfevents.*")))
    if events != 1:
        diffs.append(f"{events} TensorBoard events files")
    return diffs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=5, help="kill -9 count (the issue's campaign: 20)")
    ap.add_argument("--steps", type=int, default=None, help="train.max_steps [default: 12 + 4 x kills]")
    ap.add_argument("--max-delay", type=float, default=1.0, help="kill within this many seconds after the target step")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    ap.add_argument("--workdir", type=Path, default=None, help="where the runs go [default: a temp folder]")
    args = ap.parse_args()
    steps = args.steps or 12 + 4 * args.kills
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kill_campaign."))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    t0 = time.time()
    weights, ref = setup(work)
    straight, killed = work / "straight", work / "killed"
    attempt(command(straight, False, steps, weights, ref), straight, rng, 0, kill=False)
    t_straight = time.time() - t0
    kills, at = 0, []
    while kills < args.kills:
        did, last = attempt(command(killed, killed.exists(), steps, weights, ref), killed, rng, args.max_delay, kill=True)
        if not did:
            break
        kills += 1
        at.append(last)
    if not (killed / "checkpoints" / "last.pt").is_file() or torch_step(killed) < steps:
        attempt(command(killed, True, steps, weights, ref), killed, rng, 0, kill=False)
    diffs = compare(straight, killed)
    result = {"kills": kills, "killed_after_step": at, "max_steps": steps, "identical": not diffs,
              "differences": diffs[:20], "seconds": round(time.time() - t0, 1),
              "straight_run_seconds": round(t_straight, 1), "workdir": str(work)}
    print(json.dumps(result, indent=1))
    return 0 if not diffs else 1


def torch_step(run: Path) -> int:
    import torch

    return torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True, mmap=True)["step"]


if __name__ == "__main__":
    sys.exit(main())
