"""The study: the steps behind the CLI and the book, each resumable.

Training every behavior token, the single-behavior table, the target-variant
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
from dataclasses import replace
from pathlib import Path

import pandas as pd

from steerlib.config import TARGET_POLICIES, TrainConfig, policy_config
from steerlib.errors import RecordsError, TooFewTargetsError
from steerlib.evaluation.evaluate import COMPOSITION_METHODS, evaluate
from steerlib.evaluation.records import read_records
from steerlib.evaluation.stats import metrics, wilson
from steerlib.model.backbone import Backbone, load_backbone
from steerlib.model.generate import SteeredModel
from steerlib.model.methods import METHODS, Method, SteeringMethod
from steerlib.model.tokens import SteeringTokens
from steerlib.presets import Preset
from steerlib.study import reports
from steerlib.study.folders import check_out, results_dir
from steerlib.tasks import behaviors as B
from steerlib.tasks import prompts as P
from steerlib.train.compose import train_composition_token
from steerlib.train.distill import train_behavior_token

log = logging.getLogger("steerlib")


def singles() -> list[tuple[str]]:
    """Every behavior as a one-behavior combination."""
    return [(n,) for n in B.names()]


def train_all_behaviors(
    bb: Backbone,
    preset: Preset,
    names: Sequence[str] | None = None,
    retrain: bool = False,
) -> SteeringTokens:
    """Stage 1 for every behavior (each cached on its own)."""
    tokens = SteeringTokens.for_backbone(bb)
    for name in names or B.names():
        tokens = train_behavior_token(
            bb, name, preset.stage1_config(name), tokens=tokens, retrain=retrain
        )
    return tokens


def token_label(preset: Preset, name: str) -> str:
    """The records label of ``name``'s token: its target variant, its step count where
    that differs from the preset's, and "+val" when validation chose its step
    (``records_label``)."""
    cfg = preset.stage1_config(name)
    variant = preset.target_source(name)
    return records_label(
        variant if cfg.steps == preset.stage1.steps else f"{variant}@{cfg.steps}steps",
        cfg,
    )


def records_label(label: str, cfg: TrainConfig) -> str:
    """``label`` + "+val" for a validation-guided token. A token's held-out records are
    stored as ``token:<label>``, and ``evaluate`` replaces a record of the same label
    made with other vectors; the suffix keeps the records of fixed-step tokens (the
    target comparison of the shipped results) apart from those of validation-guided
    ones."""
    return f"{label}+val" if cfg.validation is not None else label


def load_tokens(bb: Backbone, preset: Preset, retrain: bool = False) -> SteeringTokens:
    """Behavior tokens and <and> for this preset: trained (or loaded from the caches
    and the shipped file, which hold exactly what this preset's training would
    produce), read in the preset's layout (``<and>`` trained in it: stage 2 reads its
    behavior tokens there)."""
    tokens = train_all_behaviors(bb, preset, retrain=retrain).with_layout(preset.layout)
    return train_composition_token(bb, tokens, preset.stage2, retrain=retrain)


def teacher_compliance(
    bb: Backbone, preset: Preset, out: Path | None = None
) -> pd.DataFrame:
    """Share of answers that pass each behavior's verifier when asked by instruction.

    This is the ceiling a token distilled from the model's own answers starts from. The
    generations are the 'instruction' records of the single-behavior table (same
    prompts).
    """
    out = out or results_dir(preset, bb)
    ev = preset.eval
    recs = evaluate(
        SteeredModel(bb),
        [METHODS["instruction"]],
        singles(),
        P.load("test", limit=ev.n_single),
        max_new_tokens=ev.max_new_tokens,
        batch_size=ev.batch_size,
        records=out / "single_records.jsonl",
    )
    table = (
        recs.groupby("combo", sort=False)
        .agg(pass_rate=("ok", "mean"), n=("ok", "size"))
        .reindex(B.names())
        .reset_index()
        .rename(columns={"combo": "behavior"})
    )
    table["pass_rate"] = (100 * table["pass_rate"]).round(1)
    reports.teacher_compliance(out, table, bb.model_id, preset)
    return table


def single_behavior_eval(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    out: Path,
    variants: Sequence[str] = (),
    recorded_variants: bool = False,
) -> pd.DataFrame:
    """The single-behavior table: pass rate per behavior for each method (paper Table 9
    shape); ``single_behavior_records`` pivoted by ``single_table``."""
    return single_table(
        single_behavior_records(bb, tokens, preset, out, variants, recorded_variants),
        variants,
    )


def single_table(records: pd.DataFrame, variants: Sequence[str] = ()) -> pd.DataFrame:
    """Pass rate (%) per behavior (rows) and method (columns) of
    ``single_behavior_records``."""
    table = (
        records.assign(ok=100 * records["ok"])
        .pivot_table(index="combo", columns="method", values="ok")
        .reindex(B.names())
        .round(1)
    )
    table.index.name = "behavior"
    return table.reindex(columns=["plain", "instruction", "token", "hybrid", *variants])


def single_behavior_records(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    out: Path,
    variants: Sequence[str] = (),
    recorded_variants: bool = False,
) -> pd.DataFrame:
    """Every held-out generation behind the single-behavior table, one record per
    prompt.

    Methods: plain, instruction, token (each behavior's token in ``tokens``), hybrid,
    and one column per target variant in ``variants`` (e.g. "filtered": tokens trained
    on filtered targets; empty where too few targets survive). Token generations are
    recorded under ``token:<variant>`` in ``targets_records.jsonl``, shared with
    ``targets_comparison``, so a token is evaluated once for both tables.
    ``recorded_variants`` reads the variant columns from those records alone (see
    ``recorded_token_records``): the variant tokens need not be at hand, and nothing is
    trained.
    """
    questions = P.load("test", limit=preset.eval.n_single)
    kw = dict(
        max_new_tokens=preset.eval.max_new_tokens, batch_size=preset.eval.batch_size
    )
    methods = [METHODS["plain"], METHODS["instruction"], METHODS["hybrid"]]
    recs = [
        evaluate(
            SteeredModel(bb, tokens),
            methods,
            singles(),
            questions,
            records=out / "single_records.jsonl",
            **kw,
        )
    ]
    for name in B.names():
        recs.append(
            token_records(
                bb, tokens.subset([name]), token_label(preset, name), preset, out
            ).assign(method="token")
        )
        for label in variants:
            found = (
                recorded_token_records(preset, name, label, out)
                if recorded_variants
                else variant_records(bb, preset, name, label, out)
            )
            if (
                found is not None
            ):  # None: too few targets, an empty cell rather than a fake one
                recs.append(found.assign(method=label))
    return pd.concat(recs, ignore_index=True)


def variant_token(
    bb: Backbone, preset: Preset, name: str, variant: str
) -> SteeringTokens:
    """``<name>`` trained with the preset's stage-1 config under one target variant
    (cached).

    Raises TooFewTargetsError when the variant's source leaves too few targets.
    """
    return train_behavior_token(
        bb, name, policy_config(preset.stage1, variant, B.constructible(name))
    )


def variant_records(
    bb: Backbone, preset: Preset, name: str, variant: str, out: Path
) -> pd.DataFrame | None:
    """The held-out records of ``variant_token``, or None (with a warning) when its
    source leaves too few targets to train on."""
    try:
        tokens = variant_token(bb, preset, name, variant)
    except TooFewTargetsError as err:
        log.warning("%s / %s: %s", name, variant, err)
        return None
    return token_records(bb, tokens, records_label(variant, preset.stage1), preset, out)


def recorded_token_records(
    preset: Preset, name: str, variant: str, out: Path
) -> pd.DataFrame | None:
    """The recorded held-out generations of ``<name>`` trained on ``variant`` targets,
    read from ``targets_records.jsonl`` without the token's vector (so their stamps
    cannot be checked against it); None when no record of it exists ("too few targets":
    nothing was trained). A partial set, or records of other prompts, is an error.

    This is how the book and ``reproduce`` show the filtered column of the
    single-behavior table: those tokens are not shipped (only each behavior's chosen
    token is), their records are. ``variant`` is the records label as written: the
    committed target comparison's tokens trained a fixed number of steps, so their
    label is the bare variant (validation-guided ones carry "+val", ``records_label``).
    """
    questions = P.load("test", limit=preset.eval.n_single)
    path = out / "targets_records.jsonl"
    rows = read_records(path, max_new_tokens=preset.eval.max_new_tokens)
    mine = (
        rows[
            (rows["method"] == f"token:{variant}")
            & (rows["order"] == name)
            & (rows["prompt_id"] < len(questions))
        ]
        .sort_values("prompt_id")
        .reset_index(drop=True)
    )
    if mine.empty:
        return None
    if (
        mine["prompt_id"].tolist() != list(range(len(questions)))
        or mine["prompt"].tolist() != questions
    ):
        raise RecordsError(
            f"{path} holds {len(mine)} 'token:{variant}' records of <{name}>, not one "
            "for each of the "
            f"{len(questions)} test prompts of the {preset.name} preset: regenerate "
            "them with "
            f"`python -m steerlib targets-compare --preset {preset.name}`"
        )
    return mine


def token_records(
    bb: Backbone, tokens: SteeringTokens, variant: str, preset: Preset, out: Path
) -> pd.DataFrame:
    """Held-out generations of the one behavior token in ``tokens``, recorded as
    ``token:<variant>``."""
    (name,) = tokens.names
    return evaluate(
        SteeredModel(bb, tokens),
        [Method(f"token:{variant}", joiner=None)],
        [(name,)],
        P.load("test", limit=preset.eval.n_single),
        max_new_tokens=preset.eval.max_new_tokens,
        batch_size=preset.eval.batch_size,
        records=out / "targets_records.jsonl",
    )


def targets_comparison(
    bb: Backbone,
    preset: Preset,
    names: Sequence[str],
    out: Path,
    variants: Sequence[str] = tuple(TARGET_POLICIES),
) -> pd.DataFrame:
    """Instruction compliance next to tokens trained on each target variant, per
    behavior.

    Each token is trained with the preset's stage-1 config and only the target source
    (and CE weight) changed; pass rates on the same held-out prompts with 95% Wilson
    intervals. A source that cannot give enough targets (filtered, for a behavior the
    model never follows) is reported as such instead of trained; a variant that reduces
    to an earlier one (constructed, for a language) shares its row.
    """
    ev = preset.eval
    rows = []
    for name in names:
        recs = evaluate(
            SteeredModel(bb),
            [METHODS["instruction"]],
            [(name,)],
            P.load("test", limit=ev.n_single),
            max_new_tokens=ev.max_new_tokens,
            batch_size=ev.batch_size,
            records=out / "single_records.jsonl",
        )
        rows.append(_rate_row(name, "instruction", recs))
        done: dict[TrainConfig, dict] = {}
        for label in variants:
            cfg = policy_config(preset.stage1, label, B.constructible(name))
            if cfg in done:
                rows.append(
                    {
                        **done[cfg],
                        "method": label,
                        "note": f"= {done[cfg]['method']} (no transform)",
                    }
                )
                continue
            found = variant_records(bb, preset, name, label, out)
            row = (
                _rate_row(name, label, found)
                if found is not None
                else {
                    "behavior": name,
                    "method": label,
                    "pass_rate": float("nan"),
                    "lo": float("nan"),
                    "hi": float("nan"),
                    "n": 0,
                    "note": "too few targets",
                }
            )
            if cfg.targets.source != TARGET_POLICIES[label][0]:
                row["note"] = (
                    row["note"] or f"no transform: {cfg.targets.source} targets"
                )
            done[cfg] = row
            rows.append(row)
    table = pd.DataFrame(rows)
    reports.targets_comparison(out, table, preset, names, variants)
    return table


def best_variants(table: pd.DataFrame) -> dict[str, str]:
    """Per behavior of a ``targets_comparison`` table, the token variant with the
    highest pass rate; a tie goes to the earlier (simpler) variant in
    ``TARGET_POLICIES`` order."""
    tokens = table[table["method"].isin(list(TARGET_POLICIES))].dropna(
        subset=["pass_rate"]
    )
    best = {}
    for name, group in tokens.groupby("behavior", sort=False):
        rates = group.set_index("method")["pass_rate"]
        best[name] = rates.reindex(
            [v for v in TARGET_POLICIES if v in rates.index]
        ).idxmax()
    return best


def _rate_row(name: str, method: str, recs: pd.DataFrame) -> dict:
    k, n = int(recs["ok"].sum()), len(recs)
    lo, hi = wilson(k, n)
    return {
        "behavior": name,
        "method": method,
        "pass_rate": 100 * k / n,
        "lo": 100 * lo,
        "hi": 100 * hi,
        "n": n,
        "note": "",
    }


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


CAA_ALPHAS = (1.0, 3.0, 6.0)
"""The multipliers ``caa_sweep`` tries (the paper's 3.0, a third of it and twice it)."""


def caa_sweep(bb: Backbone, caa, preset: Preset, out: Path, name: str = "caa_sweep"):
    """CAA with the layer and alpha that pass most of its single behaviors on
    validation questions.

    Validation questions are training-split questions the CAA vectors were not averaged
    over (the first ``eval.n_prompts`` of them); the layers tried are the paper's
    relative depth and four layers either side. Writes the sweep to ``<name>.md`` and
    its generations to ``<name>_records.jsonl`` (another ``name`` for a sweep over
    another set of behaviors, so that the two sweeps keep their own records: vectors
    extracted again, e.g. under another thread count, differ in their last bits and
    would make the other sweep's records stale) and returns CAA at the best setting.
    """
    from steerlib.baselines import CAAConfig, sweep
    from steerlib.baselines.caa import default_layer, extraction_questions

    used = set(extraction_questions(CAAConfig(seed=preset.stage1.seed)))
    validation = [q for q in P.load("train") if q not in used][: preset.eval.n_prompts]
    n_layers = len(bb.model.base_model.layers)
    layers = sorted(
        {min(max(default_layer(bb) + d, 0), n_layers - 1) for d in (-4, 0, 4)}
    )
    names = [n for n in B.names() if n in caa.names]
    table = sweep(
        bb,
        caa,
        names,
        validation,
        CAA_ALPHAS,
        layers,
        max_new_tokens=preset.eval.max_new_tokens,
        batch_size=preset.eval.batch_size,
        records=out / f"{name}_records.jsonl",
    )
    reports.caa_sweep(out / f"{name}.md", table, len(validation))
    best = table.iloc[0]
    return replace(caa, layer=int(best["layer"]), alpha=float(best["alpha"]))


def preset_baselines(
    bb: Backbone,
    preset: Preset,
    names: Sequence[str],
    which: Sequence[str],
    out: Path,
    sweep_name: str = "caa_sweep",
) -> dict:
    """The baselines in ``which`` for ``names``, trained as this preset trains them:
    LM-Steer and LoRA with each behavior token's own stage-1 config (same targets, CE
    weight and steps; at their own lr where ``preset.baseline_lr`` gives one), CAA at
    the layer and alpha its sweep over ``names`` picks on validation questions
    (``caa_sweep``, written to ``<sweep_name>.md``). Cached and resumable like the
    tokens."""
    from steerlib.baselines import train_baselines

    baselines = train_baselines(
        bb,
        names,
        preset.stage1,
        which=which,
        lr=preset.baseline_lr,
        train_for={n: preset.stage1_config(n) for n in names},
    )
    if "caa" in baselines:
        baselines["caa"] = caa_sweep(bb, baselines["caa"], preset, out, name=sweep_name)
    return baselines


def capable_baselines(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    out: Path,
    which: Sequence[str],
) -> list:
    """The baselines in ``which`` for the behaviors of the capable pairs
    (``capable.choose``), CAA at the layer and alpha its sweep over those behaviors
    alone picks (``capable_caa_sweep.md``), their costs in ``capable_baselines.md``; []
    when no pair qualified. ``reproduce --baselines`` and ``capable --baselines`` both
    call it, so the two commands record the same baseline rows on the capable pairs (a
    sweep over all behaviors may pick another CAA setting)."""
    from steerlib.study import capable

    _, selected = capable.choose(bb, tokens, preset, out)
    names = sorted({n for pair in selected for n in pair}, key=B.names().index)
    if not names:
        return []
    baselines = preset_baselines(
        bb, preset, names, which, out, sweep_name="capable_caa_sweep"
    )
    reports.baselines(out, baselines, name="capable_baselines")
    return list(baselines.values())


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
    single = single_behavior_eval(
        bb, tokens, preset, out, variants=("filtered",), recorded_variants=True
    )
    reports.single_behavior(
        out,
        single.assign(variant=[token_label(preset, n) for n in single.index]),
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
            [*COMPOSITION_METHODS, *extra],
            keep_recorded=BASELINES,
        )
        lap("capable_pairs")
    reports.composition(out, table)
    written = reports.timings(out, timings)
    log.info("reproduce done in %.0f s; results in %s", written["total"], out)
    return {"single": single, "composition": table, "timings": written}
