"""Where the steering slots of a prompt stand: their position ids and what they attend
to.

Stage 1 trains every behavior token in one place: directly after the question, at
position ``q + 1``, reading the question and nothing else. A composed prompt
``question <b1><and><b2>`` puts ``<b2>`` at ``q + 3``, after two vectors it never saw in
training, and on the 135M model a token mostly stops working there (issue 24: a
language token passes 69% first and 28% second). A ``Layout`` lets every slot be read
where it was trained, at inference and in training, without retraining (ours; the
position sharing follows Tailor, arXiv 2204.13362, for concatenated soft prompts):

* ``SlotPositions.SEQUENTIAL`` (the paper's layout, the default): each slot its own
  position, as ordinary text.
* ``SlotPositions.SHARED``: every token starts at the first token's position id; the
  tokens after the run (the rest of the chat template, the answer) continue from there,
  as if the run were one token long.
* ``SlotPositions.AND_OWN``: the behavior tokens start at the first token's position;
  each ``<and>`` starts right after the token before it, where stage 2 trained it.
* ``isolate=True``: a behavior token does not attend to the tokens before it, so it
  reads exactly its stage-1 context (the prompt up to the question); ``<and>`` and
  everything after the run attend to all of it.

A token may hold k vectors (``SteeringTokens.width``): it fills k consecutive slots, a
*block*, whose position ids count up from the block's start in every layout, as stage 1
trained them. The layout moves and isolates whole blocks. With one token every layout
is the sequential one (same positions, no mask): a single token behaves exactly as it
was trained and as it always has.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import torch

from steerlib.errors import ConfigError

AND = "and"


class SlotPositions(StrEnum):
    """How the position ids of a run of steering slots are numbered."""

    SEQUENTIAL = "sequential"
    SHARED = "shared"
    AND_OWN = "and_own"


@dataclass(frozen=True)
class Layout:
    """How a prompt's steering slots are read (see the module docstring)."""

    positions: SlotPositions = SlotPositions.SEQUENTIAL
    """Position ids of the slots: each its own (the paper), all the first's, or
    behaviors the first's and ``<and>`` the next."""
    isolate: bool = False
    """A behavior slot does not attend to the slots before it."""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "positions", SlotPositions(self.positions))
        except ValueError:
            allowed = ", ".join(p.value for p in SlotPositions)
            raise ConfigError(
                f"Layout.positions must be one of {allowed}; got {self.positions!r}"
            ) from None
        if not isinstance(self.isolate, bool):
            raise ConfigError(f"Layout.isolate must be a bool; got {self.isolate!r}")

    @property
    def is_default(self) -> bool:
        """The paper's layout: ordinary positions and attention."""
        return self.positions is SlotPositions.SEQUENTIAL and not self.isolate

    @property
    def label(self) -> str:
        """A short name for tables and record keys: ``sequential``,
        ``shared+isolate``, ..."""
        return self.positions.value + ("+isolate" if self.isolate else "")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "positions": self.positions.value}

    @classmethod
    def from_dict(cls, data: dict | None) -> Layout:
        """A layout from token-file metadata; none recorded is the paper's layout."""
        if not data:
            return cls()
        unknown = set(data) - {"positions", "isolate"}
        if unknown:
            raise ConfigError(
                f"unknown layout field(s) {sorted(unknown)}; a layout has 'positions' "
                f"and 'isolate'"
            )
        return cls(**data)


DEFAULT = Layout()


Block = tuple[int, str, int]
"""One steering token in a rendered prompt: (index of its first slot, name, how many
consecutive slots it fills; k > 1 for a token of k vectors)."""


def positions(length: int, blocks: Sequence[Block], layout: Layout) -> list[int]:
    """Position ids of one unpadded sequence of ``length`` tokens whose steering tokens
    stand at ``blocks`` (one consecutive run). A token's k slots always count up from
    its block's start, as in training; the layout places the blocks: one after the other
    (sequential), each at the first block's start (shared), or ``<and>`` right after the
    block before it (and_own)."""
    if layout.positions is SlotPositions.SEQUENTIAL or len(blocks) < 2:
        return list(range(length))
    first = blocks[0][0]
    own = layout.positions is SlotPositions.AND_OWN
    out = list(range(first))
    before = 0  # the width of the previous block: where an own <and> starts
    for _, name, width in blocks:
        start = first + (before if own and name == AND else 0)
        out += range(start, start + width)
        before = width
    after = max(out[first:]) + 1
    out += range(after, after + length - len(out))
    return out


def blocked(blocks: Sequence[Block], layout: Layout) -> list[tuple[int, int]]:
    """(query, key) index pairs a layout forbids: when ``isolate``, each behavior
    token's slots do not see the slots of the tokens before it (its own earlier slots
    they see, as in training)."""
    if not layout.isolate:
        return []
    return [
        (q, k)
        for i, (start, name, width) in enumerate(blocks)
        if name != AND
        for q in range(start, start + width)
        for s, _, w in blocks[:i]
        for k in range(s, s + w)
    ]


def allowed(
    lengths: Sequence[int],
    width: int,
    blocks: Sequence[Sequence[Block]],
    layout: Layout,
    device: torch.device,
) -> torch.Tensor | None:
    """Which keys each query may attend to in a left-padded batch under ``layout``:
    a bool ``(batch, 1, width, width)`` mask, or None when plain causal attention with
    padding is all it needs.

    Causal, no padded keys, and not the pairs ``blocked`` forbids. A padded query
    attends to itself only, so no row is empty (an empty row would put NaN into the keys
    and values every later layer reads).
    """
    pairs = [blocked(b, layout) for b in blocks]
    if not any(pairs):
        return None
    mask = (
        torch.ones(width, width, dtype=torch.bool, device=device)
        .tril()
        .repeat(len(lengths), 1, 1)
    )
    for b, (n, forbid) in enumerate(zip(lengths, pairs)):
        offset = width - n
        mask[b, :, :offset] = False
        mask[b, range(offset), range(offset)] = True
        for q, k in forbid:
            mask[b, offset + q, offset + k] = False
    return mask.unsqueeze(1)


def additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A bool attention mask as the additive one every attention implementation takes
    (0 where allowed, the dtype's minimum elsewhere; eager attention adds a bool mask as
    0/1)."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(
        ~mask, torch.finfo(dtype).min
    )
