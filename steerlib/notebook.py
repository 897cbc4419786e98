"""What every chapter notebook does first: display defaults and the preset."""
from __future__ import annotations

import warnings

import pandas as pd

from .config import Preset, presets


def setup() -> Preset:
    """Quiet the widget warning (text progress bars are fine), widen pandas tables, and
    return the preset chosen by ``$STEERLIB_PRESET`` ("cpu" unless told otherwise)."""
    warnings.filterwarnings("ignore", message="IProgress not found")
    pd.set_option("display.width", 160)
    pd.set_option("display.max_colwidth", 120)
    preset = presets.get()
    print(f"preset {preset.name!r}: model {preset.model or 'embedded SmolLM2-135M-Instruct'}")
    return preset
