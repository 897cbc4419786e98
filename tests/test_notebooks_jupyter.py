"""Each chapter as plain Jupyter runs it (nbclient, the engine of ``jupyter nbconvert
--execute``), in the preset of ``$STEERLIB_PRESET`` (``make test``: smoke): every cell
runs, every hidden solution cell runs and passes its check, the findings box comes out,
and nothing Jupyter renders as markdown (cells and markdown outputs) holds MyST-only
syntax, which Jupyter and Colab would show as raw text."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MYST_ONLY = re.compile(r"^\s*(```|~~~|:::)\s*\{[\w-]+\}|\{[\w:-]+\}`", re.M)


def text_of(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    return "".join(output.get("data", {}).get("text/plain", ""))


@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_runs_in_plain_jupyter(path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(ROOT / "book" / "jupyter"))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb,
        timeout=1800,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()

    solutions = [c for c in nb.cells if c.source.startswith("# @title Solution")]
    assert solutions
    for cell in solutions:
        printed = "".join(text_of(o) for o in cell.outputs)
        assert "[PASS]" in printed, f"{cell.source.splitlines()[0]}: {printed!r}"

    found = next(c for c in nb.cells if "findings.box(" in c.source)
    html = "".join(o.get("data", {}).get("text/html", "") for o in found.outputs)
    assert "What this chapter finds" in html

    rendered = [c.source for c in nb.cells if c.cell_type == "markdown"] + [
        o["data"]["text/markdown"]
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "text/markdown" in o.get("data", {})
    ]
    for text in rendered:
        assert not MYST_ONLY.search(text), text[:200]
