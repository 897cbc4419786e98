"""The token packs shipped in ``steerlib/data``: their names and files.

A pack is a set of steering tokens (behavior tokens and ``<and>``) trained for the
embedded model and committed with the package, so that a fresh install steers without
training (``SteeringTokens.pretrained``) and the training caches can reuse what was
committed instead of retraining it (``tokens.shipped``). This module only names them;
``tokens`` reads them.
"""

from __future__ import annotations

from enum import StrEnum
from importlib import resources
from pathlib import Path

from steerlib.errors import ConfigError

PRETRAINED_FILE = "tokens_smollm2_135m.safetensors"
"""Behavior tokens and <and> trained for the embedded model by the cpu preset, read in
the paper's layout, shipped in the package (``Pack.PAPER``; the training caches reuse
it)."""


class Pack(StrEnum):
    """The token packs shipped for the embedded model
    (``SteeringTokens.pretrained``)."""

    DEFAULT = "default"
    """The best composition measured on the embedded model: the paper pack's behavior
    tokens with the stage-2 study's ``<and>``, read in the position study's layout
    (``shared+isolate``): ``results/cpu/stage2/`` says which ``<and>`` and why."""
    PAPER = "paper"
    """The cpu preset's stage 1 and stage 2 in the paper's layout (chapters 1-3)."""


PACK_FILES = {
    Pack.DEFAULT: "pack_smollm2_135m.safetensors",
    Pack.PAPER: PRETRAINED_FILE,
}
"""Each shipped pack's file in ``steerlib/data``."""


def shipped_path(name: str = PRETRAINED_FILE) -> Path:
    """The path of ``name`` in the installed package's ``steerlib/data``."""
    return Path(str(resources.files("steerlib") / "data" / name))


def pack_path(pack: Pack | str) -> Path:
    """The file of the shipped pack ``pack``; a ``ConfigError`` listing the packs when
    there is none of that name."""
    try:
        pack = Pack(pack)
    except ValueError:
        allowed = ", ".join(repr(p.value) for p in Pack)
        raise ConfigError(f"no shipped pack {pack!r}; packs: {allowed}") from None
    return shipped_path(PACK_FILES[pack])
