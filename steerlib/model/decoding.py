"""Greedy decoding of steered prompts with continuous batching, without ``generate``.

Evaluation, training targets and validation all decode greedily, and on a CPU that is
almost all of steerlib's time. This loop does what greedy decoding needs and nothing
else: a forward over the prompts, then per step the logits of the last position only,
argmax, the next token; no logits processors, stopping criteria or ``generate``'s
per-step bookkeeping. Three things make it cheaper than decoding static batches
(benchmarks/RESULTS.md):

* **Continuous batching.** Up to ``max_rows`` answers are in flight. When one ends (its
  end token, or ``max_new_tokens``), the next waiting prompt is read and takes its row,
  so steps are not spent on rows that have finished: a 135M model's answers end anywhere
  between 8 tokens and the cap.
* **A cache that is written, not copied**, and **the shared start read once**: the rows'
  key/value buffers (``kv_cache``).

Each row computes what it would alone: its own prompt, positions and cache; the other
rows only change which masked columns surround it. So the answers are ``generate``'s,
prompt by prompt (tests/test_generate.py).

A model whose cache is not plain ``DynamicLayer``s (sliding windows, ...) decodes with
transformers' ``generate`` instead (``spliceable``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from steerlib.model.kv_cache import Prefix, Read, Rows
from steerlib.model.template import Batch

GREEDY_FIELDS = frozenset(
    {
        "max_new_tokens",
        "do_sample",
        "temperature",
        "top_k",
        "top_p",
        "min_p",
        "repetition_penalty",
        "eos_token_id",
        "pad_token_id",
        "bos_token_id",
        "transformers_version",
        "use_cache",
    }
)
"""The ``GenerationConfig`` fields this loop honours or that greedy decoding ignores
(sampling parameters). A config that sets anything else (stop strings, a minimum length,
banned words, ...) needs transformers' logits processors and goes through
``generate``."""

PREFILL_PROMPTS = 16
"""Prompts read per forward when rows free up. Prompts come sorted by length, and 16 of
them pad less than 64 would, while 16 prompts of 20-50 tokens are still GEMMs of
hundreds of rows."""


def is_plain_greedy(cfg) -> bool:
    """Whether ``cfg`` asks for greedy decoding, plain or with a repetition penalty,
    which ``greedy`` reproduces."""
    return not cfg.do_sample and set(cfg.to_diff_dict()) <= GREEDY_FIELDS


def penalize(logits: torch.Tensor, answers: Sequence[Sequence[int]], penalty: float):
    """Apply a repetition penalty in place, as transformers'
    ``RepetitionPenaltyLogitsProcessor`` does on ``generate``'s ids: for each row, the
    logits of the tokens already in its answer are divided by ``penalty`` where
    positive and multiplied where negative. (With ``inputs_embeds``, ``generate`` sees
    no prompt ids, so only the answer's tokens count, as here.)"""
    for row, answer in enumerate(answers):
        if answer:
            ids = torch.tensor(sorted(set(answer)), device=logits.device)
            seen = logits[row, ids]
            logits[row, ids] = torch.where(seen < 0, seen * penalty, seen / penalty)


def spliceable(model) -> bool:
    """Whether ``model``'s cache is made of plain ``DynamicLayer``s, whose rows and
    columns this loop may rearrange (a sliding-window layer keeps its own
    bookkeeping)."""
    return all(
        type(layer) is DynamicLayer
        for layer in DynamicCache(config=model.config).layers
    )


def greedy(
    model,
    prefill: Callable[[list[int]], Batch],
    n: int,
    max_rows: int,
    max_new_tokens: int,
    eos: Sequence[int],
    done: Callable[[int], None] | None = None,
    penalty: float = 1.0,
) -> list[list[int]]:
    """Greedy answers to prompts ``0 .. n-1``, taken in that order, at most ``max_rows``
    at a time.

    ``prefill(indices)`` embeds those prompts as one left-padded ``Batch``. Each answer
    is its token ids, ending with its end token when it ended before ``max_new_tokens``.
    ``done(k)`` is called when ``k`` more answers are complete (a progress bar).
    ``penalty``: a repetition penalty on each answer's own tokens (``penalize``). The
    model's cache must be ``spliceable``.
    """
    ends = set(eos)
    answers: list[list[int]] = [[] for _ in range(n)]
    waiting = 0  # the next prompt to read
    rows: Rows | None = None
    prefix: Prefix | None = None
    while True:
        free = rows.free() if rows is not None else list(range(min(max_rows, n)))
        while free and waiting < n:
            chunk = list(
                range(waiting, min(n, waiting + len(free), waiting + PREFILL_PROMPTS))
            )
            waiting += len(chunk)
            batch = prefill(chunk)
            if chunk[0] == 0:  # the first prompts read: what do they share?
                prefix = Prefix.find(model, batch)
            read = prefix.read(model, batch) if prefix is not None else None
            if read is None:
                read = Read.of(
                    model(**batch.model_inputs(), use_cache=True, logits_to_keep=1),
                    batch.attention_mask,
                    batch.position_ids,
                )
            if rows is None:
                rows = Rows(read, len(free), max_new_tokens)
            rows.place(free[: len(chunk)], chunk, read)
            free = free[len(chunk) :]
        if penalty != 1.0:
            penalize(
                rows.logits,
                [answers[p] if p >= 0 else () for p in rows.prompt],
                penalty,
            )
        tokens = rows.logits.argmax(-1)
        finished = []
        for s, t in enumerate(tokens.tolist()):
            if rows.prompt[s] >= 0:
                answer = answers[rows.prompt[s]]
                answer.append(t)
                if t in ends or len(answer) == max_new_tokens:
                    finished.append(s)
        if finished:
            if done is not None:
                done(len(finished))
            rows.finish(finished)
            if waiting == n and not rows.live():
                return answers
            if waiting == n and len(rows.free()) >= max(1, len(rows.prompt) // 8):
                # no prompt will take the free rows: drop them
                tokens = tokens[rows.live()]
                rows.shrink()
        rows.step(model, tokens)
