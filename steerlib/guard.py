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

from steerlib.errors import ConfigError, SteerlibError

NO_TRAIN_ENV = "STEERLIB_NO_TRAIN"


class TrainingDisabled(SteerlibError):
    """Raised instead of training or generating for a cache while
    ``STEERLIB_NO_TRAIN=1``.

    Not a ``TooFewTargetsError``: the study's "too few targets, leave the cell empty"
    must not swallow it.
    """


ON = ("1", "true", "yes", "on")
OFF = ("", "0", "false", "no", "off")
"""The values ``STEERLIB_NO_TRAIN`` takes (any case); anything else is an error, since a
guess either way would train when told not to or refuse what was asked."""


def training_disabled() -> bool:
    value = os.environ.get(NO_TRAIN_ENV, "").strip().lower()
    if value not in ON + OFF:
        raise ConfigError(
            f"{NO_TRAIN_ENV}={os.environ[NO_TRAIN_ENV]!r} is neither on "
            f"({', '.join(ON)}) nor off "
            f"({', '.join(OFF[1:])}, empty or unset)"
        )
    return value in ON


def refuse_work(what: str) -> None:
    """Raise ``TrainingDisabled`` naming ``what`` (the artifact that would be made)
    when the guard is on; do nothing otherwise."""
    if training_disabled():
        raise TrainingDisabled(
            f"steerlib would have to make {what}, which is neither cached nor shipped, "
            "but "
            f"{NO_TRAIN_ENV}={os.environ[NO_TRAIN_ENV]} forbids training and "
            "generating here (`make book` "
            "sets it: the book reads only the committed tokens and records). Commit "
            "the missing artifact, "
            f"or unset {NO_TRAIN_ENV} to make it."
        )
