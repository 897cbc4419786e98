"""Validation curves: a token's validation pass rate against its training step.

The ``cpu`` preset's maximum step count is read from these curves instead of guessed:
a few behaviors of different kinds are trained for many steps with early stopping
switched off, scored on validation questions every ``every`` steps, and the maximum is
set where the curves have stopped rising. Only validation questions are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from steerlib import distributed
from steerlib.config import ValidationConfig
from steerlib.model.backbone import Backbone
from steerlib.preset import Preset
from steerlib.storage import write_text
from steerlib.train.distill import train_behavior_token


def curve_config(
    preset: Preset, name: str, max_steps: int, validation: ValidationConfig
):
    """``name``'s stage-1 config run for ``max_steps`` and scored throughout (patience
    larger than the number of scores, so the run never stops early)."""
    return replace(
        preset.stage1_config(name),
        steps=max_steps,
        validation=replace(validation, patience=max_steps // validation.every + 2),
    )


def measure(
    bb: Backbone,
    preset: Preset,
    names: Sequence[str],
    max_steps: int,
    validation: ValidationConfig,
    out: Path | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Train each behavior of ``names`` for ``max_steps`` (cached, resumable) and
    return its validation curve: one row per (behavior, step) with the pass rate and
    the training loss at that step. With ``out``, also writes ``validation_curves.csv``
    there."""
    rows = []
    for name in names:
        tokens = train_behavior_token(
            bb,
            name,
            curve_config(preset, name, max_steps, validation),
            progress=progress,
        )
        losses = tokens.losses[name]
        for step, rate in tokens.info[name]["validation"]["curve"]:
            rows.append(
                {
                    "behavior": name,
                    "step": step,
                    "pass_rate": rate,
                    "loss": losses[step - 1] if step else None,
                }
            )
    table = pd.DataFrame(rows)
    if out is not None:
        distributed.main_only(
            write_text, out / "validation_curves.csv", table.to_csv(index=False)
        )
    return table


def peak_steps(table: pd.DataFrame) -> pd.DataFrame:
    """Per behavior: the first step reaching its best pass rate, and that rate."""
    best = table.loc[table.groupby("behavior", sort=False)["pass_rate"].idxmax()]
    return best[["behavior", "step", "pass_rate"]].reset_index(drop=True)
