"""Benchmark 1: one stage-1 distillation step against a raw ceiling and PEFT prompt
tuning.

All three runs process the same student sequences (the question's chat prompt, one
steering position, the answer), so their token counts agree and the tokens/s ratios
are ratios of step times:

* steerlib: ``train_vectors`` for one step of the cpu preset's stage-1 config on one
  steering vector (teacher forward, student forward through ``step_loss``, backward,
  gradient clip, AdamW step): the library's own loop, not a copy of it;
* ceiling: one full-model student forward + backward from a leaf embedding tensor
  (loss = sum of all logits: no loss cost at all) plus one no-grad teacher forward,
  inputs prepared beforehand. No step that distils through the whole model can do
  less work, so steerlib / ceiling says how much of the hardware's pace steerlib keeps;
* PEFT: ``PromptTuningConfig(num_virtual_tokens=1)`` on a copy of the model, trained
  with the plain LM cross-entropy on the answer tokens (no teacher: PEFT's own recipe
  for a learned prompt), one AdamW step;
* steerlib CE: steerlib's student pass (``answer_hidden`` and the LM head on the answer
  positions) with that same cross-entropy and no teacher, one AdamW step: PEFT's work,
  so steerlib CE / PEFT compares like with like (a distillation step also runs the
  teacher, about half again as much work).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import replace

import torch
import torch.nn.functional as F

from steerlib.model.backbone import Backbone
from steerlib.model.inits import text_init
from steerlib.model.template import embed, render
from steerlib.presets import presets
from steerlib.tasks import behaviors as B
from steerlib.tasks import prompts as P
from steerlib.train.loss import Example, answer_hidden, train_vectors

from .core import Goal, Section, Sizes, measure, rate_figure

SLOT = "bench"
"""Name of the steering token being trained."""
BEHAVIOR = "french"
"""Whose instruction the teacher reads (any behavior; only lengths matter for speed)."""


def synthetic_batch(
    bb: Backbone, size: int, answer_tokens: int, seed: int = 0
) -> list[Example]:
    """Training questions with random answer ids: a real-shaped batch without
    generating.

    Answers are drawn from the ordinary (non-special) vocabulary, all ``answer_tokens``
    long; the teacher reads the behavior's first instruction paraphrase.
    """
    questions = P.load("train", limit=size)
    instruction = B.get(BEHAVIOR).paraphrases[0]
    low = max(bb.tokenizer.all_special_ids) + 1
    gen = torch.Generator().manual_seed(seed)
    answers = torch.randint(
        low, len(bb.tokenizer), (size, answer_tokens), generator=gen
    ).tolist()
    return [
        Example(render(bb, q, (), instruction), render(bb, q, (SLOT,)), tuple(a))
        for q, a in zip(questions, answers)
    ]


def student_tokens(batch: list[Example]) -> int:
    """Tokens the student reads per step (unpadded): the same for all three runs."""
    return sum(len(ex.student.ids) + len(ex.answer) for ex in batch)


def steerlib_step(bb: Backbone, batch: list[Example]):
    """One ``train_vectors`` step of the cpu preset's stage 1 on one vector."""
    cfg = replace(presets.cpu().stage1, steps=1, batch_size=len(batch))
    param = text_init(bb, B.get(BEHAVIOR).paraphrases[0]).to(bb.device)
    tokens = student_tokens(batch)

    def run() -> int:
        train_vectors(bb, {SLOT: param}, batch, cfg, progress=False)
        return tokens

    return run


def ceiling_step(bb: Backbone, batch: list[Example]):
    """Full student forward + backward (sum of logits) and a no-grad teacher forward."""
    answers = [ex.answer for ex in batch]
    vector = text_init(bb, B.get(BEHAVIOR).paraphrases[0])
    with torch.no_grad():
        student = embed(bb, [ex.student for ex in batch], None, answers, {SLOT: vector})
        teacher = embed(bb, [ex.teacher for ex in batch], None, answers)
    leaf = student.inputs_embeds.detach().clone().requires_grad_(True)
    tokens = student_tokens(batch)

    def run() -> int:
        with torch.no_grad():
            bb.model(
                inputs_embeds=teacher.inputs_embeds,
                attention_mask=teacher.attention_mask,
                position_ids=teacher.position_ids,
            )
        logits = bb.model(
            inputs_embeds=leaf,
            attention_mask=student.attention_mask,
            position_ids=student.position_ids,
        ).logits
        logits.sum().backward()
        leaf.grad = None
        return tokens

    return run


