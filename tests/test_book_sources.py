"""The chapters as a learner opens them, checked on their sources (no kernel): solutions
that are hidden and runnable in Jupyter Book, Jupyter and Colab alike, markdown without
MyST-only syntax, one repository URL, the setup cell hidden and the answer first, and
no code line wider than the book's column."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

COLUMN = 80
"""Longest code line a page may show. At 1280 px the book's code column holds 84
characters (sphinx-book-theme with book/_static/steerlib.css, 14 px DejaVu Sans Mono,
the page's table of contents open; measured on a built page with headless chromium):
80 leaves room for a wider monospace font."""

# Directive fences, directive colons and roles: what Jupyter and Colab show as raw text.
MYST_ONLY = re.compile(r"^\s*(```|~~~|:::)\s*\{[\w-]+\}|\{[\w:-]+\}`", re.M)


def cells(path: Path) -> list[dict]:
    return [
        {**c, "source": "".join(c["source"])}
        for c in json.loads(path.read_text())["cells"]
    ]


def shown_code(path: Path) -> list[dict]:
    """Code cells whose source a page shows (at once, or behind a toggle)."""
    return [
        c
        for c in cells(path)
        if c["cell_type"] == "code"
        and not {"remove-cell", "remove-input"} & set(c["metadata"].get("tags", []))
    ]


def exercises(chapter: int):
    sys.path.insert(0, str(ROOT / "notebooks"))
    try:
        return importlib.import_module(f"exercises.ch{chapter}")
    finally:
        sys.path.remove(str(ROOT / "notebooks"))


def test_seven_chapters():
    assert [p.name[:2] for p in CHAPTERS] == [f"{i:02d}" for i in range(1, 8)]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_solution_cells_are_hidden_runnable_copies_of_the_solutions(path):
    """Each solution is a code cell hidden everywhere (hide-input for Jupyter Book, a
    Colab form, source_hidden for JupyterLab) whose functions are, character for
    character, those of notebooks/exercises/chN.py (which tests/test_exercises.py runs),
    and which ends by running the exercise's check on them."""
    chapter = int(path.name[:2])
    module = exercises(chapter)
    solutions = [c for c in cells(path) if c["source"].startswith("# @title Solution")]
    assert solutions, f"{path.name} has no solution cells"
    defined = set()
    for cell in solutions:
        meta = cell["metadata"]
        assert "hide-input" in meta.get("tags", []), cell["source"][:40]
        assert meta.get("cellView") == "form", cell["source"][:40]
        assert meta.get("jupyter", {}).get("source_hidden") is True, cell["source"][:40]
        tree = ast.parse(cell["source"])
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                want = inspect.getsource(getattr(module, node.name))
                assert ast.get_source_segment(cell["source"], node) == want.rstrip(
                    "\n"
                ), f"{path.name}: {node.name} differs from exercises/ch{chapter}.py"
                defined.add(node.name)
        last = tree.body[-1]
        assert isinstance(last, ast.Expr) and f"ch{chapter}.check_" in ast.unparse(last)
    public = {
        n
        for n, f in vars(module).items()
        if inspect.isfunction(f)
        and f.__module__ == module.__name__
        and not n.startswith(("_", "check_"))
    }
    assert public <= defined, f"solutions not shown in {path.name}: {public - defined}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_markdown_has_no_myst_only_syntax(path):
    """Jupyter and Colab render CommonMark: a MyST directive or role would show as
    text."""
    for cell in cells(path):
        if cell["cell_type"] == "markdown":
            assert not MYST_ONLY.search(cell["source"]), cell["source"][:200]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_opens_with_badge_hidden_setup_and_findings(path):
    """The first markdown cell carries the chapter's Colab badge; the first code cell
    is the setup, hidden on the page, in Colab and in Jupyter; the next is the
    findings box, before any section of the chapter."""
    import yaml

    repo = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())["repository"]
    slug = repo["url"].split("github.com/", 1)[1].rstrip("/")
    all_cells = cells(path)
    first_md = next(c for c in all_cells if c["cell_type"] == "markdown")
    badge = (
        f"https://colab.research.google.com/github/{slug}/blob/{repo['branch']}"
        f"/notebooks/{path.name}"
    )
    assert badge in first_md["source"]
    code = [c for c in all_cells if c["cell_type"] == "code"]
    setup, found = code[0], code[1]
    assert f'REPOSITORY = "{repo["url"].rstrip("/")}"' in setup["source"]
    assert "remove-cell" in setup["metadata"]["tags"]
    assert setup["metadata"]["cellView"] == "form"
    assert setup["metadata"]["jupyter"]["source_hidden"] is True
    assert f"findings.box({int(path.name[:2])}," in found["source"]
    before = all_cells[: all_cells.index(found)]
    assert not any(
        re.search(r"^## ", c["source"], re.M)
        for c in before
        if c["cell_type"] == "markdown"
    )


