"""Stage 2: the composition token ``<and>``.

One vector, trained on pairs of *seen* behaviors from different categories while the
model and every behavior token stay frozen. The teacher reads both instructions (random
paraphrases, random order); the student reads ``<b1><and><b2>`` in the same order; the
loss is stage 1's distillation loss plus

    lambda * L_orth,   L_orth = sum over seen behaviors b of cos(e_and, e_b)^2,

which keeps ``<and>`` from drifting into any behavior's direction (paper, lambda = 0.5).
``combos="2+3"`` also trains on triples ``<b1><and><b2><and><b3>``.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from steerlib.config import Init, Stage2Combos, TrainConfig, choice, config_hash
from steerlib.model.backbone import Backbone
from steerlib.model.generate import interleave
from steerlib.model.tokens import SteeringTokens, random_init, text_init
from steerlib.paths import artifacts_root
from steerlib.tasks import behaviors as B
from steerlib.tasks import prompts as P
from steerlib.train.cache import cached_token, fit_token
from steerlib.train.loss import examples_for
from steerlib.train.targets import make_targets
from steerlib.train.validation import pair_validator

log = logging.getLogger("steerlib")


def orthogonality(e_and: torch.Tensor, behavior_vectors: torch.Tensor) -> torch.Tensor:
    """L_orth = sum_b cos(e_and, e_b)^2 over the rows of ``behavior_vectors``."""
    return (
        F.cosine_similarity(e_and.unsqueeze(0), behavior_vectors, dim=-1).pow(2).sum()
    )


def composition_jobs(
    n: int, combos: Stage2Combos | str, seed: int, questions: Sequence[str]
) -> list[tuple[str, tuple[str, ...]]]:
    """``n`` (question, ordered combination) jobs: seen cross-category pairs (and triples).

    Each job draws a combination uniformly and shuffles its order, so the token sees every
    ordering; in "2+3" a third of the jobs are triples (ours).
    """
    combos = choice(Stage2Combos, combos, "stage-2 combos")
    rng = random.Random(seed)
    pairs = B.training_pairs()
    triples = (
        B.combinations(3, "seen") if combos == Stage2Combos.PAIRS_AND_TRIPLES else []
    )
    jobs = []
    for i in range(n):
        pool = triples if triples and i % 3 == 2 else pairs
        combo = list(rng.choice(pool))
        rng.shuffle(combo)
        jobs.append((questions[i % len(questions)], tuple(combo)))
    return jobs


def init_and(
    bb: Backbone, tokens: SteeringTokens, init: Init, seed: int
) -> torch.Tensor:
    """Stage-2 inits: zero (paper default), ' and' word embedding, mean of behavior tokens, random."""
    if init == Init.ZERO:
        return torch.zeros(bb.hidden_size)
    if init == Init.WORD:
        return text_init(bb, " and")
    if init == Init.MEAN:
        return torch.stack([tokens[n] for n in tokens.names if n != "and"]).mean(0)
    if init == Init.RANDOM:
        return random_init(bb, seed)
    raise ValueError(
        f"init {init!r} is not a stage-2 init; use 'zero', 'word', 'mean' or 'random'"
    )


def validation_rate(tokens: SteeringTokens, name: str) -> float | None:
    """``<name>``'s best stage-1 validation pass rate, from its metadata (None: trained
    without validation)."""
    record = (tokens.info.get(name) or {}).get("validation")
    return None if record is None else record["best_rate"]


CAPABLE_RATE = 0.5
"""A behavior is capable when its token alone passes at least this share of its validation
questions (ours): the bar for the pairs stage 2 is scored on and for the capable-pairs study."""


def passing_pairs(
    pairs: Sequence[tuple[str, ...]],
    rate: Callable[[str], float | None],
    threshold: float = CAPABLE_RATE,
) -> list[tuple[str, ...]]:
    """The pairs whose every behavior passes at least ``threshold`` alone, as ``rate``
    reports it (validation data only; a behavior without a rate is not capable).

    >>> passing_pairs([("french", "upper_case"), ("french", "sentences_1")], {"french": 0.9, "upper_case": 0.2,
    ...               "sentences_1": 0.6}.get)
    [('french', 'sentences_1')]
    """

    def ok(name: str) -> bool:
        r = rate(name)
        return r is not None and r >= threshold

    return [p for p in pairs if all(ok(n) for n in p)]


def validation_pairs(
    tokens: SteeringTokens, threshold: float = CAPABLE_RATE
) -> list[tuple[str, str]]:
    """The training pairs stage 2 is scored on: those whose behavior tokens both pass
    ``threshold`` on their own validation questions (ours). A pair with an incapable
    behavior scores 0 with any ``<and>``, and would only dilute the signal; with fewer
    than 2 capable pairs, all training pairs are used."""
    pairs = passing_pairs(
        B.training_pairs(), lambda n: validation_rate(tokens, n), threshold
    )
    return pairs if len(pairs) >= 2 else B.training_pairs()


def _seen() -> list[str]:
    """The seen behaviors, in registry order: the ones ``<and>`` trains on, frozen."""
    return [b for b in B.names() if B.get(b).seen]


def _stage2_cache(
    bb: Backbone,
    tokens: SteeringTokens,
    cfg: TrainConfig,
    combos: Stage2Combos,
    questions: Sequence[str] | None,
    name: str,
) -> tuple[str, Path]:
    """The cache key of a composition token and its file: keyed by config, training combinations and the
    seen behavior vectors themselves (retrained behavior tokens make another key)."""
    seen = _seen()
    missing = [b for b in seen if b not in tokens]
    if missing:
        raise ValueError(
            f"stage 2 needs the seen behavior tokens first; missing: {missing}"
        )
    key = f"{name}-v{combos.replace('+', 'p')}-{config_hash(cfg)}-{tokens.digest(seen)[:8]}{P.cache_tag(questions)}"
    return key, artifacts_root() / bb.fingerprint / "stage2" / f"{key}.safetensors"


def cached_composition_token(
    bb: Backbone,
    tokens: SteeringTokens,
    config: TrainConfig,
    *,
    combos: Stage2Combos | str = Stage2Combos.PAIRS,
    questions: Sequence[str] | None = None,
    name: str = "and",
) -> SteeringTokens | None:
    """The ``<and>`` that ``train_composition_token`` would return, when it is already
    trained (cached or shipped); None otherwise. Trains nothing: a report reads an
    ablation setting's metadata (its training seconds, its curve) this way."""
    key, final = _stage2_cache(
        bb,
        tokens,
        config,
        choice(Stage2Combos, combos, "stage-2 combos"),
        questions,
        name,
    )
    return cached_token(bb, final, name, key, retrain=False)


