"""Stage 1: behavior tokens by self-distillation, and the distillation loss every trained method uses.

Teacher: the frozen model reading ``question + instruction``. Student: the same model
reading ``question + <token>``. Both are teacher-forced on the same answer y; the loss is

    T^2 * KL( softmax(z_teacher / T) || softmax(z_student / T) ),  T = 10,

averaged over answer tokens only (paper). Only the steering vector has gradients.
Two cost savers (ours): the teacher runs under ``torch.inference_mode``, and the LM head
runs only on the positions that predict answer tokens, not over the whole prompt: with a
49k vocabulary the head is a large part of a small model's compute.

The optimisation loop itself (schedule, checkpoints, resume, validation-guided
stopping) is ``training.fit``, shared with stage 2 and the trained baselines.
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, ContextManager, Sequence

import torch
import torch.nn.functional as F

from steerlib import distributed
from steerlib.config import Init, TrainConfig, config_hash
from steerlib.guard import refuse_work
from steerlib.model.backbone import Backbone
from steerlib.model.template import Rendered, embed, render
from steerlib.model.tokens import SteeringTokens, random_init, shipped, text_init
from steerlib.paths import artifacts_root
from steerlib.tasks import behaviors as B
from steerlib.tasks import prompts as P
from steerlib.train.loop import TrainResult, Validator, fit
from steerlib.train.targets import Target, make_targets
from steerlib.train.validation import behavior_validator

log = logging.getLogger("steerlib")


@dataclass
class Example:
    """A target rendered for both sides: teacher prompt, student prompt, answer ids."""

    teacher: Rendered
    student: Rendered
    answer: tuple[int, ...]


def answer_hidden(bb: Backbone, rows: Sequence[Rendered], answers: Sequence[Sequence[int]],
                  vectors: dict[str, torch.Tensor] | None = None, tokens: SteeringTokens | None = None
                  ) -> torch.Tensor:
    """Final hidden states at the positions that predict each answer token, stacked [N, d].

    With left padding every sequence ends at the last column, so answer i's predicting
    positions are the ``len(answer)`` columns before the last one.
    """
    batch = embed(bb, rows, tokens, answers, vectors)
    hidden = bb.model.base_model(**batch.model_inputs()).last_hidden_state
    width = hidden.shape[1]
    picks = [hidden[b, width - 1 - len(a): width - 1] for b, a in enumerate(answers)]
    return torch.cat(picks)


def distill_loss(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2-scaled KL(teacher || student) of temperature-softened distributions, mean over tokens."""
    t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return F.kl_div(s, t, log_target=True, reduction="batchmean") * temperature ** 2


def step_loss(bb: Backbone, batch: Sequence[Example], params: dict[str, torch.Tensor],
              tokens: SteeringTokens | None, cfg: TrainConfig,
              student_context: Callable[[], ContextManager] = contextlib.nullcontext) -> torch.Tensor:
    """The distillation loss (plus the optional CE term) for one batch.

    ``student_context`` is entered for the student pass only: methods that steer by
    changing the model (LM-Steer, LoRA) switch their change on there, so the teacher is
    always the unchanged model.
    """
    answers = [ex.answer[: cfg.max_answer_tokens] for ex in batch]
    head = bb.model.get_output_embeddings()
    with torch.inference_mode():
        teacher = head(answer_hidden(bb, [ex.teacher for ex in batch], answers))
    teacher = teacher.clone()  # leave inference mode so autograd may read it
    with student_context():
        student = head(answer_hidden(bb, [ex.student for ex in batch], answers, params, tokens))
    loss = distill_loss(teacher, student, cfg.temperature)
    if cfg.ce_weight:
        labels = torch.tensor([t for a in answers for t in a], device=student.device)
        loss = loss + cfg.ce_weight * F.cross_entropy(student.float(), labels)
    return loss


def train_vectors(bb: Backbone, params: dict[str, torch.Tensor], examples: Sequence[Example],
                  cfg: TrainConfig, *, tokens: SteeringTokens | None = None,
                  extra_loss: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None,
                  student_context: Callable[[], ContextManager] = contextlib.nullcontext,
                  validate: Validator | None = None, checkpoint: Path | None = None, desc: str = "train",
                  progress: bool | None = None, stop_after: int | None = None) -> TrainResult:
    """Distil ``params`` (name -> tensor) on ``examples`` with the shared loop (``training.fit``).

    ``tokens`` supplies the frozen vectors of other slots (stage 2's behavior tokens).
    ``extra_loss(params)`` is added to each step's loss (stage 2's orthogonality term).
    ``student_context`` wraps the student pass (see ``step_loss``); params may then be
    any tensors the context uses, not only steering vectors (LM-Steer, LoRA).
    """
    def loss_fn(batch: list[Example]) -> torch.Tensor:
        loss = step_loss(bb, batch, params, tokens, cfg, student_context)
        return loss + extra_loss(params) if extra_loss is not None else loss

    return fit(params, examples, cfg, loss_fn, size=lambda ex: len(ex.answer[: cfg.max_answer_tokens]),
               validate=validate, checkpoint=checkpoint, desc=desc, progress=progress, stop_after=stop_after)


# -- stage 1 -------------------------------------------------------------------------------
def examples_for(bb: Backbone, targets: Sequence[Target], slots: Callable[[Target], Sequence[str]]) -> list[Example]:
    """Render targets: teacher reads the instructions, student reads ``slots(target)``."""
    return [Example(render(bb, t.question, (), t.instructions), render(bb, t.question, tuple(slots(t))),
                    t.answer) for t in targets]


