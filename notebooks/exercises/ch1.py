"""Chapter 1 exercises: a verifier, how far training moved a token, steering
strength."""

from __future__ import annotations

import re
import string

import pandas as pd
import steerlib as st
import torch.nn.functional as F
from steerlib.model.inits import text_init
from steerlib.tasks import behaviors as B

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def mentions_a_number(text: str) -> bool:
    """True when the text holds a number written in digits.

    Rule: some whitespace-separated chunk, stripped of punctuation at both ends,
    is digits with optional inner "," or "." groups: "3", "1,000", "3.14",
    "(42)." count; "H2O", "1990s" and "three" do not."""
    return any(
        _NUMBER.fullmatch(chunk.strip(string.punctuation))
        for chunk in text.split()
    )


def token_drift(
    bb: st.Backbone, tokens: st.SteeringTokens, name: str
) -> dict[str, float]:
    """How far training moved ``<name>`` from its initialisation (the mean
    embedding of its first paraphrase), and its norm next to the vocabulary's
    median norm."""
    trained = tokens[name].float()
    init = text_init(bb, B.get(name).paraphrases[0])
    vocab_norm = bb.embeddings.detach().float().norm(dim=1).median().item()
    return {
        "cosine_to_init": F.cosine_similarity(trained, init, dim=0).item(),
        "norm": trained.norm().item(),
        "init_norm": init.norm().item(),
        "vocab_median_norm": vocab_norm,
    }


def strength_sweep(
    bb: st.Backbone,
    tokens: st.SteeringTokens,
    name: str,
    scales,
    questions,
    max_new_tokens: int = 48,
) -> pd.DataFrame:
    """Generate with ``<name>`` scaled by each factor; one row per (scale,
    question) with the answer and the behavior's verdict."""
    rows = []
    for scale in scales:
        scaled = tokens.subset([name])
        scaled.set(name, scale * tokens[name])
        answers = st.SteeredModel(bb, scaled).generate(
            [f"{q} <{name}>" for q in questions], max_new_tokens=max_new_tokens
        )
        rows += [
            {
                "scale": scale,
                "question": q,
                "text": a,
                "ok": B.get(name).verify(a),
            }
            for q, a in zip(questions, answers)
        ]
    return pd.DataFrame(rows)


# -- checks: each runs a learner's function on cases worked out by hand (st.book
def check_mentions_a_number(fn) -> bool:
    """Exercise 1.1: digits count, digits glued to letters do not."""
    cases = [
        ("A spider has 8 legs.", True),
        ("It is about 1,000 km away.", True),
        ("Pi is roughly 3.14.", True),
        ("(42)", True),
        ("Water is H2O.", False),
        ("The 1990s were loud.", False),
        ("three cats", False),
        ("", False),
    ]
    return st.book.check(
        "mentions_a_number",
        fn,
        [((text,), expected) for text, expected in cases],
    )


def check_token_drift(
    fn, bb: st.Backbone, tokens: st.SteeringTokens, names=("french",)
) -> bool:
    """Exercise 1.2: a vector three times its own initialisation has cosine 1
    and three times the norm; on real tokens, the same numbers as the solution.
    """
    scaled = tokens.subset([names[0]])
    scaled.set(names[0], 3 * text_init(bb, B.get(names[0]).paraphrases[0]))

    def three_times(d):
        return (
            abs(d["cosine_to_init"] - 1) < 1e-4
            and abs(d["norm"] - 3 * d["init_norm"]) < 1e-3 * d["norm"]
            and abs(
                d["vocab_median_norm"]
                - bb.embeddings.detach().float().norm(dim=1).median().item()
            )
            < 1e-4
        )

    return st.book.check(
        "token_drift",
        fn,
        [
            ((bb, scaled, names[0]), three_times),
            *(((bb, tokens, n), token_drift(bb, tokens, n)) for n in names),
        ],
    )


def check_strength_sweep(
    fn,
    bb: st.Backbone,
    tokens: st.SteeringTokens,
    questions,
    max_new_tokens: int = 8,
) -> bool:
    """Exercise 1.3: scale 1 is the token itself, scale 0 a zero vector, and
    every verdict is the French verifier's."""

    def right(table):
        plain = list(table[table["scale"] == 1.0]["text"])
        zero = tokens.subset(["french"])
        zero.set("french", 0 * tokens["french"])
        ask = [f"{q} <french>" for q in questions]
        return (
            list(table["scale"])
            == [0.0] * len(questions) + [1.0] * len(questions)
            and plain
            == st.SteeredModel(bb, tokens).generate(
                ask, max_new_tokens=max_new_tokens
            )
            and list(table[table["scale"] == 0.0]["text"])
            == st.SteeredModel(bb, zero).generate(
                ask, max_new_tokens=max_new_tokens
            )
            and list(table["ok"])
            == [B.get("french").verify(t) for t in table["text"]]
        )

    return st.book.check(
        "strength_sweep",
        fn,
        [
            (
                (
                    bb,
                    tokens,
                    "french",
                    [0.0, 1.0],
                    list(questions),
                    max_new_tokens,
                ),
                right,
            )
        ],
    )
