"""The README: its code runs as written and leaves the tree clean, its quick start is
quickstart.py word for word (so the file a user runs is the one they read), and its
headline table is the committed results file."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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

    from steerlib.study.capable_reports import capable_headline

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
    assert len(readme.splitlines()) <= 160  # its code blocks as ruff formats them
    for phrase in (
        "results of another model or preset are never overwritten",
        "file modes follow your umask",
        "book/guarantees.md",
    ):
        assert phrase in readme, phrase


# The README's code as a user runs it, but with the network left out: a Hub model name
# loads the tiny model, and push_to_hub records its call instead of uploading.
OFFLINE = """
import steerlib as st
_load = st.load_backbone
def _offline(name=None, **kw):
    return _load("tiny") if name and "/" in str(name) else _load(name, **kw)
st.load_backbone = _offline
st.SteeringTokens.push_to_hub = lambda self, repo, **kw: print("PUSHED", repo)
"""


def readme_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


@pytest.mark.slow
def test_readme_code_runs_as_written_and_leaves_the_tree_clean(tmp_path):
    """Every python block of the README, in order, in one process: the quick start on
    the embedded model (nothing trains), training on the smoke preset's tiny model (the
    block says so), saving and reloading, pushing and a Hub model (offline)."""
    status = ["git", "-C", str(ROOT), "status", "--porcelain", "--ignored=no"]
    before = subprocess.run(status, capture_output=True, text=True).stdout
    saved = ROOT / "artifacts" / "my-tokens"
    existed = saved.exists()
    script = tmp_path / "readme.py"
    script.write_text(OFFLINE + "\n".join(readme_blocks()))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("STEERLIB_PRESET", None)  # the README names its presets itself
    try:
        done = subprocess.run(
            [sys.executable, "-W", "error::UserWarning", str(script)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    finally:
        if not existed:
            shutil.rmtree(saved, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mean_acc" in done.stdout and "PUSHED org/name" in done.stdout
    after = subprocess.run(status, capture_output=True, text=True).stdout
    assert after == before, f"the README's code changed the tree: {after}"


# ---------------------------------------------------------------- the command l


@pytest.fixture
def tiny_file(tiny, tmp_path):
    """Random tokens for every behavior and <and>, made for the tiny model."""
    import torch

    import steerlib as st

    tokens = st.SteeringTokens.for_backbone(tiny)
    g = torch.Generator().manual_seed(0)
    for name in [*st.behaviors.names(), "and"]:
        tokens.set(name, torch.randn(tiny.hidden_size, generator=g) * 0.2)
    path = tmp_path / "tokens.safetensors"
    tokens.save_file(path)
    return path


def test_evaluate_without_tokens_names_the_fix(capsys):
    """The smoke preset's model has no shipped tokens: the error says --tokens FILE."""
    from steerlib.cli import main

    assert main(["evaluate", "--preset", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "--tokens FILE" in err and "train tokens for this model" not in err


def test_compose_with_tokens_of_another_model_names_the_preset(tiny_file, capsys):
    """`compose --tokens FILE` on the cpu preset, with tiny-model tokens: the error
    names the way out (the preset they were made with)."""
    from steerlib.cli import main

    assert main(["compose", "--tokens", str(tiny_file), "--preset", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--preset/--model they were trained with" in err
    assert str(tiny_file) in err


def test_evaluate_says_where_the_records_went(tiny_file, tmp_path, capsys):
    from steerlib.cli import main

    out = tmp_path / "eval"
    args = ["evaluate", "--preset", "smoke", "--tokens", str(tiny_file)]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"records: {out / 'records.jsonl'}" in printed
    assert (out / "records.jsonl").is_file()
