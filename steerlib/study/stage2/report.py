"""The stage-2 study's tables: the search (every candidate on the selection set, with
the position study's reference rows), PLAN.md's winner rule, and the test."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from scipy.stats import norm

from steerlib.evaluation.records import read_records
from steerlib.model.tokens import SteeringTokens
from steerlib.storage import write_text
from steerlib.study.position.report import (
    selection_table,
    tables_on_test,
    write_search_files,
    write_test_md,
)
from steerlib.study.position.runs import SELECTION, read_costs
from steerlib.study.stage2.candidates import CANDIDATES, candidate_file

REFERENCES = {
    "and@shared+isolate": "today's pack (shipped <and>)",
    "concat@shared+isolate": "no <and>",
    "and@shared+isolate|T10|ce0": "recipe on the 131 targets (position C)",
    "and@shared+isolate|T2|ce0": "T 2 on the 131 targets (position C)",
}
"""Rows of ``position/search.csv`` shown beside the candidates: same selection set and
metric, not re-run."""
NOT_RUN = {
    "H": "not run: stage 1 again with k in {2, 4} for the kept pairs' behaviors did "
    "not fit this session's budget (PLAN.md runs it only if the rest finished in time)"
}
"""PLAN.md's families that did not run, with why (in the table, never guessed)."""
TODAY = "and@shared+isolate"
"""Today's pack: the default ``<and>`` unless a candidate beats it (PLAN.md)."""
WINNER = "and@stage2"
"""The winner's ``<and>`` in the test records and tables."""


def search_table(folder: Path, position: Path) -> pd.DataFrame:
    """Every candidate (run or not) with its configuration, selection score, Wilson
    interval, order gap and costs; then the reference rows of
    ``position/search.csv``."""
    files = sorted((folder / SELECTION).glob("*.jsonl"))
    records = [read_records(f) for f in files]
    scored = selection_table(pd.concat(records, ignore_index=True)) if records else None
    costs = read_costs(folder)
    rows = []
    for c in CANDIDATES:
        name = c.method.name
        score = (
            scored[scored["candidate"] == name]
            if scored is not None
            else pd.DataFrame()
        )
        row = {"candidate": c.name, **c.describe(), **costs.get(name, {})}
        if len(score):
            row |= score.iloc[0].drop("candidate").to_dict()
        else:
            row["note"] = "not run"
        rows.append(row)
    rows += [{"candidate": f, "family": f, "note": why} for f, why in NOT_RUN.items()]
    refs = pd.read_csv(position / "search.csv")
    refs = refs[refs["candidate"].isin(REFERENCES)]
    for _, ref in refs.iterrows():
        rows.append(
            {
                "candidate": ref["candidate"],
                "family": "ref",
                "train_s": ref["train_s"],
                "eval_s": ref["eval_s"],
                **{
                    k: ref[k]
                    for k in (
                        "joint",
                        "joint_lo",
                        "joint_hi",
                        "first",
                        "second",
                        "gap",
                        "n",
                    )
                },
                "note": REFERENCES[ref["candidate"]],
            }
        )
    columns = ["candidate", "family", "k", "T", "lambda", "ce", "joint", "joint_lo"]
    columns += ["joint_hi", "first", "second", "gap", "n", "train_s", "eval_s", "note"]
    table = pd.DataFrame(rows).reindex(columns=columns)
    return table.astype({"n": "Int64"})  # a count, also beside rows that did not run


def winner(search: pd.DataFrame) -> str | None:
    """PLAN.md's W: the candidate with the highest selection rate, ties to the smaller
    order gap, then the cheaper training; None when no candidate has run."""
    ran = search[(search["family"] != "ref") & search["joint"].notna()]
    if not len(ran):
        return None
    ranked = ran.assign(abs_gap=ran["gap"].abs()).sort_values(
        ["joint", "abs_gap", "train_s"], ascending=[False, True, True], kind="stable"
    )
    return ranked.iloc[0]["candidate"]


def beats_today(search: pd.DataFrame, name: str) -> bool:
    """Whether candidate ``name`` beats today's pack on the selection set by at least
    one generation: then its ``<and>`` ships as the default (PLAN.md)."""
    today = search[search["candidate"] == TODAY].iloc[0]
    best = search[search["candidate"] == name].iloc[0]

    def passed(row) -> int:  # counted from the rounded rate: generations, not points
        return round(row["joint"] * row["n"] / 100)

    return bool(passed(best) >= passed(today) + 1)


def verdict(search: pd.DataFrame) -> str:
    """The plan's rule applied to ``search``, in a sentence."""
    w = winner(search)
    if w is None:
        return "no candidate has run yet"
    beats = beats_today(search, w)
    return (
        f"W = `{w}`; it {'beats' if beats else 'does not beat'} today's pack by at "
        f"least one generation, so the default `<and>` is {'W' if beats else 'today'}'s"
    )


