"""Statistics over records: the paper's metrics, intervals and paired tests.

Metrics (paper): a generation is correct when it satisfies *all* behaviors of its
combination. Mean accuracy averages over all k! orderings of the tokens; best accuracy
takes each combination's best ordering; order variance is, per combination, the largest
gap between the accuracies of two orderings, averaged over combinations.

Intervals and tests (ours), all from scipy: 95% Wilson intervals on pooled generations
(``scipy.stats.binomtest(...).proportion_ci``), percentile bootstraps
(``scipy.stats.bootstrap``) over combinations or prompts, and exact McNemar tests on
paired generations (``scipy.stats.binomtest`` on the discordant pairs).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import DegenerateDataWarning, binomtest, bootstrap

from steerlib.evaluation.records import unique_records

CONFIDENCE = 0.95
"""The level of every interval steerlib reports."""


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval for a proportion k/n (NaN, NaN for n = 0).

    >>> [round(x, 3) for x in wilson(8, 16)]
    [0.28, 0.72]
    """
    if n == 0:
        return (float("nan"), float("nan"))
    ci = binomtest(k, n).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return (float(ci.low), float(ci.high))


def bootstrap_ci(
    data: Sequence,
    statistic: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """95% percentile bootstrap interval of ``statistic`` over resamples of ``data``.

    ``scipy.stats.bootstrap`` draws the resamples; resamples where the statistic is
    undefined (NaN, e.g. a ratio whose denominator was not drawn) are left out of the
    percentiles. With fewer than two observations there is nothing to resample: the
    interval is the statistic itself.

    >>> bootstrap_ci([1.0, 1.0, 1.0])
    (1.0, 1.0)
    """
    data = np.asarray(data)
    if len(data) < 2:
        value = float(statistic(data)) if len(data) else float("nan")
        return (value, value)
    with (
        warnings.catch_warnings()
    ):  # scipy warns of NaN resamples; they are left out below
        warnings.simplefilter("ignore", DegenerateDataWarning)
        res = bootstrap(
            (data,),
            statistic,
            n_resamples=n_boot,
            method="percentile",
            vectorized=False,
            confidence_level=CONFIDENCE,
            random_state=np.random.default_rng(seed),
        )
    dist = res.bootstrap_distribution
    dist = dist[np.isfinite(dist)]
    if not len(dist):
        return (float("nan"), float("nan"))
    tail = 100 * (1 - CONFIDENCE) / 2
    lo, hi = np.percentile(dist, [tail, 100 - tail])
    return (float(lo), float(hi))


def paired_test(
    records: pd.DataFrame, a: str, b: str, by: str = "split"
) -> pd.DataFrame:
    """Methods ``a`` and ``b`` on the same generations' prompts, per group of ``by``:
    exact McNemar test.

    Pairs are the records of both methods with the same ordering and prompt id. Only the
    discordant pairs carry information: ``a_only`` (a passed, b failed) and ``b_only``;
    under "no difference" each is Binomial(a_only + b_only, 1/2), and ``p`` is the
    two-sided exact p-value (McNemar's test without its normal approximation). Rates
    are in percent over the pairs.
    """
    key = [by, "order", "prompt_id"]
    both = records[records["method"] == a][key + ["ok"]].merge(
        records[records["method"] == b][key + ["ok"]], on=key, suffixes=("_a", "_b")
    )
    rows = []
    for group, g in both.groupby(by, sort=False):
        only_a = int((g["ok_a"] & ~g["ok_b"]).sum())
        only_b = int((g["ok_b"] & ~g["ok_a"]).sum())
        p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
        rows.append(
            {
                by: group,
                "n": len(g),
                f"{a} %": 100 * g["ok_a"].mean(),
                f"{b} %": 100 * g["ok_b"].mean(),
                "a_only": only_a,
                "b_only": only_b,
                "p": p,
            }
        )
    return pd.DataFrame(rows)


def per_ordering(records: pd.DataFrame) -> pd.DataFrame:
    """Accuracy of each (method, split, combination, ordering) over its prompts (each
    record once)."""
    return (
        unique_records(records)
        .groupby(["method", "split", "combo", "order"], as_index=False)
        .agg(acc=("ok", "mean"), n=("ok", "size"))
    )


METRIC_COLUMNS = [
    "method",
    "split",
    "mean_acc",
    "mean_lo",
    "mean_hi",
    "best_acc",
    "best_lo",
    "best_hi",
    "order_var",
    "ov_lo",
    "ov_hi",
    "combos",
    "n",
]
"""The columns of ``metrics``, in order (also those of a table with no records)."""


def metrics(records: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Paper metrics per method and split, in percent, with 95% intervals.

    Columns: mean accuracy (+ Wilson interval), best-ordering accuracy and order
    variance (+ bootstrap intervals over combinations), number of combinations and of
    generations.
    """
    records = unique_records(records)
    out = []
    for (method, split), g in per_ordering(records).groupby(["method", "split"]):
        combos = g.groupby("combo")["acc"].agg(["mean", "max", "min"])
        best = combos["max"].to_numpy()
        ov = (combos["max"] - combos["min"]).to_numpy()
        sub = records[(records["method"] == method) & (records["split"] == split)]
        lo, hi = wilson(int(sub["ok"].sum()), len(sub))
        best_lo, best_hi = bootstrap_ci(best, n_boot=n_boot, seed=seed)
        ov_lo, ov_hi = bootstrap_ci(ov, n_boot=n_boot, seed=seed)
        out.append(
            {
                "method": method,
                "split": split,
                "mean_acc": 100 * combos["mean"].mean(),
                "mean_lo": 100 * lo,
                "mean_hi": 100 * hi,
                "best_acc": 100 * best.mean(),
                "best_lo": 100 * best_lo,
                "best_hi": 100 * best_hi,
                "order_var": 100 * ov.mean(),
                "ov_lo": 100 * ov_lo,
                "ov_hi": 100 * ov_hi,
                "combos": len(combos),
                "n": len(sub),
            }
        )
    return pd.DataFrame(out, columns=METRIC_COLUMNS)


def pass_rates(
    records: pd.DataFrame, by: Sequence[str] = ("method", "split")
) -> pd.DataFrame:
    """Share of generations passing all their behaviors per ``by`` group, in %, with
    Wilson intervals (``rate``, ``lo``, ``hi``), the number of combinations and of
    generations."""
    rows = []
    for group, g in unique_records(records).groupby(list(by)):
        k, n = int(g["ok"].sum()), len(g)
        lo, hi = wilson(k, n)
        rows.append(
            {
                **dict(zip(by, group)),
                "rate": 100 * k / n,
                "lo": 100 * lo,
                "hi": 100 * hi,
                "combos": g["combo"].nunique(),
                "n": n,
            }
        )
    return pd.DataFrame(rows)


def behavior_pass_rates(
    records: pd.DataFrame, by: Sequence[str] = ("method",)
) -> pd.DataFrame:
    """Per ``by`` group (default: method) and behavior: the share of generations passing
    that behavior's verifier, whatever the other behaviors of the generation did."""
    rows = [
        {**{c: r[c] for c in by}, "behavior": name, "ok": ok}
        for _, r in unique_records(records).iterrows()
        for name, ok in r["verdicts"].items()
    ]
    return (
        pd.DataFrame(rows)
        .groupby([*by, "behavior"], as_index=False)
        .agg(pass_rate=("ok", "mean"), n=("ok", "size"))
    )


def interval_cells(
    table: pd.DataFrame,
    value: str,
    lo: str,
    hi: str,
    digits: int = 1,
    bound_digits: int = 0,
) -> list[str]:
    """One "value [lo, hi]" string per row (percentages by default, for markdown and
    notebooks).

    >>> table = pd.DataFrame({"v": [50.0], "a": [28.0], "b": [72.0]})
    >>> interval_cells(table, "v", "a", "b")
    ['50.0 [28, 72]']
    """
    return [
        f"{v:.{digits}f} [{a:.{bound_digits}f}, {b:.{bound_digits}f}]"
        for v, a, b in zip(table[value], table[lo], table[hi])
    ]


def format_table(
    table: pd.DataFrame,
    value: str = "mean_acc",
    lo: str = "mean_lo",
    hi: str = "mean_hi",
    index: str = "method",
    columns: str = "split",
) -> pd.DataFrame:
    """A methods x splits table of "value [lo, hi]" strings (for markdown)."""
    return table.assign(cell=interval_cells(table, value, lo, hi)).pivot(
        index=index, columns=columns, values="cell"
    )


def format_metrics(table: pd.DataFrame) -> pd.DataFrame:
    """The long metrics table as readable "value [lo, hi]" cells, one row per method
    and split."""
    return pd.DataFrame(
        {
            "method": table["method"],
            "split": table["split"],
            "mean acc": interval_cells(table, "mean_acc", "mean_lo", "mean_hi"),
            "best acc": interval_cells(table, "best_acc", "best_lo", "best_hi"),
            "order var": interval_cells(table, "order_var", "ov_lo", "ov_hi"),
            "combos": table["combos"],
            "n": table["n"],
        }
    )
