"""The training loop every trained method shares: steering tokens (stages 1 and 2),
LM-Steer maps and LoRA adapters.

What is trained is a dict of named tensors (``params``); everything else is frozen. Each
step takes a batch of rendered examples, computes the distillation loss
(``steerlib.train.loss``) (plus an optional extra term) and takes one AdamW step under
the paper's schedule: linear warm-up for ``warmup`` of the steps, then linear decay to 0
(``lr_at``), grad-norm clip.

Two things make a long CPU run safe to start and to stop:

* **Checkpoints.** Every ``checkpoint_every`` steps the params, the optimiser's
  ``state_dict()``, the step, the loss curve and the validation state go into one
  safetensors file, written atomically. The data order is a function of the seed and
  the step alone, so a resumed run reproduces the uninterrupted one exactly.
* **Validation-guided stopping (ours).** With a ``ValidationConfig`` and a ``validate``
  callback (the pass rate of the current params on validation questions, which are
  never training targets or test prompts), the loop scores step 0 and every ``every``
  steps, keeps a copy of the best params, and stops after ``patience`` scores without
  improvement. At the end the params hold the best step's values; the curve of
  (step, pass rate) travels with the result. At this scale a fixed step count is a
  guess (``<french>``: 10% after 16 steps, 83% after 48), while the validation curve
  measures where each token stops improving.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from tqdm.auto import tqdm

from steerlib import distributed
from steerlib.config import TrainConfig, ValidationConfig
from steerlib.errors import ConfigError, NonFiniteLossError
from steerlib.storage import save_safetensors

log = logging.getLogger("steerlib")

T = TypeVar("T")
Params = dict[str, torch.Tensor]
Validator = Callable[[Params], float]
"""Pass rate in [0, 1] of the params as they are now, on validation questions."""


class RunOptions(TypedDict, total=False):
    """``fit``'s options for one run (its keyword arguments of the same names, whose
    defaults ``fit`` sets): what the trainers built on ``fit`` pass through unchanged
    (``loss.train_vectors``), declared once here."""

    validate: Validator | None
    checkpoint: Path | None
    desc: str
    progress: bool | None
    stop_after: int | None
    started: float | None


@dataclass
class Validation:
    """Validation-guided training's state: the curve and the best params so far."""

    curve: list[tuple[int, float]] = field(default_factory=list)
    """(step, pass rate) for every evaluation, step 0 being the init."""
    best_step: int = 0
    best_rate: float = -1.0
    best: Params = field(default_factory=dict)
    since_best: int = 0
    """Evaluations since the last strict improvement (early stopping's counter)."""

    def update(self, step: int, rate: float, params: Params) -> None:
        """Record ``rate`` at ``step``. A strictly better rate resets the patience
        counter; an equal one moves the kept params to this (longer-trained) step
        without resetting it, so a curve that stays flat (0% from start to end) still
        stops early."""
        self.curve.append((step, rate))
        if rate >= self.best_rate:
            self.since_best = 0 if rate > self.best_rate else self.since_best + 1
            self.best_rate, self.best_step = rate, step
            self.best = {k: p.detach().clone() for k, p in params.items()}
        else:
            self.since_best += 1

    def record(self, stopped_at: int) -> dict:
        """What a trained token's metadata keeps of validation."""
        return {
            "curve": [[s, r] for s, r in self.curve],
            "best_step": self.best_step,
            "best_rate": self.best_rate,
            "stopped_at": stopped_at,
        }


