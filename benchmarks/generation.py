"""Benchmark 2: batched steered generation against HF ``generate`` and one-by-one decoding.

Runs, all greedy with the same ``max_new_tokens``, on the same test questions:

* steered: ``SteeredModel.generate_ids`` on ``question + " <bench>"`` prompts (a random
  vector of the embedding width in the slot), all prompts in one batch;
* HF: ``model.generate(input_ids=..., attention_mask=...)`` on the same questions as
  plain chat-prompt ids, left-padded in one batch (a prompt without the steering
  position: HF cannot place a vector there), stopping on the same end tokens;
* one by one: ``generate_ids`` called once per steered prompt.

Throughput counts the tokens each row generated up to and including its end token
(what a user gets), so a batch that keeps computing finished rows pays for it.
"""
from __future__ import annotations

import torch

from steerlib.tasks import prompts as P
from steerlib.model.backbone import Backbone
from steerlib.model.generate import SteeredModel
from steerlib.model.template import render
from steerlib.model.tokens import SteeringTokens, random_init

from .core import Goal, Section, Sizes, measure, rate_figure

SLOT = "bench"


def answer_length(row: list[int], eos: set[int]) -> int:
    """Generated tokens up to and including the first end token (all of them if none)."""
    for i, t in enumerate(row):
        if t in eos:
            return i + 1
    return len(row)


def bench_generation(bb: Backbone, sizes: Sizes) -> Section:
    questions = P.load("test", limit=sizes.gen_prompts)
    tokens = SteeringTokens.for_backbone(bb)
    tokens.set(SLOT, random_init(bb, seed=0))
    sm = SteeredModel(bb, tokens)
    prompts = [f"{q} <{SLOT}>" for q in questions]
    n, k = len(prompts), sizes.new_tokens

    plain = [render(bb, q).ids for q in questions]
    width = max(len(p) for p in plain)
    pad = bb.tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in plain], device=bb.device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in plain], device=bb.device)
    eos = set(bb.eos_ids)

    def steered() -> int:
        return sum(len(a) for a in sm.generate_ids(prompts, max_new_tokens=k, batch_size=n))

    def hf() -> int:
        out = bb.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=k, do_sample=False,
                                eos_token_id=bb.eos_ids, pad_token_id=pad)
        return sum(answer_length(row, eos) for row in out[:, width:].tolist())

    def one_by_one() -> int:
        return sum(len(sm.generate_ids([p], max_new_tokens=k)[0]) for p in prompts)

    rates = measure({"steered": steered, "hf": hf, "one_by_one": one_by_one}, sizes.repeats, sizes.warmup)
    s, h, o = rates["steered"], rates["hf"], rates["one_by_one"]
    return Section(
        f"Steered generation: {n} prompts, greedy, max_new_tokens {k}",
        figures=[rate_figure(f"steered, batch of {n}", s),
                 rate_figure(f"HF generate, batch of {n} (plain ids)", h),
                 rate_figure("steered, one prompt at a time", o)],
        goals=[Goal("steered / HF generate", s.per_second / h.per_second, ">=", 0.9),
               Goal("batched / one-by-one", s.per_second / o.per_second, ">=", 5.0)],
    )
