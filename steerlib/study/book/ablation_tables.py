"""Chapter 3's tables and conclusion: the ``<and>`` ablations, one display name per
ablation setting, their paired tests against the recipe, and the paper beside them."""

from __future__ import annotations

import pandas as pd
from statsmodels.stats.multitest import multipletests

from steerlib.evaluation.stats import wilson
from steerlib.study.ablations import settings
from steerlib.study.book.formats import interval, p_phrase, p_text

INIT_NAMES = {
    "zero": "zero init",
    "word": '" and" init',
    "mean": "mean-of-tokens init",
    "random": "random init",
}


def setting_name(v) -> str:
    """One display name per ``<and>`` setting (``ablations.Setting``), whichever
    ablation lists it: the recipe is "zero init, λ 0.5, pairs" in all four."""
    if v.method == "concat":
        return "no <and> (concatenation)"
    name = f"{INIT_NAMES.get(str(v.init), str(v.init))}, λ {v.orth_weight:g}"
    name += ", pairs + triples" if str(v.combos) == "2+3" else ", pairs"
    return name + (
        " (recipe)"
        if (str(v.init), v.orth_weight, str(v.combos)) == ("zero", 0.5, "2")
        else ""
    )


def _names_by_setting() -> dict[tuple[str, str], str]:
    return {(v.ablation, v.setting): setting_name(v) for v in settings()}


def ablation_table(
    table: pd.DataFrame, tests: pd.DataFrame, splits=("seen-2", "unseen-2")
) -> pd.DataFrame:
    """One row per ``<and>`` setting (each once, by ``setting_name``), for ``splits``:
    its rate [Wilson interval] and the paired p against the recipe on the same
    generations, and the minutes its ``<and>`` took to train. "–": the recipe itself,
    or no test on that split."""
    names = _names_by_setting()
    rows = {}
    for _, r in table[table["split"].isin(splits)].iterrows():
        name = names.get((r["ablation"], r["setting"]), r["setting"])
        row = rows.setdefault(name, {"setting": name})
        row[f"{r['split']} (%)"] = interval(r["mean_acc"], r["mean_lo"], r["mean_hi"])
        row[f"{r['split']}: p vs recipe"] = "–"
        if pd.notna(r.get("train_s")):
            row["train (min)"] = f"{r['train_s'] / 60:.0f}"
    for _, t in tests[tests["split"].isin(splits)].iterrows():
        name = names.get((t["ablation"], t["setting"]), t["setting"])
        if name in rows:
            rows[name][f"{t['split']}: p vs recipe"] = p_text(t["p"])
    if not rows:
        return pd.DataFrame(
            {"note": [f"no setting was tested on {', '.join(splits)} here"]}
        )
    out = pd.DataFrame(list(rows.values())).set_index("setting")
    cols = [
        c for s in splits for c in (f"{s} (%)", f"{s}: p vs recipe") if c in out.columns
    ]
    return out[cols + (["train (min)"] if "train (min)" in out.columns else [])].fillna(
        "–"
    )


def ablation_conclusion(tests: pd.DataFrame) -> list[str]:
    """Chapter 3's conclusion from its paired tests: each difference at p < 0.05 in
    words, then whether any survives a correction for the number of comparisons
    (bullets)."""
    names = _names_by_setting()
    tests = tests.drop_duplicates(
        ["split", "setting %", "recipe %", "a_only", "b_only"]
    )  # λ 0 = zero without L_orth
    lines = []
    for _, t in tests[tests["p"] < 0.05].sort_values("p").iterrows():
        name = names.get((t["ablation"], t["setting"]), t["setting"]).replace(
            "<and>", "`<and>`"
        )
        lines.append(
            f"- {name} {'beats' if t['a_only'] > t['b_only'] else 'falls below'} the "
            "recipe on "
            f"{t['split']}: {t['setting %']:.1f}% vs {t['recipe %']:.1f}% on {t['n']} "
            "paired answers "
            f"({p_phrase(t['p'])})."
        )
    survives, adjusted, _, _ = multipletests(tests["p"], alpha=0.05, method="holm")
    survive = int(survives.sum())
    lines.append(
        f"- {len(tests) - len(lines)} of the {len(tests)} distinct comparisons show no "
        "difference at p < 0.05. "
        f"At that level about {0.05 * len(tests):.1f} would pass by chance alone; "
        "after Holm's correction for "
        f"all {len(tests)}, {survive if survive else 'none'} "
        f"{'survives' if survive == 1 else 'survive'} (smallest adjusted p: "
        f"{p_text(min(adjusted))})."
    )
    recipe = tests.drop_duplicates("split").set_index("split")
    half = {}  # half the width of the recipe rate's Wilson interval, in points
    for split, r in recipe.iterrows():
        lo, hi = wilson(round(r["recipe %"] * r["n"] / 100), int(r["n"]))
        half[split] = 50 * (hi - lo)
    lines.append(
        "- What these samples can resolve: a 95% Wilson interval of about "
        + ", ".join(
            f"±{h:.0f} points on {split} ({int(recipe.loc[split, 'n'])} answers)"
            for split, h in half.items()
        )
        + " around the recipe's rate; the paper's ablation effects are mostly a few "
        "points."
    )
    return lines


def paper_table(paper: pd.DataFrame) -> pd.DataFrame:
    """``ablation_tests.beside_paper`` as the page shows it: one name per setting,
    differences in points with their interval, p as text, and "–" where the paper has
    no number."""
    names = _names_by_setting()
    shown = paper[paper["verdict"] != "no paper number"]
    return (
        pd.DataFrame(
            {
                "setting": [
                    names.get((a, s), s)
                    for a, s in zip(shown["ablation"], shown["setting"])
                ],
                "split": shown["split"],
                "n": shown["n"],
                "here (points)": [
                    f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]"
                    for d, lo, hi in zip(shown["diff"], shown["lo"], shown["hi"])
                ],
                "p": [p_text(p) for p in shown["p"]],
                "paper (points)": [f"{d:+.1f}" for d in shown["paper diff"]],
                "verdict": shown["verdict"],
            }
        )
        .drop_duplicates(["setting", "split"])
        .set_index("setting")
    )
