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

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from steerlib.config import Init, Stage2Combos, TrainConfig, choice, config_hash
from steerlib.errors import ConfigError
from steerlib.model.backbone import Backbone
from steerlib.model.inits import random_rows, text_init
from steerlib.model.methods import interleave
from steerlib.model.tokens import SteeringTokens
from steerlib.paths import artifacts_root
from steerlib.tasks import behaviors as B
from steerlib.tasks import prompts as P
from steerlib.train.cache import TokenRun, cached_token, fit_token
from steerlib.train.loss import examples_for
from steerlib.train.targets import Target, make_targets
from steerlib.train.validation import pair_validator

log = logging.getLogger("steerlib")


def orthogonality(e_and: torch.Tensor, behavior_vectors: torch.Tensor) -> torch.Tensor:
    """L_orth = sum_b cos(e_and, e_b)^2 over the rows of ``behavior_vectors``; for an
    ``<and>`` of k vectors (a ``(k, d)`` block), summed over every one of them (ours).

    >>> float(orthogonality(torch.tensor([1.0, 0.0]), torch.tensor([[0.0, 2.0]])))
    0.0
    >>> float(orthogonality(torch.eye(2), torch.tensor([[3.0, 0.0]])))
    1.0
    """
    rows = e_and.reshape(-1, e_and.shape[-1])
    return (
        F.cosine_similarity(rows.unsqueeze(1), behavior_vectors.unsqueeze(0), dim=-1)
        .pow(2)
        .sum()
    )


def composition_jobs(
    n: int, combos: Stage2Combos | str, seed: int, questions: Sequence[str]
) -> list[tuple[str, tuple[str, ...]]]:
    """``n`` (question, ordered combination) jobs: seen cross-category pairs (and
    triples).

    Each job draws a combination uniformly and shuffles its order, so the token sees
    every ordering; in "2+3" a third of the jobs are triples (ours).
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


def pair_jobs(
    pairs: Sequence[tuple[str, str]],
    questions: Sequence[str],
    per_question: int,
    seed: int,
) -> list[tuple[str, tuple[str, ...]]]:
    """Stage-2 jobs for chosen ``pairs`` (ours, beyond the recipe's uniform draw): each
    question asks ``per_question`` of the pairs, the pairs taking turns so each gets the
    same number of questions, each job in a random order (seeded).

    >>> pair_jobs([("a", "x"), ("b", "x")], ["q1", "q2"], 1, seed=0)[0][0]
    'q1'
    >>> sorted(len(set(j[1])) for j in pair_jobs([("a", "x"), ("b", "x")], ["q"], 2, 0))
    [2, 2]
    """
    if not 1 <= per_question <= len(pairs):
        raise ConfigError(
            f"per_question must be between 1 and the {len(pairs)} pairs; got "
            f"{per_question}"
        )
    rng = random.Random(seed)
    jobs = []
    for i, question in enumerate(questions):
        for j in range(per_question):
            order = list(pairs[(i * per_question + j) % len(pairs)])
            rng.shuffle(order)
            jobs.append((question, tuple(order)))
    return jobs


def init_and(
    bb: Backbone, tokens: SteeringTokens, init: Init, seed: int, k: int = 1
) -> torch.Tensor:
    """Stage-2 inits of an ``<and>`` of ``k`` vectors: zero (paper default), ' and' word
    embedding, mean of behavior tokens, random; every vector of a block starts alike,
    except random ones (``random_rows``)."""
    if init == Init.RANDOM:
        return random_rows(bb, k, seed)
    if init == Init.ZERO:
        vector = torch.zeros(bb.hidden_size)
    elif init == Init.WORD:
        vector = text_init(bb, " and")
    elif init == Init.MEAN:
        behaviors = [tokens.rows(n) for n in tokens.names if n != "and"]
        vector = torch.cat(behaviors).mean(0)
    else:
        raise ConfigError(
            f"init {init!r} is not a stage-2 init; use 'zero', 'word', 'mean' or "
            "'random'"
        )
    return vector.expand(k, -1).clone().squeeze(0)


def validation_rate(tokens: SteeringTokens, name: str) -> float | None:
    """``<name>``'s best stage-1 validation pass rate, from its metadata (None: trained
    without validation)."""
    record = (tokens.info.get(name) or {}).get("validation")
    return None if record is None else record["best_rate"]


CAPABLE_RATE = 0.5
"""A behavior is capable when its token alone passes at least this share of its
validation questions (ours): the bar for the pairs stage 2 is scored on and for the
capable-pairs study."""


def passing_pairs(
    pairs: Sequence[tuple[str, ...]],
    rate: Callable[[str], float | None],
    threshold: float = CAPABLE_RATE,
) -> list[tuple[str, ...]]:
    """The pairs whose every behavior passes at least ``threshold`` alone, as ``rate``
    reports it (validation data only; a behavior without a rate is not capable).

    >>> passing_pairs([("french", "upper_case"), ("french", "sentences_1")],
    ...               {"french": 0.9, "upper_case": 0.2, "sentences_1": 0.6}.get)
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
    targets: Sequence[Target] | None = None,
    val_pairs: Sequence[tuple[str, str]] | None = None,
) -> tuple[str, Path]:
    """The cache key of a composition token and its file: keyed by config, training
    combinations and the seen behavior vectors themselves (retrained behavior tokens
    make another key), and by given targets and validation pairs (``-t``, ``-v`` parts;
    the recipe's keys carry neither)."""
    seen = _seen()
    missing = [b for b in seen if b not in tokens]
    if missing:
        raise ConfigError(
            f"stage 2 needs the seen behavior tokens first; missing: {missing}"
        )
    key = (
        f"{name}-v{combos.replace('+', 'p')}-{config_hash(cfg)}-"
        f"{tokens.digest(seen)[:8]}{P.cache_tag(questions)}"
    )
    if targets is not None:
        key += f"-t{targets_digest(targets)}"
    if val_pairs is not None:
        key += f"-v{_digest(json.dumps([list(p) for p in val_pairs]))}"
    return key, artifacts_root() / bb.fingerprint / "stage2" / f"{key}.safetensors"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def targets_digest(targets: Sequence[Target]) -> str:
    """8 hex digits over every target's behaviors, teacher instruction and answer
    ids."""
    return _digest(json.dumps([[t.names, t.instructions, t.answer] for t in targets]))


