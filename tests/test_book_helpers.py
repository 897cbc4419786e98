"""The book helpers' statistics in words: Holm's correction and the recipe's interval,
checked against values worked out by hand (not by the libraries the helpers call)."""

import math

import pandas as pd

from steerlib.study.book import ablation_conclusion


def _tests(ps, n=20, recipe=10.0):
    return pd.DataFrame(
        {
            "ablation": "init",
            "setting": [f"s{i}" for i in range(len(ps))],
            "split": "seen-2",
            "setting %": [20.0 + i for i in range(len(ps))],
            "recipe %": recipe,
            "a_only": 3,
            "b_only": 1,
            "n": n,
            "p": ps,
        }
    )


def test_holm_keeps_what_the_step_down_rule_keeps():
    # by hand: sorted p x (4, 3, 2, 1) = 0.040, 0.045, 0.040 -> running max 0.045, 0.5;
    # three below 0.05 (Bonferroni would keep one), smallest adjusted 0.040
    lines = ablation_conclusion(_tests([0.01, 0.015, 0.02, 0.5]))
    assert "after Holm's correction for all 4, 3 survive" in lines[-2]
    assert "smallest adjusted p: 0.040" in lines[-2]


def test_recipe_interval_is_wilson_not_the_normal_approximation():
    # 2 of 20: Wilson half-width by hand 14 points; the normal approximation gives 13
    z, p, n = 1.959964, 0.1, 20
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    assert round(100 * half) == 14 != round(100 * z * math.sqrt(p * (1 - p) / n))
    lines = ablation_conclusion(_tests([0.3, 0.6]))
    assert "±14 points on seen-2 (20 answers)" in lines[-1]
