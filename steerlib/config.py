"""Dataclass configs carrying the paper's defaults, and what a preset holds.

Every field says where its value comes from: the paper (arXiv 2601.05062) or
**ours** where the paper is silent or a 2-core CPU forces a smaller run.

A ``Preset`` bundles one run's configs; the named presets (smoke, cpu, colab, paper)
and the reasons for their numbers are in ``steerlib.presets``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from enum import StrEnum

from steerlib.errors import ConfigError


class TargetSource(StrEnum):
    """Who answers the training questions (see ``TargetConfig.source``)."""

    SELF = "self"
    FILTERED = "filtered"
    CONSTRUCTED = "constructed"
    MODEL = "model"


class Init(StrEnum):
    """Where a token's training starts (see ``TrainConfig.init``)."""

    SEMANTIC = "semantic"
    ZERO = "zero"
    WORD = "word"
    RANDOM = "random"
    MEAN = "mean"


TargetPolicy = StrEnum(
    "TargetPolicy",
    [(m.name, m.value) for m in TargetSource if m != TargetSource.MODEL]
    + [("CONSTRUCTED_CE", "constructed+ce")],
    module=__name__,
)
TargetPolicy.__doc__ = """A stage-1 target policy compared per behavior: a target
source of the model's own answers (self, filtered, constructed), or constructed+ce
(constructed plus the CE term)."""


class Stage2Combos(StrEnum):
    """What ``<and>`` trains on: pairs of behaviors (paper), or pairs and triples."""

    PAIRS = "2"
    PAIRS_AND_TRIPLES = "2+3"


TARGET_POLICIES = {
    TargetPolicy.SELF: (TargetSource.SELF, 0.0),
    TargetPolicy.FILTERED: (TargetSource.FILTERED, 0.0),
    TargetPolicy.CONSTRUCTED: (TargetSource.CONSTRUCTED, 0.0),
    TargetPolicy.CONSTRUCTED_CE: (TargetSource.CONSTRUCTED, 1.0),
}
"""Stage-1 target policies compared per behavior: policy -> (target source, CE
weight)."""


def choice(enum: type[StrEnum], value, what: str) -> StrEnum:
    """``value`` as a member of ``enum``, or a ConfigError naming what is allowed.

    The members are ``str`` subclasses, so configs holding them hash, compare and
    serialise exactly as the plain strings did (cache keys do not change).
    """
    try:
        return enum(value)
    except ValueError:
        raise ConfigError(
            f"{what} {value!r} unknown; choose one of {[m.value for m in enum]}"
        ) from None


@dataclass(frozen=True)
class TargetConfig:
    """How the answers y that both teacher and student are forced on are made."""

    source: TargetSource = TargetSource.SELF
    """'self': the steered model answers under the instruction (ours; the paper uses a
    larger model). 'filtered': 'self' kept only where the verifier passes (ours).
    'constructed': the model's plain answer transformed to satisfy the behavior, where a
    faithful transform exists, else 'filtered' (ours). 'model': another model's
    answers."""
    model: str | None = None
    """Hub id or local path of the answering model when source == 'model'."""
    max_new_tokens: int = 256
    """Longest target; the paper evaluates with 256 new tokens."""
    plain_max_new_tokens: int = 256
    """Length cap of the plain answers that constructed targets are cut and transformed
    from."""
    do_sample: bool = False
    """Greedy targets by default (ours): deterministic and cacheable."""
    temperature: float = 1.0
    """Sampling temperature when do_sample is True."""
    min_kept: int = 8
    """'filtered'/'constructed': fewer surviving targets than this is an error
    (ours)."""
    oversample: float = 1.0
    """Ask this many times more questions than targets needed (filtered/constructed
    drop some)."""

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "source", choice(TargetSource, self.source, "target source")
        )
        if self.source == TargetSource.MODEL and not self.model:
            raise ConfigError(
                "target source 'model' needs TargetConfig(model=<hub id or path>)"
            )
        _integers(self, 1, "max_new_tokens", "plain_max_new_tokens")
        _integers(self, 0, "min_kept")
        _numbers(self, "temperature", "oversample", positive=True)


def _added(default=None):
    """A field added after artifacts were cached: ``config_hash`` leaves it out while it
    holds its default, so the keys of existing tokens and targets stay valid."""
    return field(default=default, metadata={"hash_unless_set": True})


