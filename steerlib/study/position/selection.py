"""Selection on validation only (PLAN.md): the questions, the instruction filter, the
kept pairs and the plan's rule that picks the winning candidate.

The selection questions are train questions no stage-1 or stage-2 target used, so a
candidate is chosen without reading a test prompt; the instruction filter keeps the
pairs whose *instructions* pass both behaviors (a token distilled from its instruction
cannot learn what the instruction does not do).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from steerlib.errors import ConfigError
from steerlib.evaluation.evaluate import evaluate
from steerlib.model.backbone import Backbone
from steerlib.model.generate import SteeredModel
from steerlib.model.layout import Layout
from steerlib.model.methods import SteeringMethod
from steerlib.model.tokens import SteeringTokens
from steerlib.preset import Preset
from steerlib.study import capable
from steerlib.tasks import prompts as P
from steerlib.tasks.combos import split_of
from steerlib.train.compose import CAPABLE_RATE

SELECTION_QUESTIONS = 96
"""Questions of the selection set (issue 24: at least 96)."""


FILTER_QUESTIONS = 24
"""Questions per pair, in both orderings, on which the instruction filter is
measured."""


INSTRUCTION_THRESHOLD = CAPABLE_RATE
"""A pair is studied when its instructions pass both behaviors on at least this
share."""


FILTER_RECORDS = "filter_records.jsonl"


def target_questions(preset: Preset) -> int:
    """How many of the train questions (from the first) stage 1 and stage 2 draw targets
    from: each asks ``max(batch_size, n_examples // 2)`` jobs, question ``i % len``."""
    return max(
        max(c.batch_size, c.n_examples // 2) for c in (preset.stage1, preset.stage2)
    )


def selection_questions(preset: Preset, n: int = SELECTION_QUESTIONS) -> list[str]:
    """The last ``n`` train questions, refused unless no stage-1 or stage-2 target used
    them: validation questions that are neither targets nor test prompts."""
    train = P.load("train")
    used = target_questions(preset)
    if used + n > len(train):
        raise ConfigError(
            f"only {len(train) - used} train questions are free of targets "
            f"({used} of {len(train)} serve as targets); the position study needs {n}"
        )
    return train[-n:]


def instruction_filter(
    sm: SteeredModel,
    preset: Preset,
    pairs: Sequence[tuple[str, str]],
    records: Path,
    n: int = FILTER_QUESTIONS,
    threshold: float = INSTRUCTION_THRESHOLD,
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """The instructions of each pair on the first ``n`` selection questions, both
    orderings (records resumable in ``records``), and ``filter_table`` of them. A token
    distilled from its instruction cannot learn what the instruction does not do."""
    ev = preset.eval
    recs = evaluate(
        sm,
        ["instruction"],
        pairs,
        selection_questions(preset)[:n],
        max_new_tokens=ev.max_new_tokens,
        batch_size=ev.batch_size,
        seed=ev.seed,
        records=records,
    )
    return filter_table(recs, pairs, threshold)


def filter_table(
    records: pd.DataFrame,
    pairs: Sequence[tuple[str, str]],
    threshold: float = INSTRUCTION_THRESHOLD,
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Per pair: each behavior's pass rate (%) and the joint rate under the
    instructions, and whether it is kept (each behavior >= ``threshold``); and the kept
    pairs."""
    rows = []
    for a, b in pairs:
        g = records[records["combo"] == f"{a}+{b}"]
        rate_a, rate_b = (
            100 * g["verdicts"].map(lambda v, name=name: v[name]).mean()
            for name in (a, b)
        )
        rows.append(
            {
                "pair": f"{a}+{b}",
                "a": a,
                "a %": rate_a,
                "b": b,
                "b %": rate_b,
                "joint %": 100 * g["ok"].mean(),
                "n": len(g),
                "kept": min(rate_a, rate_b) >= 100 * threshold,
            }
        )
    table = pd.DataFrame(rows)
    return table, [pair for pair, keep in zip(pairs, table["kept"]) if keep]


def selection_assignment(
    pairs: Sequence[tuple[str, str]], questions: Sequence[str]
) -> dict[tuple, list[str]]:
    """Each selection question asks one pair (in both orderings), the pairs taking
    turns."""
    return {pair: list(questions[i :: len(pairs)]) for i, pair in enumerate(pairs)}


def selection_records(
    sm: SteeredModel,
    preset: Preset,
    methods: Sequence[str | SteeringMethod],
    pairs: Sequence[tuple[str, str]],
    records: Path,
) -> pd.DataFrame:
    """Every method on the selection set (``selection_assignment``), resumable in
    ``records``."""
    ev = preset.eval
    parts = [
        evaluate(
            sm,
            methods,
            [pair],
            qs,
            max_new_tokens=ev.max_new_tokens,
            batch_size=ev.batch_size,
            seed=ev.seed,
            records=records,
        )
        for pair, qs in selection_assignment(pairs, selection_questions(preset)).items()
    ]
    return pd.concat(parts, ignore_index=True)


def candidate_pairs(
    bb: Backbone, tokens: SteeringTokens, preset: Preset, out: Path
) -> list[tuple[str, str]]:
    """The capable pairs of the capable-pairs study, read from its committed validation
    records."""

    return [tuple(p) for p in capable.choose(bb, tokens, preset, out)[1]]


def seen_pairs(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return [p for p in pairs if split_of(p) == "seen-2"]


def kept_pairs(
    sm: SteeredModel, tokens: SteeringTokens, preset: Preset, out: Path
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """The instruction filter over the capable pairs (records in ``out/position``)."""
    folder = out / "position"
    return instruction_filter(
        SteeredModel(sm.backbone),
        preset,
        candidate_pairs(sm.backbone, tokens, preset, out),
        folder / FILTER_RECORDS,
    )


@dataclass(frozen=True)
class StageInputs:
    """What every stage of the position and stage-2 studies runs on: the backbone, its
    shipped ``tokens``, the ``preset`` and the results folder ``out``
    (``results/<preset>/``), under whose ``position/`` the instruction filter keeps the
    pairs both studies use."""

    bb: Backbone
    tokens: SteeringTokens
    preset: Preset
    out: Path

    def kept(self) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
        """The instruction filter's table and the pairs it kept (``kept_pairs``, from
        its records)."""
        return kept_pairs(SteeredModel(self.bb), self.tokens, self.preset, self.out)


PLANNED_FAMILIES = ("A", "C")
"""The families PLAN.md screened before its test; family B came after (its amendment 1)
and cannot change the plan's winner."""


def winner(search: pd.DataFrame, families: Sequence[str] = PLANNED_FAMILIES) -> str:
    """The selection rule of PLAN.md: the highest joint rate, ties to the smaller order
    gap; it must beat today's layout by at least one generation, else today's layout
    wins. Only candidates of ``families`` compete (a table without a family column:
    all)."""
    if "family" in search:
        search = search[search["family"].isin(families)]
    ranked = search.sort_values(
        ["joint", "gap"], ascending=[False, True], kind="stable"
    )
    reference = search.loc[search["candidate"] == f"and@{Layout().label}"].iloc[0]
    best = ranked.iloc[0]
    one = 100 / reference["n"]
    return (
        best["candidate"]
        if best["joint"] >= reference["joint"] + one - 1e-9
        else reference["candidate"]
    )
