#!/usr/bin/env python
"""IS / FID / intra-FID: `python evaluate.py --help` (the commands live in sagan/commands/evaluate.py)."""

from sagan.commands.evaluate import main

if __name__ == "__main__":
    main(prog_name="evaluate.py")
