"""``python -m steerlib stage2 --stage ...``: one stage of the study, resumable, its
tables written under ``results/<preset>/stage2/`` (PLAN.md)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from steerlib import distributed
from steerlib.errors import ConfigError
from steerlib.evaluation.evaluate import evaluate
from steerlib.model.backbone import Backbone
from steerlib.model.generate import SteeredModel
from steerlib.model.methods import METHODS
from steerlib.model.tokens import SteeringTokens
from steerlib.preset import Preset
from steerlib.storage import write_text
from steerlib.study.position.runs import note_cost, screen
from steerlib.study.position.selection import StageInputs, seen_pairs
from steerlib.study.position.testrun import single_records_on_test
from steerlib.study.stage2 import report
from steerlib.study.stage2.candidates import (
    CANDIDATES,
    LAYOUT,
    by_name,
    candidate_file,
    trained,
)
from steerlib.study.stage2.data import targets_table, training_targets
from steerlib.tasks import prompts as P

STAGES = ("targets", "screen", "search", "test", "ship")
FOLDER = "stage2"
PACK = "pack"
"""The default pack: the shipped behavior tokens and the ``<and>`` the plan's rule
chose (W's or today's), in ``LAYOUT``."""
TEST_RECORDS = "test_and.jsonl"


def run(
    inputs: StageInputs, stage: str, candidates: Sequence[int] | None = None
) -> pd.DataFrame:
    """One stage: ``targets`` (the shared training targets, shardable under
    torchrun), ``screen`` (train the candidates ``candidates`` indexes, default all,
    and score each on the selection set), ``search`` (the table from records),
    ``test`` (the winner's ``<and>`` on the test prompts, ``test.md`` and the default
    pack) or ``ship`` (the default pack copied into the package)."""
    bb, tokens, preset, out = inputs.bb, inputs.tokens, inputs.preset, inputs.out
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    folder = out / FOLDER
    if stage == "ship":
        ship(folder)
        return pd.DataFrame()
    kept = inputs.kept()[1]
    seen = seen_pairs(kept)
    if stage == "search":
        search = report.search_table(folder, out / "position")
        report.write_search(folder, search)
        return search
    targets = training_targets(bb, preset, seen)
    if stage == "targets":
        table = targets_table(targets)
        write_text(
            folder / "targets.md",
            "# Stage-2 training targets per pair (PLAN.md)\n\n"
            + table.to_markdown(index=False)
            + f"\n\n{len(targets)} in all.\n",
        )
        return table
    if stage == "screen":
        chosen = (
            CANDIDATES if candidates is None else [CANDIDATES[i] for i in candidates]
        )
        for c in chosen:
            pack = trained(bb, tokens, preset, c, targets, seen, folder)
            pack.subset(["and"]).save_file(candidate_file(folder, c.name))
            screen(SteeredModel(bb, pack), preset, [c.method], seen, folder)
    search = report.search_table(folder, out / "position")
    report.write_search(folder, search)
    if stage != "test":
        return search
    return test(bb, tokens, preset, out, search, kept, targets)


def today_pack(tokens: SteeringTokens) -> SteeringTokens:
    """Today's pack: the shipped behavior tokens and ``<and>``, read in ``LAYOUT``."""
    return tokens.subset(tokens.names).with_layout(LAYOUT)


def ship(folder: Path) -> Path:
    """Copy the study's default pack (``PACK``) into the package, where
    ``SteeringTokens.pretrained(bb)`` reads it."""
    from steerlib.model.packs import PACK_FILES, Pack, shipped_path

    pack = SteeringTokens.load_file(folder / PACK / "tokens.safetensors")
    return pack.save_file(shipped_path(PACK_FILES[Pack.DEFAULT]), overwrite=True)


def test(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    out: Path,
    search: pd.DataFrame,
    kept: Sequence[tuple[str, str]],
    targets,
) -> pd.DataFrame:
    """PLAN.md's test: the default pack saved (W's when it beats today's pack on the
    selection set, else today's), W's ``<and>`` generated on the test prompts
    (every kept pair), and ``test.md`` beside the committed records of concatenation,
    today's pack, the instructions and the hybrid (nothing else is generated)."""
    folder = out / FOLDER
    name = report.winner(search)
    if name is None:
        raise ConfigError("no candidate has selection records yet; run --stage screen")
    pack = trained(bb, tokens, preset, by_name(name), targets, seen_pairs(kept), folder)
    ev = preset.eval
    kw = dict(max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size, seed=ev.seed)
    prompts = P.load("test", limit=ev.n_capable)
    start = time.perf_counter()
    winner = evaluate(
        SteeredModel(bb, pack),
        [replace(METHODS["and"], name=report.WINNER)],
        kept,
        prompts,
        records=folder / TEST_RECORDS,
        **kw,
    )
    if time.perf_counter() - start > 30:
        note_cost(folder, report.WINNER, "test_s", time.perf_counter() - start)
    today = evaluate(
        SteeredModel(bb, tokens),
        ["instruction", "hybrid"],
        kept,
        prompts,
        records=out / "capable_records.jsonl",
        **kw,
    )
    shipped_pack = SteeredModel(bb, today_pack(tokens))
    default = pack if report.beats_today(search, name) else shipped_pack.tokens
    distributed.main_only(
        default.save_pretrained,
        folder / PACK,
        overwrite=True,
        pack="default",
    )
    position = [
        evaluate(
            shipped_pack,
            [replace(METHODS[base], name=f"{base}@pack")],
            kept,
            prompts,
            records=out / "position" / f"test_{base}.jsonl",
            **kw,
        )
        for base in ("and", "concat")
    ]
    pairs = pd.concat([winner, today, *position], ignore_index=True)
    singles = single_records_on_test(bb, tokens, preset, kept, out)
    singles = pd.concat(
        [singles, singles[singles["method"] == "and"].assign(method=report.WINNER)],
        ignore_index=True,
    )
    comparisons = [
        (report.WINNER, "concat@pack"),
        (report.WINNER, "instruction"),
        (report.WINNER, "hybrid"),
        (report.WINNER, "and@pack"),
    ]
    report.write_test(folder, name, pairs, singles, comparisons)
    return pairs
