"""The Hugging Face Space files of an ``hf`` export: ``app.py`` and ``requirements.txt`` beside the
weights, so that the folder, uploaded as a Space with the Gradio SDK (or run with ``python app.py``),
shows the page of ``sagan-serve`` for its generator.

Kept free of gradio imports: the exporter writes these files without the ``[serve]`` extra.
"""

from __future__ import annotations

from pathlib import Path

from ..io import write_text_atomic

APP_NAME, REQUIREMENTS_NAME = "app.py", "requirements.txt"
SPACE_FILES = (APP_NAME, REQUIREMENTS_NAME)

APP = '''"""The web page of this SAGAN generator (sagan-serve), as a Hugging Face Space (Gradio SDK).

Locally: pip install -r requirements.txt && python app.py  (then open http://127.0.0.1:7860)
"""

import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from sagan.serve.app import build_app, theme  # noqa: E402

demo = build_app(Path(__file__).resolve().parent, device="cuda" if os.environ.get("SAGAN_DEVICE") == "cuda" else "cpu")

if __name__ == "__main__":
    # a Space sets GRADIO_SERVER_NAME=0.0.0.0; elsewhere the page listens on 127.0.0.1 only
    demo.launch(theme=theme())
'''

# sagan itself: this project's package (install from its repository if it is not on your package index)
REQUIREMENTS = """sagan[serve,hub]
torch
gradio>=6.0
huggingface_hub>=0.23
safetensors>=0.4
"""


def write_space_files(folder: str | Path) -> None:
    """``app.py`` and ``requirements.txt`` into an export folder."""
    folder = Path(folder)
    write_text_atomic(folder / APP_NAME, APP)
    write_text_atomic(folder / REQUIREMENTS_NAME, REQUIREMENTS)


def space_front_matter() -> list[str]:
    """Model-card metadata a Space reads (the Gradio SDK and its entry point); a model repo ignores it."""
    return ["sdk: gradio", "app_file: app.py"]


def space_card_section() -> list[str]:
    """The model card's lines on running the page."""
    return [
        "## Explore it in the browser", "",
        "This folder holds `app.py` and `requirements.txt`: the web page of `sagan-serve` (a grid per class "
        "and seed, truncation, interpolations, attention maps, PNG download) for this generator.", "",
        "```bash",
        "pip install -r requirements.txt && python app.py   # http://127.0.0.1:7860",
        "sagan-serve --checkpoint .                          # the same page, with sagan installed",
        "```", "",
        "As a Hugging Face Space: create a Space with the Gradio SDK and upload this folder to it "
        "(`huggingface-cli upload --repo-type space user/name .`); the card's `sdk: gradio` and "
        "`app_file: app.py` tell the Space what to run. If `sagan` is not on your package index, replace "
        "its line in `requirements.txt` by `sagan[serve,hub] @ git+https://...` (the repository you got it from). "
        "`SAGAN_DEVICE=cuda` in the Space's settings draws on its GPU.",
        "",
    ]
