"""The whole study as a few resumable steps: the functions behind the CLI and the book.

Each step caches what it makes (tokens under ``artifacts/``, generations as JSON-lines
records in the results folder), so running it again, or building the book, reuses the
work, and an interrupted run continues where it stopped.
"""
from __future__ import annotations

import json
import logging
import resource
import time
from pathlib import Path
from typing import Sequence

import pandas as pd

from . import behaviors as B
from . import prompts as P
from .backbone import Backbone, load_backbone
from .compose import train_composition_token
from .config import Preset, TrainConfig, replace
from .distill import train_behavior_token
from .evaluate import evaluate, format_metrics, metrics, orderings, per_ordering, sample_combos
from .generate import METHODS, Method, SteeredModel
from .paths import results_dir
from .tokens import SteeringTokens

log = logging.getLogger("steerlib")

TOKEN = Method("token", joiner=None)
"""A single behavior token (the k = 1 case of every token method)."""
SINGLE_METHODS = (METHODS["plain"], METHODS["instruction"], TOKEN, METHODS["hybrid"])
COMPOSITION_METHODS = ("instruction", "concat", "native_and", "and", "hybrid")


def singles() -> list[tuple[str]]:
    return [(n,) for n in B.names()]


def teacher_compliance(bb: Backbone, preset: Preset, out: Path | None = None) -> pd.DataFrame:
    """Share of answers that pass each behavior's verifier when asked by instruction.

    This is the ceiling a token distilled from the model's own answers starts from. The
    generations are the 'instruction' records of the single-behavior table (same prompts).
    """
    out = out or results_dir(preset.name)
    ev = preset.eval
    recs = evaluate(SteeredModel(bb), [METHODS["instruction"]], singles(), P.load("test", limit=ev.n_single),
                    max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size,
                    records=out / "single_records.jsonl")
    table = (recs.groupby("combo", sort=False).agg(pass_rate=("ok", "mean"), n=("ok", "size"))
             .reindex(B.names()).reset_index().rename(columns={"combo": "behavior"}))
    table["pass_rate"] = (100 * table["pass_rate"]).round(1)
    _write_md(out / "teacher_compliance.md", table,
              f"Instruction compliance (%) of {bb.model_id}: {ev.n_single} test prompts per behavior, greedy, "
              f"{ev.max_new_tokens} new tokens. Made by `python -m steerlib teacher-compliance --preset {preset.name}`.")
    return table


def train_all_behaviors(bb: Backbone, preset: Preset, names: Sequence[str] | None = None,
                        retrain: bool = False) -> SteeringTokens:
    """Stage 1 for every behavior (each cached on its own)."""
    tokens = SteeringTokens.for_backbone(bb)
    for name in names or B.names():
        tokens = train_behavior_token(bb, name, stage1_config(preset, name), tokens=tokens, retrain=retrain)
    return tokens


def stage1_config(preset: Preset, name: str) -> TrainConfig:
    """The stage-1 config of one behavior: the preset's, with its per-behavior target source."""
    source = preset.target_source(name)
    if source == preset.stage1.targets.source:
        return preset.stage1
    return replace(preset.stage1, targets=replace(preset.stage1.targets, source=source))


def load_tokens(bb: Backbone, preset: Preset, retrain: bool = False) -> SteeringTokens:
    """Behavior tokens and <and> for this preset: trained (or loaded from the caches and the
    shipped file, which hold exactly what this preset's training would produce)."""
    tokens = train_all_behaviors(bb, preset, retrain=retrain)
    return train_composition_token(bb, tokens, preset.stage2, retrain=retrain)


def single_behavior_eval(bb: Backbone, tokens: SteeringTokens, preset: Preset, out: Path,
                         extra: dict[str, SteeringTokens] | None = None) -> pd.DataFrame:
    """The single-behavior table: pass rate per behavior for each method (paper Table 9 shape).

    ``extra`` maps a label to another token set (e.g. tokens from filtered targets),
    evaluated as a token method under that label.
    """
    questions = P.load("test", limit=preset.eval.n_single)
    kw = dict(max_new_tokens=preset.eval.max_new_tokens, batch_size=preset.eval.batch_size)
    sm = SteeredModel(bb, tokens)
    recs = [evaluate(sm, SINGLE_METHODS, singles(), questions, records=out / "single_records.jsonl", **kw)]
    for label, other in (extra or {}).items():
        recs.append(evaluate(SteeredModel(bb, other), [Method(label, joiner=None)], singles(), questions,
                             records=out / f"single_records_{label}.jsonl", **kw))
    records = pd.concat(recs, ignore_index=True)
    table = (records.assign(ok=100 * records["ok"]).pivot_table(index="combo", columns="method", values="ok")
             .reindex(B.names()).round(1))
    table.index.name = "behavior"
    return table[[m for m in ["plain", "instruction", "token", "hybrid", *(extra or {})] if m in table]]


