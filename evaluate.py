#!/usr/bin/env python
"""IS / FID / intra-FID: `python evaluate.py --help` (the commands live in sagan/scripts/evaluate.py)."""

from sagan.scripts.evaluate import main

if __name__ == "__main__":
    main(prog_name="evaluate.py")
