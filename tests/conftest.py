"""Shared fixtures: the tiny random model (fast) and the embedded model (slow tests)."""
import pytest

import steerlib as st


@pytest.fixture(autouse=True)
def _artifacts(tmp_path, monkeypatch):
    """Every test writes its caches into its own temporary folder, never the repo."""
    monkeypatch.setenv("STEERLIB_ARTIFACTS", str(tmp_path / "artifacts"))


@pytest.fixture(scope="session")
def tiny():
    return st.load_backbone("tiny")


@pytest.fixture(scope="session")
def embedded():
    return st.load_backbone()


def pytest_collection_modifyitems(items):
    """Every test that loads the real (embedded) model is ``slow``, so that
    ``pytest -m "not slow"`` leaves them out; ``make test`` still runs them all."""
    for item in items:
        if "embedded" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
