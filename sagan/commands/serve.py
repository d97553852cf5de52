"""``sagan-serve`` / ``python -m sagan.commands.serve``: the web page of a trained generator on this machine."""

from __future__ import annotations

import os

import click

from ..errors import report_user_errors
from ..serve.app import launch, model_page, require_gradio
from ..serve.model import load_served
from .options import Command, device_option, parse_device


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--checkpoint", required=True, metavar="RUN|CKPT|HF_FOLDER",
              help="A run folder (its checkpoints/last.pt), a .pt checkpoint, or a folder of sagan-export --format hf.")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 opens the page to other machines.")
@device_option
@report_user_errors
def main(checkpoint, port, host, device):
    """Explore a generator in the browser: grids, interpolations, attention maps.

    \b
    Examples:
      sagan-serve --checkpoint runs/00000-demo                  # then open http://127.0.0.1:7860
      sagan-serve --checkpoint export/demo-hf --port 8000 --device cpu
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine unless asked
    require_gradio()
    dev = parse_device(device)
    if dev is None:
        import torch

        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_served(checkpoint, dev)  # a bad --checkpoint is one line here, before any server starts
    click.echo(f"serving {model.describe()} on {dev} at http://{host}:{port}", err=True)
    launch(model_page(model), host=host, port=port)


if __name__ == "__main__":
    main()