def composition_combos(preset: Preset) -> list[tuple[str, ...]]:
    """The sampled combinations of every split: seen/unseen x 2/3 behaviors, plus 3 + json."""
    ev = preset.eval
    combos = []
    for k in (2, 3):
        for split in ("seen", "unseen"):
            combos += sample_combos(k, split, ev.n_combos if k == 2 else ev.n_combos_3, ev.seed)
    return combos + sample_combos(4, "all", ev.n_combos_4, ev.seed, include_json=True)


def composition_eval(bb: Backbone, tokens: SteeringTokens, preset: Preset, out: Path,
                     methods: Sequence[str | Method] | None = None) -> pd.DataFrame:
    """Evaluate compositions; writes records and returns the paper-shaped metrics table.

    Pairs use ``eval.n_prompts`` prompts per ordering, triples and 3 + json (6 and 24
    orderings) ``eval.n_prompts_3``: the same first test prompts, so ids agree.
    """
    ev = preset.eval
    combos = composition_combos(preset)
    sm = SteeredModel(bb, tokens)
    kw = dict(max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size, records=out / "records.jsonl",
              seed=ev.seed)
    methods = methods or COMPOSITION_METHODS
    recs = pd.concat([
        evaluate(sm, methods, [c for c in combos if len(c) == 2], P.load("test", limit=ev.n_prompts), **kw),
        evaluate(sm, methods, [c for c in combos if len(c) > 2], P.load("test", limit=ev.n_prompts_3), **kw),
    ], ignore_index=True)
    return metrics(recs)


