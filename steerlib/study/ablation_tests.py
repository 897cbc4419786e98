"""The ablations' statistics: each setting against its ablation's recipe on the same
generations (exact McNemar), and the paper's differences beside ours with a verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd

from steerlib.evaluation.stats import paired_test
from steerlib.study.ablations import RECIPE

PAPER_UNSEEN = {
    "no_and": {"concatenation": 49.7, "<and>": 69.1},
    "init": {
        "zero, without L_orth": 66.9,
        "zero, with L_orth": 69.1,
        "word, without L_orth": 55.2,
        "word, with L_orth": 70.8,
        "mean, without L_orth": 58.4,
        "mean, with L_orth": 64.4,
    },
    "lambda": {
        "lambda=0.0": 67.6,
        "lambda=0.25": 65.0,
        "lambda=0.5": 69.1,
        "lambda=1.0": 63.9,
    },
}
"""The paper's ablation table (Qwen3-4B, 2-behavior unseen mean accuracy, %; METHOD.md),
by ablation and setting. It has no random init and no number for training on 2+3."""

TEST_COLUMNS = [
    "ablation",
    "setting",
    "recipe",
    "split",
    "n",
    "setting %",
    "recipe %",
    "a_only",
    "b_only",
    "p",
]
"""The columns of ``paired_vs_recipe``, in order, also when no setting has a recipe to
be tested against."""


def paired_vs_recipe(table: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Every setting of ``table`` (``run_ablations``) against its ablation's recipe
    (``RECIPE``): exact McNemar tests (``evaluate.paired_test``) per split on the
    prompt-orderings both were generated for, from ``records`` (the protocol's file)."""
    labels = table.drop_duplicates(["ablation", "setting"]).set_index(
        ["ablation", "setting"]
    )["label"]
    rows = []
    for (ablation, setting), name in labels.items():
        base = labels.get((ablation, RECIPE[ablation]))
        if base is None or setting == RECIPE[ablation]:
            continue
        tests = paired_test(records[records["method"].isin([name, base])], name, base)
        rows.append(
            tests.rename(
                columns={f"{name} %": "setting %", f"{base} %": "recipe %"}
            ).assign(ablation=ablation, setting=setting, recipe=RECIPE[ablation])
        )
    if not rows:
        return pd.DataFrame(columns=TEST_COLUMNS)
    return pd.concat(rows, ignore_index=True)[TEST_COLUMNS]


def beside_paper(tests: pd.DataFrame) -> pd.DataFrame:
    """Each setting's paired difference from the recipe (``paired_vs_recipe``) beside
    the paper's (``PAPER_UNSEEN``), per split.

    ``diff`` is setting minus recipe in points on the paired generations, with a 95%
    Wald interval for a paired difference of proportions, sqrt(b + c - (b - c)^2 / n) /
    n for the discordant counts b, c. The verdict asks whether the paper's difference is
    compatible with ours: "agrees" (it lies inside our interval and ours is significant,
    p < 0.05, in the same direction), "compatible" (inside our interval, ours not
    significant: this n cannot tell the two apart), "differs" (outside our interval), or
    "no paper number". The paper's numbers are for unseen pairs on a 4B model, so the
    seen rows compare another split and every row another model: a guide, not a
    replication test.
    """
    rows = []
    for _, r in tests.iterrows():
        b, c, n = r["a_only"], r["b_only"], r["n"]
        diff = 100 * (b - c) / n
        half = 1.96 * 100 * np.sqrt(max(b + c - (b - c) ** 2 / n, 0.0)) / n
        numbers = PAPER_UNSEEN.get(r["ablation"], {})
        paper_s, paper_r = numbers.get(r["setting"]), numbers.get(r["recipe"])
        paper = None if paper_s is None or paper_r is None else paper_s - paper_r
        if paper is None:
            verdict = "no paper number"
        elif not diff - half <= paper <= diff + half:
            verdict = "differs"
        elif r["p"] < 0.05 and np.sign(diff) == np.sign(paper):
            verdict = "agrees"
        else:
            verdict = "compatible"
        rows.append(
            {
                "ablation": r["ablation"],
                "setting": r["setting"],
                "split": r["split"],
                "n": n,
                "diff": diff,
                "lo": diff - half,
                "hi": diff + half,
                "p": r["p"],
                "paper diff": paper,
                "verdict": verdict,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "ablation",
            "setting",
            "split",
            "n",
            "diff",
            "lo",
            "hi",
            "p",
            "paper diff",
            "verdict",
        ],
    )
