"""Chapter 3 exercises: the orthogonality term of a vector, and a paired test of
two methods."""

from __future__ import annotations

import pandas as pd
import steerlib as st
import torch
from scipy.stats import binomtest
from steerlib.model.inits import random_init, text_init
from steerlib.tasks import behaviors as B
from steerlib.train.compose import orthogonality


def orthogonality_terms(
    bb: st.Backbone, tokens: st.SteeringTokens, seed: int = 0
) -> pd.Series:
    """L_orth = sum over seen behaviors of cos(v, e_b)^2 for three candidate
    <and> vectors: the trained <and>, the vocabulary's " and", and a random
    vector of typical norm."""
    seen = torch.stack([tokens[n] for n in B.names() if B.get(n).seen])
    candidates = {
        "<and>": tokens["and"],
        "' and'": text_init(bb, " and"),
        "random": random_init(bb, seed),
    }
    return pd.Series(
        {
            label: orthogonality(v.float(), seen.float()).item()
            for label, v in candidates.items()
        },
        name="L_orth",
    )


def mcnemar(records: pd.DataFrame, a: str, b: str) -> dict:
    """Exact McNemar test of methods ``a`` and ``b`` on the same (ordering,
    prompt) pairs.

    Only discordant pairs count: ``a_only`` where a passed and b failed,
    ``b_only`` the reverse. Under "no difference" each discordant pair is a fair
    coin, so the two-sided p-value is a binomial test of a_only out of a_only +
    b_only at 0.5."""
    ok = (
        records[records["method"].isin([a, b])]
        .pivot_table(
            index=["order", "prompt_id"],
            columns="method",
            values="ok",
            aggfunc="first",
        )
        .dropna()
    )
    ok = ok.astype(bool)
    a_only = int((ok[a] & ~ok[b]).sum())
    b_only = int((ok[b] & ~ok[a]).sum())
    p = (
        binomtest(a_only, a_only + b_only, 0.5).pvalue
        if a_only + b_only
        else 1.0
    )
    return {"pairs": len(ok), "a_only": a_only, "b_only": b_only, "p_value": p}


# -- checks (st.book.check) ----------------------------------------------------
def check_orthogonality_terms(
    fn, bb: st.Backbone, tokens: st.SteeringTokens
) -> bool:
    """Exercise 3.1: a vector orthogonal to every seen token has L_orth 0; "
    and" gets the sum of its squared cosines, computed here directly; on the
    real tokens, the solution's numbers."""
    import torch.nn.functional as F

    seen = torch.stack([tokens[n] for n in B.names() if B.get(n).seen]).float()
    q, _ = torch.linalg.qr(seen.T)
    v = torch.randn(bb.hidden_size, generator=torch.Generator().manual_seed(1))
    flat = tokens.copy()
    flat.set("and", v - q @ (q.T @ v))
    word = text_init(bb, " and").float()
    by_hand = sum(F.cosine_similarity(word, s, dim=0).item() ** 2 for s in seen)

    def right(terms):
        return (
            set(terms.index) == {"<and>", "' and'", "random"}
            and abs(terms["<and>"]) < 1e-6
            and abs(terms["' and'"] - by_hand) < 1e-4 * max(by_hand, 1e-6)
        )

    return st.book.check(
        "orthogonality_terms",
        fn,
        [((bb, flat), right), ((bb, tokens), orthogonality_terms(bb, tokens))],
    )


def check_mcnemar(fn, records: pd.DataFrame | None = None) -> bool:
    """Exercise 3.2: 8 discordant pairs one way and 1 the other give p = 20/512;
    identical methods give p = 1; on real records, the library's ``paired_test``
    counts."""
    from steerlib.evaluation.stats import paired_test

    def made_up(oks, method):
        return pd.DataFrame(
            [
                {
                    "method": method,
                    "order": "x+y",
                    "prompt_id": i,
                    "split": "seen-2",
                    "ok": ok,
                }
                for i, ok in enumerate(oks)
            ]
        )

    a = [True] * 8 + [False] + [True] * 3 + [False] * 2
    b = [False] * 8 + [True] + [True] * 3 + [False] * 2
    cases = [
        (
            (
                pd.concat([made_up(a, "and"), made_up(b, "concat")]),
                "and",
                "concat",
            ),
            {"pairs": 14, "a_only": 8, "b_only": 1, "p_value": 20 / 512},
        ),
        (
            (
                pd.concat([made_up(a, "and"), made_up(a, "concat")]),
                "and",
                "concat",
            ),
            {"pairs": 14, "a_only": 0, "b_only": 0, "p_value": 1.0},
        ),
    ]
    if records is not None:
        for _, r in paired_test(records, "and", "concat").iterrows():
            part = records[records["split"] == r["split"]]
            cases.append(
                (
                    (part, "and", "concat"),
                    {
                        "pairs": int(r["n"]),
                        "a_only": int(r["a_only"]),
                        "b_only": int(r["b_only"]),
                        "p_value": float(r["p"]),
                    },
                )
            )
    return st.book.check("mcnemar", fn, cases)
