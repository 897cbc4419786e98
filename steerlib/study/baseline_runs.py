"""The baselines as study steps: the CAA strength sweep, and the trained baselines of a
preset and of the capable pairs (``steerlib.baselines`` holds the methods)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from steerlib.model.backbone import Backbone
from steerlib.model.tokens import SteeringTokens
from steerlib.preset import Preset
from steerlib.study import reports
from steerlib.tasks import behaviors as B
from steerlib.tasks import prompts as P

log = logging.getLogger("steerlib")


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
