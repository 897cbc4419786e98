"""Chapter 1 exercises: a verifier, how far training moved a token, steering strength."""
from __future__ import annotations

import re
import string

import pandas as pd
import torch.nn.functional as F

import steerlib as st
from steerlib.tasks import behaviors as B
from steerlib.model.tokens import text_init

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def mentions_a_number(text: str) -> bool:
    """True when the text holds a number written in digits.

    Rule: some whitespace-separated chunk, stripped of punctuation at both ends, is digits
    with optional inner "," or "." groups: "3", "1,000", "3.14", "(42)." count; "H2O",
    "1990s" and "three" do not.
    """
    return any(_NUMBER.fullmatch(chunk.strip(string.punctuation)) for chunk in text.split())


def token_drift(bb: st.Backbone, tokens: st.SteeringTokens, name: str) -> dict[str, float]:
    """How far training moved ``<name>`` from its initialisation (the mean embedding of
    its first paraphrase), and its norm next to the vocabulary's median norm."""
    trained = tokens[name].float()
    init = text_init(bb, B.get(name).paraphrases[0])
    vocab_norm = bb.embeddings.detach().float().norm(dim=1).median().item()
    return {"cosine_to_init": F.cosine_similarity(trained, init, dim=0).item(),
            "norm": trained.norm().item(), "init_norm": init.norm().item(), "vocab_median_norm": vocab_norm}


def strength_sweep(bb: st.Backbone, tokens: st.SteeringTokens, name: str, scales, questions,
                   max_new_tokens: int = 48) -> pd.DataFrame:
    """Generate with ``<name>`` scaled by each factor; one row per (scale, question) with
    the answer and the behavior's verdict."""
    rows = []
    for scale in scales:
        scaled = tokens.subset([name])
        scaled.set(name, scale * tokens[name])
        answers = st.SteeredModel(bb, scaled).generate([f"{q} <{name}>" for q in questions],
                                                       max_new_tokens=max_new_tokens)
        rows += [{"scale": scale, "question": q, "text": a, "ok": B.get(name).verify(a)}
                 for q, a in zip(questions, answers)]
    return pd.DataFrame(rows)

