"""Per-place pass rates of a behavior by where its token stands, from records (no
generation).

In a composition ``<b1><and><b2>`` each behavior's token (or instruction) stands in a
place of the ordering: place 1 right after the question, place 2 after ``<b1><and>``
(or ``<b1>``, or the first instruction). From generation records alone, this module
splits each behavior's own verdict by that place (``places``, ``slot_rates``), lays the
rates out as "first / second" per method (``slot_pivot``), and sets our order variance
beside the paper's (``order_variance``); ``slot_lines`` writes both as markdown for the
capable-pairs report (``capable_pairs.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from steerlib.evaluation.records import unique_records
from steerlib.evaluation.stats import metrics, wilson
from steerlib.tasks import behaviors as B

PAPER_ORDER_VARIANCE = {
    "instruction": 7.8,
    "concat": 25.3,
    "native_and": 12.9,
    "and": 5.3,
    "hybrid": 4.4,
}
"""The paper's order variance (points) of 2-behavior compositions on Qwen3-8B (its
Table 1)."""


def places(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (generation, behavior): ``method``, ``k``, ``combo``, ``behavior``,
    its ``place`` in the ordering (1 = right after the question) and its own verdict
    ``ok``."""
    rows = [
        {
            "method": r["method"],
            "k": r["k"],
            "combo": r["combo"],
            "behavior": name,
            "place": i + 1,
            "ok": bool(r["verdicts"][name]),
        }
        for _, r in unique_records(records).iterrows()
        if r["k"] > 1
        for i, name in enumerate(r["order"].split("+"))
    ]
    return pd.DataFrame(
        rows, columns=["method", "k", "combo", "behavior", "place", "ok"]
    )


def _rate(g: pd.Series) -> dict:
    k, n = int(g.sum()), len(g)
    lo, hi = wilson(k, n)
    return {"rate": 100 * k / n, "lo": 100 * lo, "hi": 100 * hi, "n": n}


def slot_rates(records: pd.DataFrame, pool_categories: bool = True) -> pd.DataFrame:
    """Pass rate (%) of each method's behaviors in first and second place, with Wilson
    intervals, the order gap (first - second, points) and the ratio second / first.

    ``pool_categories`` adds one row per category with more than one behavior in the
    records ("language (all)"): a language's place matters, not which language it is.
    """
    at = places(records)
    at = at[at["k"] == 2]
    groups = [(m, b, g) for (m, b), g in at.groupby(["method", "behavior"], sort=False)]
    if pool_categories:
        at = at.assign(
            category=[
                B.get(b).category if b in B.names() else b for b in at["behavior"]
            ]
        )
        for (m, cat), g in at.groupby(["method", "category"], sort=False):
            if g["behavior"].nunique() > 1:
                groups.append((m, f"{cat} (all)", g))
    rows = []
    for method, behavior, g in groups:
        row = {"method": method, "behavior": behavior}
        for place, label in ((1, "first"), (2, "second")):
            sub = g.loc[g["place"] == place, "ok"]
            if len(sub):
                row.update(
                    {
                        f"{label}{'' if key == 'rate' else '_' + key}": v
                        for key, v in _rate(sub).items()
                    }
                )
        rows.append(row)
    table = pd.DataFrame(rows)
    table["gap"] = table["first"] - table["second"]
    table["ratio"] = table["second"] / table["first"].where(table["first"] > 0)
    return table


def slot_pivot(table: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """``slot_rates`` as issue 24's table: one row per behavior, "first / second" per
    method."""
    table = table[table["method"].isin(methods)]
    cells = table.assign(
        cell=[f"{a:.0f} / {b:.0f}" for a, b in zip(table["first"], table["second"])]
    )
    wide = cells.pivot(index="behavior", columns="method", values="cell")
    order = list(dict.fromkeys(table["behavior"]))
    return (
        wide.reindex(index=order, columns=[m for m in methods if m in wide.columns])
        .reset_index()
        .rename_axis(columns=None)
    )


def slot_lines(
    records: pd.DataFrame,
    methods: Sequence[str] = (
        "instruction",
        "hybrid",
        "and",
        "concat",
        "native_and",
        "lora_dare",
    ),
) -> list[str]:
    """The per-place table and the order variance as markdown lines
    (``capable_pairs.md``)."""
    if not len(records):
        return []
    rates = slot_rates(records)
    ov = order_variance(records[records["method"].isin(methods)])
    return [
        "**Each behavior's own pass rate (%) by the place its token or instruction "
        "stands: first / second**",
        "",
        "First = right after the question, where stage 1 trains every token; second = "
        "after `<b1><and>` "
        "(or `<b1>`, or the first instruction). Intervals, gaps and ratios: "
        "`position.slot_rates`.",
        "",
        slot_pivot(rates, methods).to_markdown(index=False),
        "",
        "**Order variance (points; the largest gap between a pair's two orderings, "
        "mean over pairs), "
        "beside the paper's on Qwen3-8B**",
        "",
        dashes(ov.round(1)).to_markdown(index=False),
        "",
    ]


def dashes(table: pd.DataFrame) -> pd.DataFrame:
    """Missing cells as "–" (never "nan")."""
    return table.astype(object).where(table.notna(), "–")


def order_variance(records: pd.DataFrame) -> pd.DataFrame:
    """Per method and split: our order variance (points, as the paper defines it: the
    largest gap between a combination's orderings, averaged over combinations) with its
    bootstrap interval, beside the paper's figure for that method."""
    table = metrics(records)[
        ["method", "split", "order_var", "ov_lo", "ov_hi", "combos", "n"]
    ]
    return table.assign(paper=[PAPER_ORDER_VARIANCE.get(m) for m in table["method"]])