def ce_step(bb: Backbone, batch: list[Example]):
    """steerlib's student forward (answer positions through the LM head), LM
    cross-entropy on the answers, backward, clip, AdamW step: PEFT's step through
    steerlib's code."""
    cfg = presets.cpu().stage1
    param = (
        text_init(bb, B.get(BEHAVIOR).paraphrases[0]).to(bb.device).requires_grad_(True)
    )
    opt = torch.optim.AdamW([param], lr=cfg.lr, weight_decay=cfg.weight_decay)
    answers = [ex.answer for ex in batch]
    labels = torch.tensor([t for a in answers for t in a], device=bb.device)
    head = bb.model.get_output_embeddings()
    tokens = student_tokens(batch)

    def run() -> int:
        logits = head(
            answer_hidden(bb, [ex.student for ex in batch], answers, {SLOT: param})
        )
        loss = F.cross_entropy(logits.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([param], cfg.grad_clip)
        opt.step()
        return tokens

    return run


def peft_step(bb: Backbone, batch: list[Example]):
    """PEFT prompt tuning (one virtual token) with LM cross-entropy on the answers.

    The input is the student's prompt without its steering position (the plain chat
    prompt) plus the answer, left-padded; PEFT prepends its virtual token, so each row
    is exactly as long as steerlib's student row.
    """
    import peft

    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", FutureWarning
        )  # transformers deprecations PEFT triggers
        model = peft.get_peft_model(
            copy.deepcopy(bb.model),
            peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=1),
        )
    params = [p for p in model.parameters() if p.requires_grad]
    cfg = presets.cpu().stage1
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    seqs = []
    for ex in batch:
        slots = {pos for pos, _ in ex.student.slots}
        seqs.append(
            [t for i, t in enumerate(ex.student.ids) if i not in slots]
            + list(ex.answer)
        )
    width = max(len(s) for s in seqs)
    pad = bb.tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=bb.device)
    mask = torch.tensor(
        [[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=bb.device
    )
    labels = torch.tensor(
        [[-100] * (width - len(ex.answer)) + list(ex.answer) for ex in batch],
        device=bb.device,
    )
    tokens = student_tokens(batch)

    def run() -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        return tokens

    return run


def bench_distill_step(bb: Backbone, sizes: Sizes) -> Section:
    batch = synthetic_batch(bb, sizes.batch, sizes.answer_tokens)
    rates = measure(
        {
            "steerlib": steerlib_step(bb, batch),
            "ceiling": ceiling_step(bb, batch),
            "peft": peft_step(bb, batch),
            "ce": ce_step(bb, batch),
        },
        sizes.repeats,
        sizes.warmup,
    )
    s, c, p, e = rates["steerlib"], rates["ceiling"], rates["peft"], rates["ce"]
    return Section(
        f"Distillation step: batch {sizes.batch}, answers {sizes.answer_tokens} "
        "tokens, "
        f"{student_tokens(batch)} student tokens per step",
        figures=[
            rate_figure("steerlib stage-1 step", s, per="step"),
            rate_figure("ceiling: student fwd+bwd + teacher fwd", c, per="step"),
            rate_figure("PEFT prompt tuning step (LM CE)", p, per="step"),
            rate_figure("steerlib CE step (student only, LM CE)", e, per="step"),
            (
                "distillation step / PEFT (not like with like)",
                f"{s.per_second / p.per_second:.3f}",
            ),
        ],
        goals=[
            Goal("steerlib / ceiling", s.per_second / c.per_second, ">=", 0.9),
            Goal("steerlib CE step / PEFT", e.per_second / p.per_second, ">=", 1.0),
        ],
    )
