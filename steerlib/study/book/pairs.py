"""Chapter 2's tables and words: the capable pairs and the paper's protocol as the page
shows them (joint rates, efficiency, retention, paired tests, what training kept)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from steerlib.evaluation.stats import paired_test
from steerlib.study import capable
from steerlib.study.book.formats import (
    METHOD_NAMES,
    PAGE_METHODS,
    interval,
    p_phrase,
    p_text,
    split_label,
)

MIN_EXPECTED = 10.0
"""Efficiency (joint / product of the single rates) is shown only where that product is
at least this many percent: below it, a few chance passes make the ratio explode."""


def expected_joint(pairs: pd.DataFrame, singles: pd.DataFrame) -> pd.Series:
    """Per (method, split): the joint rate (%) two independent behaviors would reach,
    the mean over the pair generations of the product of the two single rates (same
    method)."""
    alone = (
        singles[singles["k"] == 1].groupby(["method", "combo"])["ok"].mean().to_dict()
    )
    out = {}
    for (method, split), g in pairs.groupby(["method", "split"]):
        m = capable.SINGLE_OF.get(method, method)
        prods = [
            alone.get((m, a), float("nan")) * alone.get((m, b), float("nan"))
            for a, b in (c.split("+") for c in g["combo"])
        ]
        out[(method, split)] = 100 * float(pd.Series(prods).mean())
    return pd.Series(out)


def capable_table(
    summary: pd.DataFrame,
    pairs: pd.DataFrame,
    singles: pd.DataFrame,
    order=PAGE_METHODS,
) -> pd.DataFrame:
    """Table 2.1: joint rate [Wilson] per method and split, and efficiency [bootstrap]
    where the single rates allow it (``MIN_EXPECTED``), else "–"."""
    expected = expected_joint(pairs, singles)
    rows = []
    for method in [m for m in order if m in set(summary["method"])]:
        row = {"method": METHOD_NAMES.get(method, method)}
        for _, r in (
            summary[summary["method"] == method].sort_values("split").iterrows()
        ):
            s = split_label(r["split"]).split()[0]
            e = expected.get((method, r["split"]), float("nan"))
            row[f"{s}: both pass (%)"] = interval(
                r["joint"], r["joint_lo"], r["joint_hi"]
            )
            row[f"{s}: independent (%)"] = "–" if pd.isna(e) else f"{e:.1f}"
            row[f"{s}: efficiency"] = (
                f"{r['efficiency']:.2f} [{r['eff_lo']:.2f}, {r['eff_hi']:.2f}]"
                if e >= MIN_EXPECTED
                else "–"
            )
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def capable_summary(pairs: pd.DataFrame, singles: pd.DataFrame, out) -> pd.DataFrame:
    """``capable.joint_table`` (joint rate and bootstrap efficiency per method and
    split), read from ``out/capable_pairs.csv`` when that file holds exactly these
    records' methods, splits and counts: the bootstrap takes minutes on a busy CPU, and
    the committed file is what it computed from the same records. Computed otherwise."""

    path = Path(out) / "capable_pairs.csv"
    counts = pairs.groupby(["method", "split"]).size()
    if path.is_file():
        saved = pd.read_csv(path)
        if (
            saved.set_index(["method", "split"])["n"]
            .sort_index()
            .equals(counts.sort_index())
        ):
            return saved
    return capable.joint_table(pairs, singles)


def tests_table(tests: pd.DataFrame) -> pd.DataFrame:
    """Paired McNemar tests as the page shows them: names, rates, discordant counts,
    p."""
    return pd.DataFrame(
        {
            "pairs": [split_label(s).split()[0] for s in tests["split"]],
            "comparison": [
                f"{METHOD_NAMES.get(a, a)} vs {METHOD_NAMES.get(b, b)}"
                for a, b in zip(tests["a"], tests["b"])
            ],
            "rates (%)": [
                f"{x:.1f} vs {y:.1f}" for x, y in zip(tests["a_rate"], tests["b_rate"])
            ],
            "only first / only second": [
                f"{x} / {y}" for x, y in zip(tests["a_only"], tests["b_only"])
            ],
            "n": tests["n"],
            "p": [p_text(p) for p in tests["p"]],
        }
    ).set_index("pairs")


def retention_table(
    retained: pd.DataFrame,
    order=PAGE_METHODS,
) -> pd.DataFrame:
    """Figure 2.1 as a table: per behavior (rows) and method (columns), "in pairs /
    alone" (%)."""
    cells = retained.assign(
        cell=[
            f"{a:.0f} / {b:.0f}" if pd.notna(b) else f"{a:.0f} / –"
            for a, b in zip(retained["in_pair"], retained["alone"])
        ],
        row=[
            f"{b} ({split_label(s).split()[0]})"
            for b, s in zip(retained["behavior"], retained["split"])
        ],
    )
    table = cells.pivot_table(
        index="row", columns="method", values="cell", aggfunc="first"
    )
    table = table[[m for m in order if m in table.columns]].rename(columns=METHOD_NAMES)
    table.index.name = "behavior (pairs)"
    return table.fillna("–")


