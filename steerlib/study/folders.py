"""Where a study's results go, keyed by what made them: the preset's config and the
model.

``results/<name>/`` in the checkout holds a shipped preset's results made with exactly
that preset (every field) and its own model; any other run gets a folder of its own
under the git-ignored artifacts, named by its config hash (and model), and says so in
one log line (``$STEERLIB_RESULTS`` replaces the artifacts' results folder).
``check_out`` guards a folder the user names (``--out``): one that holds another run's
records is refused. The roots themselves (project checkout, artifacts) are
``steerlib.paths``'s.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from pathlib import Path

from steerlib import paths
from steerlib.checkout import output_folder
from steerlib.config import config_hash
from steerlib.errors import ForeignFileError
from steerlib.model.backbone import model_id_of
from steerlib.preset import check_preset_name
from steerlib.presets import SHIPPED_PRESETS, presets

log = logging.getLogger("steerlib")

_told: set[Path] = set()
"""Folders whose "results go to" line this process has logged (said once, not per
step)."""


def is_preset_itself(preset) -> bool:
    """True when ``preset`` equals the named preset of its name in every field (no
    ``--set`` changed it); a preset of another name is never one."""
    return preset.name in presets.NAMES and preset == presets.get(preset.name)


def results_dir(preset, model=None) -> Path:
    """Tables, figures and generation records of a preset's run with ``model``.

    ``preset`` is a ``Preset`` or a preset's name (validated:
    ``preset.check_preset_name``; a name means that preset as it ships); ``model`` the
    ``Backbone`` the run uses, or None for the preset's own model (the caller vouches
    for it). A folder belongs to one config and one model, so that nothing a run does
    replaces the records of another run: a record of another model or settings in the
    folder would be taken as stale and made again.

    * ``results/<name>/`` (committed: the cpu preset's) is written only by a shipped
      preset (cpu, colab, paper), unchanged, running its own model.
    * A preset changed by ``--set`` (even ``--set name=cpu`` on the smoke preset) gets
      ``<name>--<config hash>``, another model (``--model``) ``--<model
      id>-<fingerprint>`` after that, both under the git-ignored artifacts folder; the
      smoke preset itself (tests, CI) gets ``smoke`` there. A run never leaves files a
      checkout shows as changed.

    ``$STEERLIB_RESULTS`` holds every non-committed folder when it is set (and the
    committed ones too, so a test or a scratch run can redirect everything).
    """
    name = check_preset_name(preset if isinstance(preset, str) else preset.name)
    label, changed = name, []
    if not isinstance(preset, str):
        if not is_preset_itself(preset):
            label = f"{name}--{config_hash(preset)}"
            changed.append("its config (--set)")
        if model is not None and model.model_id != model_id_of(preset.model):
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", model.model_id).strip("-.")[:48]
            label = f"{label}--{slug}-{model.fingerprint[:8]}"
            changed.append(f"the model ({model.model_id})")
    if "STEERLIB_RESULTS" in os.environ:
        folder = Path(os.environ["STEERLIB_RESULTS"]) / label
    elif label in SHIPPED_PRESETS:
        return paths.project_root() / "results" / label
    else:
        folder = paths.artifacts_root() / "results" / label
    if changed and name in SHIPPED_PRESETS and folder not in _told:
        _told.add(folder)
        log.info(
            "results of this run go to %s, not results/%s (which holds the %s preset "
            "itself on its own model): this run changes %s",
            folder,
            name,
            name,
            " and ".join(changed),
        )
    return folder


def committed_owner(folder: Path) -> str | None:
    """The shipped preset whose committed results ``folder`` is (``results/<name>`` of
    the checkout), else None."""
    root = (paths.project_root() / "results").resolve()
    folder = folder.resolve()
    if folder.parent == root and folder.name in SHIPPED_PRESETS:
        return folder.name
    return None


def check_out(out: str | Path, preset, model, overwrite: bool = False) -> Path:
    """``out``, a results folder the user named, unless it holds another run's results.

    Refused with a ``ForeignFileError`` (one line naming the folder and the way out)
    when ``out`` is the committed ``results/<name>`` of a shipped preset and this run
    is not that preset, unchanged, on its own model; or when a records file there
    (``*.jsonl``) or its ``tokens.safetensors`` was made with another model
    (fingerprint), or a records file at its top level (the evaluation's) with another
    ``max_new_tokens``. ``overwrite=True`` (``--overwrite``) lets the run replace them.
    Checked before any work, so a refusal costs nothing. A new folder inside the
    checkout is made git-ignored (``checkout.output_folder``).
    """
    out = Path(out)
    if not overwrite:
        _refuse_others(out, preset, model)
    return output_folder(out)


def _refuse_others(out: Path, preset, model) -> None:
    """``check_out``'s refusals."""
    way_out = (
        "name another folder, leave --out out (this run's own folder is "
        f"{results_dir(preset, model)}), or pass --overwrite to replace them"
    )
    owner = committed_owner(out)
    if owner is not None:
        if results_dir(preset, model).resolve() != out.resolve():
            raise ForeignFileError(
                f"{out} holds the committed results of the {owner} preset with its own "
                f"model; this run ({preset.name} preset"
                f"{'' if is_preset_itself(preset) else ' changed by --set'}, model "
                f"{model.model_id}) would replace them: {way_out}"
            )
        return
    for path, made in _made_with(out):
        if made.get("model") not in (None, model.fingerprint):
            raise ForeignFileError(
                f"{path} holds results of another model (fingerprint {made['model']}, "
                f"not {model.model_id}'s {model.fingerprint}): {way_out}"
            )
        # the top level's records are the evaluation's (a study's subfolder may differ)
        steps = made.get("max_new_tokens")
        if path.parent == out and steps not in (None, preset.eval.max_new_tokens):
            raise ForeignFileError(
                f"{path} holds records of another config (max_new_tokens {steps}, "
                f"not {preset.eval.max_new_tokens}): {way_out}"
            )


def _made_with(folder: Path):
    """(file, {"model": fingerprint, "max_new_tokens": n}) of each records file in
    ``folder`` (its first record) and of its token file; nothing for a new folder."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*.jsonl")):
        with path.open("rb") as f:
            first = f.readline()
        try:
            record = json.loads(first)
        except ValueError:  # torn or not JSON: the records reader names it later
            continue
        if isinstance(record, dict):
            yield path, {k: record.get(k) for k in ("model", "max_new_tokens")}
    tokens = folder / "tokens.safetensors"
    if tokens.is_file():
        from steerlib.model.token_file import read_fingerprint

        yield tokens, {"model": read_fingerprint(tokens)}


def preset_args(preset) -> str:
    """The command-line arguments that make ``preset``: ``--preset <name>``, and a
    ``--set FIELD=VALUE`` for each field that differs from the named preset's, so that
    the "Made by" line of a table says what made it, not only which preset it started
    from."""
    base_name = preset.name if preset.name in presets.NAMES else None
    if base_name is None:  # --set name=...: which preset it started from is unknown
        return f"--set name={preset.name} (config {config_hash(preset)})"
    changed = _diff(presets.get(base_name), preset, "")
    return " ".join(
        [f"--preset {base_name}"]
        + [f"--set '{path}={json.dumps(value)}'" for path, value in changed]
    )


def _diff(old, new, where: str) -> list[tuple[str, object]]:
    """(dotted field, new value) of each field where two configs differ."""
    if dataclasses.is_dataclass(old) and type(old) is type(new):
        return [
            change
            for f in dataclasses.fields(old)
            for change in _diff(
                getattr(old, f.name), getattr(new, f.name), f"{where}{f.name}."
            )
        ]
    if old == new:
        return []
    value = dataclasses.asdict(new) if dataclasses.is_dataclass(new) else new
    return [(where.rstrip("."), value)]
