"""Helpers for the book's notebooks only: display defaults, prompt printing, text tables.

Nothing in the library imports this module; ``import steerlib`` does not load it (the
chapters do, as ``st.book``). What a chapter computes lives in the library; what is here
only shapes how a page shows it.
"""
from __future__ import annotations

import html
import importlib
import sys
import warnings
from types import ModuleType

import matplotlib as mpl
import pandas as pd

from steerlib.config import Preset, presets
from steerlib.model.backbone import Backbone
from steerlib.model.template import Rendered
from steerlib.paths import project_root


def setup() -> Preset:
    """Display defaults for a chapter; returns the preset of ``$STEERLIB_PRESET`` ("cpu" unless told).

    Quiets the widget warning (text progress bars are fine), keeps pandas tables to the
    page width, and sizes figures for the book's text column (about 7 inches at 110 dpi),
    so a figure is never shrunk until its labels are unreadable.
    """
    warnings.filterwarnings("ignore", message="IProgress not found")
    pd.set_option("display.width", 110)
    pd.set_option("display.max_colwidth", 80)
    mpl.rcParams.update({"figure.dpi": 110, "figure.figsize": (7, 3.6), "axes.titlesize": 11,
                         "axes.labelsize": 10, "xtick.labelsize": 9, "ytick.labelsize": 9, "legend.fontsize": 8})
    preset = presets.get()
    print(f"preset {preset.name!r}: model {preset.model or 'embedded SmolLM2-135M-Instruct'}")
    return preset


def exercises(chapter: int) -> ModuleType:
    """The solutions of a chapter's exercises (``notebooks/exercises/ch<chapter>.py``), imported
    from the checkout, also in Colab's clone; each chapter's last cells show and run them."""
    folder = project_root() / "notebooks"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return importlib.import_module(f"exercises.ch{chapter}")


def summary(lines: list[str], preset: Preset, about: str = "the numbers say nothing about the method.") -> None:
    """Show a chapter's computed summary (markdown bullets). On the smoke preset's tiny random
    model, end it by saying what its numbers are worth (``about``)."""
    from IPython.display import Markdown, display

    if preset.model == "tiny":
        lines = [*lines, f"- This run used the tiny random model of the smoke preset: {about}"]
    display(Markdown("\n".join(lines)))


def show(bb: Backbone, rendered: Rendered) -> str:
    """A rendered prompt as text, each steering slot written ``[<name> vector]`` instead of
    its placeholder id (the model reads the learned vector there, not any text)."""
    parts, last = [], 0
    for pos, name in rendered.slots:
        parts += [bb.tokenizer.decode(rendered.ids[last:pos]), f"[<{name}> vector]"]
        last = pos + 1
    return "".join(parts + [bb.tokenizer.decode(rendered.ids[last:])])


def text_table(table: pd.DataFrame):
    """A table of free text (answers) as HTML: line breaks kept as breaks, not shown as
    ``\\n``, long cells wrapped, and no index column."""
    from IPython.display import HTML

    cells = table.map(lambda v: html.escape(v).replace("\n", "<br>") if isinstance(v, str) else v)
    return HTML(cells.to_html(index=False, escape=False, classes="text-table"))
