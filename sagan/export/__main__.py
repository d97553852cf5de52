"""``python -m sagan.export``."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="python -m sagan.export")
