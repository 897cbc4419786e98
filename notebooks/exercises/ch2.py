"""Chapter 2 exercises: order variance by hand, and why the conflict rule excludes a pair."""
from __future__ import annotations

import pandas as pd

from steerlib.tasks import behaviors as B


def order_accuracies(records: pd.DataFrame, method: str) -> pd.DataFrame:
    """Accuracy of each ordering of each combination for ``method`` (share of its prompts
    whose answer passed every behavior)."""
    mine = records[records["method"] == method]
    return mine.groupby(["combo", "order"], as_index=False)["ok"].mean().rename(columns={"ok": "acc"})


def order_variance(records: pd.DataFrame, method: str) -> float:
    """The paper's order variance in percent: per combination, best ordering's accuracy
    minus worst ordering's, averaged over combinations."""
    per_combo = order_accuracies(records, method).groupby("combo")["acc"]
    return 100 * (per_combo.max() - per_combo.min()).mean()


def excluded_with_reason() -> list[tuple[str, str, str]]:
    """Every (length, sentences) pair the conflict rule excludes, with the bound it breaks."""
    out = []
    for length, sentences in B.EXCLUDED_PAIRS:
        lo, hi = B.LENGTH_RANGES[length]
        n = B.SENTENCE_COUNTS[sentences]
        if lo / n > B.MAX_WORDS_PER_SENTENCE:
            reason = f"{lo}/{n} = {lo / n:g} > {B.MAX_WORDS_PER_SENTENCE} words per sentence at least"
        else:
            reason = f"{hi}/{n} = {hi / n:g} < {B.MIN_WORDS_PER_SENTENCE} words per sentence at most"
        out.append((length, sentences, reason))
    return out
