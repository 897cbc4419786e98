"""``Preset``: everything one run of the pipeline needs, checked when it is made.

Apart from the named presets (``steerlib.presets``) and the reasons for their numbers,
so that a preset of your own (``Preset(...)``, ``--set``) passes the same checks: a
name that can name a results folder, behaviors and baselines that exist.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

from steerlib.config import (
    EvalConfig,
    TargetPolicy,
    TargetSource,
    TrainConfig,
    ValidationConfig,
    choice,
    policy_config,
)
from steerlib.errors import ConfigError
from steerlib.model.layout import Layout
from steerlib.tasks import behaviors as B
from steerlib.tasks.combos import sample_combos

PRESET_NAMES = ("paper", "colab", "cpu", "smoke")
"""The names of the named presets (``steerlib.presets``): a preset of your own may take
one of them, or any other plain identifier (``PRESET_NAME``)."""

PRESET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""A preset's name: it names a results folder, so a plain identifier, never a path."""

TRAINED_BASELINES = ("lm_steer", "lora_dare")
"""The baselines that train with a learning rate (``Preset.baseline_lr``'s keys)."""


def check_preset_name(name) -> str:
    """``name`` when it can name a results folder (``PRESET_NAME``), else a
    ConfigError: a name like ``../..`` or ``/tmp/x`` would write tables and records
    wherever it points."""
    if not isinstance(name, str) or not PRESET_NAME.fullmatch(name):
        raise ConfigError(
            f"Preset.name must be a preset ({', '.join(PRESET_NAMES)}) or a plain "
            "identifier "
            f"(letters, digits, _ and -, at most 64), never a path; got {name!r}"
        )
    return name


@dataclass(frozen=True)
class Preset:
    """Everything one run of the pipeline needs."""

    name: str
    stage1: TrainConfig
    stage2: TrainConfig
    eval: EvalConfig
    model: str | None = None
    """None = the embedded SmolLM2-135M-Instruct; "tiny" = a random tiny LLaMA
    (tests)."""
    target_policies: dict[str, TargetPolicy] = field(default_factory=dict)
    """Per-behavior target policy, a ``TARGET_POLICIES`` label; others use ``stage1``
    as it is."""

    steps: dict[str, int] = field(default_factory=dict)
    """Per-behavior stage-1 step count overriding ``stage1.steps`` (ours: a budget for
    the behaviors that need more)."""
    validation: ValidationConfig | None = None
    """Validation settings of this preset's validation-guided runs (``curves``, and the
    tokens trained with them); None where the preset has none."""
    baseline_lr: dict[str, float] = field(default_factory=dict)
    """Learning rate of a trained baseline ("lm_steer", "lora_dare") where it differs
    from stage 1's; they otherwise train exactly like each behavior's token."""
    layout: Layout = field(default_factory=Layout)
    """How prompts read this preset's tokens (``steerlib.model.layout``): the paper's by
    default; ``--set layout.positions=shared --set layout.isolate=true`` is the layout
    the position study chose (``results/cpu/position``), applied by ``load_tokens``."""

    def __post_init__(self) -> None:
        check_preset_name(self.name)
        self._check_mappings()
        object.__setattr__(
            self,
            "target_policies",
            {
                name: choice(TargetPolicy, v, f"target policy of {name}")
                for name, v in self.target_policies.items()
            },
        )

    def _check_mappings(self) -> None:
        """``steps``, ``target_policies`` and ``baseline_lr`` name behaviors and
        baselines that exist, with values they allow: a key misspelled (``{"frnch":
        50}``) would otherwise be ignored without a word."""
        for field_ in ("steps", "target_policies"):
            mapping = getattr(self, field_)
            if not isinstance(mapping, dict):
                raise ConfigError(
                    f"Preset.{field_} must be a mapping of behavior names; got "
                    f"{mapping!r}"
                )
            unknown = sorted(set(mapping) - set(B.names()))
            if unknown:
                raise ConfigError(
                    f"Preset.{field_} names unknown behavior(s) {unknown}; known: "
                    f"{', '.join(B.names())}"
                )
        for name, steps in self.steps.items():
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
                raise ConfigError(
                    f"Preset.steps[{name!r}] must be an integer >= 1; got {steps!r}"
                )
        if not isinstance(self.baseline_lr, dict):
            raise ConfigError(
                f"Preset.baseline_lr must be a mapping; got {self.baseline_lr!r}"
            )
        for name, lr in self.baseline_lr.items():
            if name not in TRAINED_BASELINES:
                raise ConfigError(
                    f"Preset.baseline_lr names {name!r}, not a baseline trained with a "
                    f"learning rate; known: {', '.join(TRAINED_BASELINES)}"
                )
            if (
                isinstance(lr, bool)
                or not isinstance(lr, (int, float))
                or not (math.isfinite(lr) and lr > 0)
            ):
                raise ConfigError(
                    f"Preset.baseline_lr[{name!r}] must be a finite number > 0; got "
                    f"{lr!r}"
                )

    def target_source(self, behavior: str) -> TargetPolicy | TargetSource:
        """The target policy stage 1 uses for ``behavior``: its entry in
        ``target_policies``, else stage 1's target source."""
        return self.target_policies.get(behavior, self.stage1.targets.source)

    def stage1_config(self, name: str) -> TrainConfig:
        """The stage-1 config of behavior ``name``: ``stage1`` with its per-behavior
        target policy (``target_policies``) and step count (``steps``)."""
        cfg = self.stage1
        if name in self.target_policies:
            cfg = policy_config(cfg, self.target_policies[name], B.constructible(name))
        return replace(cfg, steps=self.steps[name]) if name in self.steps else cfg

    def composition_combos(self) -> list[tuple[str, ...]]:
        """The combinations the composition table evaluates, drawn with ``eval.seed``:
        seen/unseen x 2/3 behaviors, plus 3 behaviors + json."""
        ev = self.eval
        combos = []
        for k in (2, 3):
            for split in ("seen", "unseen"):
                combos += sample_combos(
                    k, split, ev.n_combos if k == 2 else ev.n_combos_3, ev.seed
                )
        return combos + sample_combos(
            4, "all", ev.n_combos_4, ev.seed, include_json=True
        )


__all__ = ["PRESET_NAMES", "PRESET_NAME", "check_preset_name", "Preset"]
