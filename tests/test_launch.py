"""--workers (steerlib.launch): how many processes, no nesting, one line per failure."""

import json

import pytest
import torch
from torch.distributed.elastic.multiprocessing.errors import (
    ChildFailedError,
    ProcessFailure,
)

from steerlib import cli, launch
from steerlib.errors import ConfigError


def _args(*argv):
    return cli.build_parser().parse_args(list(argv))


@pytest.fixture
def outside_torchrun(monkeypatch):
    for name in ("WORLD_SIZE", launch.LAUNCHED, launch.WORKERS):
        monkeypatch.delenv(name, raising=False)


def test_default_is_a_process_per_usable_core_on_a_cpu(outside_torchrun, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(launch, "usable_cores", lambda: 6)
    assert launch.workers_wanted(_args("evaluate")) == 6
    assert launch.workers_wanted(_args("evaluate", "--workers", "1")) == 1
    assert launch.workers_wanted(_args("reproduce", "--workers", "3")) == 3


def test_the_environment_sets_the_default(outside_torchrun, monkeypatch):
    monkeypatch.setattr(launch, "usable_cores", lambda: 6)
    monkeypatch.setenv(launch.WORKERS, "3")
    assert launch.workers_wanted(_args("evaluate")) == 3
    assert launch.workers_wanted(_args("evaluate", "--workers", "2")) == 2
    monkeypatch.setenv(launch.WORKERS, "0")
    with pytest.raises(ConfigError, match="STEERLIB_WORKERS"):
        launch.workers_wanted(_args("evaluate"))


def test_default_is_one_process_on_a_gpu(outside_torchrun, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(launch, "usable_cores", lambda: 6)
    assert launch.workers_wanted(_args("train")) == 1


@pytest.mark.parametrize(
    "command",
    ["evaluate", "train", "reproduce", "capable", "ablations"],
)
def test_study_commands_take_workers(command):
    assert _args(command, "--workers", "2").workers == 2


def test_compose_and_position_take_workers():
    assert _args("compose", "--tokens", "t", "--workers", "2").workers == 2
    assert _args("position", "--stage", "filter", "--workers", "2").workers == 2


def test_generate_runs_in_this_process(outside_torchrun):
    """A command without --workers (a few answers) never starts processes."""
    assert launch.workers_wanted(_args("generate", "--prompt", "hi")) == 1


def test_no_nesting_under_torchrun(monkeypatch, caplog):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv(launch.LAUNCHED, raising=False)
    assert launch.workers_wanted(_args("evaluate")) == 1
    assert launch.workers_wanted(_args("evaluate", "--workers", "4")) == 1
    assert "--workers 4 ignored" in caplog.text


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_a_bad_count_is_one_line(bad, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.build_parser().parse_args(["evaluate", "--workers", bad])
    assert stop.value.code == 2
    assert "whole number >= 1" in capsys.readouterr().err


def _failure(tmp_path, rank, exitcode, line=None, monkeypatch=None):
    """The ProcessFailure the agent makes of a worker that ended with ``exitcode``,
    after ``record_worker_error(line)`` when ``line`` is given."""
    error_file = tmp_path / f"error{rank}.json"
    if line is not None:
        monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
        monkeypatch.setenv(launch.LAUNCHED, "2")
        assert launch.record_worker_error(line)
        assert line in json.loads(error_file.read_text())["message"]["message"]
    return ProcessFailure(rank, 1000 + rank, exitcode, str(error_file))


def test_a_recorded_error_is_the_run_s_one_line(tmp_path, monkeypatch):
    line = "EvalConfig.batch_size must be an integer >= 1; got -1"
    failed = ChildFailedError(
        "steerlib",
        {
            0: _failure(tmp_path, 0, 2, line, monkeypatch),
            1: _failure(tmp_path, 1, -15),
        },
    )
    assert launch.failure_line(failed, 2) == (2, line)


def test_a_killed_worker_is_named_and_the_run_is_resumable(tmp_path):
    failed = ChildFailedError("steerlib", {1: _failure(tmp_path, 1, -9)})
    code, line = launch.failure_line(failed, 2)
    assert code == 2 and "\n" not in line
    assert line.startswith("worker 1 of 2 was killed by SIGKILL")
    assert "run the same command again to resume" in line


def test_a_worker_s_bug_keeps_exit_code_1(tmp_path):
    failed = ChildFailedError("steerlib", {0: _failure(tmp_path, 0, 1)})
    code, line = launch.failure_line(failed, 3)
    assert code == 1 and line.startswith("worker 0 of 3 ended with exit code 1")


def test_errors_print_outside_workers(monkeypatch):
    """In this process (or under a torchrun the user typed) the error is printed."""
    monkeypatch.delenv(launch.LAUNCHED, raising=False)
    assert not launch.record_worker_error("anything")
