"""One error policy: steerlib's own errors (and the machine's) are one line, everything
else is a bug shown whole, and the study leaves a table cell empty only for "too few
targets"."""

import pytest

from steerlib import cli
from steerlib.cli import parser
from steerlib.errors import ConfigError, SteerlibError, TooFewTargetsError
from steerlib.guard import TrainingDisabled
from steerlib.study import singles


def test_training_disabled_and_too_few_targets_are_steerlib_errors():
    assert issubclass(TrainingDisabled, SteerlibError) and issubclass(
        TooFewTargetsError, SteerlibError
    )
    assert not issubclass(TrainingDisabled, TooFewTargetsError)


@pytest.mark.parametrize(
    "error, code, one_line",
    [
        (ConfigError("batch_size must be an integer >= 1"), 2, True),
        (FileNotFoundError("no such file: x.jsonl"), 2, True),
        (ValueError("shapes (3,) and (4,) do not align"), 1, False),
        (KeyError("logits"), 1, False),
        (RuntimeError("CUDA out of memory"), 1, False),
    ],
)
def test_cli_prints_one_line_only_for_steerlib_and_os_errors(
    capsys, monkeypatch, error, code, one_line
):
    def fail(args):
        raise error

    monkeypatch.setattr(parser, "cmd_behaviors", fail)
    assert cli.main(["behaviors"]) == code
    err = capsys.readouterr().err
    assert (
        ("Traceback" not in err and err.startswith("error: "))
        if one_line
        else ("Traceback" in err and str(error.args[0]) in err)
    )


def test_only_too_few_targets_leaves_a_policy_cell_empty(monkeypatch, tmp_path):
    """An out-of-memory or shape error while training a target policy's token is a bug
    to see, not an empty cell."""
    preset = object()

    def too_few(*args):
        raise TooFewTargetsError(
            "only 3 of 40 filtered targets for french could be kept (need 8)"
        )

    monkeypatch.setattr(singles, "policy_token", too_few)
    assert singles.policy_records(None, preset, "french", "filtered", tmp_path) is None

    def out_of_memory(*args):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(singles, "policy_token", out_of_memory)
    with pytest.raises(RuntimeError, match="out of memory"):
        singles.policy_records(None, preset, "french", "filtered", tmp_path)
