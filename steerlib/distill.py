"""Stage 1: behavior tokens by self-distillation, and the training loop both stages share.

Teacher: the frozen model reading ``question + instruction``. Student: the same model
reading ``question + <token>``. Both are teacher-forced on the same answer y; the loss is

    T^2 * KL( softmax(z_teacher / T) || softmax(z_student / T) ),  T = 10,

averaged over answer tokens only (paper). Only the steering vector has gradients.
Two cost savers (ours): the teacher runs under ``torch.inference_mode``, and the LM head
runs only on the positions that predict answer tokens, not over the whole prompt: with a
49k vocabulary the head is a large part of a small model's compute.

The loop saves a checkpoint (vector, AdamW moments, step, loss curve) every
``checkpoint_every`` steps and resumes from it, reproducing the uninterrupted run: the
data order is a function of the seed and the step alone.
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, ContextManager, Sequence

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from . import behaviors as B
from . import prompts as P
from .backbone import Backbone
from .config import TrainConfig, config_hash
from .guard import refuse_work
from .paths import artifacts_root
from .targets import Target, make_targets
from .template import Rendered, embed, render
from .tokens import SteeringTokens, random_init, shipped, text_init

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
    hidden = bb.model.base_model(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                                 position_ids=batch.position_ids).last_hidden_state
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


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup`` of the steps, then linear decay to 0 (paper)."""
    warm = max(1, round(cfg.warmup * cfg.steps))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return cfg.lr * max(0.0, (cfg.steps - step) / max(1, cfg.steps - warm))


def batch_order(n: int, cfg: TrainConfig) -> list[list[int]]:
    """Example indices for every step: seeded epoch-wise permutations, cut into batches."""
    gen = torch.Generator().manual_seed(cfg.seed)
    flat: list[int] = []
    while len(flat) < cfg.steps * cfg.batch_size:
        flat += torch.randperm(n, generator=gen).tolist()
    return [flat[i * cfg.batch_size:(i + 1) * cfg.batch_size] for i in range(cfg.steps)]


def train_vectors(bb: Backbone, params: dict[str, torch.Tensor], examples: Sequence[Example],
                  cfg: TrainConfig, *, tokens: SteeringTokens | None = None,
                  extra_loss: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None,
                  student_context: Callable[[], ContextManager] = contextlib.nullcontext,
                  checkpoint: Path | None = None, desc: str = "train",
                  progress: bool | None = None, stop_after: int | None = None) -> list[float]:
    """Optimise ``params`` (name -> vector) on ``examples``; everything else frozen.

    ``tokens`` supplies the frozen vectors of other slots (stage 2's behavior tokens).
    ``extra_loss(params)`` is added to each step's loss (stage 2's orthogonality term).
    ``student_context`` wraps the student pass (see ``step_loss``); params may then be
    any tensors the context uses, not only steering vectors.
    ``stop_after`` ends the run early after that many steps (tests of resume use it).
    Returns the loss curve; ``params`` hold the trained vectors.
    """
    if not examples:
        raise ValueError("no training examples")
    for p in params.values():
        p.requires_grad_(True)
    opt = torch.optim.AdamW(list(params.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start_step, losses = (_load_checkpoint(checkpoint, params, opt) if checkpoint and checkpoint.is_file()
                          else (0, []))
    order = batch_order(len(examples), cfg)
    last = min(cfg.steps, stop_after) if stop_after is not None else cfg.steps
    bar = tqdm(range(start_step, last), desc=desc, initial=start_step, total=cfg.steps,
               disable=progress is False, leave=False)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = step_loss(bb, [examples[i] for i in order[step]], params, tokens, cfg, student_context)
        if extra_loss is not None:
            loss = loss + extra_loss(params)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), cfg.grad_clip)
        opt.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        done = step + 1
        if checkpoint and (done % cfg.checkpoint_every == 0 or done == last):
            _save_checkpoint(checkpoint, params, opt, done, losses)
    return losses


def _save_checkpoint(path: Path, params: dict, opt: torch.optim.Optimizer, step: int, losses: list[float]) -> None:
    """Vectors and AdamW moments as safetensors; step and loss curve in the metadata."""
    tensors = {}
    for i, (name, p) in enumerate(params.items()):
        tensors[f"param/{name}"] = p.detach().cpu().contiguous()
        state = opt.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                tensors[f"{key}/{name}"] = state[key].detach().cpu().contiguous()
    meta = {"step": step, "losses": losses,
            "adam_steps": {n: float(opt.state[p]["step"]) for n, p in params.items() if p in opt.state}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file(tensors, str(tmp), metadata={"checkpoint": json.dumps(meta)})
    tmp.replace(path)


def _load_checkpoint(path: Path, params: dict, opt: torch.optim.Optimizer) -> tuple[int, list[float]]:
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["checkpoint"])
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(f.get_tensor(f"param/{name}"))
                if name in meta["adam_steps"]:
                    opt.state[p] = {"step": torch.tensor(meta["adam_steps"][name]),
                                    "exp_avg": f.get_tensor(f"exp_avg/{name}").to(p.device),
                                    "exp_avg_sq": f.get_tensor(f"exp_avg_sq/{name}").to(p.device)}
    log.info("resumed %s at step %d", path.name, meta["step"])
    return meta["step"], meta["losses"]


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
    return make_targets(bb, jobs, cfg.targets, key=name, seed=cfg.seed, progress=progress)


