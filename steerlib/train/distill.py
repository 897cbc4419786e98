"""Stage 1: a behavior token by self-distillation from the model's own answers.

The targets are the model's answers under the behavior's instruction
(``steerlib.train.targets``); the loss is ``steerlib.train.loss``; the trained vector is
cached and resumed through ``steerlib.train.cache``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from steerlib.config import Init, TrainConfig, config_hash
from steerlib.errors import ConfigError
from steerlib.model.backbone import Backbone
from steerlib.model.inits import random_init, random_rows, text_rows
from steerlib.model.tokens import SteeringTokens
from steerlib.paths import artifacts_root
from steerlib.tasks import behaviors as B
from steerlib.tasks import prompts as P
from steerlib.train.cache import TokenRun, cached_token, fit_token
from steerlib.train.loss import examples_for
from steerlib.train.targets import Target, make_targets
from steerlib.train.validation import behavior_validator


def behavior_targets(
    bb: Backbone,
    name: str,
    cfg: TrainConfig,
    questions: Sequence[str] | None = None,
    progress: bool | None = None,
) -> list[Target]:
    """The (cached) targets a behavior trains on: one job per example for 2 epochs
    (ours).

    Shared with the LM-Steer and LoRA baselines, which distill on exactly these.
    """
    questions = list(questions) if questions is not None else P.load("train")
    n_jobs = round(max(cfg.batch_size, cfg.n_examples // 2) * cfg.targets.oversample)
    jobs = [(questions[i % len(questions)], (name,)) for i in range(n_jobs)]
    return make_targets(
        bb, jobs, cfg.targets, key=B.cache_name(name), seed=cfg.seed, progress=progress
    )


def train_behavior_token(
    bb: Backbone,
    name: str,
    config: TrainConfig | None = None,
    *,
    tokens: SteeringTokens | None = None,
    questions: Sequence[str] | None = None,
    retrain: bool = False,
    progress: bool | None = None,
    stop_after: int | None = None,
    from_file: str | Path | None = None,
) -> SteeringTokens:
    """Train ``<name>`` by self-distillation and return ``tokens`` with it added.

    The result is cached under ``artifacts/<fingerprint>/stage1/``: a second call with
    the same model, config and training questions loads it instead of training
    (``retrain=True`` forces it), and an interrupted call resumes from its last
    checkpoint. ``from_file``: a token file (one committed next to a chapter's results)
    to load ``<name>`` from when it holds the run asked for, same model and same cache
    key, instead of training it.

    >>> from steerlib import load_backbone, presets
    >>> bb = load_backbone("tiny")
    >>> config = presets.smoke().stage1  # 3 steps of 2 examples
    >>> tokens = train_behavior_token(bb, "french", config, progress=False)
    >>> tokens.names, len(tokens.losses["french"])
    (['french'], 3)
    >>> again = train_behavior_token(bb, "french", config, progress=False)  # cached
    >>> bool((again["french"] == tokens["french"]).all())
    True
    """
    cfg = config or TrainConfig()
    behavior = B.get(name)
    tokens = tokens.copy() if tokens is not None else SteeringTokens.for_backbone(bb)
    key = stage1_key(name, cfg, questions)
    final = stage1_path(bb, name, cfg, questions)
    run = TokenRun(bb, name, key, final, retrain, progress, stop_after)
    cached = cached_token(run, from_file)
    if cached is not None:
        tokens.set(name, cached[name], cached.info[name], cached.losses.get(name))
        return tokens
    start = time.perf_counter()
    targets = behavior_targets(bb, name, cfg, questions, progress)
    blanks = blank_tokens(bb, cfg.displace, cfg.seed) if cfg.displace else None
    draw = random.Random(cfg.seed)
    examples = examples_for(
        bb,
        targets,
        lambda t: (
            (*blanks.names[: draw.randint(0, cfg.displace)], name)
            if blanks is not None
            else (name,)
        ),
        widths={name: cfg.vectors},
    )
    init = _init_vector(bb, cfg.init, behavior.paraphrases[0], cfg.seed, cfg.vectors)
    record = {
        "stage": 1,
        "key": key,
        "init": cfg.init,
        "target_source": cfg.targets.source,
        "n_targets": len(targets),
        **({"displace": cfg.displace} if cfg.displace else {}),
    }
    validate = (
        behavior_validator(bb, name, cfg.validation, blanks) if cfg.validation else None
    )
    trained = fit_token(
        run, init, examples, cfg, record, start, tokens=blanks, validate=validate
    )
    tokens.set(name, trained[name], trained.info[name], trained.losses[name])
    return tokens


def stage1_key(
    name: str, cfg: TrainConfig, questions: Sequence[str] | None = None
) -> str:
    """The cache key of a stage-1 run: behavior, config hash and, unless they are the
    shipped train split, a digest of the training questions (the shipped tokens carry
    this key)."""
    return f"{B.cache_name(name)}-{config_hash(cfg)}{P.cache_tag(questions)}"


BLANK = "blank_{}"
"""Names of the frozen blank slots of displaced training (``TrainConfig.displace``)."""


def blank_tokens(bb: Backbone, k: int, seed: int = 0) -> SteeringTokens:
    """``k`` frozen blank slots for displaced stage-1 training: Gaussian directions with
    the vocabulary's mean embedding norm (``random_init``), fixed by ``seed``. They
    carry no behavior, so the teacher (reading only the token's instruction) is
    unchanged, and the token learns to steer with anything between the question and
    itself."""
    blanks = SteeringTokens.for_backbone(bb)
    for i in range(1, k + 1):
        blanks.set(BLANK.format(i), random_init(bb, seed + 1_000 + i))
    return blanks


def stage1_path(
    bb: Backbone, name: str, cfg: TrainConfig, questions: Sequence[str] | None = None
) -> Path:
    """Where a finished stage-1 run of this model is cached."""
    return (
        artifacts_root()
        / bb.fingerprint
        / "stage1"
        / f"{stage1_key(name, cfg, questions)}.safetensors"
    )


def _init_vector(
    bb: Backbone, init: Init, text: str, seed: int, k: int = 1
) -> torch.Tensor:
    """Stage-1 inits of a token of ``k`` vectors: the instruction's mean embedding
    (paper; for k > 1 its first k token embeddings, ``text_rows``), or zero / random."""
    if init == Init.SEMANTIC:
        return text_rows(bb, text, k)
    if init == Init.ZERO:
        return torch.zeros(k, bb.hidden_size).squeeze(0)
    if init == Init.RANDOM:
        return random_rows(bb, k, seed)
    raise ConfigError(
        f"init {init!r} is not a stage-1 init; use 'semantic', 'zero' or 'random'"
    )
