"""The stage-2 study's training data: filtered pair targets for the kept seen pairs,
plus the recipe's constructed targets (``results/cpu/stage2/PLAN.md``)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import pandas as pd

from steerlib.config import TargetConfig, TargetSource
from steerlib.model.backbone import Backbone
from steerlib.preset import Preset
from steerlib.tasks import prompts as P
from steerlib.train.compose import composition_targets, pair_jobs
from steerlib.train.targets import Target, make_targets

log = logging.getLogger("steerlib")

PER_QUESTION = 4
"""Kept seen pairs each pair-target question asks (the pairs take turns): 376
questions x 4 = 1,504 jobs, enough for at least 1,000 filtered targets at the
instructions' ~70% joint pass rate on these pairs."""
PAIR_TARGETS = "pairs"
"""The targets cache key of the pair targets."""


def pair_questions(preset: Preset) -> list[str]:
    """The train questions that are not the position study's selection set: every
    question a stage-2 target may come from (the selection set scores the
    candidates)."""
    from steerlib.study.position.selection import selection_questions

    selection = set(selection_questions(preset))
    return [q for q in P.load("train") if q not in selection]


def pair_target_config(preset: Preset) -> TargetConfig:
    """The preset's stage-2 target settings with the filtered source: the model's own
    answers under both instructions, kept where both verifiers pass."""
    return replace(preset.stage2.targets, source=TargetSource.FILTERED)


def pair_targets(
    bb: Backbone,
    preset: Preset,
    pairs: Sequence[tuple[str, str]],
    progress: bool | None = None,
) -> list[Target]:
    """Filtered pair targets for ``pairs`` (cached and resumable, shardable under
    torchrun)."""
    jobs = pair_jobs(pairs, pair_questions(preset), PER_QUESTION, preset.stage2.seed)
    return make_targets(
        bb,
        jobs,
        pair_target_config(preset),
        key=PAIR_TARGETS,
        seed=preset.stage2.seed,
        progress=progress,
    )


def training_targets(
    bb: Backbone, preset: Preset, pairs: Sequence[tuple[str, str]]
) -> list[Target]:
    """What every trained candidate learns from: the filtered pair targets, then the
    recipe's constructed targets (the 131 today's ``<and>`` was trained on)."""
    return pair_targets(bb, preset, pairs) + composition_targets(bb, preset.stage2)


def targets_table(targets: Sequence[Target]) -> pd.DataFrame:
    """How many training targets each behavior set has (in either order)."""
    counts = Counter("+".join(sorted(t.names)) for t in targets)
    return pd.DataFrame(sorted(counts.items()), columns=["pair", "targets"])
