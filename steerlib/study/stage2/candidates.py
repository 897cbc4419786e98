"""The stage-2 study's candidates: eight ``<and>`` tokens of three families (PLAN.md),
their training config, and their training on the shared targets, cached and resumable.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from steerlib.config import TrainConfig
from steerlib.model.backbone import Backbone
from steerlib.model.layout import Layout, SlotPositions
from steerlib.model.methods import METHODS, Method
from steerlib.model.tokens import SteeringTokens
from steerlib.preset import Preset
from steerlib.presets import presets
from steerlib.study.position.runs import note_cost
from steerlib.train.targets import Target

LAYOUT = Layout(SlotPositions.SHARED, isolate=True)
"""Every candidate is trained and read in the position study's winning layout."""
STEPS = 64
"""At most 64 steps of 8: 512 examples, no target seen twice (PLAN.md)."""
VALIDATION = replace(presets.cpu().validation, every=16, patience=2, patience_steps=32)
"""The cpu preset's validation scoring (24 val questions at the evaluation's 128
tokens), every 16 steps; stop 32 steps after the best rate was first reached
(``patience`` is unused once ``patience_steps`` is set)."""


@dataclass(frozen=True)
class Candidate:
    """One ``<and>`` of the search: its family and what differs from the recipe."""

    name: str
    family: str
    """E (data), F (capacity) or G (objective)."""
    vectors: int = 1
    temperature: float = 10.0
    orth_weight: float = 0.5
    ce_weight: float = 0.0

    @property
    def method(self) -> Method:
        """The candidate's ``<and>`` as an evaluation method, named for tables and
        records: ``and@shared+isolate|E1``."""
        return replace(METHODS["and"], name=f"and@{LAYOUT.label}|{self.name}")

    def config(self, preset: Preset) -> TrainConfig:
        """The preset's stage 2 with this candidate's changes, the study's step budget
        and validation."""
        return replace(
            preset.stage2,
            steps=STEPS,
            vectors=self.vectors,
            temperature=self.temperature,
            orth_weight=self.orth_weight,
            ce_weight=self.ce_weight,
            validation=VALIDATION,
        )

    def describe(self) -> dict:
        """The columns ``search.csv`` gives a candidate's configuration."""
        return {
            "family": self.family,
            "k": self.vectors,
            "T": self.temperature,
            "lambda": self.orth_weight,
            "ce": self.ce_weight,
        }


CANDIDATES = (
    Candidate("E1", "E"),
    Candidate("G1", "G", temperature=2.0, orth_weight=0.0),
    Candidate("G2", "G", temperature=2.0, orth_weight=0.0, ce_weight=1.0),
    Candidate("G3", "G", temperature=1.0, orth_weight=0.0, ce_weight=1.0),
    Candidate("G4", "G", temperature=10.0, orth_weight=0.0, ce_weight=1.0),
    Candidate("G5", "G", temperature=2.0, orth_weight=0.5, ce_weight=1.0),
    Candidate("F1", "F", vectors=4),
    Candidate("F2", "F", vectors=16),
)
"""PLAN.md's candidates in screening order."""


def by_name(name: str) -> Candidate:
    """The candidate called ``name`` (``E1``, ``G3``, ...)."""
    from steerlib.errors import ConfigError

    for candidate in CANDIDATES:
        if candidate.name == name:
            return candidate
    known = ", ".join(c.name for c in CANDIDATES)
    raise ConfigError(f"no stage-2 candidate {name!r}; candidates: {known}")


CANDIDATES_FOLDER = "candidates"
"""Each trained candidate's ``<and>`` with its training record and validation curve."""


def candidate_file(folder: Path, name: str) -> Path:
    """Where the candidate ``name``'s ``<and>`` is kept (``E1.safetensors``)."""
    return folder / CANDIDATES_FOLDER / f"{name}.safetensors"


def behaviors_in_layout(tokens: SteeringTokens) -> SteeringTokens:
    """The frozen behavior tokens (no ``<and>``), read in the study's layout."""
    return tokens.subset([n for n in tokens.names if n != "and"]).with_layout(LAYOUT)


def trained(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    candidate: Candidate,
    targets: Sequence[Target],
    pairs: Sequence[tuple[str, str]],
    folder: Path,
) -> SteeringTokens:
    """The behavior tokens with the candidate's ``<and>``, in the study's layout:
    trained on ``targets`` and validated on ``pairs`` (cached and resumable); the
    training seconds noted in ``folder/costs.json`` when it trained."""
    from steerlib.train.compose import (
        cached_composition_token,
        train_composition_token,
    )

    behaviors = behaviors_in_layout(tokens)
    cfg = candidate.config(preset)
    kw = dict(targets=targets, val_pairs=pairs)
    if cached_composition_token(bb, behaviors, cfg, **kw) is not None:
        return train_composition_token(bb, behaviors, cfg, **kw)
    start = time.perf_counter()
    out = train_composition_token(bb, behaviors, cfg, **kw)
    note_cost(folder, candidate.method.name, "train_s", time.perf_counter() - start)
    return out
