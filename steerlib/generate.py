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
import inspect
import random
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from tqdm.auto import tqdm

from . import behaviors as B
from .backbone import Backbone
from transformers import DynamicCache

from .template import Batch, Rendered, embed, render, render_text
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
    def prompt_embeds(self, prompts: Sequence[str | Request] | str) -> list[torch.Tensor]:
        """For each prompt, the ``(seq_len, hidden)`` input embeddings steered generation
        feeds the model: the chat template around the question, the steering vectors in
        their slots. Unpadded, on the CPU.

        This is how steering tokens reach an inference engine that takes embeddings
        instead of token ids (vLLM's ``{"prompt_embeds": tensor}``, or transformers'
        ``generate(inputs_embeds=...)``): the engine never needs to know about them.
        """
        prompts = [prompts] if isinstance(prompts, (str, Request)) else prompts
        return [embed(self.backbone, [self.render(p)], self.tokens).inputs_embeds[0].cpu() for p in prompts]

    @torch.inference_mode()
    def generate_ids(self, prompts: Sequence[str | Request], max_new_tokens: int = 256,
                     batch_size: int = 16, do_sample: bool = False, temperature: float = 1.0,
                     progress: bool | None = None, desc: str = "generate", seed: int = 0) -> list[list[int]]:
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
        gen = torch.Generator(device=bb.device).manual_seed(seed)
        for idx in bar:
            batch = embed(bb, [rows[i] for i in idx], self.tokens)
            for i, seq in zip(idx, decode(bb, batch, max_new_tokens, eos, do_sample, temperature, gen)):
                out[i] = seq
        return out

    def generate(self, prompts: Sequence[str | Request] | str, max_new_tokens: int = 256,
                 batch_size: int = 16, **kwargs) -> list[str] | str:
        """Answers as text, in input order; a single prompt string gives a single answer."""
        single = isinstance(prompts, (str, Request))
        ids = self.generate_ids([prompts] if single else prompts, max_new_tokens, batch_size, **kwargs)
        texts = [self.backbone.tokenizer.decode(s, skip_special_tokens=True).strip() for s in ids]
        return texts[0] if single else texts


def decode(bb: Backbone, batch: Batch, max_new_tokens: int, eos: set[int], do_sample: bool = False,
           temperature: float = 1.0, generator: torch.Generator | None = None) -> list[list[int]]:
    """Greedy (or sampled) decoding with a KV cache, dropping rows as they finish.

    ``transformers``' ``generate`` keeps computing every row until the longest answer
    ends; answers of a chat model vary a lot in length, so removing finished rows from
    the batch and the cache (ours) saves much of the work. Each answer ends with its
    end-of-turn token, or stops at ``max_new_tokens``.
    """
    model = bb.model
    cache = DynamicCache(config=model.config)
    # transformers renamed past_key_values to cache in 5.x; accept either
    cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    rows = torch.arange(batch.inputs_embeds.shape[0], device=bb.device)
    mask, pos = batch.attention_mask, batch.position_ids[:, -1:]
    out = model(inputs_embeds=batch.inputs_embeds, attention_mask=mask, position_ids=batch.position_ids,
                use_cache=True, logits_to_keep=1, **{cache_kw: cache})
    results: list[list[int]] = [[] for _ in range(len(rows))]
    eos_t = torch.tensor(sorted(eos), device=bb.device)
    for step in range(max_new_tokens):
        logits = out.logits[:, -1].float()
        if do_sample:
            nxt = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator).squeeze(1)
        else:
            nxt = logits.argmax(-1)
        for r, t in zip(rows.tolist(), nxt.tolist()):
            results[r].append(t)
        live = ~torch.isin(nxt, eos_t)
        if step == max_new_tokens - 1 or not live.any():
            break
        if not live.all():
            keep = live.nonzero().squeeze(1)
            rows, nxt, mask, pos = rows[keep], nxt[keep], mask[keep], pos[keep]
            cache.batch_select_indices(keep)
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
        pos = pos + 1
        out = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos, use_cache=True,
                    **{cache_kw: cache})
    return results


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
