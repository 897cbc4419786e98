"""A switch that turns "train it now" into an error naming what is missing.

Every step of steerlib caches what it makes, so a missing or stale artifact is normally
made again: a token trained, targets or records generated. That is right for a user
running the study, and wrong for the book: building the pages must only read what ships
with the project. Under ``STEERLIB_NO_TRAIN=1`` (``make book`` sets it) each place that
would train or generate for a cache calls ``refuse_work`` first, so a missing artifact
fails the build in seconds with its name, instead of silently training for half an hour.
Live demos (a few generations printed on a page) do not go through these places.
"""
from __future__ import annotations

import os

NO_TRAIN_ENV = "STEERLIB_NO_TRAIN"


class TrainingDisabled(Exception):
    """Raised instead of training or generating for a cache while ``STEERLIB_NO_TRAIN=1``.

    Not a RuntimeError on purpose: callers that treat RuntimeError as "too few targets,
    leave the cell empty" must not swallow it.
    """


def training_disabled() -> bool:
    return os.environ.get(NO_TRAIN_ENV, "") not in ("", "0")


def refuse_work(what: str) -> None:
    """Raise ``TrainingDisabled`` naming ``what`` (the artifact that would be made) when the
    guard is on; do nothing otherwise."""
    if training_disabled():
        raise TrainingDisabled(
            f"steerlib would have to make {what}, which is neither cached nor shipped, but "
            f"{NO_TRAIN_ENV}=1 forbids training and generating here (`make book` sets it: the book reads "
            f"only the committed tokens and records). Commit the missing artifact, or unset "
            f"{NO_TRAIN_ENV} to make it.")
