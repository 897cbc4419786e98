"""Greedy decoding of a steered batch, without transformers' ``generate``.

Evaluation, training targets and validation all decode greedily, and on a CPU that is
almost all of steerlib's time. This loop does what greedy decoding needs and nothing
else: one forward over the prompts, then per step the logits of the last position only,
argmax, the next token; no logits processors, stopping criteria or ``generate``'s
per-step bookkeeping. It gives ``generate``'s tokens (tests/test_generate.py) in less
CPU time at small batches (benchmarks/RESULTS.md).

Rows that ended are fed the pad token until the whole batch ends, as ``generate`` does.
The prompt is prefilled with the batch's own position ids and, when the layout restricts
attention (``Batch.prefill_mask``), with that mask, which ``generate`` cannot carry past
the first step; each later step continues every row at its last prompt position + 1
under the plain padding mask.
"""
from __future__ import annotations

from typing import Sequence

import torch

from steerlib.model.template import Batch

GREEDY_FIELDS = frozenset({"max_new_tokens", "do_sample", "temperature", "top_k", "top_p", "min_p",
                           "repetition_penalty", "eos_token_id", "pad_token_id", "bos_token_id",
                           "transformers_version", "use_cache"})
"""The ``GenerationConfig`` fields this loop honours or that greedy decoding ignores
(sampling parameters). A config that sets anything else (stop strings, a minimum length,
banned words, ...) needs transformers' logits processors and goes through ``generate``."""


def is_plain_greedy(cfg) -> bool:
    """Whether ``cfg`` asks for plain greedy decoding, which ``greedy`` reproduces."""
    return (not cfg.do_sample and (cfg.repetition_penalty or 1.0) == 1.0
            and set(cfg.to_diff_dict()) <= GREEDY_FIELDS)


def greedy(model, batch: Batch, max_new_tokens: int, eos: Sequence[int], pad: int) -> torch.Tensor:
    """Greedy answers to ``batch``: ``(rows, steps)`` token ids, ``steps <= max_new_tokens``
    (the loop stops when every row has ended); after its end token a row holds ``pad``."""
    out = model(**batch.model_inputs(), use_cache=True, logits_to_keep=1)
    logits, cache, mask = out.logits[:, -1], out.past_key_values, batch.attention_mask
    position = batch.position_ids[:, -1:]
    ends = torch.tensor(sorted(set(eos)), device=logits.device)
    done = torch.zeros(len(logits), dtype=torch.bool, device=logits.device)
    steps = []
    for step in range(max_new_tokens):
        token = logits.argmax(-1).masked_fill_(done, pad)
        steps.append(token)
        done |= torch.isin(token, ends)
        if done.all() or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, mask.new_ones(len(mask), 1)], dim=1)
        position = position + 1
        logits = model(input_ids=token[:, None], attention_mask=mask, position_ids=position, cache=cache,
                       use_cache=True, logits_to_keep=1).logits[:, -1]
    return torch.stack(steps, dim=1)
