"""The position study (issue 24; ours, beyond the paper): does a behavior token work
wherever it stands?

Stage 1 trains each behavior token right after the question. In a composition
``<b1><and><b2>`` the second token stands two slots later, and on the 135M model it
mostly stops working there. This module

1. **measures it from records** (no generation): each behavior's own verdict split by
   the place its token (or instruction) stands in the ordering (``slot_table``), and the
   paper's order variance beside ours (``order_variance``);
2. **selects on validation only** (``results/cpu/position/PLAN.md``, committed before
   any test generation): the pairs whose *instructions* pass both behaviors on
   validation questions (``instruction_filter``), and the variant of the search with the
   best joint pass rate on train questions that no target ever used
   (``selection_questions``, ``selection_records``).

Place 1 is the slot right after the question; for instructions, place 1 is the first
instruction of the two, the same ordering the tokens of that record follow.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

import pandas as pd

from steerlib.config import Preset
from steerlib.evaluation.evaluate import evaluate, metrics, split_of, unique_records, wilson
from steerlib.model.backbone import Backbone
from steerlib.model.generate import METHODS, Method, SteeredModel, SteeringMethod
from steerlib.model.layout import Layout, SlotPositions
from steerlib.model.tokens import SteeringTokens
from steerlib.tasks import behaviors as B
from steerlib.tasks import prompts as P

SELECTION_QUESTIONS = 96
"""Questions of the selection set (issue 24: at least 96)."""
FILTER_QUESTIONS = 24
"""Questions per pair, in both orderings, on which the instruction filter is measured."""
INSTRUCTION_THRESHOLD = 0.5
"""A pair is studied when its instructions pass both behaviors on at least this share."""
PAPER_ORDER_VARIANCE = {"instruction": 7.8, "concat": 25.3, "native_and": 12.9, "and": 5.3, "hybrid": 4.4}
"""The paper's order variance (points) of 2-behavior compositions on Qwen3-8B (its Table 1)."""


