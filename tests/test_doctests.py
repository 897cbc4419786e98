"""The examples in the public API's docstrings run, offline and in seconds, and say
what they show."""

import doctest
import importlib

import pytest

MODULES = [
    "steerlib.tasks.behaviors",
    "steerlib.tasks.registry",
    "steerlib.tasks.combos",
    "steerlib.presets",
    "steerlib.model.template",
    "steerlib.model",
    "steerlib.model.methods",
    "steerlib.evaluation.records",
    "steerlib.evaluation.stats",
    "steerlib.train.compose",
    "steerlib.train.loop",
]
"""Modules whose docstrings carry ``>>>`` examples that need no model."""


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(
        importlib.import_module(name), optionflags=doctest.ELLIPSIS
    )
    assert result.attempted, f"{name} has no examples"
    assert not result.failed, (
        f"{result.failed} of {result.attempted} examples of {name} failed (printed "
        "above)"
    )
