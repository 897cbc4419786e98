"""Scoring a vector while it trains: greedy answers to validation questions, verified.

Validation questions are the shipped "val" split (``prompts.load("val")``): train-split
questions that no target is made from, and never test prompts, so the step a run keeps
is chosen without touching the numbers it is later judged on. Stage 1 asks each question
with the behavior's token and scores its verifier; stage 2 asks each with a pair
``<b1><and><b2>`` (both orders in turn) and scores both verifiers (ours).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from steerlib import distributed
from steerlib.config import ValidationConfig
from steerlib.errors import ConfigError
from steerlib.model.backbone import Backbone
from steerlib.model.generate import Request, SteeredModel
from steerlib.model.methods import interleave
from steerlib.model.tokens import SteeringTokens
from steerlib.tasks import behaviors as B
from steerlib.tasks import prompts as P
from steerlib.train.loop import Params, Validator


def questions(cfg: ValidationConfig) -> list[str]:
    """The first ``cfg.n_questions`` validation questions."""
    qs = P.load("val")
    if cfg.n_questions > len(qs):
        raise ConfigError(
            f"ValidationConfig.n_questions={cfg.n_questions} but the val split has "
            f"{len(qs)} questions"
        )
    return qs[: cfg.n_questions]


def pass_rate(
    sm: SteeredModel,
    jobs: Sequence[tuple[str, tuple[str, ...], tuple[str, ...]]],
    cfg: ValidationConfig,
) -> float:
    """Share of ``jobs`` = [(question, slots, behaviors to verify)] whose greedy answer
    passes every verifier.

    Under several processes each answers its share of the questions, or rank 0 answers
    a few with every rank's threads, and all get every answer
    (``distributed.map_shards``): the params are the same on every rank, so the score,
    and the early stop it decides, are too."""
    requests = [Request(q, slots) for q, slots, _ in jobs]
    texts = distributed.map_shards(
        lambda part: sm.generate(
            part, cfg.max_new_tokens, batch_size=cfg.batch_size, progress=False
        ),
        requests,
    )
    return sum(
        all(B.verify_all(t, names).values()) for t, (_, _, names) in zip(texts, jobs)
    ) / len(jobs)


def _scorer(
    bb: Backbone, base: SteeringTokens | None, jobs, cfg: ValidationConfig
) -> Validator:
    """A validator for params named like steering slots, on top of the frozen
    ``base``."""

    def score(params: Params) -> float:
        tokens = base.copy() if base is not None else SteeringTokens.for_backbone(bb)
        for name, p in params.items():
            tokens.set(name, p.detach())
        with torch.inference_mode():
            return pass_rate(SteeredModel(bb, tokens), jobs, cfg)

    return score


def behavior_validator(
    bb: Backbone, name: str, cfg: ValidationConfig, blanks: SteeringTokens | None = None
) -> Validator:
    """Stage 1: the pass rate of ``<name>`` alone on the validation questions. With the
    frozen ``blanks`` of displaced training, question i puts the first i mod (k + 1) of
    them between the question and the token, so the kept step steers from every
    place."""
    places = len(blanks) + 1 if blanks is not None else 1
    names = blanks.names if blanks is not None else []
    return _scorer(
        bb,
        blanks,
        [
            (q, (*names[: i % places], name), (name,))
            for i, q in enumerate(questions(cfg))
        ],
        cfg,
    )


def pair_validator(
    bb: Backbone,
    tokens: SteeringTokens,
    pairs: Sequence[tuple[str, str]],
    cfg: ValidationConfig,
    joiner: str = "and",
) -> Validator:
    """Stage 2: the joint pass rate of ``<b1><joiner><b2>``, question i asking pair
    i mod len(pairs), in the pair's order for even cycles and reversed for odd ones."""
    if not pairs:
        raise ConfigError("stage-2 validation needs at least one pair")
    jobs = []
    for i, q in enumerate(questions(cfg)):
        pair = tuple(pairs[i % len(pairs)])
        order = pair if (i // len(pairs)) % 2 == 0 else pair[::-1]
        jobs.append((q, interleave(order, joiner), order))
    return _scorer(bb, tokens, jobs, cfg)
