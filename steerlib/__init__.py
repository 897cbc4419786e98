"""steerlib: compositional steering tokens for frozen chat LLMs (arXiv 2601.05062).

    import steerlib as st
    bb = st.load_backbone()                          # embedded SmolLM2-135M-Instruct
    sm = st.SteeredModel(bb, st.SteeringTokens.pretrained(bb))
    sm.generate("Why is the sky blue? <french><and><words_10_50>")

``import steerlib`` loads the core only: backbone, tokens, generation, the two trainers,
evaluation, behaviors, prompts and presets. The study code (``study``, ``reports``,
``ablations``, ``baselines``, ``plots``, ``geometry``) and the book's ``book`` helpers
are imported on first use (``st.study``, ``import steerlib.study.reports``), so the
core stays quick to import. One global setting changes: torch's intra-op threads become
1 unless you chose them (``OMP_NUM_THREADS``, or ``torch.set_num_threads`` before or
after the import); ``steerlib.cores`` says why.
"""

from __future__ import annotations

import importlib

from . import cores  # first: it notes whether torch was imported before steerlib
from ._version import __version__
from .config import EvalConfig, TargetConfig, TrainConfig
from .evaluation.evaluate import evaluate
from .evaluation.stats import metrics
from .model.backbone import Backbone, load_backbone
from .model.generate import Request, SteeredModel
from .model.methods import METHODS, Method
from .model.tokens import SteeringTokens
from .preset import Preset
from .presets import presets
from .tasks import behaviors, prompts
from .train.compose import train_composition_token
from .train.distill import train_behavior_token

cores.apply_thread_default()

_ON_USE = {
    "study": "steerlib.study",
    "reports": "steerlib.study.reports",
    "ablations": "steerlib.study.ablations",
    "baselines": "steerlib.baselines",
    "plots": "steerlib.study.plots",
    "geometry": "steerlib.evaluation.geometry",
    "book": "steerlib.study.book",
}
"""``st.<name>``: modules imported the first time they are read, not by ``import
steerlib``."""


def __getattr__(name: str):
    if name in _ON_USE:
        return importlib.import_module(_ON_USE[name])
    raise AttributeError(f"module 'steerlib' has no attribute {name!r}")


__all__ = [
    "Backbone",
    "load_backbone",
    "SteeringTokens",
    "SteeredModel",
    "Request",
    "Method",
    "METHODS",
    "train_behavior_token",
    "train_composition_token",
    "evaluate",
    "metrics",
    "presets",
    "Preset",
    "TrainConfig",
    "TargetConfig",
    "EvalConfig",
    "behaviors",
    "prompts",
    "__version__",
]
