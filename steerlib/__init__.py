"""steerlib: compositional steering tokens for frozen chat LLMs (arXiv 2601.05062).

    import steerlib as st
    bb = st.load_backbone()                          # embedded SmolLM2-135M-Instruct
    sm = st.SteeredModel(bb, st.SteeringTokens.pretrained(bb))
    sm.generate("Why is the sky blue? <french><and><words_10_50>")
"""
__version__ = "0.1.0"

from . import behaviors, notebook, pipeline, prompts  # noqa: E402
from .backbone import Backbone, load_backbone  # noqa: E402
from .compose import train_composition_token  # noqa: E402
from .config import EvalConfig, Preset, TargetConfig, TrainConfig, presets  # noqa: E402
from .distill import train_behavior_token  # noqa: E402
from .evaluate import evaluate, metrics  # noqa: E402
from .generate import METHODS, Method, Request, SteeredModel  # noqa: E402
from .tokens import SteeringTokens  # noqa: E402

__all__ = ["Backbone", "load_backbone", "SteeringTokens", "SteeredModel", "Request", "Method", "METHODS",
           "train_behavior_token", "train_composition_token", "evaluate", "metrics", "presets", "Preset",
           "TrainConfig", "TargetConfig", "EvalConfig", "behaviors", "prompts", "notebook", "__version__"]
