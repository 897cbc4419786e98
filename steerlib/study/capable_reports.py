"""The capable-pairs study's tables: the pairs chosen on validation, the joint rates and
efficiency of every method on them, and the README's headline
(``steerlib.study.capable`` computes them; nothing here trains or generates; under
torchrun only rank 0 writes)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from steerlib import distributed
from steerlib.evaluation.stats import interval_cells
from steerlib.storage import write_text
from steerlib.study.reports import markdown_or_none
from steerlib.tasks.combos import split_of


def selection_lines(
    val_rates: pd.Series, selected: Sequence[tuple], threshold: float
) -> list[str]:
    """The capable-pairs report's head: which pairs were chosen, from which validation
    rates."""
    return [
        "Pairs chosen on validation questions (each behavior's token alone >= "
        f"{100 * threshold:.0f}%):",
        ", ".join(f"{a}+{b} ({split_of((a, b))})" for a, b in selected)
        or "none qualified",
        "",
        "Validation pass rate of each token alone (%): "
        + ", ".join(
            f"{n} {100 * r:.0f}"
            for n, r in val_rates.sort_values(ascending=False).items()
        ),
        "",
    ]


def capable_selection(
    out: Path, val_rates: pd.Series, selected: Sequence[tuple], threshold: float
) -> None:
    """``capable_pairs.md`` when no pair qualified: the selection alone."""
    distributed.main_only(
        write_text,
        out / "capable_pairs.md",
        "\n".join(selection_lines(val_rates, selected, threshold)),
    )


def capable_pairs(
    out: Path,
    report: dict[str, pd.DataFrame],
    val_rates: pd.Series,
    selected: Sequence[tuple],
    threshold: float,
    extra: Sequence[str] = (),
) -> None:
    """``capable_pairs.md`` (selection, joint rates and efficiency, McNemar tests,
    retention, then the ``extra`` lines) and ``capable_pairs.csv``,
    ``capable_retention.csv``, ``capable_tests.csv`` (the study's tables)."""
    table, ret, tests = report["summary"], report["retention"], report["tests"]
    for name, frame in (
        ("capable_pairs", table),
        ("capable_retention", ret),
        ("capable_tests", tests),
    ):
        distributed.main_only(
            write_text, out / f"{name}.csv", frame.to_csv(index=False)
        )
    cells = pd.DataFrame(
        {
            "method": table["method"],
            "split": table["split"],
            "joint": interval_cells(table, "joint", "joint_lo", "joint_hi"),
            "efficiency": interval_cells(
                table, "efficiency", "eff_lo", "eff_hi", digits=2, bound_digits=2
            ),
            "pairs": table["pairs"],
            "n": table["n"],
        }
    )
    lines = selection_lines(val_rates, selected, threshold) + [
        "**Joint pass rate (%) [95% Wilson] and efficiency [95% bootstrap over "
        "prompts]**",
        "",
        cells.to_markdown(index=False),
        "",
        "**Paired exact McNemar tests (same prompts and orderings)**",
        "",
        markdown_or_none(tests, {"a_rate": 1, "b_rate": 1, "p": 4}),
        "",
        "**Retention: each behavior inside its pairs vs alone (%)**",
        "",
        ret.round({"in_pair": 1, "alone": 1, "retention": 2}).to_markdown(index=False),
        "",
        *extra,
    ]
    distributed.main_only(write_text, out / "capable_pairs.md", "\n".join(lines))


README_METHODS = {
    "instruction": "instructions as text",
    "concat": "tokens side by side",
    "and": "tokens joined by `<and>`",
    "hybrid": "tokens and instructions",
}
"""The rows of the README's headline table, in order, and how the table names them."""


def capable_headline(table: pd.DataFrame) -> pd.DataFrame:
    """The README's headline: joint pass rate (%) [95% Wilson interval] on the seen and
    unseen capable pairs of ``README_METHODS``, from ``capable_pairs.csv``
    (tests/test_readme.py checks the README's table against it)."""
    rows = table.set_index("method")
    out = {"method": [README_METHODS[m] for m in README_METHODS]}
    for split, label in (("seen-2", "seen pairs"), ("unseen-2", "unseen pairs")):
        part = rows[rows["split"] == split].loc[list(README_METHODS)]
        out[f"{label} (n = {part['n'].iloc[0]})"] = interval_cells(
            part, "joint", "joint_lo", "joint_hi"
        )
    return pd.DataFrame(out)
