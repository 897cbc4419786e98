"""The README's quick start is quickstart.py, word for word (so the file a user runs is
the one they read)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_quick_start_is_quickstart_py():
    readme = (ROOT / "README.md").read_text()
    blocks = [
        b
        for b in re.findall(r"```python\n(.*?)```", readme, re.S)
        if "load_backbone" in b
    ]
    assert blocks, "README has no quick-start block"
    script = (ROOT / "quickstart.py").read_text()
    body = script.split('"""', 2)[2].lstrip("\n")  # after the module docstring
    assert blocks[0] == body, (
        "README's quick start and quickstart.py differ: edit one, copy it to the other"
    )


def _table_after(text: str, heading: str) -> list[list[str]]:
    """The cells of the first markdown table after ``heading`` (header row first)."""
    lines = text.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        if not set(line) <= set("|:- "):  # skip the alignment row
            rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_readme_headline_table_is_the_results_file():
    """Every number in the README's headline table equals
    results/cpu/capable_pairs.csv."""
    import pandas as pd

    from steerlib.study.reports import capable_headline

    expected = capable_headline(
        pd.read_csv(ROOT / "results" / "cpu" / "capable_pairs.csv")
    )
    rows = _table_after((ROOT / "README.md").read_text(), "## Headline result")
    assert rows[0] == list(expected.columns)
    assert [r[0].replace("`", "") for r in rows[1:]] == [
        m.replace("`", "") for m in expected["method"]
    ]
    assert [r[1:] for r in rows[1:]] == expected.iloc[:, 1:].values.tolist()


def test_readme_is_short_and_states_the_guarantees():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for phrase in (
        "results of another model or preset are never overwritten",
        "file modes follow your umask",
        "book/guarantees.md",
    ):
        assert phrase in readme, phrase
