"""Where steerlib reads and writes: artifacts (caches) and results (committed tables).

Both are resolved against the project checkout when steerlib runs from one (so a
notebook executing in ``notebooks/`` and a shell in the repo root agree), else
against the working directory. ``$STEERLIB_ARTIFACTS`` and ``$STEERLIB_RESULTS``
override them.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import platformdirs

_PACKAGE = Path(__file__).resolve().parent


def project_root() -> Path:
    """The checkout holding this package (editable installs, Colab clones), else the cwd."""
    root = _PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() else Path.cwd()


def cache_root() -> Path:
    """Per-machine caches: converted weights, lock files (``$STEERLIB_CACHE``, default the
    platform's user cache folder, ``~/.cache/steerlib`` on Linux, by ``platformdirs``)."""
    return Path(os.environ.get("STEERLIB_CACHE") or platformdirs.user_cache_path("steerlib"))


def locks_root() -> Path:
    """Lock files (``$STEERLIB_LOCKS``, default ``~/.cache/steerlib/locks``).

    Not under ``$STEERLIB_CACHE``: a lock works only when every process that writes a file
    takes it in the same place, and two runs may well point their caches elsewhere.
    """
    return Path(os.environ.get("STEERLIB_LOCKS", Path.home() / ".cache" / "steerlib" / "locks"))


def artifacts_root() -> Path:
    """Trained tokens, targets and checkpoints (git-ignored caches)."""
    return Path(os.environ.get("STEERLIB_ARTIFACTS", project_root() / "artifacts"))


def results_dir(preset, model=None) -> Path:
    """Tables, figures and generation records of a preset's run with ``model``.

    ``preset`` is a ``Preset`` or a preset's name (validated: ``config.check_preset_name``);
    ``model`` the ``Backbone`` the run uses, or None for the preset's own model (the caller
    vouches for it). A folder belongs to one preset and one model, so that nothing a run does
    replaces the records of another model or preset: a record of another model in the
    folder would be taken as stale and regenerated.

    * ``results/<name>/`` (committed: the cpu preset's) is written only by a shipped preset
      (cpu, colab, paper) running its own model.
    * Another model (``--model``, ``--set model=``, or ``--set name=cpu`` on the smoke
      preset's tiny model) gets ``<name>--<model id>-<fingerprint>``, and a preset of
      another name or the smoke one (tests, CI) gets ``<name>``, both under the git-ignored
      artifacts folder: a run never leaves files a checkout would show as changed.

    ``$STEERLIB_RESULTS`` holds every one of these folders when it is set.
    """
    from steerlib.config import SHIPPED_PRESETS, check_preset_name, presets

    name = check_preset_name(preset if isinstance(preset, str) else preset.name)
    label = name
    if model is not None:
        from steerlib.model.backbone import model_id_of

        own = presets.get(name).model if name in presets.NAMES else getattr(preset, "model", None)
        if model.model_id != model_id_of(own):
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", model.model_id).strip("-.")[:48]
            label = f"{name}--{slug}-{model.fingerprint[:8]}"
    if "STEERLIB_RESULTS" in os.environ:
        return Path(os.environ["STEERLIB_RESULTS"]) / label
    if label in SHIPPED_PRESETS:
        return project_root() / "results" / label
    return artifacts_root() / "results" / label
