"""The search's runs: screening candidates on the selection set, training families B and
C, and each run's measured cost in ``costs.json``.

Every run is cached and resumable (records per candidate under ``selection/``, tokens in
the training caches); ``costs.json`` keeps the first measured figure of each, so a rerun
that reuses records leaves the cost of the run that made them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from steerlib.model.backbone import Backbone
from steerlib.model.generate import SteeredModel
from steerlib.model.layout import Layout
from steerlib.model.methods import Method
from steerlib.model.tokens import SteeringTokens
from steerlib.preset import Preset
from steerlib.storage import lock, write_text
from steerlib.study.position.candidates import (
    DISPLACE,
    DISPLACED_STAGE2,
    displace_part,
    parse_candidate,
    retrained_name,
)
from steerlib.study.position.selection import seen_pairs, selection_records

log = logging.getLogger("steerlib")

SELECTION = "selection"
"""The folder of the selection records, one file per candidate (so candidates run side
by side)."""


COSTS = "costs.json"


STAGE1_COSTS = "stage1{}"
"""The ``costs.json`` entry holding each displaced behavior's stage-1 seconds."""


def read_costs(folder: Path) -> dict:
    path = folder / COSTS
    return json.loads(path.read_text()) if path.is_file() else {}


def note_cost(folder: Path, candidate: str, kind: str, seconds: float) -> None:
    """Keep a candidate's measured cost; a run that reused its records leaves the first
    figure. Read and written under the file's lock: runs side by side note their costs
    in turn."""
    with lock(folder / COSTS):
        costs = read_costs(folder)
        costs.setdefault(candidate, {})[kind] = round(seconds, 1)
        write_text(folder / COSTS, json.dumps(costs, indent=1, sort_keys=True) + "\n")


def selection_file(folder: Path, candidate: str) -> Path:
    return folder / SELECTION / f"{candidate.replace('|', '_')}.jsonl"


def screen(
    sm: SteeredModel,
    preset: Preset,
    methods: Sequence[Method],
    pairs: Sequence[tuple[str, str]],
    folder: Path,
) -> pd.DataFrame:
    """Each method on the selection set, one at a time (its generation time noted when
    it generated anything); returns all their selection records."""
    parts = []
    for method in methods:
        start = time.perf_counter()
        parts.append(
            selection_records(
                sm, preset, [method], pairs, selection_file(folder, method.name)
            )
        )
        seconds = time.perf_counter() - start
        if seconds > 30:  # it generated (reading records takes a second or two)
            note_cost(folder, method.name, "eval_s", seconds)
        log.info("position screen: %s done (%.0f s)", method.name, seconds)
    return pd.concat(parts, ignore_index=True)


def displaced_behaviors(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """The behaviors family B retrains: those of the kept seen pairs (the selection
    set's), then those only the kept unseen pairs use (needed for the test alone)."""
    seen = sorted({b for p in seen_pairs(pairs) for b in p})
    return seen + sorted({b for p in pairs for b in p} - set(seen))


def displace_jobs(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """``--stage displace`` jobs in order: each behavior's stage-1 run, then the two B
    candidates screened on top of them (their names), so two processes can share the
    work."""
    return [f"<{b}>" for b in displaced_behaviors(pairs)] + [
        retrained_name(Layout(), **DISPLACED_STAGE2, displace=DISPLACE),
        f"concat@{Layout().label}{displace_part(DISPLACE)}",
    ]


def displaced_tokens(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    behaviors: Sequence[str],
    folder: Path,
    displace: int = DISPLACE,
) -> SteeringTokens:
    """``tokens`` with ``behaviors`` retrained at stage 1 (the preset's config for
    each, and ``displace``), cached and resumable like any stage-1 run; each training
    time noted."""
    from steerlib.train.distill import stage1_path, train_behavior_token

    out = tokens.copy()
    for name in behaviors:
        cfg = replace(preset.stage1_config(name), displace=displace)
        cached = stage1_path(bb, name, cfg).is_file()
        start = time.perf_counter()
        out = train_behavior_token(bb, name, cfg, tokens=out)
        if not cached:
            note_cost(
                folder,
                STAGE1_COSTS.format(displace_part(displace)),
                name,
                time.perf_counter() - start,
            )
    return out


def retrain(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    layout: Layout,
    temperature: float,
    ce_weight: float,
    folder: Path,
    displace: int = 0,
) -> SteeringTokens:
    """Family C: ``<and>`` trained anew (stage 2 of the preset, cached and resumable)
    with the behavior tokens read in ``layout``, at distillation temperature
    ``temperature`` and cross-entropy weight ``ce_weight``; its training time is
    noted."""
    from steerlib.train.compose import cached_composition_token, train_composition_token

    cfg = replace(preset.stage2, temperature=temperature, ce_weight=ce_weight)
    behaviors = tokens.subset([n for n in tokens.names if n != "and"]).with_layout(
        layout
    )
    name = retrained_name(layout, temperature, ce_weight, displace)
    if cached_composition_token(bb, behaviors, cfg) is None:
        start = time.perf_counter()
        trained = train_composition_token(bb, behaviors, cfg)
        note_cost(folder, name, "train_s", time.perf_counter() - start)
        return trained
    return train_composition_token(bb, behaviors, cfg)


def winner_tokens(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    name: str,
    pairs: Sequence[tuple[str, str]],
    folder: Path,
) -> SteeringTokens:
    """The winning candidate's pack: the behavior tokens (shipped, or displaced for the
    kept pairs' behaviors), its ``<and>`` (shipped or retrained) and its layout in the
    pack's metadata."""
    _, layout, train = parse_candidate(name)
    train = dict(train or {})
    if displace := train.pop("displace", 0):
        tokens = displaced_tokens(
            bb, tokens, preset, displaced_behaviors(pairs), folder, displace
        )
    if not train:
        return tokens.with_layout(layout)
    return retrain(
        bb,
        tokens,
        preset,
        layout,
        train["temperature"],
        train["ce_weight"],
        folder,
        displace,
    )
