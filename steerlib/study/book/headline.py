"""The book's headline: on the capable pairs, each method's joint pass rate against
``<and>``, with the caveats of the committed run; ``results/<preset>/headline.md`` and
its display in a chapter (``python -m steerlib.study.book`` rewrites the file)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from steerlib.evaluation.records import read_records
from steerlib.evaluation.stats import paired_test, wilson
from steerlib.model.tokens import SteeringTokens
from steerlib.storage import write_text
from steerlib.study.book.formats import METHOD_NAMES, interval, p_text, split_label

HEADLINE_METHODS = ("instruction", "hybrid", "lora_dare", "concat", "and", "native_and")
"""The headline table's rows: the prompt-side methods of the paper, and the best
baseline."""


def headline(records: pd.DataFrame, methods=HEADLINE_METHODS) -> pd.DataFrame:
    """The book's answer in one table: on the capable pairs, each method's joint pass
    rate [95% Wilson interval] per split, and the exact McNemar p-value of its paired
    difference from ``<and>`` (same prompts and orderings). ``records``: the
    capable-pairs study's 2-behavior records (``capable_records.jsonl``)."""
    records = records[(records["k"] == 2) & records["method"].isin(methods)]
    rows = []
    for method in [m for m in methods if m in set(records["method"])]:
        row = {"method": METHOD_NAMES.get(method, method)}
        for split, g in records[records["method"] == method].groupby("split"):
            k, n = int(g["ok"].sum()), len(g)
            lo, hi = wilson(k, n)
            row[f"{split_label(split)} (%)"] = interval(100 * k / n, 100 * lo, 100 * hi)
            if method == "and":
                row[f"p vs <and>, {split_label(split).split()[0]}"] = "–"
        if method != "and":
            for _, t in paired_test(records, method, "and").iterrows():
                row[f"p vs <and>, {split_label(t['split']).split()[0]}"] = p_text(
                    t["p"]
                )
        rows.append(row)
    table = pd.DataFrame(rows)
    order = ["method"] + [
        c
        for s in ("seen", "unseen")
        for c in table.columns
        if c.startswith(s) or c.endswith(f", {s}")
    ]
    return table[order]