@dataclass
class TrainResult:
    """What a run of ``train_vectors`` produced; ``params`` hold the kept values."""

    losses: list[float]
    """Training loss per optimiser step taken."""
    finished: bool
    """True when the run ended by itself (all steps, or early stopping), so its result
    may be cached; False when cut short by ``stop_after``."""
    validation: Validation | None = None
    seconds: float = 0.0
    """Seconds of every leg of the run, each from its ``started`` (its targets
    included): an interrupted leg up to its last checkpoint, which carries them, and
    this one to its end. A resumed token's ``seconds`` is their sum, not the last leg
    alone."""

    @property
    def steps(self) -> int:
        return len(self.losses)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup`` of the steps, then linear decay to 0 (paper).

    Not ``transformers.get_linear_schedule_with_warmup``: its first step runs at
    learning rate 0 (step / warm-up), ours at 1 / warm-up (from step 2 on the two
    agree). Every shipped token was trained with this one, and its cache key promises
    that training again reproduces it. A function of the step alone, it needs no state
    in a checkpoint.

    >>> [round(lr_at(s, TrainConfig(steps=4, lr=1.0, warmup=0.5)), 2) for s in range(4)]
    [0.5, 1.0, 1.0, 0.5]
    """
    warm = max(1, round(cfg.warmup * cfg.steps))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return cfg.lr * max(0.0, (cfg.steps - step) / max(1, cfg.steps - warm))


def batch_order(n: int, cfg: TrainConfig) -> list[list[int]]:
    """Example indices for every step: seeded epoch-wise permutations, cut into
    batches."""
    gen = torch.Generator().manual_seed(cfg.seed)
    flat: list[int] = []
    while len(flat) < cfg.steps * cfg.batch_size:
        flat += torch.randperm(n, generator=gen).tolist()
    return [
        flat[i * cfg.batch_size : (i + 1) * cfg.batch_size] for i in range(cfg.steps)
    ]


def fit(
    params: Params,
    examples: Sequence[T],
    cfg: TrainConfig,
    loss_fn: Callable[[list[T]], torch.Tensor],
    *,
    size: Callable[[T], int] = lambda example: 1,
    validate: Validator | None = None,
    checkpoint: Path | None = None,
    desc: str = "train",
    progress: bool | None = None,
    stop_after: int | None = None,
    started: float | None = None,
) -> TrainResult:
    """Optimise ``params`` (name -> tensor, updated in place) on ``examples``.

    ``loss_fn(batch)`` is one step's loss on a list of examples, computed from the
    params it closes over; nothing but ``params`` receives updates.
    ``size(example)`` is the example's weight in the batch's mean loss (its answer
    tokens, for a mean over tokens). Under torchrun each rank computes the loss of its
    shard of every batch, weighted by its share of the batch's size, and the gradients
    are summed over ranks (``steerlib.distributed``): that is the gradient of the whole
    batch's mean, so N processes take the steps one process takes. Only rank 0 writes
    checkpoints. ``validate`` with ``cfg.validation`` turns on validation-guided
    stopping (module doc). ``stop_after`` ends the run early after that many steps
    (tests of resume use it). ``started``: the ``time.perf_counter()`` reading when
    this leg's work on the result began (its targets, say; default: now), so that the
    seconds a checkpoint carries, and the result's, count that work too.
    """
    if not examples:
        raise ConfigError("no training examples")
    with distributed.sole_writer(
        checkpoint
    ):  # a second live run on this checkpoint is refused
        vcfg: ValidationConfig | None = cfg.validation if validate is not None else None
        for p in params.values():
            p.requires_grad_(True)
        opt = torch.optim.AdamW(
            list(params.values()), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        leg_start = time.perf_counter() if started is None else started
        state = (
            _load_checkpoint(checkpoint, params, opt)
            if checkpoint and checkpoint.is_file()
            else None
        )
        start_step, losses, val, earlier = (
            state if state else (0, [], Validation() if vcfg else None, 0.0)
        )
        if vcfg is not None and val is None:  # a checkpoint written without validation
            val = Validation()
        if val is not None and not val.curve:
            val.update(start_step, validate(params), params)
        order = batch_order(len(examples), cfg)
        last = min(cfg.steps, stop_after) if stop_after is not None else cfg.steps
        bar = tqdm(
            range(start_step, last),
            desc=desc,
            initial=start_step,
            total=cfg.steps,
            disable=progress is False or not distributed.is_main(),
            leave=False,
        )
        stopped = _stop(val, vcfg)
        for step in bar:
            if stopped:
                break
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            local = distributed.shard([examples[i] for i in order[step]])
            local_size = sum(size(x) for x in local)
            share = local_size / distributed.all_reduce_sum(local_size)
            opt.zero_grad(set_to_none=True)
            loss = 0.0
            if local:
                weighted = loss_fn(local) * share
                weighted.backward()
                loss = weighted.item()
            loss = distributed.all_reduce_sum(loss)
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    f"{desc}: loss is {loss} at step {step + 1}; lower the learning "
                    f"rate ({cfg.lr}) or check the inputs; nothing was cached"
                )
            distributed.all_reduce_grads(list(params.values()))
            torch.nn.utils.clip_grad_norm_(list(params.values()), cfg.grad_clip)
            opt.step()
            losses.append(loss)
            done = step + 1
            if val is not None and (done % vcfg.every == 0 or done == cfg.steps):
                val.update(done, validate(params), params)
                stopped = _stop(val, vcfg)
                bar.set_postfix(
                    loss=f"{losses[-1]:.3f}",
                    val=f"{val.curve[-1][1]:.2f}",
                    best=val.best_step,
                )
            else:
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
            if (
                checkpoint
                and distributed.is_main()
                and (done % cfg.checkpoint_every == 0 or done == last or stopped)
            ):
                seconds = earlier + time.perf_counter() - leg_start
                _save_checkpoint(checkpoint, params, opt, done, losses, val, seconds)
        finished = stopped or len(losses) == cfg.steps
        if val is not None and finished:
            with torch.no_grad():
                for k, p in params.items():
                    p.copy_(val.best[k])
            log.info(
                "%s: best validation pass rate %.2f at step %d of %d",
                desc,
                val.best_rate,
                val.best_step,
                len(losses),
            )
        return TrainResult(
            losses, finished, val, earlier + time.perf_counter() - leg_start
        )


def _stop(val: Validation | None, vcfg: ValidationConfig | None) -> bool:
    """Early stopping: ``patience`` scores without a strict gain, or, when
    ``patience_steps`` is set, that many steps since the best rate was first reached."""
    if val is None:
        return False
    if vcfg.patience_steps is None:
        return val.since_best >= vcfg.patience
    gained = min(s for s, r in val.curve if r == val.best_rate)
    return val.curve[-1][0] - gained >= vcfg.patience_steps


def _save_checkpoint(
    path: Path,
    params: Params,
    opt: torch.optim.Optimizer,
    step: int,
    losses: list[float],
    val: Validation | None,
    seconds: float = 0.0,
) -> None:
    """Params, the optimiser's state_dict tensors and the best params as safetensors;
    step, losses, param groups, training seconds so far and the validation curve in the
    metadata. Atomic."""
    opt_state = opt.state_dict()
    tensors = {
        f"param/{name}": p.detach().cpu().contiguous() for name, p in params.items()
    }
    for idx, slot in opt_state["state"].items():
        for key, value in slot.items():
            tensors[f"opt/{idx}/{key}"] = (
                torch.as_tensor(value).detach().cpu().contiguous()
            )
    meta = {
        "step": step,
        "losses": losses,
        "param_groups": opt_state["param_groups"],
        "seconds": round(seconds, 3),
    }
    if val is not None:
        tensors.update(
            {f"best/{name}": p.cpu().contiguous() for name, p in val.best.items()}
        )
        meta["validation"] = {
            "curve": val.curve,
            "best_step": val.best_step,
            "best_rate": val.best_rate,
            "since_best": val.since_best,
        }
    save_safetensors(tensors, path, metadata={"checkpoint": json.dumps(meta)})


def _load_checkpoint(
    path: Path, params: Params, opt: torch.optim.Optimizer
) -> tuple[int, list[float], Validation | None, float] | None:
    """The run a checkpoint holds (step, losses, validation, seconds so far), loaded
    into ``params`` and ``opt``; None when the file is not a whole checkpoint (truncated
    by a full disk, say): it is set aside as ``<name>.corrupt`` with a warning naming
    both, and the run starts over, instead of failing on every rerun."""
    try:
        return _read_checkpoint(path, params, opt)
    except (SafetensorError, KeyError, ValueError, TypeError, RuntimeError) as err:
        aside = path.with_name(path.name + ".corrupt")
        distributed.main_only(os.replace, path, aside)
        log.warning(
            "%s is not a whole checkpoint (%s): set aside as %s; training starts over",
            path,
            " ".join(str(err).split())[:120],
            aside.name,
        )
        return None


def _read_checkpoint(
    path: Path, params: Params, opt: torch.optim.Optimizer
) -> tuple[int, list[float], Validation | None, float]:
    """Read all of a checkpoint, then load it: a file that fails half-way changes
    nothing."""
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["checkpoint"])
        keys = set(f.keys())
        saved = {name: f.get_tensor(f"param/{name}") for name in params}
        state: dict[int, dict] = {}
        for key in keys:
            if key.startswith("opt/"):
                _, idx, field_ = key.split("/", 2)
                state.setdefault(int(idx), {})[field_] = f.get_tensor(key)
        val = None
        if "validation" in meta:
            v = meta["validation"]
            val = Validation(
                [tuple(c) for c in v["curve"]],
                v["best_step"],
                v["best_rate"],
                {
                    name: f.get_tensor(f"best/{name}").to(p.device)
                    for name, p in params.items()
                },
                v["since_best"],
            )
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(saved[name])
    log.info("resumed %s at step %d", path.name, meta["step"])
    return meta["step"], meta["losses"], val, float(meta.get("seconds", 0.0))
