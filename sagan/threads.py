"""How many CPU threads torch's kernels use (``--threads N``, ``train.threads``; 0 = automatic) and how many
data workers a machine can carry.

torch starts one intra-op thread per core it may run on. On a machine whose cores other processes already
keep busy (a second job, a browser), those threads wait on each other at every parallel op: on 2 loaded cores
the demo's step took 4.2x as long with torch's 2 threads as with one (``benchmarks/threads.py``, side by side
in one run; ``benchmarks/RESULTS.md``). The automatic choice therefore leaves out the cores that
the 1-minute load average says are taken: ``threads = max(1, min(torch's default, round(cores - load)))``,
``load`` counted on this process's share of the machine's cores (the load average covers the whole machine,
a cpuset may give this process fewer cores). An idle machine keeps torch's default, so do runs that set
``OMP_NUM_THREADS`` (torch's own switch) or ``--threads N``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

AUTO = 0  # train.threads / --threads 0: choose from the cores and the load
OVERRIDE = "override with --threads N"


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str

    def note(self) -> str:
        """The one start-up line: what was chosen, why, how to choose otherwise."""
        return f"threads: {self.threads} ({self.reason}; {OVERRIDE})"


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask; all CPUs where the system has no such call)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def busy_cores(cores: int) -> float | None:
    """How many of ``cores`` other processes keep busy: the 1-minute load average, scaled to this process's
    share of the machine (None where the system has no load average)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    return load * cores / max(os.cpu_count() or cores, cores)


def _positive(text) -> int | None:
    try:
        n = int(text or "")
    except ValueError:
        return None
    return n if n >= 1 else None


def choose_threads(requested: int = AUTO, *, default: int | None = None, cores: int | None = None,
                   load: float | None = None, env=None) -> ThreadChoice:
    """The intra-op thread count: ``requested`` when > 0, ``OMP_NUM_THREADS`` when set, else torch's default
    less the cores that the load average says other processes use (module docstring)."""
    import torch

    if requested > 0:
        return ThreadChoice(requested, f"--threads {requested} / train.threads {requested}")
    env = os.environ if env is None else env
    from_env = _positive(env.get("OMP_NUM_THREADS"))
    if from_env is not None:
        return ThreadChoice(from_env, f"OMP_NUM_THREADS={from_env} in the environment")
    default = torch.get_num_threads() if default is None else default
    cores = usable_cores() if cores is None else cores
    load = busy_cores(cores) if load is None else load
    # processes of one launch on this machine (torchrun / accelerate launch set it) share its cores
    local = _positive(env.get("LOCAL_WORLD_SIZE")) or 1
    if load is None:
        load, seen = 0.0, "no load average on this system"
    else:
        seen = f"load average {load:.1f}"
    free = max(1, min(default, round((cores - load) / local)))
    if free >= default:
        return ThreadChoice(default, f"torch's default: {cores} core(s), {seen}")
    if load < 0.5:
        return ThreadChoice(free, f"{cores} core(s) shared by {local} processes of this launch")
    return ThreadChoice(free, f"other processes keep {load:.1f} of the {cores} cores busy (1-minute load average)"
                              f"{f', {local} processes of this launch share the rest' if local > 1 else ''}; "
                              f"torch's default {default} would make its threads wait on them")


def apply_threads(requested: int = AUTO, say: Callable[[str], None] | None = print,
                  always: bool = True) -> ThreadChoice:
    """Choose the thread count, set it for this process and for the processes it starts (``OMP_NUM_THREADS``:
    a spawned data or packing worker starts torch with it), and say it in one line (``always`` False: only
    when it differs from the count torch runs with now or was asked for)."""
    import torch

    global _chosen
    before = torch.get_num_threads()
    choice = _chosen = choose_threads(requested)
    torch.set_num_threads(choice.threads)
    os.environ["OMP_NUM_THREADS"] = str(choice.threads)
    if say is not None and (always or requested > 0 or choice.threads != before):
        say(choice.note())
    return choice


_chosen: ThreadChoice | None = None  # this process's choice (a command's start-up); None: torch's own


def chosen_note() -> str | None:
    """The start-up line of the choice this process made (for a training run's notes), None when none was made."""
    return _chosen.note() if _chosen is not None else None


def data_workers(requested: int, cores: int | None = None) -> tuple[int, str | None]:
    """``train.num_workers`` capped at the cores this process may use (more workers than cores only wait on
    each other; torch's DataLoader warns above that), and the note saying so (None when not capped). Each
    worker runs one thread (torch's DataLoader sets it in every worker)."""
    cores = usable_cores() if cores is None else cores
    if requested <= cores:
        return requested, None
    return cores, (f"note: train.num_workers {requested} capped to {cores}, the cores this process may use "
                   f"(more data workers than cores only wait on each other)")