@dataclass(frozen=True)
class ValidationConfig:
    """Validation-guided training (ours; the paper trains a fixed 2 epochs).

    Every ``every`` steps the vector is scored by greedy generation on validation
    questions (``prompts.load("val")``: part of the train split, never used as a target
    and never a test prompt), the best-scoring step is kept, and training stops after
    ``patience`` scores without improvement. Stage 1 scores the behavior's verifier;
    stage 2 scores both behaviors of each validation pair.
    """

    every: int = 8
    """Optimiser steps between two scores (step 0, the init, is scored too)."""
    patience: int = 3
    """Scores without a strict improvement before training stops."""
    n_questions: int = 24
    """Validation questions (the issue asks for at least 16; 24 = 4.2 points per
    pass)."""
    max_new_tokens: int = 64
    """Short answers keep a score cheap; every behavior is visible within them except
    the long word ranges, which 64 tokens cannot reach (they score 0 until the last
    step)."""
    batch_size: int = 32
    """Generation batch size of a score."""
    patience_steps: int | None = _added()
    """Early stopping counted in optimiser steps (issue 33): stop once this many steps
    have passed since the best rate was first reached; None counts ``patience``
    scores."""

    def __post_init__(self) -> None:
        _integers(
            self, 1, "every", "patience", "n_questions", "max_new_tokens", "batch_size"
        )
        _integers(self, 1, "patience_steps", optional=True)


def _integers(cfg, minimum: int | None, *names: str, optional: bool = False) -> None:
    """Refuse a field that is not an integer >= ``minimum`` (None where
    ``optional``)."""
    for name in names:
        value = getattr(cfg, name)
        if optional and value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or (minimum is not None and value < minimum)
        ):
            allowed = (
                "an integer"
                + (f" >= {minimum}" if minimum is not None else "")
                + (" or None" if optional else "")
            )
            raise ConfigError(
                f"{type(cfg).__name__}.{name} must be {allowed}; got {value!r}"
            )


def _numbers(cfg, *names: str, positive: bool = False) -> None:
    """Refuse a field that is not a finite number > 0 (``positive``) or >= 0: NaN, inf
    and negative values would train NaN vectors, or none at all, without an error."""
    for name in names:
        value = getattr(cfg, name)
        ok = (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (value > 0 if positive else value >= 0)
        )
        if not ok:
            raise ConfigError(
                f"{type(cfg).__name__}.{name} must be a finite number "
                f"{'> 0' if positive else '>= 0'}; "
                f"got {value!r}"
            )


