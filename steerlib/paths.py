"""Where steerlib reads and writes: the project checkout, caches, locks and artifacts.

Resolved against the project checkout when steerlib runs from one (so a notebook
executing in ``notebooks/`` and a shell in the repo root agree), else against the
working directory. ``$STEERLIB_ARTIFACTS`` overrides the artifacts folder. A study's
results folder (``$STEERLIB_RESULTS``) is ``steerlib.study.folders.results_dir``'s.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

_PACKAGE = Path(__file__).resolve().parent


def project_root() -> Path:
    """The checkout holding this package (editable installs, Colab clones), else the
    cwd."""
    root = _PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() else Path.cwd()


def cache_root() -> Path:
    """Per-machine caches: converted weights, lock files (``$STEERLIB_CACHE``, default
    the platform's user cache folder, ``~/.cache/steerlib`` on Linux, by
    ``platformdirs``)."""
    return Path(
        os.environ.get("STEERLIB_CACHE") or platformdirs.user_cache_path("steerlib")
    )


def locks_root() -> Path:
    """Lock files (``$STEERLIB_LOCKS``, default ``~/.cache/steerlib/locks``).

    Not under ``$STEERLIB_CACHE``: a lock works only when every process that writes a
    file takes it in the same place, and two runs may well point their caches elsewhere.
    """
    return Path(
        os.environ.get("STEERLIB_LOCKS", Path.home() / ".cache" / "steerlib" / "locks")
    )


def artifacts_root() -> Path:
    """Trained tokens, targets and checkpoints (git-ignored caches)."""
    return Path(os.environ.get("STEERLIB_ARTIFACTS", project_root() / "artifacts"))
