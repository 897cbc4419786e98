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


PUBLIC_API = [
    ("steerlib.model.tokens", "SteeringTokens"),
    ("steerlib.model.generate", "SteeredModel"),
    ("steerlib.model.backbone", "load_backbone"),
    ("steerlib.train.distill", "train_behavior_token"),
    ("steerlib.train.compose", "train_composition_token"),
]
"""The public API's entry points, whose examples run on the tiny random model in seconds
(training: the smoke preset's 3 steps; the artifacts go to the test's own folder)."""


@pytest.mark.parametrize("module, name", PUBLIC_API, ids=[n for _, n in PUBLIC_API])
def test_public_api_examples(module, name):
    mod = importlib.import_module(module)
    tests = doctest.DocTestFinder(recurse=False).find(getattr(mod, name), module=mod)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted, f"{name} has no examples"
    assert not result.failed, f"{result.failed} of {result.attempted} examples failed"
