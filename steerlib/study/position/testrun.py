"""The test run (PLAN.md): the winner's pack against today's methods on the test
prompts.

Today's methods come from the capable-pairs study's committed records (same prompts and
settings, nothing generated); the pack's methods are generated once each into
``test_<base>.jsonl``, so they can run side by side.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from steerlib.evaluation.evaluate import evaluate
from steerlib.model.backbone import Backbone
from steerlib.model.generate import SteeredModel
from steerlib.model.methods import METHODS
from steerlib.model.tokens import SteeringTokens
from steerlib.preset import Preset
from steerlib.study import capable
from steerlib.study.position.candidates import parse_candidate
from steerlib.study.position.runs import note_cost
from steerlib.tasks import prompts as P

PACK_METHODS = ("and", "concat", "hybrid")
"""The winner's methods generated in the test run, each into ``test_<method>.jsonl``."""


def pair_records_on_test(
    bb: Backbone,
    tokens: SteeringTokens,
    pack: SteeringTokens,
    preset: Preset,
    pairs: Sequence[tuple[str, str]],
    out: Path,
    bases: Sequence[str] = PACK_METHODS,
) -> pd.DataFrame:
    """The test generations: today's ``<and>``, concatenation, instructions and hybrid
    from the capable-pairs study's records (same prompts and settings; nothing
    generated when they are committed), and the winner's ``<and>``, concatenation and
    hybrid in its layout (``position/test_<base>.jsonl``, one file per method so they
    can run side by side). Methods of the pack are named ``<base>@pack``."""
    ev = preset.eval
    kw = dict(max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size, seed=ev.seed)
    test = P.load("test", limit=ev.n_capable)
    today = evaluate(
        SteeredModel(bb, tokens),
        ["and", "concat", "instruction", "hybrid"],
        pairs,
        test,
        records=out / "capable_records.jsonl",
        **kw,
    )
    parts = [today]
    for base in bases:
        start = time.perf_counter()
        parts.append(
            evaluate(
                SteeredModel(bb, pack),
                [replace(METHODS[base], name=f"{base}@pack")],
                pairs,
                test,
                records=out / "position" / f"test_{base}.jsonl",
                **kw,
            )
        )
        if time.perf_counter() - start > 30:
            note_cost(
                out / "position", f"{base}@pack", "test_s", time.perf_counter() - start
            )
    return pd.concat(parts, ignore_index=True)


def single_records_on_test(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    pairs: Sequence[tuple[str, str]],
    out: Path,
) -> pd.DataFrame:
    """Each kept behavior alone on the test prompts (the capable-pairs study's committed
    single records), also under the pack's method names: one token reads the same in
    every layout, so a layout's single rate is today's."""

    ev = preset.eval
    behaviors = sorted({(b,) for pair in pairs for b in pair})
    singles = evaluate(
        SteeredModel(bb, tokens),
        ["and", "hybrid", "instruction"],
        behaviors,
        P.load("test", limit=ev.n_capable),
        max_new_tokens=ev.max_new_tokens,
        batch_size=ev.batch_size,
        seed=ev.seed,
        records=out / "single_records.jsonl",
    )
    renamed = [
        singles[singles["method"] == capable.SINGLE_OF.get(base, base)].assign(
            method=f"{base}@pack"
        )
        for base in ("and", "concat", "hybrid")
    ]
    return pd.concat([singles, *renamed], ignore_index=True)


def planned_comparisons(winner_name: str) -> list[tuple[str, str]]:
    """The plan's one test (first: the winner's method in its pack vs today's
    ``<and>``), then the comparisons reported beside it."""
    best = f"{parse_candidate(winner_name)[0]}@pack"
    other = "concat@pack" if best == "and@pack" else "and@pack"
    return [
        (best, "and"),
        (best, other),
        (best, "instruction"),
        ("hybrid@pack", "instruction"),
        ("and", "instruction"),
    ]
