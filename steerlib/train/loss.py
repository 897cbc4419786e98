"""The distillation objective every trained method shares: stage 1, stage 2 and the
trained baselines.

Teacher: the frozen model reading ``question + instruction``. Student: the same model
reading ``question + <token>`` (or changed by a baseline). Both are teacher-forced on
the same answer y; the loss is

    T^2 * KL( softmax(z_teacher / T) || softmax(z_student / T) ),  T = 10,

averaged over answer tokens only (paper). Only the trained parameters have gradients.
Two cost savers (ours): the teacher runs under ``torch.inference_mode``, and the LM head
runs only on the positions that predict answer tokens, not over the whole prompt: with a
49k vocabulary the head is a large part of a small model's compute.

The optimisation loop itself (schedule, checkpoints, resume, validation-guided
stopping) is ``steerlib.train.loop.fit``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Unpack

import torch
import torch.nn.functional as F

from steerlib.config import TrainConfig
from steerlib.model.backbone import Backbone
from steerlib.model.template import Rendered, embed, render
from steerlib.model.tokens import SteeringTokens
from steerlib.train.loop import RunOptions, TrainResult, fit
from steerlib.train.targets import Target


@dataclass
class Example:
    """A target rendered for both sides: teacher prompt, student prompt, answer ids."""

    teacher: Rendered
    student: Rendered
    answer: tuple[int, ...]


def answer_hidden(
    bb: Backbone,
    rows: Sequence[Rendered],
    answers: Sequence[Sequence[int]],
    vectors: dict[str, torch.Tensor] | None = None,
    tokens: SteeringTokens | None = None,
) -> torch.Tensor:
    """Final hidden states at the positions that predict each answer token, stacked
    [N, d].

    With left padding every sequence ends at the last column, so answer i's predicting
    positions are the ``len(answer)`` columns before the last one.
    """
    batch = embed(bb, rows, tokens, answers, vectors)
    hidden = bb.model.base_model(**batch.model_inputs()).last_hidden_state
    width = hidden.shape[1]
    picks = [hidden[b, width - 1 - len(a) : width - 1] for b, a in enumerate(answers)]
    return torch.cat(picks)


def distill_loss(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """T^2-scaled KL(teacher || student) of temperature-softened distributions, mean
    over tokens."""
    t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return F.kl_div(s, t, log_target=True, reduction="batchmean") * temperature**2


def step_loss(
    bb: Backbone,
    batch: Sequence[Example],
    params: dict[str, torch.Tensor],
    tokens: SteeringTokens | None,
    cfg: TrainConfig,
    student_context: Callable[
        [], contextlib.AbstractContextManager
    ] = contextlib.nullcontext,
) -> torch.Tensor:
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
        student = head(
            answer_hidden(bb, [ex.student for ex in batch], answers, params, tokens)
        )
    loss = distill_loss(teacher, student, cfg.temperature)
    if cfg.ce_weight:
        labels = torch.tensor([t for a in answers for t in a], device=student.device)
        loss = loss + cfg.ce_weight * F.cross_entropy(student.float(), labels)
    return loss


def train_vectors(
    bb: Backbone,
    params: dict[str, torch.Tensor],
    examples: Sequence[Example],
    cfg: TrainConfig,
    *,
    tokens: SteeringTokens | None = None,
    extra_loss: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None,
    student_context: Callable[
        [], contextlib.AbstractContextManager
    ] = contextlib.nullcontext,
    **run: Unpack[RunOptions],
) -> TrainResult:
    """Distil ``params`` (name -> tensor) on ``examples`` with the shared loop
    (``loop.fit``).

    ``tokens`` supplies the frozen vectors of other slots (stage 2's behavior tokens).
    ``extra_loss(params)`` is added to each step's loss (stage 2's orthogonality term).
    ``student_context`` wraps the student pass (see ``step_loss``); params may then be
    any tensors the context uses, not only steering vectors (LM-Steer, LoRA). ``run``:
    ``fit``'s options (validation, checkpoint, progress bar label, early stop, when the
    run's work began).
    """

    def loss_fn(batch: list[Example]) -> torch.Tensor:
        loss = step_loss(bb, batch, params, tokens, cfg, student_context)
        return loss + extra_loss(params) if extra_loss is not None else loss

    return fit(
        params,
        examples,
        cfg,
        loss_fn,
        size=lambda ex: len(ex.answer[: cfg.max_answer_tokens]),
        **run,
    )


def examples_for(
    bb: Backbone,
    targets: Sequence[Target],
    slots: Callable[[Target], Sequence[str]],
    widths: Mapping[str, int] | None = None,
) -> list[Example]:
    """Render targets: teacher reads the instructions, student reads ``slots(target)``
    (``widths[name]`` slots for a token of several vectors)."""
    return [
        Example(
            render(bb, t.question, (), t.instructions),
            render(bb, t.question, tuple(slots(t)), widths=widths),
            t.answer,
        )
        for t in targets
    ]