def test_repository_url_has_one_source():
    """Badges, setup cells and links all name the repository of book/_config.yml."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "set_repository.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout


def test_set_repository_rewrites_every_place(tmp_path, monkeypatch):
    """The script itself: a fork's name reaches the badge, the setup cell and a link."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import set_repository as S
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    text = (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        "(https://colab.research.google.com/github/a/b/blob/main/notebooks/x.ipynb)\n"
        'REPOSITORY = "https://github.com/a/b"  # book/_config.yml\n'
        "[f](https://github.com/a/b/blob/main/results/cpu/f.csv)\n"
    )
    out = S.rewritten(text, "me/fork", "dev")
    assert "colab.research.google.com/github/me/fork/blob/dev/notebooks/x.ipynb" in out
    assert 'REPOSITORY = "https://github.com/me/fork"' in out
    assert "https://github.com/me/fork/blob/dev/results/cpu/f.csv" in out
    assert "assets/colab-badge.svg" in out


KEYED = {"05_your_own_behavior": ("ends_with_question", "ask_back")}
"""Functions whose code is part of a committed token's cache key (chapter 5's verifier
and transform: ``tasks.registry.cache_name``)."""


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_code_lines_fit_the_column(path):
    wide = [
        line
        for c in shown_code(path)
        for line in c["source"].splitlines()
        if len(line) > COLUMN
    ]
    assert not wide, f"{len(wide)} code lines over {COLUMN} characters: {wide[:3]}"


def test_chapter5_behavior_keeps_the_committed_token_key():
    """Chapter 5 defines its behavior in the notebook; the book loads the committed
    token only while that definition has the key the token was trained under."""
    import importlib.util

    from safetensors import safe_open

    from steerlib.tasks import behaviors as B
    from steerlib.tasks.registry import cache_name

    source = (ROOT / "notebooks" / "05_your_own_behavior.py").read_text()
    lines, keep = source.splitlines(), []
    for node in ast.parse(source).body:
        if (
            (
                isinstance(node, ast.FunctionDef)
                and node.name in KEYED["05_your_own_behavior"]
            )
            or (
                isinstance(node, ast.Assign)
                and {getattr(t, "id", "") for t in node.targets}
                & {"CLOSERS", "FOLLOW_UP", "PARAPHRASES"}
            )
            or (
                isinstance(node, (ast.Import, ast.ImportFrom))
                and "exercises" not in ast.unparse(node)
            )
        ):
            keep.append("\n".join(lines[node.lineno - 1 : node.end_lineno]))
    module_file = ROOT / "artifacts" / "test_ch5_definitions.py"
    module_file.parent.mkdir(exist_ok=True)
    module_file.write_text("\n".join(keep))  # getsource reads the file
    try:
        spec = importlib.util.spec_from_file_location("ch5_definitions", module_file)
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        rule = re.search(r'rule="([^"]*)"', source)[1]
        behavior = B.Behavior(
            name="ends_with_question",
            category="ending",
            paraphrases=m.PARAPHRASES,
            rule=rule,
            checker=m.ends_with_question,
            transform=m.ask_back,
        )
        with B.registered(behavior, new_category=True):
            key = cache_name("ends_with_question")
    finally:
        module_file.unlink()
    path = ROOT / "results" / "cpu" / "ends_with_question.safetensors"
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["steerlib"])
    assert meta["info"]["ends_with_question"]["key"].startswith(key + "-")


@pytest.mark.parametrize(
    "page", sorted((ROOT / "book").glob("*.md")), ids=lambda p: p.stem
)
def test_page_code_blocks_fit_the_column(page):
    """Code blocks of the pages (directives such as ``{include}`` are not code)."""
    wide, fence = [], None
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
        elif fence is not None and not fence.startswith("{") and len(line) > COLUMN:
            wide.append(line)
    assert not wide, f"{page.name}: {wide[:3]}"
