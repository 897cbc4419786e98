"""Chapter 7 exercises: the exact McNemar p-value from the discordant counts,
and the plan's winner rule on a search table."""

from __future__ import annotations

import math

import pandas as pd


def mcnemar_p(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs: under the null
    each of the ``n = a_only + b_only`` discordant pairs goes either way with
    probability 1/2, so p is twice the binomial tail at the smaller count (at
    most 1)."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(a_only, b_only) + 1))
    return min(1.0, 2 * tail / 2**n)


def pick_winner(search: pd.DataFrame) -> str:
    """PLAN.md's W: among the candidates that ran (not the ``ref`` rows, a
    joint rate present), the highest joint rate, ties to the smaller absolute
    order gap."""
    ran = search[(search["family"] != "ref") & search["joint"].notna()]
    ranked = ran.assign(abs_gap=ran["gap"].abs()).sort_values(
        ["joint", "abs_gap"], ascending=[False, True], kind="stable"
    )
    return ranked.iloc[0]["candidate"]


# -- checks (st.book.check) ----------------------------------------------------
def check_mcnemar_p(fn, tests: pd.DataFrame | None = None) -> bool:
    """Exercise 7.1: worked out by hand (8 against 1: 2 * (1 + 9) / 2**9; 5
    against 0: 2 / 2**5; equal counts and no discordant pair: 1), then
    scipy's exact binomial test; on the chapter's tests, also the committed
    p-values (rounded to 4 decimals)."""
    import steerlib as st
    from scipy.stats import binomtest

    def scipy_p(a: int, b: int) -> float:
        return binomtest(a, a + b, 0.5).pvalue if a + b else 1.0

    cases = [
        ((8, 1), 20 / 512),
        ((1, 8), 20 / 512),
        ((5, 0), 2 / 32),
        ((3, 3), 1.0),
        ((0, 0), 1.0),
        ((30, 12), scipy_p(30, 12)),
    ]
    if tests is not None:
        for a, b, p in zip(tests["a_only"], tests["b_only"], tests["p"]):
            a, b, want = int(a), int(b), scipy_p(int(a), int(b))

            def right(got, want=want, p=p) -> bool:
                return (
                    math.isclose(got, want, rel_tol=1e-6)
                    and abs(got - p) <= 5e-5 + 1e-12
                )

            cases.append(((a, b), right))
    return st.book.check("mcnemar_p", fn, cases)


def _search(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    """A made-up search table: (candidate, family, joint %, order gap)."""
    return pd.DataFrame(rows, columns=["candidate", "family", "joint", "gap"])


def check_pick_winner(fn, search: pd.DataFrame | None = None) -> bool:
    """Exercise 7.2: made-up tables with the winner picked by hand (a reference
    row scoring higher, a candidate not run, a tie broken by the absolute gap
    where the signed gap would pick the other); on the chapter's search.csv,
    the library's ``stage2.report.winner``."""
    import steerlib as st
    from steerlib.study.stage2 import report

    nan = float("nan")
    plain = _search(
        [
            ("A", "E", 50.0, 0.5),
            ("B", "G", 57.0, 6.0),
            ("C", "F", nan, nan),
            ("today", "ref", 60.0, 0.0),
        ]
    )
    tie = _search(
        [
            ("A", "E", 58.0, -4.0),
            ("B", "G", 58.0, 2.0),
            ("C", "G", 55.0, 0.0),
            ("concat", "ref", 58.0, 0.0),
        ]
    )
    cases = [((plain,), "B"), ((tie,), "B")]
    if search is not None:
        cases.append(((search,), report.winner(search)))
    return st.book.check("pick_winner", fn, cases)
