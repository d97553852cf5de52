#!/usr/bin/env python
"""Train a SAGAN: `python train.py --help` (the command lives in sagan/scripts/train.py)."""

from sagan.scripts.train import main

if __name__ == "__main__":
    main(prog_name="train.py")
