"""The paper's model-changing baselines: CAA, LM-Steer and LoRA + DARE.

Each is a ``Method`` with a plain prompt (``tokens=False``) whose ``context`` changes
the model for one combination and undoes the change on exit, so ``evaluate`` and
``SteeredModel`` run them next to the prompt-level methods::

    from steerlib.baselines import train_baselines
    baselines = train_baselines(bb, names, preset.stage1)
    evaluate(sm, ["instruction", "and", *baselines.values()], combos, prompts)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import replace

from steerlib.config import TrainConfig
from steerlib.errors import ConfigError
from steerlib.model.backbone import Backbone

from .caa import CAA, CAAConfig, sweep, train_caa
from .common import Baseline
from .lm_steer import LMSteer, LMSteerConfig, train_lm_steer
from .lora_dare import LoRAConfig, LoRADare, train_lora

BASELINES = ("caa", "lm_steer", "lora_dare")


def check_names(names: Sequence[str]) -> None:
    """A ``ConfigError`` naming the unknown ones when ``names`` are not all baselines:
    checked before any work (``reproduce --baselines``, a preset's ``baseline_lr``)."""
    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        raise ConfigError(
            f"unknown baseline(s) {unknown}; choose from {', '.join(BASELINES)}"
        )


def train_baselines(
    bb: Backbone,
    names: Sequence[str],
    cfg: TrainConfig | None = None,
    *,
    train_for: Mapping[str, TrainConfig] | None = None,
    lr: Mapping[str, float] | None = None,
    which: Sequence[str] = BASELINES,
    questions: Sequence[str] | None = None,
    retrain: bool = False,
    progress: bool | None = None,
) -> dict[str, Baseline]:
    """The baselines in ``which`` for ``names``, by method name, with the paper's
    settings.

    LM-Steer and LoRA train like the behavior tokens: with ``cfg`` (the stage-1 config),
    or ``train_for[name]`` where given (a token's own config: its target policy, CE
    weight and steps), on the tokens' very targets; ``lr[method]`` replaces the learning
    rate of every run of that method. CAA draws its prompts with ``cfg.seed``. Each is
    cached per behavior; an interrupted run resumes from its checkpoint.
    """
    check_names([*which, *(lr or {})])
    cfg = cfg or TrainConfig()

    def runs(method: str) -> tuple[TrainConfig, Mapping[str, TrainConfig] | None]:
        """``method``'s training configs: the tokens', with its own lr where one is
        given."""
        if method not in (lr or {}):
            return cfg, train_for
        own = functools.partial(replace, lr=lr[method])
        return own(cfg), train_for and {n: own(c) for n, c in train_for.items()}

    kw = dict(questions=questions, retrain=retrain, progress=progress)
    lm_cfg, lm_for = runs("lm_steer")
    lora_cfg, lora_for = runs("lora_dare")
    makers = {
        "caa": lambda: train_caa(bb, names, CAAConfig(seed=cfg.seed), **kw),
        "lm_steer": lambda: train_lm_steer(
            bb, names, LMSteerConfig(train=lm_cfg), train_for=lm_for, **kw
        ),
        "lora_dare": lambda: train_lora(
            bb, names, LoRAConfig(train=lora_cfg), train_for=lora_for, **kw
        ),
    }
    return {name: makers[name]() for name in BASELINES if name in which}


__all__ = [
    "BASELINES",
    "check_names",
    "Baseline",
    "CAA",
    "CAAConfig",
    "train_caa",
    "sweep",
    "LMSteer",
    "LMSteerConfig",
    "train_lm_steer",
    "LoRADare",
    "LoRAConfig",
    "train_lora",
    "train_baselines",
]