def train_composition_token(
    bb: Backbone,
    tokens: SteeringTokens,
    config: TrainConfig | None = None,
    *,
    combos: Stage2Combos | str = Stage2Combos.PAIRS,
    questions: Sequence[str] | None = None,
    retrain: bool = False,
    progress: bool | None = None,
    stop_after: int | None = None,
    name: str = "and",
) -> SteeringTokens:
    """Train ``<and>`` on top of frozen behavior tokens; return a copy of ``tokens`` with it.

    Cached like stage 1 under ``artifacts/<fingerprint>/stage2/`` (keyed by config,
    training combinations and the behavior vectors themselves), resumable from checkpoints.
    """
    cfg = config or TrainConfig(init=Init.ZERO)
    combos = choice(Stage2Combos, combos, "stage-2 combos")
    key, final = _stage2_cache(bb, tokens, cfg, combos, questions, name)
    tokens.check_backbone(bb)
    seen = _seen()
    frozen = torch.stack([tokens[b] for b in seen]).to(bb.device)
    out = tokens.copy()
    cached = cached_token(bb, final, name, key, retrain)
    if cached is not None:
        out.set(name, cached[name], cached.info[name], cached.losses.get(name))
        return out
    start = time.perf_counter()
    questions = list(questions) if questions is not None else P.load("train")
    n_jobs = round(max(cfg.batch_size, cfg.n_examples // 2) * cfg.targets.oversample)
    jobs = composition_jobs(n_jobs, combos, cfg.seed, questions)
    targets = make_targets(
        bb,
        jobs,
        cfg.targets,
        key=f"compose-v{combos.replace('+', 'p')}",
        seed=cfg.seed,
        progress=progress,
    )
    examples = examples_for(bb, targets, lambda t: interleave(t.names, name))

    def orth(params):
        return (
            cfg.orth_weight * orthogonality(params[name], frozen)
            if cfg.orth_weight
            else 0.0
        )

    record = {
        "stage": 2,
        "key": key,
        "variant": combos,  # the key token files and model cards read
        "init": cfg.init,
        "orth_weight": cfg.orth_weight,
        "target_source": cfg.targets.source,
        "n_targets": len(targets),
    }
    validate = None
    if cfg.validation:
        pairs = validation_pairs(tokens)
        record["validation_pairs"] = [list(p) for p in pairs]
        validate = pair_validator(bb, tokens, pairs, cfg.validation, joiner=name)
    trained = fit_token(
        bb,
        name,
        init_and(bb, tokens, cfg.init, cfg.seed),
        examples,
        cfg,
        final,
        record,
        start,
        tokens=tokens,
        extra_loss=orth,
        validate=validate,
        retrain=retrain,
        progress=progress,
        stop_after=stop_after,
    )
    out.set(name, trained[name], trained.info[name], trained.losses[name])
    return out
