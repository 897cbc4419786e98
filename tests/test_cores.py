"""The thread default of ``import steerlib`` (steerlib.cores): one thread per process
unless the user chose a count."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from steerlib import cores

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def threads(monkeypatch):
    """No thread variable set; torch's thread count restored afterwards."""
    for name in cores.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_torch_default_count_becomes_one(threads):
    torch.set_num_threads(cores.torch_default_threads())
    assert cores.apply_thread_default(torch_was_imported=True) == 1
    assert torch.get_num_threads() == 1


def test_a_count_set_before_the_import_stands(threads):
    chosen = cores.torch_default_threads() + 1
    torch.set_num_threads(chosen)
    assert cores.apply_thread_default(torch_was_imported=True) is None
    assert torch.get_num_threads() == chosen


def test_without_torch_imported_first_no_count_was_chosen(threads):
    """Nobody can have called torch.set_num_threads before torch was imported."""
    torch.set_num_threads(cores.torch_default_threads() + 1)
    assert cores.apply_thread_default(torch_was_imported=False) == 1
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("variable", cores.THREAD_VARIABLES)
def test_an_environment_variable_stands(threads, monkeypatch, variable):
    monkeypatch.setenv(variable, "3")
    torch.set_num_threads(3)
    assert cores.apply_thread_default(torch_was_imported=True) is None
    assert torch.get_num_threads() == 3


def test_usable_cores_follow_the_affinity():
    assert cores.usable_cores() == len(os.sched_getaffinity(0))


@pytest.mark.slow  # starts Python processes
@pytest.mark.parametrize(
    "before, env, expected",
    [
        ("", {}, 1),
        ("import torch; torch.set_num_threads(3); ", {}, 3),
        ("", {"OMP_NUM_THREADS": "2"}, 2),
    ],
)
def test_import_steerlib_in_a_fresh_interpreter(before, env, expected):
    clean = {k: v for k, v in os.environ.items() if k not in cores.THREAD_VARIABLES}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            before + "import steerlib, torch; print(torch.get_num_threads())",
        ],
        cwd=ROOT,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert int(out) == expected
