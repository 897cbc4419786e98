"""Chapter 3 exercises: the orthogonality term of a vector, and a paired test of two methods."""
from __future__ import annotations

import pandas as pd
import torch
from scipy.stats import binomtest

import steerlib as st
from steerlib.tasks import behaviors as B
from steerlib.train.compose import orthogonality
from steerlib.model.tokens import random_init, text_init


def orthogonality_terms(bb: st.Backbone, tokens: st.SteeringTokens, seed: int = 0) -> pd.Series:
    """L_orth = sum over seen behaviors of cos(v, e_b)^2 for three candidate <and> vectors:
    the trained <and>, the vocabulary's " and", and a random vector of typical norm."""
    seen = torch.stack([tokens[n] for n in B.names() if B.get(n).seen])
    candidates = {"<and>": tokens["and"], "' and'": text_init(bb, " and"), "random": random_init(bb, seed)}
    return pd.Series({label: orthogonality(v.float(), seen.float()).item() for label, v in candidates.items()},
                     name="L_orth")


def mcnemar(records: pd.DataFrame, a: str, b: str) -> dict:
    """Exact McNemar test of methods ``a`` and ``b`` on the same (ordering, prompt) pairs.

    Only discordant pairs count: ``a_only`` where a passed and b failed, ``b_only`` the
    reverse. Under "no difference" each discordant pair is a fair coin, so the two-sided
    p-value is a binomial test of a_only out of a_only + b_only at 0.5.
    """
    ok = records[records["method"].isin([a, b])].pivot_table(index=["order", "prompt_id"], columns="method",
                                                               values="ok", aggfunc="first").dropna()
    ok = ok.astype(bool)
    a_only = int((ok[a] & ~ok[b]).sum())
    b_only = int((ok[b] & ~ok[a]).sum())
    p = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    return {"pairs": len(ok), "a_only": a_only, "b_only": b_only, "p_value": p}
