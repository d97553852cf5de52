"""``sagan-serve``: a local web page (Gradio) to explore a trained generator, and the Hugging Face Space
files that run the same page from an exported folder (:mod:`sagan.serve.space`). The command line is
:mod:`sagan.commands.serve`.

Importing this package needs no gradio; building the page does (the ``[serve]`` extra).
"""

from .model import MAX_IMAGES, ServedModel  # noqa: F401