@dataclass(frozen=True)
class TrainConfig:
    """One training stage (a behavior token, or the composition token)."""

    steps: int = 2 * 50_000 // 16
    """Optimiser steps. Paper: 2 epochs over 50k examples (batch size ours: 16)."""
    batch_size: int = 16
    """Examples per step (ours: the paper does not state it)."""
    lr: float = 1e-4
    """AdamW learning rate (paper)."""
    weight_decay: float = 1e-3
    """AdamW weight decay (paper)."""
    warmup: float = 0.1
    """Share of steps with linear warm-up, then linear decay to 0 (paper)."""
    grad_clip: float = 1.0
    """Gradient-norm clip (paper)."""
    temperature: float = 10.0
    """Distillation temperature T; the loss is multiplied by T^2 (paper)."""
    max_answer_tokens: int | None = None
    """Train on the first this-many answer tokens only (ours; None = whole answers, as
    the paper). The first tokens carry most of the signal: once an answer has started in
    French, teacher and student agree on its continuation anyway."""
    ce_weight: float = 0.0
    """Weight of an extra cross-entropy term on the target tokens (ours; 0 = paper)."""
    orth_weight: float = 0.5
    """lambda of L_orth = sum_b cos(e_and, e_b)^2, stage 2 only (paper: 0.5)."""
    init: Init = Init.SEMANTIC
    """Stage 1: 'semantic' (mean embedding of the instruction's tokens, paper). Stage 2:
    'zero' (paper), 'word' (the vocabulary ' and'), 'mean' (of behavior tokens),
    'random'."""
    checkpoint_every: int = 50
    """Save a resumable checkpoint every this many steps."""
    seed: int = 0
    """Seeds data order, instruction paraphrases and random inits."""
    targets: TargetConfig = field(default_factory=TargetConfig)
    validation: ValidationConfig | None = _added()
    """Validation-guided stopping (ours); None trains exactly ``steps`` steps (paper).
    With it, ``steps`` is the maximum."""
    displace: int = _added(0)
    """Stage 1 only: up to this many frozen blank slots stand between the question and
    the token being trained, 0..displace drawn per example (ours, the position study's
    family B; 0 = the paper: the token right after the question). Trains a token to
    steer from a later place, as it must in ``<b1><and><b2>``."""
    vectors: int = _added(1)
    """Vectors the trained token holds (ours, issue 33; the paper: 1). A token of k
    vectors fills k consecutive prompt slots; Lester et al. (arXiv 2104.08691) found one
    soft token enough only at 11B, and Tailor's connector between prompts has many."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "init", choice(Init, self.init, "init"))
        _integers(self, 1, "steps", "batch_size", "checkpoint_every", "vectors")
        _integers(self, 1, "max_answer_tokens", optional=True)
        _integers(self, 0, "displace")
        _integers(self, None, "seed")
        # a zero or non-finite lr, temperature or clip trains a NaN or unchanged vector
        _numbers(self, "lr", "grad_clip", "temperature", positive=True)
        _numbers(self, "weight_decay", "ce_weight", "orth_weight", "warmup")
        if self.warmup > 1:
            raise ConfigError(
                "TrainConfig.warmup must be a share of the steps, in [0, 1]; got "
                f"{self.warmup!r}"
            )

    @property
    def n_examples(self) -> int:
        """How many distinct (prompt, target) pairs one training run draws on."""
        return self.steps * self.batch_size


@dataclass(frozen=True)
class EvalConfig:
    """The evaluation protocol."""

    max_new_tokens: int = 256
    """Greedy decoding, up to 256 new tokens (paper)."""
    n_prompts: int = 1000
    """Held-out prompts per combination ordering (paper: 1,000)."""
    n_single: int = 1000
    """Held-out prompts per behavior in the single-behavior table."""
    n_prompts_3: int = 1000
    """Held-out prompts per ordering for 3- and 4-behavior combinations."""
    n_combos: int | None = None
    """2-behavior combinations sampled per split (None = all; sampling is ours, for the
    cpu preset)."""
    n_combos_3: int | None = None
    """3-behavior combinations sampled per split."""
    n_combos_4: int | None = None
    """3 behaviors + json combinations sampled (all orderings: 24 each)."""
    batch_size: int = 32
    """Generation batch size."""
    seed: int = 0
    n_capable: int = _added(1000)
    """Test prompts per ordering in the capable-pairs study (ours; ``capable.py``)."""
    n_ablation: int | None = _added()
    """Test prompts per ordering for the ablations on the capable pairs (None =
    ``n_capable``; ours: each ``<and>`` setting costs this many generations per
    ordering of every pair)."""

    def __post_init__(self) -> None:
        _integers(
            self,
            1,
            "max_new_tokens",
            "n_prompts",
            "n_single",
            "n_prompts_3",
            "batch_size",
            "n_capable",
        )
        _integers(
            self, 1, "n_combos", "n_combos_3", "n_combos_4", "n_ablation", optional=True
        )
        _integers(self, None, "seed")


def policy_config(
    base: TrainConfig, policy: TargetPolicy | str, constructible: bool = True
) -> TrainConfig:
    """``base`` with the target source and CE weight of ``policy`` (a TARGET_POLICIES
    label).

    A behavior without a faithful transform (``constructible=False``: languages) has
    constructed targets that are its filtered ones, so it gets the filtered config and
    shares its cached targets and token.
    """
    source, ce = TARGET_POLICIES[choice(TargetPolicy, policy, "target policy")]
    if source == TargetSource.CONSTRUCTED and not constructible:
        source = TargetSource.FILTERED
    if source == base.targets.source and ce == base.ce_weight:
        return base
    return replace(base, ce_weight=ce, targets=replace(base.targets, source=source))


def _hashable(cfg) -> dict:
    """``asdict(cfg)`` without the later-added fields that still hold their default."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.metadata.get("hash_unless_set") and value == f.default:
            continue
        out[f.name] = _hashable(value) if dataclasses.is_dataclass(value) else value
    return out


def config_hash(cfg) -> str:
    """Stable hash of any config dataclass (fields added later count only once set)."""
    return hashlib.sha256(
        json.dumps(_hashable(cfg), sort_keys=True).encode()
    ).hexdigest()[:12]


__all__ = [
    "choice",
    "TargetConfig",
    "TrainConfig",
    "ValidationConfig",
    "EvalConfig",
    "config_hash",
    "TARGET_POLICIES",
    "policy_config",
    "TargetSource",
    "Init",
    "TargetPolicy",
    "Stage2Combos",
]