def composition_targets(
    bb: Backbone,
    cfg: TrainConfig,
    combos: Stage2Combos | str = Stage2Combos.PAIRS,
    questions: Sequence[str] | None = None,
    progress: bool | None = None,
) -> list[Target]:
    """The recipe's stage-2 targets: ``composition_jobs`` over the train questions (the
    number ``cfg`` asks for), made with ``cfg.targets`` and cached."""
    combos = choice(Stage2Combos, combos, "stage-2 combos")
    questions = list(questions) if questions is not None else P.load("train")
    n_jobs = round(max(cfg.batch_size, cfg.n_examples // 2) * cfg.targets.oversample)
    return make_targets(
        bb,
        composition_jobs(n_jobs, combos, cfg.seed, questions),
        cfg.targets,
        key=f"compose-v{combos.replace('+', 'p')}",
        seed=cfg.seed,
        progress=progress,
    )


def cached_composition_token(
    bb: Backbone,
    tokens: SteeringTokens,
    config: TrainConfig,
    *,
    combos: Stage2Combos | str = Stage2Combos.PAIRS,
    questions: Sequence[str] | None = None,
    name: str = "and",
    targets: Sequence[Target] | None = None,
    val_pairs: Sequence[tuple[str, str]] | None = None,
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
        targets,
        val_pairs,
    )
    return cached_token(TokenRun(bb, name, key, final))


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
    targets: Sequence[Target] | None = None,
    val_pairs: Sequence[tuple[str, str]] | None = None,
) -> SteeringTokens:
    """Train ``<and>`` on top of frozen behavior tokens; return a copy of ``tokens``
    with it.

    Cached like stage 1 under ``artifacts/<fingerprint>/stage2/`` (keyed by config,
    training combinations and the behavior vectors themselves), resumable from
    checkpoints. ``targets``: train on these instead of the recipe's
    (``composition_targets``), for example filtered pair targets (``pair_jobs``);
    ``val_pairs``: score validation on these pairs instead of
    ``validation_pairs(tokens)``. Both enter the cache key.

    >>> import torch
    >>> from steerlib import SteeringTokens, behaviors, load_backbone, presets
    >>> bb = load_backbone("tiny")
    >>> tokens = SteeringTokens.for_backbone(bb)
    >>> for name in behaviors.names():  # stand-ins for trained behavior tokens
    ...     tokens.set(name, 0.01 * torch.randn(bb.hidden_size))
    >>> config = presets.smoke().stage2  # <and> from zero, 3 steps of 2 pair examples
    >>> composed = train_composition_token(bb, tokens, config, progress=False)
    >>> "and" in composed.names, len(composed.losses["and"])
    (True, 3)
    >>> all(torch.equal(composed[n], tokens[n]) for n in tokens.names)  # frozen
    True
    """
    cfg = config or TrainConfig(init=Init.ZERO)
    combos = choice(Stage2Combos, combos, "stage-2 combos")
    key, final = _stage2_cache(
        bb, tokens, cfg, combos, questions, name, targets, val_pairs
    )
    tokens.check_backbone(bb)
    seen = _seen()
    frozen = torch.cat([tokens.rows(b) for b in seen]).to(bb.device)
    out = tokens.copy()
    run = TokenRun(bb, name, key, final, retrain, progress, stop_after)
    cached = cached_token(run)
    if cached is not None:
        out.set(name, cached[name], cached.info[name], cached.losses.get(name))
        return out
    start = time.perf_counter()
    if targets is None:
        targets = composition_targets(bb, cfg, combos, questions, progress)
    examples = examples_for(
        bb,
        targets,
        lambda t: interleave(t.names, name),
        widths={**tokens.widths(), name: cfg.vectors},
    )

    def orth(params):
        return (
            cfg.orth_weight * orthogonality(params[name], frozen)
            if cfg.orth_weight
            else 0.0
        )

    record = {
        "stage": 2,
        "key": key,
        "combos": combos,  # what <and> trained on; model cards read it (card._row)
        "init": cfg.init,
        "orth_weight": cfg.orth_weight,
        "target_source": cfg.targets.source,
        "n_targets": len(targets),
    }
    validate = None
    if cfg.validation:
        pairs = list(val_pairs) if val_pairs is not None else validation_pairs(tokens)
        record["validation_pairs"] = [list(p) for p in pairs]
        validate = pair_validator(bb, tokens, pairs, cfg.validation, joiner=name)
    trained = fit_token(
        run,
        init_and(bb, tokens, cfg.init, cfg.seed, cfg.vectors),
        examples,
        cfg,
        record,
        start,
        tokens=tokens,
        extra_loss=orth,
        validate=validate,
    )
    out.set(name, trained[name], trained.info[name], trained.losses[name])
    return out
