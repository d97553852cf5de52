"""The Gradio page: pick classes, a seed, a number of images, a truncation, the EMA or raw generator and
the BN statistics; see the grid, an interpolation strip between two seeds and two classes, or the
attention maps of a query point; download what is shown as a PNG.

Every answer goes through :class:`~sagan.serve.model.ServedModel`; a bad input or a model that cannot
be loaded is a message on the page (``#message``), never a traceback. The PNGs offered for download are
written into a temporary folder of this process, never next to the checkpoint.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from ..errors import UserError, one_line
from ..sampling.bn_stats import BN_MODES
from ..sampling.viz import save_png
from .model import EMA, MAX_IMAGES, MAX_STEPS, Request, ServedModel, load_served

SERVE_EXTRA = 'pip install -e ".[serve]"'
# system fonts: the default theme would ask Google Fonts for its own, and the page works offline
FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]


def require_gradio():
    try:
        import gradio
    except ImportError:
        raise UserError(f"the web page needs gradio, which is not installed; install it with {SERVE_EXTRA}") from None
    return gradio


def theme():
    gr = require_gradio()
    return gr.themes.Default(font=FONTS, font_mono=["ui-monospace", "monospace"])


class Answers:
    """The page's handlers: each returns (figure, message, download path) and never raises."""

    def __init__(self, model: ServedModel):
        self.model = model
        self.folder = Path(tempfile.mkdtemp(prefix="sagan-serve-"))
        self.count = 0

    def _answer(self, draw, what: str):
        started = time.perf_counter()
        try:
            figure = draw()
        except UserError as e:
            return None, f"**error:** {e}", None
        except Exception as e:  # noqa: BLE001  (anything else: one line here and on the console, no traceback)
            print(f"sagan-serve: {what} failed: {type(e).__name__}: {one_line(e, 200)}", file=sys.stderr)
            return None, f"**error:** drawing the {what} failed ({type(e).__name__}: {one_line(e, 160)})", None
        self.count += 1
        path = save_png(figure, self.folder / f"sagan-{what}-{self.count:05d}.png", durable=False)
        took = time.perf_counter() - started
        return figure, f"{what}: {figure.width}x{figure.height} px in {took:.2f} s", str(path)

    def grid(self, classes, seed, per_class, truncation, generator, bn_stats):
        r = Request(classes, seed, per_class, truncation, generator, bn_stats)
        return self._answer(lambda: self.model.grid(r), "grid")

    def strip(self, classes, seed, per_class, truncation, generator, bn_stats, seed_b, class_a, class_b, steps):
        r = Request(classes, seed, per_class, truncation, generator, bn_stats)
        return self._answer(lambda: self.model.strip(r, seed_b, class_a, class_b, steps), "interpolation")

    def attention(self, classes, seed, per_class, truncation, generator, bn_stats, row, col):
        r = Request(classes, seed, per_class, truncation, generator, bn_stats)
        return self._answer(lambda: self.model.attention(r, row, col), "attention")


def error_page(message: str):
    """The page of a model that could not be loaded: the message, nothing else."""
    gr = require_gradio()
    with gr.Blocks(title="sagan: cannot load the model", analytics_enabled=False) as page:
        gr.Markdown(f"**error:** {message}", elem_id="message")
    return page


def build_app(source: str | Path, device: str = "cpu"):
    """The page for ``source`` (a run folder, a checkpoint or an hf export folder)."""
    require_gradio()
    try:
        model = load_served(source, device)
    except UserError as e:
        return error_page(str(e))
    return model_page(model)


def model_page(model: ServedModel):
    gr = require_gradio()
    answers = Answers(model)
    conditional = model.num_classes > 0
    choices = model.class_choices()
    with gr.Blocks(title=f"SAGAN {model.name}", analytics_enabled=False) as page:
        gr.Markdown(f"## SAGAN generator: {model.describe()}")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                classes = gr.Dropdown(choices=choices, multiselect=True, allow_custom_value=True, label="Classes",
                                      info="rows of the grid; none: a spread over all classes", visible=conditional,
                                      elem_id="classes")
                if not conditional:
                    gr.Markdown("This model is unconditional: no classes to pick.")
                seed = gr.Number(value=0, label="Seed", elem_id="seed")
                per_class = gr.Number(value=8, label="Images per class", info=f"at most {MAX_IMAGES} images in all",
                                      elem_id="per_class")
                # text, not a number field: a browser sends an empty number field as 0, and "none" must stay empty
                truncation = gr.Textbox(value="", label="Truncation", info="redraw |z| > T (e.g. 0.5); empty: none",
                                        elem_id="truncation")
                generator = gr.Radio(model.generators, value=model.generators[0], label="Generator",
                                     elem_id="generator")
                bn_stats = gr.Radio(list(BN_MODES), value="running", label="BN statistics", elem_id="bn_stats")
                common = [classes, seed, per_class, truncation, generator, bn_stats]
                with gr.Tab("Grid"):
                    grid_button = gr.Button("Draw the grid", variant="primary", elem_id="draw_grid")
                with gr.Tab("Interpolation"):
                    seed_b = gr.Number(value=1, label="Second seed", elem_id="seed_b")
                    class_a = gr.Dropdown(choices=choices, value=0, label="From class", visible=conditional,
                                          allow_custom_value=True)
                    class_b = gr.Dropdown(choices=choices, value=min(1, max(model.num_classes - 1, 0)),
                                          label="To class", visible=conditional, allow_custom_value=True)
                    steps = gr.Number(value=8, label="Steps", info=f"2 to {MAX_STEPS}")
                    strip_button = gr.Button("Draw the strip", elem_id="draw_strip")
                with gr.Tab("Attention"):
                    row = gr.Slider(0, 1, value=0.5, step=0.01, label="Query row (fraction of the height)")
                    col = gr.Slider(0, 1, value=0.5, step=0.01, label="Query column (fraction of the width)")
                    attn_button = gr.Button("Draw the attention maps", elem_id="draw_attention",
                                            interactive=model.has_attention)
            with gr.Column(scale=2):
                message = gr.Markdown("", elem_id="message")
                figure = gr.Image(type="pil", format="png", label="Figure", interactive=False, elem_id="figure",
                                  buttons=[])
                download = gr.DownloadButton("Download PNG", elem_id="download")
        outputs = [figure, message, download]
        grid_button.click(answers.grid, common, outputs, api_name="grid")
        strip_button.click(answers.strip, common + [seed_b, class_a, class_b, steps], outputs, api_name="strip")
        attn_button.click(answers.attention, common + [row, col], outputs, api_name="attention")
    page.answers = answers
    return page


def launch(page, host: str = "127.0.0.1", port: int = 7860, **kwargs):
    """Serve the page (127.0.0.1 unless ``host`` says otherwise); nothing is shared through Gradio's servers."""
    return page.launch(server_name=host, server_port=port, share=False, theme=theme(), show_error=False,
                       footer_links=[], **kwargs)
