"""The book's helpers: what a chapter calls to show what the library computed.

A chapter reads ``st.book.<name>``; each module here has one job:

* ``display``: display defaults, summaries, rendered prompts, tables of free text;
* ``formats``: the method names and number formats every page shares;
* ``headline``: the headline table, its caveats and ``results/<preset>/headline.md``;
* ``pairs``: chapter 2's tables (capable pairs, the paper's protocol);
* ``ablation_tables``: chapter 3's tables and conclusion;
* ``exercises``: the chapters' exercises and their checker.

``import steerlib`` does not load this package, and nothing in the library below the
book imports it: what a chapter computes lives in the library, what is here only shapes
how a page shows it (the rule for chapters and helpers is in the README).
"""

from steerlib.study.book.ablation_tables import (
    INIT_NAMES,
    ablation_conclusion,
    ablation_table,
    paper_table,
    setting_name,
)
from steerlib.study.book.display import (
    answers_table,
    setup,
    show,
    summary,
    text_table,
)
from steerlib.study.book.exercises import (
    check,
    exercises,
)
from steerlib.study.book.formats import (
    METHOD_NAMES,
    PAGE_METHODS,
    clip,
    interval,
    p_phrase,
    p_text,
    split_label,
)
from steerlib.study.book.headline import (
    HEADLINE_METHODS,
    caveat_lines,
    caveats,
    headline,
    headline_counts,
    headline_markdown,
    show_caveats,
    show_headline,
    write_headline,
)
from steerlib.study.book.pairs import (
    MIN_EXPECTED,
    capable_answer,
    capable_summary,
    capable_table,
    expected_joint,
    protocol_tests,
    retention_table,
    tests_table,
    training_line,
    verdict,
)

__all__ = [
    "METHOD_NAMES",
    "PAGE_METHODS",
    "p_text",
    "p_phrase",
    "interval",
    "clip",
    "split_label",
    "setup",
    "summary",
    "show",
    "text_table",
    "answers_table",
    "HEADLINE_METHODS",
    "headline",
    "headline_counts",
    "caveats",
    "caveat_lines",
    "show_caveats",
    "headline_markdown",
    "write_headline",
    "show_headline",
    "MIN_EXPECTED",
    "expected_joint",
    "capable_table",
    "capable_summary",
    "tests_table",
    "retention_table",
    "verdict",
    "capable_answer",
    "protocol_tests",
    "training_line",
    "INIT_NAMES",
    "setting_name",
    "ablation_table",
    "ablation_conclusion",
    "paper_table",
    "exercises",
    "check",
]
