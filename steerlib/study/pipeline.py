"""The study: the steps behind the CLI and the book, each resumable.

Training every behavior token, the single-behavior table, the target-policy
comparison, the composition evaluation, the CAA sweep, and ``reproduce``, which runs
them all. Each step caches what it makes (tokens under ``artifacts/``, generations as
JSON-lines records in the results folder), so running it again, or building the book,
reuses the work, and an interrupted run continues where it stopped. The tables and
figures they leave in the results folder are written by ``steerlib.study.reports``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from steerlib.evaluation.evaluate import COMPOSITION_METHODS, evaluate
from steerlib.evaluation.records import read_records
from steerlib.evaluation.stats import metrics
from steerlib.model.backbone import Backbone, load_backbone
from steerlib.model.generate import SteeredModel
from steerlib.model.methods import SteeringMethod
from steerlib.model.tokens import SteeringTokens
from steerlib.preset import Preset
from steerlib.study import reports
from steerlib.study.baseline_runs import capable_baselines, preset_baselines
from steerlib.study.folders import check_out, results_dir
from steerlib.study.singles import (
    single_behavior_records,
    single_table,
    teacher_compliance,
    token_label,
    train_all_behaviors,
)
from steerlib.tasks import behaviors as B
from steerlib.tasks import prompts as P
from steerlib.train.compose import train_composition_token

log = logging.getLogger("steerlib")


def load_tokens(bb: Backbone, preset: Preset, retrain: bool = False) -> SteeringTokens:
    """Behavior tokens and <and> for this preset: trained (or loaded from the caches
    and the shipped file, which hold exactly what this preset's training would
    produce), read in the preset's layout (``<and>`` trained in it: stage 2 reads its
    behavior tokens there)."""
    tokens = train_all_behaviors(bb, preset, retrain=retrain).with_layout(preset.layout)
    return train_composition_token(bb, tokens, preset.stage2, retrain=retrain)


def composition_eval(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    out: Path,
    methods: Sequence[str | SteeringMethod] | None = None,
) -> pd.DataFrame:
    """Evaluate compositions; writes records and returns the paper-shaped metrics table.

    Pairs use ``eval.n_prompts`` prompts per ordering, triples and 3 + json (6 and 24
    orderings) ``eval.n_prompts_3``: the same first test prompts, so ids agree.
    """
    ev = preset.eval
    combos = preset.composition_combos()
    sm = SteeredModel(bb, tokens)
    kw = dict(
        max_new_tokens=ev.max_new_tokens,
        batch_size=ev.batch_size,
        records=out / "records.jsonl",
        seed=ev.seed,
    )
    methods = methods or COMPOSITION_METHODS
    recs = pd.concat(
        [
            evaluate(
                sm,
                methods,
                [c for c in combos if len(c) == 2],
                P.load("test", limit=ev.n_prompts),
                **kw,
            ),
            evaluate(
                sm,
                methods,
                [c for c in combos if len(c) > 2],
                P.load("test", limit=ev.n_prompts_3),
                **kw,
            ),
        ],
        ignore_index=True,
    )
    return metrics(recs)


def recorded_composition(
    preset: Preset, out: Path, methods: Sequence[str], model: str
) -> pd.DataFrame:
    """The composition records of ``methods`` already in ``out/records.jsonl``, for this
    preset's combinations, prompts and generation settings, without generating anything.

    ``reproduce`` without ``--baselines`` keeps the baselines' rows this way: their
    generations do not depend on the tokens, so retrained tokens leave them valid (they
    stay the baselines as they were trained when recorded). Empty when none were
    recorded.
    """
    ev = preset.eval
    rows = read_records(
        out / "records.jsonl",
        model=model,
        max_new_tokens=ev.max_new_tokens,
        seed=ev.seed,
        prompts=P.load("test", limit=ev.n_prompts),
    )
    if rows.empty:
        return rows
    combos = {
        "+".join(sorted(c, key=B.names().index)) for c in preset.composition_combos()
    }
    limit = rows["k"].map(lambda k: ev.n_prompts if k == 2 else ev.n_prompts_3)
    return rows[
        rows["method"].isin(methods)
        & rows["combo"].isin(combos)
        & (rows["prompt_id"] < limit)
    ]


def reproduce(
    preset: Preset,
    out: Path | None = None,
    with_baselines: bool | Sequence[str] = False,
    overwrite: bool = False,
) -> dict:
    """Stage 1, stage 2, evaluation, tables and figures; resumable. Returns the tables.

    Writes into ``out`` (default ``folders.results_dir(preset, its model)``):
    teacher_compliance.md, single_behavior.md, composition.md/.csv, pair_heatmap.png,
    the generation records, where the preset has validation settings the capable-pairs
    study (capable_pairs.md/.csv, capable_tests.csv, capable_retention.csv/.png;
    ``steerlib.study.capable``), with ``with_baselines`` also caa_sweep.md and
    baselines.md (training seconds and settings of each baseline; on the capable pairs
    ``capable_baselines``' files), and timings.json (this run's seconds per stage,
    which are small for cached stages; ``stage1_token_seconds``, what training the
    behavior tokens cost when they were trained; and peak memory).

    An ``out`` that holds another model's or config's results is refused before any work
    (``folders.check_out``) unless ``overwrite=True``; baselines are checked by name
    first.
    """
    from steerlib.baselines import BASELINES, check_names

    if with_baselines not in (True, False):
        check_names(with_baselines)
    bb = load_backbone(preset.model)
    out = check_out(out, preset, bb, overwrite) if out else results_dir(preset, bb)
    out.mkdir(parents=True, exist_ok=True)
    reports.plan(
        preset, out, with_baselines, preset.composition_combos(), COMPOSITION_METHODS
    )
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        timings[stage] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()
        log.info("%s: %.0f s", stage, timings[stage])

    tokens = train_all_behaviors(bb, preset)
    lap("stage1")
    # what training the tokens cost when they were trained (this run may have loaded
    # them)
    timings["stage1_token_seconds"] = round(
        sum(tokens.info[n].get("seconds", 0.0) for n in tokens.names), 1
    )
    teacher_compliance(bb, preset, out)
    # the filtered column is read from the target comparison's records (targets-compare
    # makes them); reproduce trains only the tokens it ships
    filtered = ("filtered",)
    single = single_table(
        single_behavior_records(
            bb, tokens, preset, out, policies=filtered, recorded_policies=True
        ),
        policies=filtered,
    )
    reports.single_behavior(
        out,
        single.assign(policy=[token_label(preset, n) for n in single.index]),
        preset,
    )
    lap("single_eval")
    tokens = train_composition_token(bb, tokens, preset.stage2)
    reports.tokens_folder(out, tokens, single, preset)
    lap("stage2")
    methods: list = list(COMPOSITION_METHODS)
    which = BASELINES if with_baselines is True else tuple(with_baselines or ())
    if which:
        baselines = preset_baselines(bb, preset, B.names(), which, out)
        lap("baselines")
        reports.baselines(out, baselines)
        methods += list(baselines.values())
    table = composition_eval(bb, tokens, preset, out, methods)
    if not which:  # keep the rows of baselines evaluated before, if any
        kept = recorded_composition(preset, out, BASELINES, bb.fingerprint)
        if len(kept):
            table = pd.concat([table, metrics(kept)], ignore_index=True)
    lap("composition_eval")
    if preset.validation is not None:  # pairs are chosen on validation questions
        from steerlib.study import capable

        extra = capable_baselines(bb, tokens, preset, out, which) if which else []
        capable.run(
            bb,
            tokens,
            preset,
            out,
            methods=[*COMPOSITION_METHODS, *extra],
            keep_recorded=BASELINES,
        )
        lap("capable_pairs")
    reports.composition(out, table)
    written = reports.timings(out, timings)
    log.info("reproduce done in %.0f s; results in %s", written["total"], out)
    return {"single": single, "composition": table, "timings": written}