def reproduce(preset: Preset, out: Path | None = None, with_baselines: bool = False) -> dict:
    """Stage 1, stage 2, evaluation, tables and figures; resumable. Returns the tables.

    Writes into ``out`` (default ``results/<preset>``): teacher_compliance.md,
    single_behavior.md, composition.md/.csv, pair_heatmap.png, the generation records
    and timings.json (seconds per stage and peak memory).
    """
    from . import plots

    out = out or results_dir(preset.name)
    out.mkdir(parents=True, exist_ok=True)
    _print_plan(preset, out, with_baselines)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        timings[stage] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()
        log.info("%s: %.0f s", stage, timings[stage])

    bb = load_backbone(preset.model)
    tokens = train_all_behaviors(bb, preset)
    lap("stage1")
    teacher_compliance(bb, preset, out)
    single = single_behavior_eval(bb, tokens, preset, out)
    _write_md(out / "single_behavior.md", single.reset_index(),
              f"Pass rate (%) per behavior, {preset.eval.n_single} held-out prompts each, greedy, "
              f"{preset.eval.max_new_tokens} new tokens.")
    lap("single_eval")
    tokens = train_composition_token(bb, tokens, preset.stage2)
    tokens.save(out / "tokens.safetensors")
    lap("stage2")
    methods: list = list(COMPOSITION_METHODS)
    if with_baselines:
        from .baselines import train_baselines

        methods += list(train_baselines(bb, B.names(), preset.stage1).values())
        lap("baselines")
    table = composition_eval(bb, tokens, preset, out, methods)
    lap("composition_eval")
    table.to_csv(out / "composition.csv", index=False)
    _write_md(out / "composition.md", format_metrics(table),
              "Composition accuracy (%), mean over orderings [95% Wilson interval]; best ordering; order "
              "variance [bootstrap interval over combinations]; combinations and generations per cell.")
    records = pd.read_json(out / "records.jsonl", lines=True)
    fig = plots.pair_heatmap(per_ordering(records), method="and")
    fig.savefig(out / "pair_heatmap.png", dpi=120, bbox_inches="tight")
    timings["total"] = round(sum(timings.values()), 1)
    timings["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, 2)
    (out / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")
    log.info("reproduce done in %.0f s; results in %s", timings["total"], out)
    return {"single": single, "composition": table, "timings": timings}


def _print_plan(preset: Preset, out: Path, with_baselines: bool) -> None:
    ev = preset.eval
    combos = composition_combos(preset)
    n_orders = sum(len(orderings(c)) for c in combos)
    n_gen = (len(B.names()) * ev.n_single * 3 + ev.n_single
             + sum(len(orderings(c)) * (ev.n_prompts if len(c) == 2 else ev.n_prompts_3) for c in combos)
             * len(COMPOSITION_METHODS))
    print(f"steerlib reproduce --preset {preset.name} -> {out}\n"
          f"  stage 1: {len(B.names())} behavior tokens x {preset.stage1.steps} steps of {preset.stage1.batch_size}"
          f" (cached ones are loaded)\n"
          f"  stage 2: <and>, {preset.stage2.steps} steps of {preset.stage2.batch_size}\n"
          f"  evaluation: {len(B.names())} behaviors x {ev.n_single} prompts alone; {len(combos)} combinations "
          f"({n_orders} orderings) x {len(COMPOSITION_METHODS)} methods; about {n_gen} generations of "
          f"<= {ev.max_new_tokens} tokens (cached ones are reused)"
          + ("\n  baselines: CAA, LM-Steer, LoRA-DARE for every behavior" if with_baselines else ""))


def _write_md(path: Path, table: pd.DataFrame, caption: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{caption}\n\n{table.to_markdown(index=False)}\n")


SOURCE_VARIANTS = {"self": dict(source="self"), "filtered": dict(source="filtered"),
                   "constructed": dict(source="constructed"), "constructed+ce": dict(source="constructed", ce=1.0)}
"""The target sources compared per behavior (constructed+ce adds a cross-entropy term of weight 1)."""


def targets_comparison(bb: Backbone, preset: Preset, names: Sequence[str], out: Path,
                       variants: Sequence[str] = tuple(SOURCE_VARIANTS)) -> pd.DataFrame:
    """Instruction compliance next to tokens trained on each target source, per behavior.

    Each token is trained with the preset's stage-1 config and only the target source
    (and CE weight) changed; pass rates on the same held-out prompts with 95% Wilson
    intervals. A source that cannot give enough targets (filtered, for a behavior the
    model never follows) is reported as such instead of trained.
    """
    from .evaluate import wilson

    ev = preset.eval
    questions = P.load("test", limit=ev.n_single)
    kw = dict(max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size)
    rows = []
    for name in names:
        recs = evaluate(SteeredModel(bb), [METHODS["instruction"]], [(name,)], questions,
                        records=out / "single_records.jsonl", **kw)
        rows.append(_rate_row(name, "instruction", recs, wilson))
        for label in variants:
            spec = SOURCE_VARIANTS[label]
            cfg = replace(preset.stage1, ce_weight=spec.get("ce", 0.0),
                          targets=replace(preset.stage1.targets, source=spec["source"]))
            try:
                tokens = train_behavior_token(bb, name, cfg)
            except RuntimeError as err:  # too few filtered/constructed targets
                log.warning("%s / %s: %s", name, label, err)
                rows.append({"behavior": name, "method": label, "pass_rate": float("nan"), "lo": float("nan"),
                             "hi": float("nan"), "n": 0, "note": "too few targets"})
                continue
            recs = evaluate(SteeredModel(bb, tokens), [Method(f"token:{label}", joiner=None)], [(name,)],
                            questions, records=out / "targets_records.jsonl", **kw)
            rows.append(_rate_row(name, label, recs, wilson))
    table = pd.DataFrame(rows)
    _write_md(out / "targets_comparison.md", table.round(1),
              f"Pass rate (%) with 95% Wilson interval, {ev.n_single} held-out prompts per cell: instruction "
              f"compliance and tokens trained on each target source. Made by `python -m steerlib targets-compare "
              f"--preset {preset.name}`.")
    return table


def _rate_row(name: str, method: str, recs: pd.DataFrame, wilson) -> dict:
    k, n = int(recs["ok"].sum()), len(recs)
    lo, hi = wilson(k, n)
    return {"behavior": name, "method": method, "pass_rate": 100 * k / n, "lo": 100 * lo, "hi": 100 * hi, "n": n,
            "note": ""}
