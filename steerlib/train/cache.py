"""A trained token's place in the artifacts cache, shared by stage 1 and stage 2.

``cached_token`` finds a finished run (the artifacts cache, a committed token file, the
tokens shipped in the package); ``fit_token`` trains one vector with checkpoints beside
its cache file and files it there once the run has finished, so a second call with the
same key loads instead of training and an interrupted one resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from steerlib import distributed
from steerlib.config import TrainConfig
from steerlib.guard import refuse_work
from steerlib.model.backbone import Backbone
from steerlib.model.tokens import SteeringTokens, shipped
from steerlib.train.loop import Validator
from steerlib.train.loss import Example, train_vectors

log = logging.getLogger("steerlib")


@dataclass(frozen=True)
class TokenRun:
    """One token's training run as the cache sees it: which token of which model, its
    cache ``key`` and the file it is filed in (``final``), and how the run goes (the
    trainers' arguments ``retrain``, ``progress`` and ``stop_after``). Stage 1 and
    stage 2 each make one and hand it to ``cached_token`` and ``fit_token``."""

    bb: Backbone
    name: str
    key: str
    final: Path
    retrain: bool = False
    progress: bool | None = None
    stop_after: int | None = None


def cached_token(
    run: TokenRun, from_file: str | Path | None = None
) -> SteeringTokens | None:
    """A finished training run's token: from the artifacts cache, else ``from_file`` or
    the shipped file when they hold it under ``run.key``; None when ``run.retrain``."""
    bb, name, key = run.bb, run.name, run.key
    if run.retrain:
        return None
    if run.final.is_file():
        return SteeringTokens.load_file(run.final, bb)
    return (
        shipped(bb, name, key, from_file) if from_file is not None else None
    ) or shipped(bb, name, key)


def fit_token(
    run: TokenRun,
    init: torch.Tensor,
    examples: Sequence[Example],
    cfg: TrainConfig,
    record: dict,
    start: float,
    *,
    tokens: SteeringTokens | None = None,
    extra_loss: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None,
    validate: Validator | None = None,
) -> SteeringTokens:
    """Train one vector from ``init`` with checkpoints next to ``run.final``; save it
    there once the run has finished (all steps, or early stopping on validation).
    Returns it as a one-token set carrying ``record``, timing and the validation curve.
    ``start``: when the caller began work on this token (``perf_counter``, before its
    targets), so its ``seconds`` include them, every leg's."""
    bb, name, final = run.bb, run.name, run.final
    refuse_work(f"token <{name}> ({final.name})")
    param = init.to(bb.device, torch.float32).clone()
    ckpt = final.with_suffix(".ckpt.safetensors")
    if run.retrain:
        distributed.main_only(ckpt.unlink, missing_ok=True)
    result = train_vectors(
        bb,
        {name: param},
        examples,
        cfg,
        tokens=tokens,
        extra_loss=extra_loss,
        validate=validate,
        checkpoint=ckpt,
        desc=f"<{name}>",
        progress=run.progress,
        stop_after=run.stop_after,
        started=start,
    )
    losses = result.losses
    info = {
        **record,
        "steps": result.steps,
        # every leg of a resumed run (each up to its last checkpoint), targets
        # included, not the last alone
        "seconds": round(result.seconds, 1),
        "final_loss": losses[-1],
        "config": asdict(cfg),
    }
    if result.validation is not None:
        info["validation"] = result.validation.record(result.steps)
    out = SteeringTokens.for_backbone(bb)
    out.set(name, param, info, losses)
    if result.finished:
        distributed.main_only(out.save_file, final, overwrite=True)  # a retrain
        log.info(
            "<%s>: %d steps in %.0f s, loss %.3f -> %.3f",
            name,
            result.steps,
            info["seconds"],
            losses[0],
            losses[-1],
        )
    return out
