"""The key/value cache of continuous batching: rows in flight, written in place.

``decoding.greedy`` keeps up to ``max_rows`` answers in flight and gives a finished
answer's row to the next prompt. The cache that allows it lives here:

* **A cache that is written, not copied.** Keys and values live in buffers with spare
  columns (``BufferLayer``); a step writes its one new column, where transformers'
  ``DynamicLayer`` copies the whole cache (``torch.cat``: 30% of decoding time at batch
  64). A joining prompt's cache is written into its row (``Rows.place``).
* **The shared start read once.** Every chat prompt begins with the same tokens (the
  template's system turn and user header: 24 of the 35-76 tokens of an evaluation prompt
  on SmolLM2); they are computed once (``Prefix``) and each prompt reads only what
  follows.

A column's place in the cache does not matter (keys carry their rotary positions; the
attention mask says which columns a row reads), which is what lets rows of different
ages share one buffer. These classes use transformers' cache API (``DynamicLayer``'s
``keys``/``values``/``is_initialized``, ``Cache(layers=...)``, a forward's ``cache=``),
whose floor ``steerlib.model`` checks at import.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

from steerlib.model.template import Batch

SLACK = 32
"""Spare columns in the cache buffers beyond one prompt and its answer: the window of
columns moves back to the buffers' start once every ``SLACK`` steps or so (a copy of the
cache, where ``DynamicLayer`` copies it every step)."""


@dataclass
class Read:
    """Prompts just read: their cache, attention mask, last positions and next-token
    logits."""

    cache: Cache
    mask: torch.Tensor
    position: torch.Tensor
    logits: torch.Tensor

    @staticmethod
    def of(out, mask: torch.Tensor, positions: torch.Tensor) -> Read:
        return Read(out.cache, mask, positions[:, -1:], out.logits[:, -1])


class Prefix:
    """The start every prompt shares, computed once and read by every prefill whose
    prompts all begin with it: they feed the model only what follows it, over its keys
    and values repeated for each row. Found in the first prefill's prompts."""

    def __init__(self, embeds: torch.Tensor, cache: Cache) -> None:
        self.embeds = embeds
        self.layers = [(layer.keys, layer.values) for layer in cache.layers]

    @staticmethod
    def find(model, batch: Batch) -> Prefix | None:
        """The longest start all of ``batch``'s prompts share, leaving each at least
        one token of its own; None when there is none or the layout restricts
        attention."""
        if batch.prefill_mask is not None or len(batch.attention_mask) < 2:
            return None
        rows = _real_rows(batch)
        first, shortest = rows[0][0], min(len(e) for e, _ in rows) - 1
        same = torch.ones(shortest, dtype=torch.bool, device=first.device)
        for embeds, positions in rows:
            same &= (embeds[:shortest] == first[:shortest]).all(-1)
            same &= positions[:shortest] == torch.arange(
                shortest, device=positions.device
            )
        length = int(same.long().cumprod(0).sum())
        if not length:
            return None
        embeds = first[:length]
        out = model(
            inputs_embeds=embeds[None],
            position_ids=torch.arange(length, device=embeds.device)[None],
            use_cache=True,
            logits_to_keep=1,
        )
        return Prefix(embeds, out.cache)

    def read(self, model, batch: Batch) -> Read | None:
        """``batch``'s prompts read after this prefix; None unless all of them begin
        with it."""
        length = len(self.embeds)
        rows = _real_rows(batch)
        if batch.prefill_mask is not None or any(
            len(e) <= length
            or not torch.equal(e[:length], self.embeds)
            or not torch.equal(p[:length], torch.arange(length, device=p.device))
            for e, p in rows
        ):
            return None
        width = max(len(e) for e, _ in rows) - length
        embeds = torch.stack([_pad_left(e[length:], width, 0) for e, _ in rows])
        positions = torch.stack([_pad_left(p[length:], width, 0) for _, p in rows])
        own = torch.stack(
            [_pad_left(torch.ones_like(p[length:]), width, 0) for _, p in rows]
        )
        mask = torch.cat([own.new_ones(len(rows), length), own], dim=1)
        cache = DynamicCache(
            [
                (k.expand(len(rows), -1, -1, -1), v.expand(len(rows), -1, -1, -1))
                for k, v in self.layers
            ]
        )
        out = model(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return Read.of(out, mask, positions)


def _real_rows(batch: Batch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each prompt's embeddings and position ids without its left padding."""
    return [
        (e[m.bool()], p[m.bool()])
        for e, p, m in zip(
            batch.inputs_embeds, batch.position_ids, batch.attention_mask
        )
    ]


def _pad_left(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """``t`` with zeros prepended along ``dim`` up to ``width``."""
    missing = width - t.shape[dim]
    if not missing:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


class BufferLayer(DynamicLayer):
    """One layer's keys and values in buffers of ``(rows, heads, capacity,
    head_dim)``; the model sees the columns ``[start, end)`` of its ``Rows``, and a
    step writes column ``end``."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, rows: Rows) -> None:
        super().__init__()
        self.key_buffer, self.value_buffer, self.rows = keys, values, rows
        self.is_initialized, self.device = True, keys.device
        self.show()

    def show(self) -> None:
        """Point ``keys``/``values`` (what ``get_seq_length`` and the model read) at
        the window."""
        start, end = self.rows.start, self.rows.end
        self.keys, self.values = (
            self.key_buffer[:, :, start:end],
            self.value_buffer[:, :, start:end],
        )

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ):
        end = self.rows.end
        self.key_buffer[:, :, end : end + 1] = key_states
        self.value_buffer[:, :, end : end + 1] = value_states
        start = self.rows.start
        return self.key_buffer[:, :, start : end + 1], self.value_buffer[
            :, :, start : end + 1
        ]


class Rows:
    """The rows in flight: a cache, mask and next position per row, and which prompt
    each row answers (-1: free). Columns ``[start, end)`` hold every live row's
    tokens; each row's own tokens end at column ``end - 1``.

    ``count`` rows, built from the first prompts read; their buffers start with room
    for those prompts, ``max_new_tokens`` answer tokens and ``SLACK``."""

    def __init__(self, read: Read, count: int, max_new_tokens: int) -> None:
        first = read.cache.layers[0].keys
        room = read.mask.shape[1] + max_new_tokens + SLACK
        shape = (count, first.shape[1], room, first.shape[3])
        # an empty window, with room left of it for the first prompts (``place``)
        self.start = self.end = read.mask.shape[1]
        self.cache = Cache(
            layers=[
                BufferLayer(first.new_zeros(shape), first.new_zeros(shape), self)
                for _ in read.cache.layers
            ]
        )
        # free rows read their own columns: no empty softmax
        self.mask = read.mask.new_ones(count, room)
        self.position = read.position.new_zeros(count, 1)
        self.logits = read.logits.new_zeros(count, read.logits.shape[1])
        self.prompt = [-1] * count

    @property
    def layers(self) -> list[BufferLayer]:
        return self.cache.layers

    def free(self) -> list[int]:
        return [s for s, p in enumerate(self.prompt) if p < 0]

    def live(self) -> list[int]:
        return [s for s, p in enumerate(self.prompt) if p >= 0]

    def place(self, indices: list[int], prompts: list[int], read: Read) -> None:
        """Write prompts just read into free ``indices``: their cache ends at column
        ``end - 1``."""
        width = read.mask.shape[1]
        self._room(before=width, after=0)
        index = torch.tensor(indices, device=self.mask.device)
        for layer, new in zip(self.layers, read.cache.layers):
            layer.key_buffer[index, :, self.end - width : self.end] = new.keys
            layer.value_buffer[index, :, self.end - width : self.end] = new.values
        self.mask[index] = 0
        self.mask[index, self.end - width : self.end] = read.mask
        self.position[index], self.logits[index] = read.position, read.logits
        for s, p in zip(indices, prompts):
            self.prompt[s] = p
        self.start = min(self.start, self.end - width)
        self._show()

    def finish(self, indices: list[int]) -> None:
        """Free ``indices``; the window starts at the first column a live row uses."""
        for s in indices:
            self.prompt[s] = -1
        live = self.live()
        if live:
            used = self.mask[live, self.start : self.end].any(0)
            self.start += int(used.long().argmax())
            self._show()

    def shrink(self) -> None:
        """Keep only the live rows (no prompt is waiting to take the free ones): they
        move up to the buffers' first rows, in place, and the buffers become views of
        those rows."""
        live = self.live()
        tensors = [
            t for layer in self.layers for t in (layer.key_buffer, layer.value_buffer)
        ]
        for row, slot in enumerate(live):
            if row != slot:
                for t in tensors + [self.mask, self.position, self.logits]:
                    t[row] = t[slot]
        rows = len(live)
        for layer in self.layers:
            layer.key_buffer, layer.value_buffer = (
                layer.key_buffer[:rows],
                layer.value_buffer[:rows],
            )
        self.mask, self.position, self.logits = (
            self.mask[:rows],
            self.position[:rows],
            self.logits[:rows],
        )
        self.prompt = [self.prompt[s] for s in live]
        self._show()

    def step(self, model, tokens: torch.Tensor) -> None:
        """Feed each row its token: one forward, one new column, the next logits."""
        self._room(before=0, after=1)
        self.mask[:, self.end] = 1
        self.position += 1
        self.logits = model(
            input_ids=tokens[:, None],
            attention_mask=self.mask[:, self.start : self.end + 1],
            position_ids=self.position,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1]
        self.end += 1
        self._show()

    def _room(self, before: int, after: int) -> None:
        """Make ``end >= before`` and ``end + after <= capacity``: move the window
        within the buffers, or into larger ones when it does not fit (rare: it spans
        one prompt and its answer)."""
        capacity = self.mask.shape[1]
        if self.end >= before and self.end + after <= capacity:
            return
        span = self.end - self.start
        end = max(span, before)
        if end + after > capacity:  # larger buffers, the window copied into them
            capacity = end + after + SLACK
            for layer in self.layers:
                layer.key_buffer = self._grown(layer.key_buffer, 2, capacity)
                layer.value_buffer = self._grown(layer.value_buffer, 2, capacity)
            self.mask = self._grown(self.mask, 1, capacity, fill=1)
        tensors = [
            (t, 2)
            for layer in self.layers
            for t in (layer.key_buffer, layer.value_buffer)
        ]
        for t, dim in tensors + [(self.mask, 1)]:
            window = t.narrow(dim, self.start, span).clone()
            t.narrow(dim, end - span, span).copy_(window)
        self.mask[:, : end - span] = 0  # live rows read nothing left of the window
        self.start, self.end = end - span, end

    def _grown(
        self, t: torch.Tensor, dim: int, capacity: int, fill: int = 0
    ) -> torch.Tensor:
        """``t`` in a buffer of ``capacity`` columns, its columns where they were."""
        shape = list(t.shape)
        shape[dim] = capacity
        out = t.new_full(shape, fill)
        out.narrow(dim, 0, t.shape[dim]).copy_(t)
        return out

    def _show(self) -> None:
        for layer in self.layers:
            layer.show()
