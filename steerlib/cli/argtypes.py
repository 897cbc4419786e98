"""Option values that name things, checked while the command line is read.

The ``type=`` of the options naming behaviors, baselines, ablations and evaluation
methods.

A misspelled name is then a usage error in one line listing the names there are (exit
code 2), before a model loads or any training starts.
"""

from __future__ import annotations

import argparse

from steerlib.errors import ConfigError
from steerlib.tasks import behaviors as B


def behavior(name: str) -> str:
    """A ``--behaviors`` value: 'all' or a behavior's name, checked before any work."""
    if name != "all" and name not in B.names():
        raise argparse.ArgumentTypeError(
            f"unknown behavior {name!r}; known: all, {', '.join(B.names())}"
        )
    return name


def baseline(name: str) -> str:
    """A ``--baselines`` value, checked before any work."""
    from steerlib.baselines import check_names

    try:
        check_names([name])
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return name


OLD_ABLATION_NAMES = {"variant": "combos"}
"""``--which`` names before issue 35 renamed them, still read (removed after 0.2)."""


def ablation(name: str) -> str:
    """An ``ablations --which`` value, checked before any work."""
    from steerlib.study.ablations import ABLATIONS

    name = OLD_ABLATION_NAMES.get(name, name)
    if name not in ABLATIONS:
        raise argparse.ArgumentTypeError(
            f"unknown ablation {name!r}; known: {', '.join(ABLATIONS)}"
        )
    return name


def method(name: str) -> str:
    """An ``evaluate --methods`` value, checked before any work."""
    from steerlib.model.methods import METHODS

    if name not in METHODS:
        raise argparse.ArgumentTypeError(
            f"unknown method {name!r}; known: {', '.join(METHODS)}"
        )
    return name
