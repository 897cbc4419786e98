"""Bad invocations of the CLI, run in-process (issue 34).

Each exits with code 2, prints exactly one line on stderr (``error: ...``; log lines and
warnings count too) and no traceback, and leaves the scratch git repository it runs in
exactly as committed (``git status`` shows nothing). The repository holds what a user
might point a command at: a file steerlib did not write, another model's token file,
folders with foreign or broken READMEs, committed results of the cpu preset, hostile and
broken token files, and a model folder whose weights are a pickle. Every case fails
before any training or generation, so the whole table runs on the tiny model in seconds.
"""

from __future__ import annotations

import logging
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from token_files import token_file

from steerlib import paths
from steerlib.cli import main
from steerlib.errors import ConfigError
from steerlib.model.tokens import SteeringTokens

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "steerlib" / "data" / "tokens_smollm2_135m.safetensors"
TINY = ["--model", "tiny"]
GEN = ["generate", *TINY, "--prompt", "Hi."]
SMOKE = ["--preset", "smoke"]

CASES = {
    # argparse: usage errors, one line
    "unknown command": ["frobnicate"],
    "unknown option": ["train", *SMOKE, "--bogus"],
    "missing --prompt": ["generate", *TINY],
    "option without its value": ["train", *SMOKE, "--behaviors"],
    "bad choice": ["compose", *SMOKE, "--tokens", "x", "--combos", "7"],
    "bad stage": ["position", *SMOKE, "--stage", "bogus"],
    "not an integer": ["generate", *TINY, "--prompt", "Hi.", "--max-new-tokens", "x"],
    "unknown behavior (train)": ["train", *SMOKE, "--behaviors", "frnch"],
    "unknown behavior (targets-compare)": [
        "targets-compare",
        *SMOKE,
        "--behaviors",
        "frnch",
    ],
    "unknown behavior (curves)": ["curves", *SMOKE, "--behaviors", "frnch"],
    "unknown method": ["evaluate", *SMOKE, "--methods", "bogus"],
    "unknown ablation": ["ablations", *SMOKE, "--which", "bogus"],
    "unknown baseline (case 20)": ["reproduce", *SMOKE, "--baselines", "bogus"],
    "unknown baseline (capable)": ["capable", *SMOKE, "--baselines", "lora"],
    # presets and --set
    "unknown preset": ["teacher-compliance", "--preset", "nope"],
    "--set without =": ["train", *SMOKE, "--set", "noequals"],
    "--set unknown field": ["train", *SMOKE, "--set", "nofield=1"],
    "--set unknown sub-field": ["train", *SMOKE, "--set", "stage1.nofield=1"],
    "--set zero batch": ["train", *SMOKE, "--set", "stage1.batch_size=0"],
    "--set zero checkpoint_every": [
        "train",
        *SMOKE,
        "--set",
        "stage1.checkpoint_every=0",
    ],
    "--set non-finite lr": ["train", *SMOKE, "--set", "stage1.lr=NaN"],
    "--set a field of a value": ["train", *SMOKE, "--set", "stage1.lr.x=1"],
    "--set a sub-config to a value": ["train", *SMOKE, "--set", "stage1=3"],
    "--set a field of a disabled sub-config": [
        "train",
        "--preset",
        "cpu",
        "--set",
        "stage1.validation.every=0",
    ],
    "--set name that is a path": ["train", *SMOKE, "--set", "name=../.."],
    "--set steps of an unknown behavior (case 9)": [
        "train",
        *SMOKE,
        "--set",
        'steps={"frnch":50}',
    ],
    "--set target policy of an unknown behavior (case 9)": [
        "train",
        *SMOKE,
        "--set",
        'target_policies={"frnch":"filtered"}',
    ],
    "--set lr of an unknown baseline (case 9)": [
        "train",
        *SMOKE,
        "--set",
        'baseline_lr={"lora":1e-3}',
    ],
    # files the user owns (cases 3-6, 16)
    "--out a file steerlib did not write (case 5)": [
        "train",
        *SMOKE,
        "--behaviors",
        "french",
        "--out",
        "precious.safetensors",
    ],
    "--out another model's tokens (case 4)": [
        "train",
        *SMOKE,
        "--behaviors",
        "french",
        "--out",
        "tokens.safetensors",
    ],
    "--out a new token file git would show": [
        "train",
        *SMOKE,
        "--behaviors",
        "french",
        "--out",
        "mine.safetensors",
    ],
    "--out a folder with the user's README": [
        "train",
        *SMOKE,
        "--behaviors",
        "french",
        "--out",
        "notes",
    ],
    "--out a folder whose README is bad YAML (case 16)": [
        "train",
        *SMOKE,
        "--behaviors",
        "french",
        "--out",
        "bad_yaml",
    ],
    "--out a folder whose README has a python tag (case 16)": [
        "train",
        *SMOKE,
        "--behaviors",
        "french",
        "--out",
        "python_tag",
    ],
    "evaluate --out the committed results (case 3)": [
        "evaluate",
        *SMOKE,
        "--tokens",
        "none",
        "--out",
        "results/cpu",
    ],
    "evaluate --out another model's records": [
        "evaluate",
        *SMOKE,
        "--tokens",
        "none",
        "--out",
        "theirs",
    ],
    "reproduce --out the committed results": [
        "reproduce",
        *SMOKE,
        "--out",
        "results/cpu",
    ],
    "compose over another model's tokens": [
        "compose",
        *SMOKE,
        "--tokens",
        "tokens.safetensors",
    ],
    # token sources (cases 11, 14, 15)
    "tokens: a malformed repo id (case 14)": [*GEN, "--tokens", "org/na me"],
    "tokens: a mistyped folder (case 14)": [*GEN, "--tokens", "mytokens/v2"],
    "tokens: no such file": [*GEN, "--tokens", "missing.safetensors"],
    "tokens: a hostile model id (case 11)": [*GEN, "--tokens", "hostile.safetensors"],
    "tokens: a name with a newline (case 11)": [
        *GEN,
        "--tokens",
        "newline.safetensors",
    ],
    "tokens: a record that is not one (case 15)": [
        *GEN,
        "--tokens",
        "info.safetensors",
    ],
    "tokens: a truncated file": [*GEN, "--tokens", "truncated.safetensors"],
    "tokens: not safetensors": [*GEN, "--tokens", "precious.safetensors"],
    "tokens: a folder without tokens": [*GEN, "--tokens", "notes"],
    "tokens: another model's": [*GEN, "--tokens", "tokens.safetensors"],
    # models and prompts (cases 19, 21)
    "model: no such folder": [
        "generate",
        "--model",
        "/nonexistent/m",
        "--prompt",
        "Hi.",
    ],
    "model: pickled weights (case 19)": [
        "generate",
        "--model",
        "pickled",
        "--prompt",
        "Hi.",
    ],
    "model: a hub id while offline": [
        "generate",
        "--model",
        "no-such-org/no-such-model",
        "--prompt",
        "Hi.",
    ],
    "prompt: the reserved slot character (case 21)": [
        "generate",
        *TINY,
        "--tokens",
        "none",
        "--prompt",
        "Why\ue000?",
    ],
    "prompt: an unknown tag": [
        "generate",
        *TINY,
        "--tokens",
        "none",
        "--prompt",
        "Hi <frnch>",
    ],
    "prompt: two languages": [
        "generate",
        *TINY,
        "--tokens",
        "none",
        "--prompt",
        "Hi <french><german>",
    ],
    "zero new tokens": [*GEN, "--tokens", "none", "--max-new-tokens", "0"],
    "a non-finite repetition penalty": [
        *GEN,
        "--tokens",
        "none",
        "--repetition-penalty",
        "nan",
    ],
}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def _commit(repo: Path) -> None:
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(
        repo,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-q",
        "-m",
        "scratch",
    )