def behavior_targets(bb: Backbone, name: str, cfg: TrainConfig, questions: Sequence[str] | None = None,
                     progress: bool | None = None) -> list[Target]:
    """The (cached) targets a behavior trains on: one job per example for 2 epochs (ours).

    Shared with the LM-Steer and LoRA baselines, which distill on exactly these.
    """
    questions = list(questions) if questions is not None else P.load("train")
    n_jobs = round(max(cfg.batch_size, cfg.n_examples // 2) * cfg.targets.oversample)
    jobs = [(questions[i % len(questions)], (name,)) for i in range(n_jobs)]
    return make_targets(bb, jobs, cfg.targets, key=B.cache_name(name), seed=cfg.seed, progress=progress)


def train_behavior_token(bb: Backbone, name: str, config: TrainConfig | None = None, *,
                         tokens: SteeringTokens | None = None, questions: Sequence[str] | None = None,
                         retrain: bool = False, progress: bool | None = None,
                         stop_after: int | None = None, from_file: str | Path | None = None) -> SteeringTokens:
    """Train ``<name>`` by self-distillation and return ``tokens`` with it added.

    The result is cached under ``artifacts/<fingerprint>/stage1/``: a second call with
    the same model, config and training questions loads it instead of training
    (``retrain=True`` forces it), and an interrupted call resumes from its last checkpoint.
    ``from_file``: a token file (one committed next to a chapter's results) to load
    ``<name>`` from when it holds the run asked for, same model and same cache key,
    instead of training it.
    """
    cfg = config or TrainConfig()
    behavior = B.get(name)
    tokens = tokens.copy() if tokens is not None else SteeringTokens.for_backbone(bb)
    key = stage1_key(name, cfg, questions)
    final = artifacts_root() / bb.fingerprint / "stage1" / f"{key}.safetensors"
    cached = cached_token(bb, final, name, key, retrain, from_file)
    if cached is not None:
        tokens.set(name, cached[name], cached.info[name], cached.losses.get(name))
        return tokens
    start = time.perf_counter()
    targets = behavior_targets(bb, name, cfg, questions, progress)
    examples = examples_for(bb, targets, lambda t: (name,))
    init = _init_vector(bb, cfg.init, behavior.paraphrases[0], cfg.seed)
    record = {"stage": 1, "key": key, "init": cfg.init, "target_source": cfg.targets.source,
              "n_targets": len(targets)}
    validate = behavior_validator(bb, name, cfg.validation) if cfg.validation else None
    trained = fit_token(bb, name, init, examples, cfg, final, record, start, validate=validate, retrain=retrain,
                        progress=progress, stop_after=stop_after)
    tokens.set(name, trained[name], trained.info[name], trained.losses[name])
    return tokens


def stage1_key(name: str, cfg: TrainConfig, questions: Sequence[str] | None = None) -> str:
    """The cache key of a stage-1 run: behavior, config hash and, unless they are the shipped
    train split, a digest of the training questions (the shipped tokens carry this key)."""
    return f"{B.cache_name(name)}-{config_hash(cfg)}{P.cache_tag(questions)}"


def cached_token(bb: Backbone, final: Path, name: str, key: str, retrain: bool,
                 from_file: str | Path | None = None) -> SteeringTokens | None:
    """A finished training run's token: from the artifacts cache, else ``from_file`` or the
    shipped file when they hold it under ``key``."""
    if retrain:
        return None
    if final.is_file():
        return SteeringTokens.load_file(final, bb)
    return (shipped(bb, name, key, from_file) if from_file is not None else None) or shipped(bb, name, key)


def fit_token(bb: Backbone, name: str, init: torch.Tensor, examples: Sequence[Example], cfg: TrainConfig,
              final: Path, record: dict, start: float, *, tokens: SteeringTokens | None = None,
              extra_loss: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None,
              validate: Validator | None = None, retrain: bool = False,
              progress: bool | None = None, stop_after: int | None = None) -> SteeringTokens:
    """Train one vector from ``init`` with checkpoints next to ``final``; save it to ``final``
    once the run has finished (all steps, or early stopping on validation). Returns it as a
    one-token set carrying ``record``, timing and the validation curve."""
    refuse_work(f"token <{name}> ({final.name})")
    param = init.to(bb.device, torch.float32).clone()
    ckpt = final.with_suffix(".ckpt.safetensors")
    if retrain:
        distributed.main_only(ckpt.unlink, missing_ok=True)
    result = train_vectors(bb, {name: param}, examples, cfg, tokens=tokens, extra_loss=extra_loss,
                           validate=validate, checkpoint=ckpt, desc=f"<{name}>", progress=progress,
                           stop_after=stop_after)
    losses = result.losses
    info = {**record, "steps": result.steps, "seconds": round(time.perf_counter() - start, 1),
            "final_loss": losses[-1], "config": asdict(cfg)}
    if result.validation is not None:
        info["validation"] = result.validation.record(result.steps)
    out = SteeringTokens.for_backbone(bb)
    out.set(name, param, info, losses)
    if result.finished:
        distributed.main_only(out.save_file, final)
        log.info("<%s>: %d steps in %.0f s, loss %.3f -> %.3f", name, result.steps, info["seconds"],
                 losses[0], losses[-1])
    return out


def _init_vector(bb: Backbone, init: Init, text: str, seed: int) -> torch.Tensor:
    """Stage-1 inits: the instruction's mean embedding (paper), or zero / random."""
    if init == Init.SEMANTIC:
        return text_init(bb, text)
    if init == Init.ZERO:
        return torch.zeros(bb.hidden_size)
    if init == Init.RANDOM:
        return random_init(bb, seed)
    raise ValueError(f"init {init!r} is not a stage-1 init; use 'semantic', 'zero' or 'random'")

