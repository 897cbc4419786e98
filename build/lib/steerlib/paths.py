"""Where steerlib reads and writes: artifacts (caches) and results (committed tables).

Both are resolved against the project checkout when steerlib runs from one (so a
notebook executing in ``notebooks/`` and a shell in the repo root agree), else
against the working directory. ``$STEERLIB_ARTIFACTS`` and ``$STEERLIB_RESULTS``
override them.
"""
from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def project_root() -> Path:
    """The checkout holding this package (editable installs, Colab clones), else the cwd."""
    root = _PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() else Path.cwd()


def artifacts_root() -> Path:
    """Trained tokens, targets and checkpoints (git-ignored caches)."""
    return Path(os.environ.get("STEERLIB_ARTIFACTS", project_root() / "artifacts"))


def results_dir(preset_name: str) -> Path:
    """Tables, figures and generation records of a preset's run.

    The smoke preset (tests, CI) writes under the artifacts folder so it never touches
    the committed results of the cpu and paper presets.
    """
    if "STEERLIB_RESULTS" in os.environ:
        return Path(os.environ["STEERLIB_RESULTS"]) / preset_name
    if preset_name == "smoke":
        return artifacts_root() / "results" / preset_name
    return project_root() / "results" / preset_name
