"""The kill -9 campaign of benchmarks/kill_campaign.py, short: random kills past step 4 of a run with
evaluations, each resumed, end bit-identical to a straight run (last.pt, best.pt, metrics.jsonl)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_random_kill_9_then_resume_ends_bit_identical_to_a_straight_run(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "kill_campaign.py"), "--kills", "3",
                           "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=1800)
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert proc.returncode == 0 and result["identical"], result
    assert result["kills"] == 3 and all(s > 4 for s in result["killed_after_step"])
