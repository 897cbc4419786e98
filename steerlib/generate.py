"""Batched steered generation, and the prompt-level steering methods.

``SteeredModel(backbone, tokens).generate(prompts)`` takes prompts in token syntax
(``"Why is the sky blue? <french><and><words_10_50>"``) or ``Request`` objects, renders
them through the chat template, embeds them with the steering vectors in their slots,
and decodes them in left-padded batches. Prompts in one batch may use different tokens.
Batches are formed from prompts of similar length (less padding), and the outputs come
back in input order.

The methods that differ only in what the prompt holds live here too: plain, instruction
(the instructions as text), concatenation (behavior tokens side by side), native " and"
(the vocabulary's own " and" embedding between them), ``<and>``, and hybrid (``<and>``
tokens plus the instructions). Methods that change the model (CAA, LM-Steer, LoRA) live
in ``steerlib.baselines`` and plug in through ``Method.context``.
"""
from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from tqdm.auto import tqdm

from . import behaviors as B
from .backbone import Backbone
from .template import Rendered, embed, render, render_text
from .tokens import SteeringTokens, text_init


@dataclass(frozen=True)
class Request:
    """A prompt in parts: question, steering slots, and instruction text."""

    question: str
    slots: tuple[str, ...] = ()
    instructions: str = ""


class SteeredModel:
    """A frozen backbone plus steering tokens, generating in batches."""

    def __init__(self, backbone: Backbone, tokens: SteeringTokens | None = None) -> None:
        if tokens is not None:
            tokens.check_backbone(backbone)
        self.backbone = backbone
        self.tokens = tokens

    def render(self, prompt: str | Request) -> Rendered:
        if isinstance(prompt, Request):
            for name in prompt.slots:
                if self.tokens is None or name not in self.tokens:
                    known = self.tokens.names if self.tokens is not None else []
                    raise ValueError(f"unknown steering token <{name}>; known tokens: "
                                     f"{', '.join(f'<{n}>' for n in known) or 'none'}")
            return render(self.backbone, prompt.question, prompt.slots, prompt.instructions)
        return render_text(self.backbone, prompt, self.tokens)

    @torch.inference_mode()
    def generate_ids(self, prompts: Sequence[str | Request], max_new_tokens: int = 256,
                     batch_size: int = 16, do_sample: bool = False, temperature: float = 1.0,
                     progress: bool | None = None, desc: str = "generate") -> list[list[int]]:
        """Answer token ids for each prompt (greedy by default), in input order.

        An answer ends with the model's end-of-turn token when it finished before
        ``max_new_tokens``; padding after the end is removed.
        """
        bb = self.backbone
        rows = [self.render(p) for p in prompts]
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i].ids))
        out: list[list[int]] = [[] for _ in rows]
        eos = set(bb.eos_ids)
        batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
        bar = tqdm(batches, desc=desc, disable=_quiet(progress, len(prompts)), leave=False)
        for idx in bar:
            batch = embed(bb, [rows[i] for i in idx], self.tokens)
            gen = bb.model.generate(
                inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                max_new_tokens=max_new_tokens, do_sample=do_sample,
                temperature=temperature if do_sample else None, top_p=None, top_k=None,
                pad_token_id=bb.tokenizer.pad_token_id, eos_token_id=bb.eos_ids)
            for i, seq in zip(idx, gen.tolist()):
                out[i] = _cut(seq, eos)
        return out

    def generate(self, prompts: Sequence[str | Request] | str, max_new_tokens: int = 256,
                 batch_size: int = 16, **kwargs) -> list[str] | str:
        """Answers as text, in input order; a single prompt string gives a single answer."""
        single = isinstance(prompts, (str, Request))
        ids = self.generate_ids([prompts] if single else prompts, max_new_tokens, batch_size, **kwargs)
        texts = [self.backbone.tokenizer.decode(s, skip_special_tokens=True).strip() for s in ids]
        return texts[0] if single else texts


def _cut(seq: list[int], eos: set[int]) -> list[int]:
    """Keep tokens up to and including the first end-of-turn token."""
    for i, t in enumerate(seq):
        if t in eos:
            return seq[: i + 1]
    return seq


def _quiet(progress: bool | None, n: int) -> bool:
    """Progress bars by default only for work long enough to need one."""
    return not progress if progress is not None else n < 64


# -- prompt-level methods ---------------------------------------------------------------
def interleave(names: Sequence[str], joiner: str | None = "and") -> tuple[str, ...]:
    """``[a, b, c] -> (a, and, b, and, c)``; ``joiner=None`` concatenates."""
    out: list[str] = []
    for i, name in enumerate(names):
        if i and joiner:
            out.append(joiner)
        out.append(name)
    return tuple(out)


def instructions_for(names: Sequence[str], rng: random.Random | None) -> str:
    """One paraphrase per behavior (random when ``rng`` is given), joined by spaces."""
    return " ".join(B.get(n).instruction(rng) for n in names)


@dataclass(frozen=True)
class Method:
    """A way to steer: how a (question, ordered behaviors) becomes a prompt.

    ``joiner`` is the token between behavior tokens (None = concatenation);
    ``tokens=False`` uses no steering tokens; ``instructions`` appends the text.
    Subclasses that change the model override ``context``.
    """

    name: str
    tokens: bool = True
    instructions: bool = False
    joiner: str | None = "and"
    native_and: bool = False

    def request(self, question: str, names: Sequence[str], rng: random.Random | None = None) -> Request:
        slots = interleave(names, self.joiner) if self.tokens else ()
        text = instructions_for(names, rng) if self.instructions else ""
        return Request(question, slots, text)

    def prepare(self, sm: SteeredModel) -> SteeredModel:
        """The model this method generates with (native " and" swaps the <and> vector)."""
        if not self.native_and:
            return sm
        tokens = sm.tokens.copy() if sm.tokens is not None else SteeringTokens.for_backbone(sm.backbone)
        tokens.set("and", text_init(sm.backbone, " and"), {"init": "vocabulary ' and'"})
        return SteeredModel(sm.backbone, tokens)

    @contextlib.contextmanager
    def context(self, sm: SteeredModel, names: Sequence[str]) -> Iterator[SteeredModel]:
        """Whatever must hold while generating for ``names`` (nothing, for prompt methods)."""
        yield self.prepare(sm)


METHODS: dict[str, Method] = {
    "plain": Method("plain", tokens=False),
    "instruction": Method("instruction", tokens=False, instructions=True),
    "concat": Method("concat", joiner=None),
    "native_and": Method("native_and", native_and=True),
    "and": Method("and"),
    "hybrid": Method("hybrid", instructions=True),
}
"""The prompt-level methods, by the names ``evaluate`` and the CLI use."""
