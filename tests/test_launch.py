"""--workers (steerlib.launch): how many processes, no nesting, one line per failure."""

import subprocess
import sys

import pytest
import torch
from torch.distributed.elastic.multiprocessing.errors import (
    ChildFailedError,
    ProcessFailure,
)

from steerlib import launch
from steerlib.cli.parser import build_parser
from steerlib.errors import ConfigError


def _args(*argv):
    return build_parser().parse_args(list(argv))


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
        build_parser().parse_args(["evaluate", "--workers", bad])
    assert stop.value.code == 2
    assert "whole number >= 1" in capsys.readouterr().err


def _failure(tmp_path, rank, exitcode, monkeypatch=None, line=None, bug=None):
    """The ProcessFailure the agent makes of a worker that ended with ``exitcode``,
    after ``record_worker_error(line)`` or ``record_worker_failure(bug)`` if given."""
    error_file = tmp_path / f"error{rank}.json"
    if line is not None or bug is not None:
        monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
        monkeypatch.setenv(launch.LAUNCHED, "2")
        if line is not None:
            assert launch.record_worker_error(line)
        else:
            try:
                raise bug
            except (RuntimeError, ArithmeticError) as err:
                assert launch.record_worker_failure(err)
        assert error_file.is_file()
    return ProcessFailure(rank, 1000 + rank, exitcode, str(error_file))


LINE = "EvalConfig.batch_size must be an integer >= 1; got -1"


def test_a_recorded_error_is_the_run_s_one_line(tmp_path, monkeypatch):
    failed = ChildFailedError(
        "steerlib",
        {
            0: _failure(tmp_path, 0, -15),  # stopped by the agent
            1: _failure(tmp_path, 1, 2, monkeypatch, line=LINE),
        },
    )
    assert launch.failure_report(failed, 2) == (2, f"error: {LINE}")


def test_a_killed_worker_is_the_cause_not_its_peer_s_error(tmp_path, monkeypatch):
    """Rank 0 fails to reach the killed rank 1 (a RuntimeError it recorded): one line
    naming rank 1, that the run resumes, and no traceback."""
    peer = RuntimeError("gloo: Connection reset by peer")
    failed = ChildFailedError(
        "steerlib",
        {
            0: _failure(tmp_path, 0, 1, monkeypatch, bug=peer),
            1: _failure(tmp_path, 1, -9),
            2: _failure(tmp_path, 2, -15),  # stopped by the agent
        },
    )
    code, report = launch.failure_report(failed, 3)
    assert code == 2 and "\n" not in report
    assert report.startswith("error: worker 1 of 3 was killed by SIGKILL")
    assert "run the same command again to resume" in report


def test_a_worker_s_bug_shows_its_traceback(tmp_path, monkeypatch):
    bug = ZeroDivisionError("division by zero")
    failed = ChildFailedError(
        "steerlib",
        {
            0: _failure(tmp_path, 0, -15),  # stopped by the agent
            2: _failure(tmp_path, 2, 1, monkeypatch, bug=bug),
        },
    )
    code, report = launch.failure_report(failed, 3)
    assert code == 1
    assert "Traceback" in report and "ZeroDivisionError: division by zero" in report
    assert report.splitlines()[-1].startswith(
        "error: worker 2 of 3 ended with exit code 1"
    )


def test_errors_print_outside_workers(monkeypatch):
    """In this process (or under a torchrun the user typed) the error is printed."""
    monkeypatch.delenv(launch.LAUNCHED, raising=False)
    assert not launch.record_worker_error("anything")
    assert not launch.record_worker_failure(ValueError("anything"))


def test_a_worker_other_than_rank_0_prints_errors_but_no_warnings():
    """Every rank computes the same warnings (a cache line set aside, targets dropped),
    so only rank 0 prints them: the workers other than rank 0 keep errors only."""
    code = (
        "import logging; from steerlib.cli.run import _quiet; logging.basicConfig(); "
        "_quiet(); log = logging.getLogger('steerlib'); log.warning('a warning'); "
        "log.error('an error')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "an error" in done.stderr
    assert "a warning" not in done.stderr


def test_a_worker_stopped_by_a_plain_kill_is_named(tmp_path):
    failed = ChildFailedError("steerlib", {1: _failure(tmp_path, 1, -15)})
    assert launch.failure_report(failed, 2)[1].startswith(
        "error: worker 1 of 2 was killed by SIGTERM"
    )