def places(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (generation, behavior): ``method``, ``k``, ``combo``, ``behavior``, its
    ``place`` in the ordering (1 = right after the question) and its own verdict ``ok``."""
    rows = [{"method": r["method"], "k": r["k"], "combo": r["combo"], "behavior": name, "place": i + 1,
             "ok": bool(r["verdicts"][name])}
            for _, r in unique_records(records).iterrows() if r["k"] > 1
            for i, name in enumerate(r["order"].split("+"))]
    return pd.DataFrame(rows, columns=["method", "k", "combo", "behavior", "place", "ok"])


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
        at = at.assign(category=[B.get(b).category if b in B.names() else b for b in at["behavior"]])
        for (m, cat), g in at.groupby(["method", "category"], sort=False):
            if g["behavior"].nunique() > 1:
                groups.append((m, f"{cat} (all)", g))
    rows = []
    for method, behavior, g in groups:
        row = {"method": method, "behavior": behavior}
        for place, label in ((1, "first"), (2, "second")):
            sub = g.loc[g["place"] == place, "ok"]
            if len(sub):
                row.update({f"{label}{'' if key == 'rate' else '_' + key}": v for key, v in _rate(sub).items()})
        rows.append(row)
    table = pd.DataFrame(rows)
    table["gap"] = table["first"] - table["second"]
    table["ratio"] = table["second"] / table["first"].where(table["first"] > 0)
    return table


def slot_pivot(table: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """``slot_rates`` as issue 24's table: one row per behavior, "first / second" per method."""
    table = table[table["method"].isin(methods)]
    cells = table.assign(cell=[f"{a:.0f} / {b:.0f}" for a, b in zip(table["first"], table["second"])])
    wide = cells.pivot(index="behavior", columns="method", values="cell")
    order = list(dict.fromkeys(table["behavior"]))
    return wide.reindex(index=order, columns=[m for m in methods if m in wide.columns]).reset_index()


def order_variance(records: pd.DataFrame) -> pd.DataFrame:
    """Per method and split: our order variance (points, as the paper defines it: the
    largest gap between a combination's orderings, averaged over combinations) with its
    bootstrap interval, beside the paper's figure for that method."""
    table = metrics(records)[["method", "split", "order_var", "ov_lo", "ov_hi", "combos", "n"]]
    return table.assign(paper=[PAPER_ORDER_VARIANCE.get(m) for m in table["method"]])


# -- selection on validation only ------------------------------------------------------
def target_questions(preset: Preset) -> int:
    """How many of the train questions (from the first) stage 1 and stage 2 draw targets
    from: each asks ``max(batch_size, n_examples // 2)`` jobs, question ``i % len``."""
    return max(max(c.batch_size, c.n_examples // 2) for c in (preset.stage1, preset.stage2))


def selection_questions(preset: Preset, n: int = SELECTION_QUESTIONS) -> list[str]:
    """The last ``n`` train questions, refused unless no stage-1 or stage-2 target used
    them: validation questions that are neither targets nor test prompts."""
    train = P.load("train")
    used = target_questions(preset)
    if used + n > len(train):
        raise ValueError(f"only {len(train) - used} train questions are free of targets "
                         f"({used} of {len(train)} serve as targets); the position study needs {n}")
    return train[-n:]


def instruction_filter(sm: SteeredModel, preset: Preset, pairs: Sequence[tuple[str, str]], records: Path,
                       n: int = FILTER_QUESTIONS, threshold: float = INSTRUCTION_THRESHOLD
                       ) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """The instructions of each pair on the first ``n`` selection questions, both orderings
    (records resumable in ``records``): per pair, the pass rate of each behavior and the
    joint rate, and the pairs whose two behaviors each pass at least ``threshold``. A token
    distilled from its instruction cannot learn what the instruction does not do."""
    ev = preset.eval
    recs = evaluate(sm, ["instruction"], pairs, selection_questions(preset)[:n], max_new_tokens=ev.max_new_tokens,
                    batch_size=ev.batch_size, seed=ev.seed, records=records)
    rows = []
    for a, b in pairs:
        g = recs[recs["combo"] == f"{a}+{b}"]
        rate_a, rate_b = (100 * g["verdicts"].map(lambda v, name=name: v[name]).mean() for name in (a, b))
        rows.append({"pair": f"{a}+{b}", "a": a, "a %": rate_a, "b": b, "b %": rate_b,
                     "joint %": 100 * g["ok"].mean(), "n": len(g), "kept": min(rate_a, rate_b) >= 100 * threshold})
    table = pd.DataFrame(rows)
    return table, [pair for pair, keep in zip(pairs, table["kept"]) if keep]


def selection_assignment(pairs: Sequence[tuple[str, str]], questions: Sequence[str]) -> dict[tuple, list[str]]:
    """Each selection question asks one pair (in both orderings), the pairs taking turns."""
    return {pair: list(questions[i::len(pairs)]) for i, pair in enumerate(pairs)}


def selection_records(sm: SteeredModel, preset: Preset, methods: Sequence[str | SteeringMethod],
                      pairs: Sequence[tuple[str, str]], records: Path) -> pd.DataFrame:
    """Every method on the selection set (``selection_assignment``), resumable in ``records``."""
    ev = preset.eval
    parts = [evaluate(sm, methods, [pair], qs, max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size,
                      seed=ev.seed, records=records)
             for pair, qs in selection_assignment(pairs, selection_questions(preset)).items()]
    return pd.concat(parts, ignore_index=True)


# -- the search --------------------------------------------------------------------------
LAYOUTS = (Layout(), Layout(SlotPositions.SHARED), Layout(SlotPositions.AND_OWN),
           Layout(SlotPositions.SHARED, isolate=True), Layout(SlotPositions.AND_OWN, isolate=True),
           Layout(isolate=True))
"""Family A of the search: today's tokens read in other places (no training)."""


def layout_method(layout: Layout, base: str = "and") -> Method:
    """``base`` ("and", "concat" or "hybrid") with the tokens read in ``layout``'s places,
    named ``base@layout`` (``and@shared+isolate``)."""
    return replace(METHODS[base], name=f"{base}@{layout.label}", layout=layout)


def screen_methods() -> list[Method]:
    """Family A as evaluated: ``<and>`` in every layout, and concatenation with shared,
    isolated slots (each token alone at its trained place, nothing joining them)."""
    return [layout_method(lay) for lay in LAYOUTS] + [layout_method(LAYOUTS[3], "concat")]


def candidate_pairs(bb: Backbone, tokens: SteeringTokens, preset: Preset, out: Path) -> list[tuple[str, str]]:
    """The capable pairs of the capable-pairs study, read from its committed validation records."""
    from steerlib.study import capable

    return [tuple(p) for p in capable.choose(bb, tokens, preset, out)[1]]


def seen_pairs(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return [p for p in pairs if split_of(p) == "seen-2"]


def selection_table(records: pd.DataFrame) -> pd.DataFrame:
    """Per method on the selection set: the joint pass rate (%) with its Wilson interval,
    the language/length/sentence tokens' pass rates in first and second place, and the
    order gap: the search's table (selection metric: ``joint``)."""
    rows = []
    slots = slot_rates(records, pool_categories=False)
    for method, g in unique_records(records).groupby("method", sort=False):
        k, n = int(g["ok"].sum()), len(g)
        lo, hi = wilson(k, n)
        s = slots[slots["method"] == method]
        first = (s["first"] * s["first_n"]).sum() / s["first_n"].sum()
        second = (s["second"] * s["second_n"]).sum() / s["second_n"].sum()
        rows.append({"variant": method, "joint": 100 * k / n, "joint_lo": 100 * lo, "joint_hi": 100 * hi,
                     "first": first, "second": second, "gap": first - second, "n": n})
    return pd.DataFrame(rows).sort_values("joint", ascending=False, kind="stable").reset_index(drop=True)
