"""Initial vectors of a steering token: where its training starts.

The paper starts a behavior token at the mean embedding of its instruction's words
(``text_init``), so it begins as something the model already reads as the instruction;
the ablations compare that with a random start of typical norm (``random_init``). A
token of ``k`` vectors starts from ``k`` rows of either (``text_rows``,
``random_rows``). Each is a plain tensor in the backbone's input-embedding space, on
the CPU in float32, like the vectors ``SteeringTokens`` stores.
"""

from __future__ import annotations

import torch

from steerlib.errors import ConfigError
from steerlib.model.backbone import Backbone


def text_init(bb: Backbone, text: str) -> torch.Tensor:
    """Mean input embedding of ``text``'s tokens.

    The paper's behavior-token init (the instruction's tokens), and also our ' and'
    init for <and> when ' and' is one token it is exactly that token's embedding.
    """
    return bb.embeddings[_ids(bb, text)].detach().float().mean(0).cpu()


def text_rows(bb: Backbone, text: str, k: int) -> torch.Tensor:
    """The semantic init of a token of ``k`` vectors: ``text_init`` (the mean) for one
    vector; for k > 1, the input embeddings of ``text``'s first k tokens, the text
    repeated when it is shorter (as PEFT's prompt-tuning text init), so each vector
    starts as a word of the instruction. A ``(k, d)`` block."""
    if k == 1:
        return text_init(bb, text)
    ids = _ids(bb, text)
    ids = (ids * -(-k // len(ids)))[:k]
    return bb.embeddings[ids].detach().float().cpu()


def _ids(bb: Backbone, text: str) -> list[int]:
    """``text``'s token ids, without special tokens; a ``ConfigError`` when none."""
    ids = bb.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ConfigError(f"{text!r} has no tokens to initialise from")
    return ids


def random_rows(bb: Backbone, k: int, seed: int = 0) -> torch.Tensor:
    """``k`` vectors of ``random_init`` (seeds ``seed``, ``seed + 1``, ...); one vector
    for k = 1, else a ``(k, d)`` block."""
    if k == 1:
        return random_init(bb, seed)
    return torch.stack([random_init(bb, seed + i) for i in range(k)])


def random_init(bb: Backbone, seed: int = 0) -> torch.Tensor:
    """A Gaussian vector with the vocabulary's mean embedding norm (ours)."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(bb.hidden_size, generator=gen)
    return v / v.norm() * bb.embeddings.detach().float().norm(dim=1).mean().cpu()