def verdict(a_only: int, b_only: int, p: float, a: str, b: str) -> str:
    """Plain words for a paired test: which method is higher, or no significant
    difference."""
    if p >= 0.05:
        return f"{a} and {b} are not distinguishable ({p_phrase(p)})"
    return f"{a} {'beats' if a_only > b_only else 'trails'} {b} ({p_phrase(p)})"


def capable_answer(tests: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """Chapter 2's answer in plain words, from the capable pairs' paired tests
    (bullets)."""
    rate = summary.set_index(["method", "split"])["joint"]
    t = {(r["a"], r["b"], r["split"]): r for _, r in tests.iterrows()}
    lines = []
    for split in ("seen-2", "unseen-2"):
        if ("and", "concat", split) not in t:
            continue
        words = split_label(split)
        parts = [
            verdict(
                t[k]["a_only"],
                t[k]["b_only"],
                t[k]["p"],
                METHOD_NAMES[k[0]],
                METHOD_NAMES[k[1]],
            )
            for k in [
                ("and", "concat", split),
                ("and", "native_and", split),
                ("and", "instruction", split),
                ("hybrid", "instruction", split),
            ]
            if k in t
        ]
        lines.append(
            f"- On the {words}, the tokens with `<and>` satisfy both behaviors in "
            f"{rate[('and', split)]:.1f}% of the answers, the instructions in "
            f"{rate[('instruction', split)]:.1f}%: "
            + "; ".join(p.replace("<and>", "`<and>`") for p in parts)
            + "."
        )
    return lines


def protocol_tests(records: pd.DataFrame) -> pd.DataFrame:
    """The paper's protocol, paired: per split (rows) ``<and>`` against each method
    (columns), "<and> % vs other %, p" on the same prompts and orderings (exact
    McNemar)."""
    cells = {}
    for other in ("concat", "native_and", "instruction"):
        for _, r in paired_test(records, "and", other).iterrows():
            cells.setdefault(r["split"], {"n": r["n"]})[
                f"<and> vs {METHOD_NAMES[other]}"
            ] = f"{r['and %']:.1f} vs {r[other + ' %']:.1f}, {p_phrase(r['p'])}"
    return pd.DataFrame.from_dict(cells, orient="index").rename_axis("split")


def training_line(info: dict, name: str = "and") -> str:
    """One bullet on what validation-guided training did to a token: the score of the
    step kept against the score of its starting point (step 0)."""
    v = info.get("validation") or {}
    curve = dict(v.get("curve") or [])
    if not curve or 0 not in curve:
        return (
            f"- `<{name}>` was trained for a fixed number of steps, without validation."
        )
    start, best = 100 * curve[0], 100 * v["best_rate"]
    if v["best_step"] == 0:
        how = "so validation kept its initialisation: it is untrained"
    elif best <= start:
        how = (
            "no better than its starting point: "
            "training did not improve it on validation"
        )
    else:
        how = f"{best - start:.0f} points above its starting point"
    return (
        f"- `<{name}>` kept step {v['best_step']} of {v['stopped_at']}: {best:.0f}% of "
        "the validation questions "
        f"at that step against {start:.0f}% at step 0, {how}."
    )