def train_behavior_token(bb: Backbone, name: str, config: TrainConfig | None = None, *,
                         tokens: SteeringTokens | None = None, questions: Sequence[str] | None = None,
                         retrain: bool = False, progress: bool | None = None,
                         stop_after: int | None = None) -> SteeringTokens:
    """Train ``<name>`` by self-distillation and return ``tokens`` with it added.

    The result is cached under ``artifacts/<fingerprint>/stage1/``: a second call with
    the same model and config loads it instead of training (``retrain=True`` forces it),
    and an interrupted call resumes from its last checkpoint.
    """
    cfg = config or TrainConfig()
    behavior = B.get(name)
    tokens = tokens.copy() if tokens is not None else SteeringTokens.for_backbone(bb)
    key = f"{name}-{config_hash(cfg)}"
    final = artifacts_root() / bb.fingerprint / "stage1" / f"{key}.safetensors"
    cached = cached_token(bb, final, name, key, retrain)
    if cached is not None:
        tokens.set(name, cached[name], cached.info[name], cached.losses.get(name))
        return tokens
    start = time.perf_counter()
    targets = behavior_targets(bb, name, cfg, questions, progress)
    examples = examples_for(bb, targets, lambda t: (name,))
    init = _init_vector(bb, cfg.init, behavior.paraphrases[0], cfg.seed)
    record = {"stage": 1, "key": key, "init": cfg.init, "target_source": cfg.targets.source,
              "n_targets": len(targets)}
    trained = fit_token(bb, name, init, examples, cfg, final, record, start, retrain=retrain, progress=progress,
                        stop_after=stop_after)
    tokens.set(name, trained[name], trained.info[name], trained.losses[name])
    return tokens


def cached_token(bb: Backbone, final: Path, name: str, key: str, retrain: bool) -> SteeringTokens | None:
    """A finished training run's token: from the artifacts cache, else the shipped file."""
    if retrain:
        return None
    return SteeringTokens.load(final, bb) if final.is_file() else shipped(bb, name, key)


def fit_token(bb: Backbone, name: str, init: torch.Tensor, examples: Sequence[Example], cfg: TrainConfig,
              final: Path, record: dict, start: float, *, tokens: SteeringTokens | None = None,
              extra_loss: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None, retrain: bool = False,
              progress: bool | None = None, stop_after: int | None = None) -> SteeringTokens:
    """Train one vector from ``init`` with checkpoints next to ``final``; save it to ``final``
    once all steps are done. Returns it as a one-token set carrying ``record`` and timing."""
    refuse_work(f"token <{name}> ({final.name})")
    param = init.to(bb.device, torch.float32).clone()
    ckpt = final.with_suffix(".ckpt.safetensors")
    if retrain and ckpt.is_file():
        ckpt.unlink()
    losses = train_vectors(bb, {name: param}, examples, cfg, tokens=tokens, extra_loss=extra_loss,
                           checkpoint=ckpt, desc=f"<{name}>", progress=progress, stop_after=stop_after)
    info = {**record, "steps": len(losses), "seconds": round(time.perf_counter() - start, 1),
            "final_loss": losses[-1], "config": asdict(cfg)}
    out = SteeringTokens.for_backbone(bb)
    out.set(name, param, info, losses)
    if len(losses) == cfg.steps:
        out.save(final)
        log.info("<%s>: %d steps in %.0f s, loss %.3f -> %.3f", name, cfg.steps, info["seconds"],
                 losses[0], losses[-1])
    return out


def _init_vector(bb: Backbone, init: str, text: str, seed: int) -> torch.Tensor:
    """Stage-1 inits: the instruction's mean embedding (paper), or zero / random."""
    if init == "semantic":
        return text_init(bb, text)
    if init == "zero":
        return torch.zeros(bb.hidden_size)
    if init == "random":
        return random_init(bb, seed)
    raise ValueError(f"init {init!r} is not a stage-1 init; use 'semantic', 'zero' or 'random'")

