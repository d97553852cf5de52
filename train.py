#!/usr/bin/env python
"""Train a SAGAN: `python train.py --help` (the command lives in sagan/commands/train.py)."""

from sagan.commands.train import main

if __name__ == "__main__":
    main(prog_name="train.py")
