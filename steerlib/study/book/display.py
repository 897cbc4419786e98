"""How a chapter shows things: display defaults, computed summaries, rendered prompts
and tables of free text."""

from __future__ import annotations

import html
import warnings

import matplotlib as mpl
import pandas as pd
from IPython.display import HTML, Markdown, display

from steerlib.model.backbone import Backbone
from steerlib.model.template import Rendered
from steerlib.preset import Preset
from steerlib.presets import presets
from steerlib.study.book.formats import METHOD_NAMES, PAGE_METHODS, clip


def setup() -> Preset:
    """Display defaults for a chapter; returns the preset of ``$STEERLIB_PRESET``
    ("cpu" unless told).

    Quiets the widget warning (text progress bars are fine), keeps pandas tables to the
    page width, and sizes figures for the book's text column (about 7 inches at 110
    dpi), so a figure is never shrunk until its labels are unreadable.
    """
    warnings.filterwarnings("ignore", message="IProgress not found")
    pd.set_option("display.width", 110)
    pd.set_option("display.max_colwidth", 80)
    mpl.rcParams.update(
        {
            "figure.dpi": 110,
            "figure.figsize": (7, 3.6),
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "xtick.labelsize": 9,
            "ytick.labelsize": 9,
            "legend.fontsize": 8,
        }
    )
    preset = presets.get()
    print(
        f"preset {preset.name!r}: model "
        f"{preset.model or 'embedded SmolLM2-135M-Instruct'}"
    )
    return preset


def summary(
    lines: list[str],
    preset: Preset,
    about: str = "the numbers say nothing about the method.",
) -> None:
    """Show a chapter's computed summary (markdown bullets). On the smoke preset's tiny
    random model, end it by saying what its numbers are worth (``about``)."""
    if preset.model == "tiny":
        lines = [
            *lines,
            f"- This run used the tiny random model of the smoke preset: {about}",
        ]
    display(Markdown("\n".join(lines)))


def show(bb: Backbone, rendered: Rendered) -> str:
    """A rendered prompt as text, each steering slot written ``[<name> vector]``
    instead of its placeholder id (the model reads the learned vector there, not any
    text)."""
    parts, last = [], 0
    for pos, name in rendered.slots:
        parts += [bb.tokenizer.decode(rendered.ids[last:pos]), f"[<{name}> vector]"]
        last = pos + 1
    return "".join(parts + [bb.tokenizer.decode(rendered.ids[last:])])


def text_table(table: pd.DataFrame):
    """A table of free text (answers) as HTML: line breaks kept as breaks, not shown as
    ``\\n``, long cells wrapped, and no index column."""
    cells = table.map(
        lambda v: html.escape(v).replace("\n", "<br>") if isinstance(v, str) else v
    )
    return HTML(cells.to_html(index=False, escape=False, classes="text-table"))


def answers_table(
    records: pd.DataFrame,
    order: str,
    prompt_ids=(0,),
    limit: int = 200,
    methods=PAGE_METHODS,
):
    """What each method wrote for one ordering of a pair: verdicts first, answers cut at
    ``limit`` characters (as HTML, so line breaks do not show as ``\\n``)."""
    shown = records[
        (records["order"] == order)
        & records["prompt_id"].isin(prompt_ids)
        & records["method"].isin(methods)
    ].copy()
    shown["rank"] = shown["method"].map({m: i for i, m in enumerate(methods)})
    shown = shown.sort_values(["prompt_id", "rank"])
    for q in dict.fromkeys(shown["prompt"]):
        display(Markdown(f"Question: *{clip(q, 200)}*; ordering `{order}`"))
    return text_table(
        pd.DataFrame(
            {
                "method": [METHOD_NAMES.get(m, m) for m in shown["method"]],
                "verdicts": [
                    ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in d.items())
                    for d in shown["verdicts"]
                ],
                "answer (first 200 characters)": [
                    clip(t, limit) for t in shown["text"]
                ],
            }
        )
    )