def findings(search: pd.DataFrame, tests: pd.DataFrame) -> str:
    """The chapter's answer-first box: the winner and whether it ships, then per split
    the one test against concatenation (with what it could detect) and the distance
    to the instructions."""
    from steerlib.study.book.formats import p_phrase

    w = winner(search)
    row = search[search["candidate"] == w].iloc[0]
    today = search[search["candidate"] == TODAY].iloc[0]
    ships = (
        "ships as the default `<and>`"
        if beats_today(search, w)
        else ("does not beat it, so today's `<and>` stays the default")
    )
    lines = [
        f"- **Winner on validation: `{w}`** (family {row['family']}: k = {row['k']:g}, "
        f"T = {row['T']:g}, lambda = {row['lambda']:g}, CE weight {row['ce']:g}): "
        f"{row['joint']:.1f}% joint on the selection set against {today['joint']:.1f}% "
        f"for today's pack; it {ships}."
    ]
    for split in ("seen-2", "unseen-2"):
        mine = tests[(tests["a"] == WINNER) & (tests["split"] == split)]
        concat = mine[mine["b"] == "concat@pack"].iloc[0]
        instr = mine[mine["b"] == "instruction"].iloc[0]
        lines.append(
            f"- **{split.split('-')[0]} pairs** (n = {concat['n']}): the learned "
            f"`<and>` {concat['a_rate']:.1f}% against concatenation "
            f"{concat['b_rate']:.1f}% (exact McNemar {p_phrase(concat['p'])}; "
            f"the test detects {concat['detectable']:.1f} points with 80% power), "
            f"{instr['b_rate'] - instr['a_rate']:.1f} points below the instructions "
            f"({instr['b_rate']:.1f}%)."
        )
    return "\n".join(lines)


def write_search(folder: Path, search: pd.DataFrame) -> None:
    """``search.csv`` and ``search.md`` (``write_search_files``), with the winner and
    whether it becomes the default."""
    write_search_files(
        folder,
        search,
        "The stage-2 search: every candidate on the selection set (validation only)",
        "Selection metric: joint pass rate (%) on the position study's selection set "
        "(96 train questions no target used, each asking one kept seen pair in both "
        "orderings; PLAN.md). `first`/`second`: the behaviors' own pass rates by the "
        "place their token stands; `gap` = first - second; `train_s`/`eval_s`: "
        "seconds of one core.",
        2,
        f"Winner by the plan's rule: {verdict(search)}.",
    )


def detectable_difference(n: int, discordant: int, power: float = 0.8) -> float:
    """The smallest difference in pass rate (points) a two-sided McNemar test at alpha
    0.05 detects with ``power`` on ``n`` pairs, given the observed share of discordant
    pairs (normal approximation: delta = (z_{0.975} + z_power) * sqrt(p_disc / n))."""
    share = max(discordant, 1) / n
    return 100 * (norm.ppf(0.975) + norm.ppf(power)) * (share / n) ** 0.5


def write_test(
    folder: Path,
    name: str,
    pairs: pd.DataFrame,
    singles: pd.DataFrame,
    comparisons: Sequence[tuple[str, str]],
) -> dict:
    """``test.md`` (``write_test_md``): the one test (first two rows) and the
    comparisons beside it with the detectable effect; ``test_tests.csv``: the tests."""
    tables = tables_on_test(pairs, singles, comparisons)
    tests = tables["tests"]
    tests["detectable"] = [
        detectable_difference(n, a + b)
        for n, a, b in zip(tests["n"], tests["a_only"], tests["b_only"])
    ]
    write_test_md(
        folder,
        f"The test: the winner `{name}` (as `{WINNER}`) against concatenation",
        "Test prompts and orderings of the position study's test (the first 30 test "
        "questions, both orderings, every kept pair). `and@pack`, `concat@pack`: the "
        "position study's records (shipped tokens, `shared+isolate`); `instruction`, "
        "`hybrid`: the capable-pairs study's.",
        tables,
        "Exact McNemar tests (the first rows are the plan's one test, seen and "
        "unseen); `detectable`: the difference (points) the test detects with 80% "
        "power at this discordance",
        pairs,
        ["and@pack", WINNER, "concat@pack", "instruction", "hybrid"],
    )
    write_text(folder / "test_tests.csv", tests.round(4).to_csv(index=False))
    return tables


def curves(folder: Path, shipped: SteeringTokens) -> pd.DataFrame:
    """Validation curves (step, joint pass rate %) of the shipped ``<and>`` (from its
    metadata) and of every trained candidate (``candidates/<name>.safetensors``)."""
    tokens = {"shipped": shipped}
    for c in CANDIDATES:
        path = candidate_file(folder, c.name)
        if path.is_file():
            tokens[c.name] = SteeringTokens.load_file(path)
    rows = [
        {"candidate": name, "step": step, "rate": 100 * rate}
        for name, t in tokens.items()
        for step, rate in t.info["and"]["validation"]["curve"]
    ]
    return pd.DataFrame(rows)
