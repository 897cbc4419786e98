"""``python -m steerlib position --stage <stage>``: one stage of the position study."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pandas as pd

from steerlib.errors import ConfigError
from steerlib.evaluation.records import read_records
from steerlib.model.generate import SteeredModel
from steerlib.model.methods import METHODS
from steerlib.study.position.candidates import (
    RETRAINS,
    parse_candidate,
    retrained_name,
    screen_methods,
)
from steerlib.study.position.report import (
    best_layout,
    recorded_search,
    write_filter,
    write_search,
    write_test_report,
)
from steerlib.study.position.runs import (
    displace_jobs,
    displaced_behaviors,
    displaced_tokens,
    retrain,
    screen,
    winner_tokens,
)
from steerlib.study.position.selection import StageInputs, seen_pairs, winner
from steerlib.study.position.testrun import (
    PACK_METHODS,
    pair_records_on_test,
    single_records_on_test,
)

PACK = "pack"
"""The winner's token pack, under ``results/<preset>/position/``."""


FAMILY_B = "family_b"
"""Family B's vectors, under ``results/<preset>/position/``: the displaced behavior
tokens and the ``<and>`` trained on them, with their training records."""


def run(
    inputs: StageInputs, stage: str, candidates: Sequence[int] | None = None
) -> pd.DataFrame:
    """One stage of the study (PLAN.md), resumable, its tables written under
    ``inputs.out/position``: ``filter`` (the pairs), ``screen`` (family A,
    ``candidates`` indexes ``screen_methods()``), ``retrain`` (family C in the best A
    layout, ``candidates`` indexes ``RETRAINS``), ``displace`` (family B,
    ``candidates`` indexes ``displace_jobs``: each kept behavior's displaced stage 1,
    then ``<and>`` on those tokens, saved with them under ``family_b/``, and their
    concatenation), ``search`` (the search table from records, no generation) and
    ``test`` (the winner's pack saved, its methods' test generations, ``candidates``
    indexing ``PACK_METHODS``, and ``test.md`` from every pack method recorded so
    far)."""
    bb, tokens, preset, out = inputs.bb, inputs.tokens, inputs.preset, inputs.out
    folder = out / "position"
    table, kept = inputs.kept()
    write_filter(folder, table)
    seen = seen_pairs(kept)
    sm = SteeredModel(bb, tokens)
    if stage == "filter":
        return table
    if not seen:
        raise ConfigError(
            f"no seen pair passed the instruction filter ({folder / 'filter.md'}); the "
            "search "
            f"needs at least one"
        )
    if stage == "screen":
        methods = screen_methods()
        screen(
            sm,
            preset,
            [
                methods[i]
                for i in (candidates if candidates is not None else range(len(methods)))
            ],
            seen,
            folder,
        )
    elif stage == "retrain":
        layout = best_layout(folder)
        for i in candidates if candidates is not None else range(len(RETRAINS)):
            trained = retrain(bb, tokens, preset, layout, **RETRAINS[i], folder=folder)
            name = retrained_name(layout, **RETRAINS[i])
            screen(
                SteeredModel(bb, trained),
                preset,
                [replace(METHODS["and"], name=name)],
                seen,
                folder,
            )
    elif stage == "displace":
        jobs = displace_jobs(kept)
        behaviors = displaced_behaviors(kept)
        for i in candidates if candidates is not None else range(len(jobs)):
            if i < len(behaviors):
                displaced_tokens(bb, tokens, preset, [behaviors[i]], folder)
                continue
            pack = winner_tokens(bb, tokens, preset, jobs[i], kept, folder)
            base = parse_candidate(jobs[i])[0]
            if base == "and":
                pack.subset([*behaviors, "and"]).save_pretrained(
                    folder / FAMILY_B,
                    repo_id="steerlib-position-family-b",
                    overwrite=True,
                )
            screen(
                SteeredModel(bb, pack),
                preset,
                [replace(METHODS[base], name=jobs[i])],
                seen,
                folder,
            )
    elif stage == "test":
        search = recorded_search(folder)
        name = winner(search)
        pack = winner_tokens(bb, tokens, preset, name, kept, folder)
        pack.save_pretrained(
            folder / PACK, repo_id="steerlib-position-pack", overwrite=True
        )
        bases = (
            [PACK_METHODS[i] for i in candidates]
            if candidates is not None
            else PACK_METHODS
        )
        pairs = pair_records_on_test(bb, tokens, pack, preset, kept, out, bases)
        made = [
            read_records(f)
            for b in PACK_METHODS
            if b not in bases and (f := folder / f"test_{b}.jsonl").is_file()
        ]
        pairs = pd.concat([pairs, *made], ignore_index=True)
        write_test_report(
            pairs, single_records_on_test(bb, tokens, preset, kept, out), name, folder
        )
        return pairs
    elif stage != "search":
        raise ConfigError(
            f"unknown stage {stage!r}; stages: filter, screen, retrain, displace, "
            "search, test"
        )
    search = recorded_search(folder)
    if len(search):
        write_search(folder, search)
    return search
