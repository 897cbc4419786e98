"""The notebooks' py:percent sources and their committed .ipynb twins must agree.

The .py files are the reviewed sources; the .ipynb files are what Colab and the book
open. Both are committed, so they can drift: this test fails when a notebook's cells
(type and source) differ from its .py as jupytext reads it, or when the .ipynb carries
outputs (they are committed empty; the book executes the notebooks itself).
"""

from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("*.py"))
SYNC = ".venv/bin/jupytext --sync notebooks/{name}.py"
"""Brings the older file of the pair up to date with the newer one (cell ids kept)."""
FRESH = ".venv/bin/jupytext --to ipynb notebooks/{name}.py"
"""Rewrites the .ipynb from the .py, without outputs."""


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_there_are_notebooks():
    assert SOURCES, f"no notebooks/*.py found in {NOTEBOOKS}"


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_ipynb_matches_py(source: Path):
    ipynb = source.with_suffix(".ipynb")
    assert ipynb.is_file(), (
        f"{ipynb.name} is missing: create it with `{SYNC.format(name=source.stem)}`"
    )
    expected = _cells(jupytext.read(source))
    actual = _cells(nbformat.read(ipynb, as_version=4))
    if actual != expected:
        first = next(
            (i for i, (a, b) in enumerate(zip(actual, expected)) if a != b),
            min(len(actual), len(expected)),
        )
        raise AssertionError(
            f"{ipynb.name} has drifted from {source.name} (first difference at cell "
            f"{first}; "
            f"{len(actual)} cells vs {len(expected)}). Run "
            f"`{SYNC.format(name=source.stem)}` (it updates the older "
            "file of the pair from the newer one), check the diff, and keep the "
            ".ipynb free of outputs."
        )


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_ipynb_has_no_outputs(source: Path):
    ipynb = source.with_suffix(".ipynb")
    if not ipynb.is_file():
        pytest.skip(f"{ipynb.name} missing (reported by test_ipynb_matches_py)")
    nb = nbformat.read(ipynb, as_version=4)
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{ipynb.name} carries outputs in cells {dirty}; commit it without outputs: "
        f"`{FRESH.format(name=source.stem)}` (rewrites it from the .py, empty)"
    )


def _repository_url() -> str:
    import yaml

    config = yaml.safe_load((NOTEBOOKS.parent / "book" / "_config.yml").read_text())
    return config["repository"]["url"]


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_colab_cell_clones_the_configured_repository(source: Path):
    """One URL to change when publishing: book/_config.yml's repository.url, which each
    notebook's Colab cell must repeat (README, "Publishing this repository")."""
    lines = [
        line
        for line in source.read_text().splitlines()
        if line.startswith("REPOSITORY = ")
    ]
    assert len(lines) == 1, (
        f"{source.name}: expected one `REPOSITORY = ...` line in its first code cell"
    )
    assert (
        lines[0].split("=", 1)[1].split("#")[0].strip().strip('"') == _repository_url()
    ), (
        f"{source.name} clones another repository than book/_config.yml's "
        "repository.url; set both to the "
        f"published URL"
    )
