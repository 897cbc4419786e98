"""Where a study's results go: the folder of a preset's run with a model.

``results/<name>/`` in the checkout for a shipped preset running its own model, else a
folder of its own under the git-ignored artifacts (``$STEERLIB_RESULTS`` overrides both).
The roots themselves (project checkout, artifacts) are ``steerlib.paths``'s.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from steerlib import paths
from steerlib.model.backbone import model_id_of
from steerlib.presets import SHIPPED_PRESETS, check_preset_name, presets


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
    name = check_preset_name(preset if isinstance(preset, str) else preset.name)
    label = name
    if model is not None:
        own = (
            presets.get(name).model
            if name in presets.NAMES
            else getattr(preset, "model", None)
        )
        if model.model_id != model_id_of(own):
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", model.model_id).strip("-.")[:48]
            label = f"{name}--{slug}-{model.fingerprint[:8]}"
    if "STEERLIB_RESULTS" in os.environ:
        return Path(os.environ["STEERLIB_RESULTS"]) / label
    if label in SHIPPED_PRESETS:
        return paths.project_root() / "results" / label
    return paths.artifacts_root() / "results" / label
