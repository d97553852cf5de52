#!/usr/bin/env python
"""Draw grids, sample sets, interpolations and attention maps from a checkpoint (see --help)."""

from sagan.commands.sample import main

if __name__ == "__main__":
    main()
