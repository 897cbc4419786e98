"""Chapter 2 exercises: order variance by hand, and why the conflict rule
excludes a pair."""

from __future__ import annotations

import pandas as pd
from steerlib.tasks import behaviors as B


def order_accuracies(records: pd.DataFrame, method: str) -> pd.DataFrame:
    """Accuracy of each ordering of each combination for ``method`` (share of
    its prompts whose answer passed every behavior)."""
    mine = records[records["method"] == method]
    return (
        mine.groupby(["combo", "order"], as_index=False)["ok"]
        .mean()
        .rename(columns={"ok": "acc"})
    )


def order_variance(records: pd.DataFrame, method: str) -> float:
    """The paper's order variance in percent: per combination, best ordering's
    accuracy minus worst ordering's, averaged over combinations."""
    per_combo = order_accuracies(records, method).groupby("combo")["acc"]
    return 100 * (per_combo.max() - per_combo.min()).mean()


def excluded_with_reason() -> list[tuple[str, str, str]]:
    """Every (length, sentences) pair the conflict rule excludes, with the bound
    it breaks."""
    out = []
    for length, sentences in B.EXCLUDED_PAIRS:
        lo, hi = B.LENGTH_RANGES[length]
        n = B.SENTENCE_COUNTS[sentences]
        if lo / n > B.MAX_WORDS_PER_SENTENCE:
            most = B.MAX_WORDS_PER_SENTENCE
            reason = (
                f"{lo}/{n} = {lo / n:g} > {most} words per sentence at least"
            )
        else:
            least = B.MIN_WORDS_PER_SENTENCE
            reason = (
                f"{hi}/{n} = {hi / n:g} < {least} words per sentence at most"
            )
        out.append((length, sentences, reason))
    return out


# -- checks (st.book.check) ----------------------------------------------------
def _made_up(
    accs: dict[tuple[str, str], list[bool]], method: str = "and"
) -> pd.DataFrame:
    rows = []
    for (combo, order), oks in accs.items():
        k = order.count("+") + 1
        rows += [
            {
                "method": method,
                "combo": combo,
                "order": order,
                "k": k,
                "split": f"seen-{k}",
                "prompt_id": i,
                "ok": ok,
            }
            for i, ok in enumerate(oks)
        ]
    return pd.DataFrame(rows)


def check_order_variance(fn, records: pd.DataFrame | None = None) -> bool:
    """Exercise 2.1: orderings at 100/50/0% (gap 100) and 50/50% (gap 0) average
    to 50; on real records, each split's number is the library's ``st.metrics``
    order variance."""
    import steerlib as st

    made_up = _made_up(
        {
            ("a+b+c", "a+b+c"): [True, True],
            ("a+b+c", "b+a+c"): [True, False],
            ("a+b+c", "c+b+a"): [False, False],
            ("d+e", "d+e"): [True, False],
            ("d+e", "e+d"): [False, True],
        }
    )
    cases = [((made_up, "and"), 50.0)]
    if records is not None:
        for _, part in records[records["method"] == "and"].groupby("split"):
            cases.append(
                ((part, "and"), float(st.metrics(part)["order_var"].iloc[0]))
            )
    return st.book.check("order_variance", fn, cases)


def check_excluded_with_reason(fn) -> bool:
    """Exercise 2.2: the four excluded pairs, each broken by the
    words-per-sentence maximum."""
    import steerlib as st

    def right(found):
        return [(a, b) for a, b, _ in found] == [
            ("words_50_70", "sentences_1"),
            ("words_70_90", "sentences_1"),
            ("words_90_120", "sentences_1"),
            ("words_90_120", "sentences_2"),
        ] and all(
            str(B.MAX_WORDS_PER_SENTENCE) in reason for *_, reason in found
        )

    return st.book.check("excluded_with_reason", fn, [((), right)])