def headline_counts(records: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """Per split: (pairs, generations per method) behind the headline table."""
    part = records[(records["k"] == 2) & (records["method"] == "and")]
    return {
        split_label(s): (g["combo"].nunique(), len(g)) for s, g in part.groupby("split")
    }


def caveats(out, tokens=None) -> list[str]:
    """What to keep in mind when reading any table of the book, computed from the
    committed results in ``out`` and the shipped tokens' metadata (markdown bullets)."""
    out = Path(out)
    tokens = (
        tokens
        if tokens is not None
        else SteeringTokens.load_file(out / "tokens.safetensors")
    )
    names = [n for n in tokens.names if n != "and"]
    val = {n: tokens.info[n].get("validation") or {} for n in names}
    cap = max(int(tokens.info[n]["config"]["steps"]) for n in names)
    lines = []
    single = read_records(out / "single_records.jsonl")
    plain = single[single["method"] == "plain"].groupby("combo")["ok"].mean()
    pairs = read_records(out / "capable_records.jsonl")
    pairs = pairs[(pairs["method"] == "and") & (pairs["k"] == 2)]
    chosen = sorted(set(pairs["combo"]))
    for n in [n for n in names if val[n].get("best_step") == 0]:
        inside = [c for c in chosen if n in c.split("+")]
        lines.append(
            f"- **`<{n}>` was never trained.** Validation kept step 0, its "
            "initialisation (the mean "
            "embedding of an instruction), so it is not a learned token; the plain "
            "model, unsteered, "
            f"already passes it on {100 * plain.get(n, float('nan')):.0f}% of the test "
            "prompts. It sits in "
            f"{len(inside)} of the {len(chosen)} capable pairs: there a token method "
            "passes the length by doing "
            "nothing, so those pairs test the other behavior more than composition."
        )
    comparison = pd.read_csv(out / "targets_comparison.csv").pivot(
        index="behavior", columns="method", values="pass_rate"
    )
    failed = comparison[
        (comparison["instruction"] >= 50)
        & (comparison["instruction"] - comparison["self"] >= 30)
    ]
    if len(failed):
        lines.append(
            "- **Pure self-distillation, the paper's recipe, fails at 135M** for "
            + ", ".join(
                f"{n} ({comparison.loc[n, 'self']:.0f}% vs "
                f"{comparison.loc[n, 'instruction']:.0f}% "
                "by instruction)"
                for n in failed.index
            )
            + ": a token trained on the model's own answers under the instruction. The "
            "shipped tokens are "
            "rescued by other training targets (filtered, constructed, or with a "
            "cross-entropy term)."
        )
    lines.append(
        "- **The target policy of each token was chosen on the test prompts** "
        "(chapter 1's comparison of "
        "target policies, "
        f"{int(single[single['method'] == 'plain'].groupby('combo').size().max())} "
        "prompts "
        "per behavior): every token rate, alone or composed, is optimistic by that "
        "choice."
    )
    at_cap = [n for n in names if val[n].get("best_step") == cap]
    lines.append(
        f"- **{len(at_cap)} of {len(names)} tokens kept the last allowed step "
        f"({cap})**: validation was still "
        f"improving, or flat, when the budget ended ({', '.join(at_cap)}); they might "
        "do better with more steps."
    )
    return lines


def caveat_lines(out) -> list[str]:
    """``caveats(out)``, or no line where the run's files are not there (the smoke
    preset)."""
    out = Path(out)
    needed = (
        "tokens.safetensors",
        "single_records.jsonl",
        "capable_records.jsonl",
        "targets_comparison.csv",
    )
    return caveats(out) if all((out / f).is_file() for f in needed) else []


def show_caveats(out) -> None:
    """The caveats of the committed run (``caveats``) as bullets, or nothing where the
    run's files are not there."""
    lines = caveat_lines(out)
    if lines:
        display(Markdown("\n".join(lines)))


def headline_markdown(out) -> str:
    """``results/<preset>/headline.md``: the headline table with its caption, then the
    caveats."""

    out = Path(out)
    records = read_records(out / "capable_records.jsonl")
    counts = headline_counts(records)
    where = "; ".join(
        f"{split}: {p} pairs x 2 orders x {n // (2 * p)} prompts = {n} generations per "
        "method"
        for split, (p, n) in counts.items()
    )
    table = headline(records)

    def md(cell) -> str:  # "<and>" would be read as an HTML tag
        return str(cell).replace("<and>", "`<and>`")

    return "\n".join(
        [
            "| " + " | ".join(md(c) for c in table.columns) + " |",
            "|---|" + "--:|" * (len(table.columns) - 1),
            *(
                "| " + " | ".join(md(v) for v in row) + " |"
                for row in table.itertuples(index=False)
            ),
            "",
            "Share of answers (%) that satisfy both behaviors of a capable pair [95% "
            f"Wilson interval] ({where}); "
            "p: exact McNemar test of the method against `<and>` on the same prompts "
            "and orderings. "
            "Made by `steerlib.study.book.write_headline` from the committed records.",
            "",
            "Read it with these caveats:",
            "",
            *caveats(out),
            "",
        ]
    )


def write_headline(out) -> None:
    """Write ``headline.md`` next to the records it is computed from (``python -m
    steerlib.study.book``)."""

    write_text(Path(out) / "headline.md", headline_markdown(out))


def show_headline(out) -> None:
    """Display the headline table computed from ``out/capable_records.jsonl`` with its
    caption, or say that the capable-pairs study has not run yet (the smoke preset,
    before chapter 2)."""

    path = Path(out) / "capable_records.jsonl"
    records = read_records(path) if path.is_file() else None
    if records is None or not len(records) or "and" not in set(records["method"]):
        print("No capable-pairs records yet: the study in this chapter makes them.")
        return
    display(headline(records).set_index("method"))
    counts = "; ".join(
        f"{split}: {p} pairs, {n} answers per method"
        for split, (p, n) in headline_counts(records).items()
    )
    display(
        Markdown(
            "Share of answers (%) that satisfy both behaviors [95% Wilson interval] "
            f"({counts}); "
            "p: exact McNemar test against `<and>` on the same prompts and orderings."
        )
    )
