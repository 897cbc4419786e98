"""Chapter 4 exercises: where a word ranks next to a token, and tokens against
random vectors."""

from __future__ import annotations

import pandas as pd
import steerlib as st
import torch
import torch.nn.functional as F
from steerlib.evaluation import geometry
from steerlib.model.inits import random_init


def vocabulary_rank(bb: st.Backbone, vector: torch.Tensor, word: str) -> int:
    """Rank (1 = nearest) of ``word``'s first token among all vocabulary
    embeddings, by cosine to ``vector``."""
    ids = bb.tokenizer(word, add_special_tokens=False)["input_ids"]
    vocab = F.normalize(bb.embeddings.detach().float().cpu(), dim=-1)
    sims = vocab @ F.normalize(vector.float(), dim=0)
    return int((sims > sims[ids[0]]).sum().item()) + 1


def top_cosine_vs_random(
    bb: st.Backbone, tokens: st.SteeringTokens, seed: int = 0
) -> pd.DataFrame:
    """Each token's highest cosine to any vocabulary embedding, next to that of
    a random vector of typical norm (one per token): is a trained token closer
    to words than chance?"""
    near = geometry.nearest_vocabulary(bb, tokens, k=1).set_index("token")[
        "top_cosine"
    ]
    randoms = st.SteeringTokens.for_backbone(bb)
    for i, name in enumerate(tokens.names):
        randoms.set(name, random_init(bb, seed + i))
    chance = geometry.nearest_vocabulary(bb, randoms, k=1).set_index("token")[
        "top_cosine"
    ]
    return pd.DataFrame({"top_cosine": near, "random_top_cosine": chance})


# -- checks (st.book.check) ----------------------------------------------------
def check_vocabulary_rank(fn, bb: st.Backbone) -> bool:
    """Exercise 4.1: a word's own embedding ranks it first, its negation last."""
    ids = bb.tokenizer(" and", add_special_tokens=False)["input_ids"]
    vector = bb.embeddings[ids[0]].detach().float()
    return st.book.check(
        "vocabulary_rank",
        fn,
        [
            ((bb, vector, " and"), 1),
            ((bb, -vector, " and"), int(bb.embeddings.shape[0])),
        ],
    )


def check_top_cosine_vs_random(
    fn, bb: st.Backbone, tokens: st.SteeringTokens | None = None
) -> bool:
    """Exercise 4.2: a copy of a vocabulary embedding has top cosine 1, its
    random twin less; on real tokens, the solution's numbers."""
    copy = st.SteeringTokens.for_backbone(bb)
    copy.set("copy", bb.embeddings[100].detach())

    def right(table):
        return (
            abs(table.loc["<copy>", "top_cosine"] - 1) < 1e-3
            and table.loc["<copy>", "random_top_cosine"] < 0.99
        )

    cases = [((bb, copy), right)]
    if tokens is not None:
        cases.append(((bb, tokens), top_cosine_vs_random(bb, tokens)))
    return st.book.check("top_cosine_vs_random", fn, cases)