def _in_checkout(repo: Path, monkeypatch) -> None:
    """Run the CLI from ``repo`` as if it were the steerlib checkout."""
    monkeypatch.chdir(repo)
    monkeypatch.setattr(paths, "project_root", lambda: repo)
    monkeypatch.delenv("STEERLIB_RESULTS", raising=False)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory, tiny) -> Path:
    """A committed git repository holding what the cases point at."""
    repo = tmp_path_factory.mktemp("fuzz") / "repo"
    repo.mkdir()
    (repo / "precious.safetensors").write_bytes(b"my own weights")
    shutil.copy(SHIPPED, repo / "tokens.safetensors")  # the embedded model's tokens
    for name, readme in {
        "notes": "# My notes\n\nNothing of steerlib's.\n",
        "bad_yaml": "---\nlibrary_name: [steerlib\n---\n",
        "python_tag": (
            "---\nlibrary_name: !!python/object/apply:os.system ['true']\n---\n"
        ),
    }.items():
        (repo / name).mkdir()
        (repo / name / "README.md").write_text(readme)
    records = (ROOT / "results" / "cpu" / "single_records.jsonl").open(encoding="utf-8")
    lines = "".join(next(records) for _ in range(3))
    for folder in ("results/cpu", "theirs"):
        (repo / folder).mkdir(parents=True)
        (repo / folder / "single_records.jsonl").write_text(lines, encoding="utf-8")
    token_file(repo / "hostile.safetensors", {"model_id": 'x"if(1)else"tiny'})
    token_file(repo / "newline.safetensors", {"names": ["fr\nench"]})
    token_file(repo / "info.safetensors", {"info": {"french": {"final_loss": "abc"}}})
    token_file(repo / "truncated.safetensors")
    data = (repo / "truncated.safetensors").read_bytes()
    (repo / "truncated.safetensors").write_bytes(data[:-9])
    pickled = repo / "pickled"
    tiny.model.config.save_pretrained(pickled)
    tiny.tokenizer.save_pretrained(pickled)
    (pickled / "pytorch_model.bin").write_bytes(pickle.dumps({"w": [1.0]}))
    _commit(repo)
    return repo


