"""Shared fixtures: the tiny random model (fast) and the embedded model (slow tests)."""

import pytest

import steerlib as st


@pytest.fixture(autouse=True)
def _artifacts(tmp_path, monkeypatch):
    """Every test writes its caches into its own temporary folder, never the repo; CLI
    commands run in one process unless a test asks for --workers."""
    monkeypatch.setenv("STEERLIB_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("STEERLIB_WORKERS", "1")


@pytest.fixture(scope="session")
def tiny():
    return st.load_backbone("tiny")


@pytest.fixture(scope="session")
def embedded():
    return st.load_backbone()


def pytest_collection_modifyitems(items):
    """Every test that loads the real (embedded) model, and every notebook run by
    nbmake, is ``slow``, so that ``pytest -m "not slow"`` (``make test-fast``) leaves
    them out; ``make test`` still runs them all. Tests that start other processes
    (subprocesses, torchrun, two processes at once) carry the marker themselves."""
    for item in items:
        if (
            "embedded" in getattr(item, "fixturenames", ())
            or item.path.suffix == ".ipynb"
        ):
            item.add_marker(pytest.mark.slow)
