"""The position study's tables: the instruction filter, the search (every candidate's
selection score, configuration and cost) and the test run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from steerlib.evaluation.records import read_records, unique_records
from steerlib.evaluation.stats import wilson
from steerlib.model.layout import Layout
from steerlib.storage import write_text
from steerlib.study import capable
from steerlib.study.book.formats import p_text
from steerlib.study.position.candidates import displace_part, parse_candidate
from steerlib.study.position.runs import SELECTION, STAGE1_COSTS, read_costs
from steerlib.study.position.selection import (
    FILTER_QUESTIONS,
    INSTRUCTION_THRESHOLD,
    winner,
)
from steerlib.study.position.testrun import planned_comparisons
from steerlib.study.slots import dashes, order_variance, slot_pivot, slot_rates


def selection_table(records: pd.DataFrame) -> pd.DataFrame:
    """Per method on the selection set: the joint pass rate (%) with its Wilson
    interval, the language/length/sentence tokens' pass rates in first and second
    place, and the order gap: the search's table (selection metric: ``joint``)."""
    rows = []
    slots = slot_rates(records, pool_categories=False)
    for method, g in unique_records(records).groupby("method", sort=False):
        k, n = int(g["ok"].sum()), len(g)
        lo, hi = wilson(k, n)
        s = slots[slots["method"] == method]
        first = (s["first"] * s["first_n"]).sum() / s["first_n"].sum()
        second = (s["second"] * s["second_n"]).sum() / s["second_n"].sum()
        rows.append(
            {
                "candidate": method,
                "joint": 100 * k / n,
                "joint_lo": 100 * lo,
                "joint_hi": 100 * hi,
                "first": first,
                "second": second,
                "gap": first - second,
                "n": n,
            }
        )
    return (
        pd.DataFrame(rows)
        .sort_values("joint", ascending=False, kind="stable")
        .reset_index(drop=True)
    )


def search_table(records: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """``selection_table`` with each candidate's family, configuration and measured
    costs (a family-B candidate's training time includes its behaviors' stage-1
    runs)."""
    table = selection_table(records)
    costs = read_costs(folder)
    config = []
    for name in table["candidate"]:
        base, layout, train = parse_candidate(name)
        train = train or {}
        displace = train.get("displace", 0)
        stage2 = (
            f"T{train['temperature']:g} ce{train['ce_weight']:g}"
            if "temperature" in train
            else "shipped <and>"
            if base == "and"
            else "none"
        )
        seconds = [costs.get(name, {}).get("train_s")]
        if displace:
            seconds += costs.get(
                STAGE1_COSTS.format(displace_part(displace)), {}
            ).values()
        seconds = [s for s in seconds if s is not None]
        config.append(
            {
                "family": "B" if displace else "C" if train else "A",
                "method": base,
                "layout": layout.label,
                "stage1": f"displaced 0-{displace}" if displace else "shipped",
                "stage2": stage2,
                "train_s": sum(seconds) if seconds else None,
                "eval_s": costs.get(name, {}).get("eval_s"),
            }
        )
    return pd.concat([pd.DataFrame(config), table], axis=1)


def recorded_search(folder: Path) -> pd.DataFrame:
    """``search_table`` of every candidate whose selection records are in ``folder``."""
    files = sorted((folder / SELECTION).glob("*.jsonl"))
    if not files:
        return pd.DataFrame()
    records = pd.concat([read_records(f) for f in files], ignore_index=True)
    return search_table(records, folder)


def best_layout(folder: Path) -> Layout:
    """The family-A layout with the best selection metric (``winner`` among A only)."""
    search = recorded_search(folder)
    a = search[(search["family"] == "A") & (search["method"] == "and")]
    return parse_candidate(winner(a))[1]


def write_search(folder: Path, search: pd.DataFrame) -> None:
    """``search.csv`` (every candidate's config, selection score with interval, cost)
    and its markdown."""
    write_text(folder / "search.csv", search.round(2).to_csv(index=False))
    lines = [
        "# The search: every candidate on the selection set (validation only)",
        "",
        "Selection metric: joint pass rate (%) on 96 train questions no target used, "
        "each asking one "
        "kept seen pair in both orderings (PLAN.md). `first`/`second`: the behaviors' "
        "own pass rates by "
        "the place their token stands; `gap` = first - second.",
        "",
        search.round(1).to_markdown(index=False),
        "",
        f"Winner by the plan's rule: `{winner(search)}`",
        "",
    ]
    write_text(folder / "search.md", "\n".join(lines))


def write_filter(folder: Path, table: pd.DataFrame) -> None:
    """``filter.md``: the instruction filter's table (``selection.filter_table``)."""
    write_text(
        folder / "filter.md",
        "\n".join(
            [
                "# Instruction filter (validation questions; PLAN.md)",
                "",
                f"The instructions of each capable pair on {FILTER_QUESTIONS} "
                "selection questions, both orderings; "
                "kept when each behavior passes "
                f">= {100 * INSTRUCTION_THRESHOLD:.0f}%.",
                "",
                table.round(1).to_markdown(index=False),
                "",
            ]
        ),
    )


def place_and_order(
    pairs: pd.DataFrame, slots: pd.DataFrame, methods: Sequence[str]
) -> list[str]:
    """The last two sections of a test report (markdown lines): each behavior's pass
    rate by the place its token stands (``slots``: ``slot_rates(pairs)``), and the
    order variance beside the paper's."""
    return [
        "**Each behavior's own pass rate (%) by the place its token stands: first / "
        "second**",
        "",
        slot_pivot(slots, methods).to_markdown(index=False),
        "",
        "**Order variance (points) beside the paper's (Qwen3-8B; – where the paper has "
        "no such method)**",
        "",
        dashes(order_variance(pairs).round(1)).to_markdown(index=False),
        "",
    ]


def write_test_report(
    pairs: pd.DataFrame, singles: pd.DataFrame, winner_name: str, folder: Path
) -> dict:
    """``test.md``: joint rates with intervals and efficiency, the plan's McNemar test
    and the comparisons beside it, per-place pass rates and order variance."""
    table = capable.joint_table(pairs, singles)
    tests = capable.paired_tests(pairs, planned_comparisons(winner_name))
    slots = slot_rates(pairs)
    methods = [
        "and",
        "and@pack",
        "concat",
        "concat@pack",
        "instruction",
        "hybrid",
        "hybrid@pack",
    ]
    lines = [
        f"# The test run: `{winner_name}` (as `<base>@pack`) against today's methods",
        "",
        "Test prompts and orderings of the capable-pairs study (the first 30 test "
        "questions, both orderings), "
        "on the pairs kept by the instruction filter (PLAN.md). Today's `and`, "
        "`concat`, `instruction` and "
        "`hybrid` are the committed records of `capable_records.jsonl`.",
        "",
        "**Joint pass rate (%) [95% Wilson] and efficiency [95% bootstrap over "
        "prompts]**",
        "",
        table.round(2).to_markdown(index=False),
        "",
        "**Exact McNemar tests (the first row is the plan's one test)**",
        "",
        tests.round({"a_rate": 1, "b_rate": 1})
        .assign(p=[p_text(p) for p in tests["p"]])
        .to_markdown(index=False),
        "",
        *place_and_order(pairs, slots, methods),
    ]
    write_text(folder / "test.md", "\n".join(lines))
    write_text(folder / "test_slots.csv", slots.round(2).to_csv(index=False))
    return {"summary": table, "tests": tests, "slots": slots}
