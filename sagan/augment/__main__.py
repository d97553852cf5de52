"""``python -m sagan.augment``."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="python -m sagan.augment")