def test_the_table_has_at_least_40_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_invocation_is_one_line_exit_2_and_changes_nothing(
    case, scratch, monkeypatch, capsys
):
    _in_checkout(scratch, monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    handler = logging.StreamHandler(sys.stderr)  # log lines count as stderr lines
    logger = logging.getLogger("steerlib")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        code = main(CASES[case])
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        status = _git(scratch, "status", "--porcelain", "--untracked-files=all")
        _git(scratch, "checkout", "-q", "--", ".")  # the next case starts clean
        _git(scratch, "clean", "-qfdx")
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert status == "", status


# -- commands that succeed: what they write in the checkout stays out of git status --
WRITES = {
    "train --out a new folder": (
        ["train", *SMOKE, "--behaviors", "french", "--out", "new/tokens"],
        "new/tokens/README.md",
    ),
    "train --out a file git ignores": (
        ["train", *SMOKE, "--behaviors", "french", "--out", "ignored/f.safetensors"],
        "ignored/f.safetensors",
    ),
    "compose --out a new folder": (
        ["compose", *SMOKE, "--tokens", "ignored/given.safetensors", "--out", "and"],
        "and/tokens.safetensors",
    ),
    "evaluate --out a new folder": (
        [
            "evaluate",
            *SMOKE,
            "--tokens",
            "none",
            "--methods",
            "instruction",
            "--out",
            "evals/mine",
        ],
        "evals/mine/records.jsonl",
    ),
    "reproduce --out a new folder": (
        ["reproduce", *SMOKE, "--out", "runs/mine"],
        "runs/mine/plan.txt",
    ),
}
"""Each command, and a file it must have made (the user gets their files)."""


def _trained(bb, names) -> SteeringTokens:
    tokens = SteeringTokens.for_backbone(bb)
    for i, name in enumerate(names):
        tokens.set(name, torch.full((bb.hidden_size,), 0.01 * (i + 1)))
    return tokens


def _plan_then_stop(preset, out, *args):
    (out / "plan.txt").write_text("the run's first file\n")
    raise ConfigError("stand-in: the rest of the run writes into the same folder")


@pytest.mark.parametrize("case", list(WRITES))
def test_a_command_writing_inside_the_checkout_leaves_git_status_clean(
    case, tiny, tmp_path, monkeypatch, capsys
):
    """Issue 34's "git status stays clean on a fresh clone after any CLI command with
    any --out inside the repo" (main: a new --out folder or file showed as untracked).
    Training stands in by tokens of a few numbers (its writing is the CLI's own), and
    ``reproduce``, past the folder it makes, by one file written into it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".gitignore").write_text("/ignored/\n")
    (repo / "README.md").write_text("# a clone\n")
    _trained(tiny, ["french"]).save_file(repo / "ignored" / "given.safetensors")
    _commit(repo)
    _in_checkout(repo, monkeypatch)
    monkeypatch.setattr(
        "steerlib.study.singles.train_all_behaviors",
        lambda bb, preset, names, **kw: _trained(bb, names),
    )
    monkeypatch.setattr(
        "steerlib.train.compose.train_composition_token",
        lambda bb, tokens, cfg, **kw: _trained(bb, [*tokens.names, "and"]),
    )
    monkeypatch.setattr("steerlib.study.reports.plan", _plan_then_stop)
    argv, made = WRITES[case]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == (2 if case.startswith("reproduce") else 0), err
    assert (repo / made).is_file()
    assert _git(repo, "status", "--porcelain", "--untracked-files=all") == ""
