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


def write_search_files(
    folder: Path, search: pd.DataFrame, title: str, about: str, digits: int, last: str
) -> None:
    """``search.csv`` (``search`` to two decimals) and ``search.md``: ``title``,
    ``about`` (the metric and the columns), the table to ``digits`` decimals and the
    ``last`` line (the plan's winner)."""
    write_text(folder / "search.csv", search.round(2).to_csv(index=False))
    lines = [
        f"# {title}",
        "",
        about,
        "",
        search.round(digits).to_markdown(index=False),
        "",
        last,
        "",
    ]
    write_text(folder / "search.md", "\n".join(lines))


def write_search(folder: Path, search: pd.DataFrame) -> None:
    """``search.csv`` (every candidate's config, selection score with interval, cost)
    and its markdown (``write_search_files``)."""
    write_search_files(
        folder,
        search,
        "The search: every candidate on the selection set (validation only)",
        "Selection metric: joint pass rate (%) on 96 train questions no target used, "
        "each asking one kept seen pair in both orderings (PLAN.md). `first`/`second`: "
        "the behaviors' own pass rates by the place their token stands; `gap` = first "
        "- second.",
        1,
        f"Winner by the plan's rule: `{winner(search)}`",
    )


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


def tables_on_test(
    pairs: pd.DataFrame, singles: pd.DataFrame, comparisons: Sequence[tuple[str, str]]
) -> dict[str, pd.DataFrame]:
    """A test report's tables from its pair and single records: ``summary`` (joint rates
    with intervals and efficiency, ``capable.joint_table``), ``tests`` (exact McNemar
    on ``comparisons``, ``capable.paired_tests``) and ``slots`` (each behavior's pass
    rate by the place its token stands, ``slot_rates``)."""
    return {
        "summary": capable.joint_table(pairs, singles),
        "tests": capable.paired_tests(pairs, comparisons),
        "slots": slot_rates(pairs),
    }


def write_test_md(
    folder: Path,
    title: str,
    scope: str,
    tables: dict[str, pd.DataFrame],
    tests_heading: str,
    pairs: pd.DataFrame,
    methods: Sequence[str],
) -> None:
    """``test.md``: ``title`` and ``scope``, then the ``tables_on_test``: joint rates
    and efficiency, the McNemar tests under ``tests_heading`` (rates and any
    ``detectable`` column to one decimal), per-place pass rates of ``methods`` and
    the order variance of ``pairs`` beside the paper's."""
    tests = tables["tests"]
    lines = [
        f"# {title}",
        "",
        scope,
        "",
        "**Joint pass rate (%) [95% Wilson] and efficiency [95% bootstrap over "
        "prompts]**",
        "",
        tables["summary"].round(2).to_markdown(index=False),
        "",
        f"**{tests_heading}**",
        "",
        tests.round({"a_rate": 1, "b_rate": 1, "detectable": 1})
        .assign(p=[p_text(p) for p in tests["p"]])
        .to_markdown(index=False),
        "",
        "**Each behavior's own pass rate (%) by the place its token stands: first / "
        "second**",
        "",
        slot_pivot(tables["slots"], methods).to_markdown(index=False),
        "",
        "**Order variance (points) beside the paper's (Qwen3-8B; – where the paper has "
        "no such method)**",
        "",
        dashes(order_variance(pairs).round(1)).to_markdown(index=False),
        "",
    ]
    write_text(folder / "test.md", "\n".join(lines))


def write_test_report(
    pairs: pd.DataFrame, singles: pd.DataFrame, winner_name: str, folder: Path
) -> dict:
    """``test.md`` (``write_test_md``): the plan's McNemar test and the comparisons
    beside it; ``test_slots.csv``: the per-place pass rates."""
    tables = tables_on_test(pairs, singles, planned_comparisons(winner_name))
    methods = [
        "and",
        "and@pack",
        "concat",
        "concat@pack",
        "instruction",
        "hybrid",
        "hybrid@pack",
    ]
    write_test_md(
        folder,
        f"The test run: `{winner_name}` (as `<base>@pack`) against today's methods",
        "Test prompts and orderings of the capable-pairs study (the first 30 test "
        "questions, both orderings), on the pairs kept by the instruction filter "
        "(PLAN.md). Today's `and`, `concat`, `instruction` and `hybrid` are the "
        "committed records of `capable_records.jsonl`.",
        tables,
        "Exact McNemar tests (the first row is the plan's one test)",
        pairs,
        methods,
    )
    write_text(folder / "test_slots.csv", tables["slots"].round(2).to_csv(index=False))
    return tables
