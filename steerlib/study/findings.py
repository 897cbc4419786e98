"""What each chapter of the book finds, in a few numbers read from a run's result files.

Each chapter opens with this box, so a reader has the answer before the method. The
numbers are computed here from the files the chapter itself reads further down
(``results/<preset>/``: records, tables, tokens), never written by hand, so the box and
the chapter cannot disagree; a preset whose run has not made those files yet (the smoke
preset, a fresh checkout of another preset) gets a box that says so.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd

from steerlib.paths import project_root
from steerlib.preset import Preset

TITLE = "What this chapter finds"


def _test(tests: pd.DataFrame, split: str, a: str, b: str) -> pd.Series:
    return tests[
        (tests["split"] == split) & (tests["a"] == a) & (tests["b"] == b)
    ].iloc[0]


def chapter1(out: Path, preset: Preset) -> list[str]:
    """Behavior tokens alone against the instructions they replace (18 behaviors)."""
    from steerlib.evaluation.records import read_records
    from steerlib.study.pipeline import token_label
    from steerlib.tasks import behaviors as B

    n = preset.eval.n_single
    single = read_records(out / "single_records.jsonl")
    single = single[(single["k"] == 1) & (single["prompt_id"] < n)]
    by_method = single.groupby(["method", "combo"])["ok"].mean()
    tokens = read_records(out / "targets_records.jsonl")
    token = pd.Series(
        {
            b: tokens[
                (tokens["method"] == f"token:{token_label(preset, b)}")
                & (tokens["combo"] == b)
                & (tokens["prompt_id"] < n)
            ]["ok"].mean()
            for b in B.names()
        }
    )
    comparison = pd.read_csv(out / "targets_comparison.csv").pivot(
        index="behavior", columns="method", values="pass_rate"
    )
    failed = comparison[
        (comparison["instruction"] >= 50)
        & (comparison["instruction"] - comparison["self"] >= 30)
    ].index
    works = [b for b in B.names() if token[b] >= 0.5]
    return [
        (
            f"Over the {len(token)} behaviors ({n} held-out questions each), a learned "
            f"token passes **{100 * token.mean():.1f}%** on average, the instruction "
            f"as text {100 * by_method['instruction'].mean():.1f}%, the unsteered "
            f"model {100 * by_method['plain'].mean():.1f}%."
        ),
        f"{len(works)} of {len(token)} tokens pass at least half the time: "
        + ", ".join(f"`<{b}>`" for b in works)
        + ".",
        f"The paper's recipe alone (self-distillation) fails at 135M for "
        f"{len(failed)} behaviors the instruction can do ("
        + ", ".join(failed)
        + "): the shipped tokens are trained on better targets, chosen per behavior.",
    ]


def chapter2(out: Path, preset: Preset) -> list[str]:
    """``<and>`` against concatenation and the instructions on the capable pairs."""
    from steerlib.study.book.formats import p_phrase

    rates = pd.read_csv(out / "capable_pairs.csv").set_index(["method", "split"])
    tests = pd.read_csv(out / "capable_tests.csv")
    lines = []
    for split, words in (("seen-2", "seen"), ("unseen-2", "unseen")):
        r = rates["joint"].xs(split, level="split")
        vs_concat = p_phrase(_test(tests, split, "and", "concat")["p"])
        vs_instructions = p_phrase(_test(tests, split, "and", "instruction")["p"])
        pairs = int(rates.loc[("and", split), "pairs"])
        lines.append(
            f"On the {pairs} capable {words} pairs, `<and>` satisfies both behaviors "
            f"in **{r['and']:.1f}%** of the answers, concatenation in "
            f"{r['concat']:.1f}% ({vs_concat}), "
            f"the instructions in {r['instruction']:.1f}% "
            f"({vs_instructions})."
        )
    lines.append(
        "At 135M `<and>` does not beat plain concatenation: the paper's `<and>` effect "
        "is not reproduced here."
        if all(
            _test(tests, s, "and", "concat")["p"] >= 0.05
            or rates.loc[("and", s), "joint"] < rates.loc[("concat", s), "joint"]
            for s in ("seen-2", "unseen-2")
        )
        else "`<and>` beats concatenation on at least one split (p < 0.05)."
    )
    return lines


def chapter3(out: Path, preset: Preset) -> list[str]:
    """The ablations of ``<and>``: the best setting against the recipe, and the
    instructions."""
    table = pd.read_csv(out / "ablations.csv")
    seen = table[(table["split"] == "seen-2") & (table["label"] != "concat")]
    recipe = seen[seen["label"] == "and"].iloc[0]
    best = seen.sort_values("mean_acc", ascending=False).iloc[0]
    rates = pd.read_csv(out / "capable_pairs.csv").set_index(["method", "split"])
    inst = rates.loc[("instruction", "seen-2"), "joint"]
    concat = table[(table["label"] == "concat") & (table["split"] == "seen-2")].iloc[0]
    return [
        (
            f"On {int(recipe['n'])} seen-pair answers the recipe's `<and>` passes "
            f"**{recipe['mean_acc']:.1f}%** "
            f"[{recipe['mean_lo']:.0f}, {recipe['mean_hi']:.0f}], "
            f"concatenation {concat['mean_acc']:.1f}%."
        ),
        f"The best setting, {best['ablation']}: {best['setting']}, reaches "
        f"{best['mean_acc']:.1f}% [{best['mean_lo']:.0f}, {best['mean_hi']:.0f}]; the "
        f"instructions pass {inst:.1f}% on these pairs (chapter 2)"
        + (
            ": no setting of `<and>` comes near them."
            if best["mean_hi"] < inst
            else "."
        ),
    ]


def chapter4(out: Path, preset: Preset) -> list[str]:
    """Where the shipped tokens lie: near words, near each other, and ``<and>``."""
    from steerlib.evaluation import geometry
    from steerlib.model.backbone import load_backbone
    from steerlib.model.tokens import SteeringTokens
    from steerlib.tasks import behaviors as B

    bb = load_backbone(preset.model)
    tokens = SteeringTokens.load_file(out / "tokens.safetensors", bb)
    near = geometry.nearest_vocabulary(bb, tokens, k=8).set_index("token")
    behaviors = [n for n in tokens.names if n != "and"]
    langs = [n for n in behaviors if B.get(n).category == "language"]
    hits = [
        n
        for n in langs
        if any(n[:4] in w.lower() for w in near.loc[f"<{n}>", "nearest"])
    ]
    median = near.loc[[f"<{n}>" for n in behaviors], "top_cosine"].median()
    lines = [
        (
            f"The language's name is among the 8 nearest words of {len(hits)} of "
            f"{len(langs)} language tokens (paper: all of them)."
        ),
    ]
    if "and" in tokens:
        lines.append(
            f"`<and>`'s nearest word has a cosine of "
            f"**{near.loc['<and>', 'top_cosine']:.2f}** (paper: about 0.1), a behavior "
            f"token's {median:.2f}."
        )
    return lines


def chapter5(out: Path, preset: Preset) -> list[str]:
    """A behavior of one's own: its token alone and composed with ``<french>``."""
    from steerlib.evaluation.records import read_records

    records = read_records(out / "own_behavior_records.jsonl")
    alone = records[records["k"] == 1].groupby("method")["ok"]
    pair = records[records["k"] == 2].groupby("method")["ok"]
    rate, n = 100 * alone.mean(), alone.size()
    return [
        (
            "Asked to end with a question, the model does it in "
            f"{rate['instruction']:.1f}% of {n['instruction']} held-out answers, "
            f"unasked in {rate['plain']:.1f}%; the new token, trained within the cpu "
            f"budget, in **{rate['token']:.1f}%**."
        ),
        (
            f"With `<french>` through `<and>`: {100 * pair.mean()['and']:.1f}% of "
            f"{pair.size()['and']} answers are French and end with a question, against "
            f"{100 * pair.mean()['instruction']:.1f}% with the two instructions."
        ),
        (
            "A token learns only what its targets hold and its budget allows: the "
            "chapter ends with how to train longer."
        ),
    ]


def chapter6(out: Path, preset: Preset) -> list[str]:
    """Reading each token where it was trained: the position study's one test."""
    from steerlib.evaluation.records import read_records
    from steerlib.study import capable as C
    from steerlib.study import slots
    from steerlib.study.book.formats import p_phrase
    from steerlib.study.position import selection, testrun

    study = out / "position"
    filter_records = read_records(study / selection.FILTER_RECORDS)
    studied = [tuple(c.split("+")) for c in dict.fromkeys(filter_records["combo"])]
    kept = selection.filter_table(filter_records, studied)[1]
    search = pd.read_csv(study / "search.csv")
    won = selection.winner(search)
    capable = read_records(out / "capable_records.jsonl")
    today = capable[
        capable["method"].isin(["and", "concat", "instruction", "hybrid"])
        & capable["combo"].isin(["+".join(p) for p in kept])
    ]
    ours = [read_records(study / f"test_{m}.jsonl") for m in testrun.PACK_METHODS]
    test = pd.concat([today, *ours], ignore_index=True)
    tests = C.paired_tests(test, testrun.planned_comparisons(won))
    one = tests.iloc[0]
    inst = tests[(tests["a"] == one["a"]) & (tests["b"] == "instruction")].iloc[0]
    layout = won.split("@", 1)[1]
    langs = slots.slot_rates(capable[capable["k"] == 2]).set_index(
        ["method", "behavior"]
    )
    first, second = langs.loc[("and", "language (all)"), ["first", "second"]]
    return [
        (
            f"A language token composed with `<and>` passes {first:.0f}% of the time "
            f"right after the question, where stage 1 trained it, and {second:.0f}% in "
            "second place."
        ),
        (
            f"Read in the `{layout}` layout (no retraining), `<and>` passes both "
            f"behaviors in **{one['a_rate']:.1f}%** of {one['n']} answers on the "
            f"{one['split'].split('-')[0]} pairs the instructions can do, against "
            f"{one['b_rate']:.1f}% in the paper's layout ({p_phrase(one['p'])})."
        ),
        (
            f"The instructions still pass {inst['b_rate']:.1f}%: "
            f"{inst['b_rate'] - inst['a_rate']:.1f} points more."
        ),
    ]


def chapter7(out: Path, preset: Preset) -> list[str]:
    """The stage-2 study: the winner on validation and whether it ships, then per
    split the one test against concatenation and the distance to the instructions
    (``stage2.report.findings``, the sentences of ``results/cpu/stage2/``)."""
    from steerlib.study.stage2 import report

    search = pd.read_csv(out / "stage2" / "search.csv")
    tests = pd.read_csv(out / "stage2" / "test_tests.csv")
    return [
        line.removeprefix("- ") for line in report.findings(search, tests).split("\n")
    ]


CHAPTERS = {
    1: (
        chapter1,
        ("single_records.jsonl", "targets_records.jsonl", "targets_comparison.csv"),
    ),
    2: (chapter2, ("capable_pairs.csv", "capable_tests.csv")),
    3: (chapter3, ("ablations.csv", "capable_pairs.csv")),
    4: (chapter4, ("tokens.safetensors",)),
    5: (chapter5, ("own_behavior_records.jsonl",)),
    6: (chapter6, ("capable_records.jsonl", "position/search.csv")),
    7: (chapter7, ("stage2/search.csv", "stage2/test_tests.csv")),
}
"""Each chapter's findings and the result files they are read from."""

ONLY_RUN = {6: "cpu", 7: "cpu"}
"""Chapters that read one preset's committed study whatever the preset (chapters 6 and
7: the position and stage-2 studies exist for the embedded model, the cpu preset,
only)."""


def lines(chapter: int, preset: Preset, out: Path) -> list[str]:
    """The chapter's findings (markdown sentences), or one sentence saying that the run
    of ``out`` has not made the files they are read from."""
    find, needed = CHAPTERS[chapter]
    missing = [f for f in needed if not (Path(out) / f).is_file()]
    if missing:
        return [
            (
                f"The {preset.name!r} preset's run has no `{missing[0]}` yet, so there "
                "is nothing to report here; the chapter's last section computes its "
                "numbers from this run."
            )
        ]
    return find(Path(out), preset)


def _inline(text: str) -> str:
    """The markdown the findings use (`code`, **bold**) as HTML."""
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


class Box:
    """The findings as a box that renders the same in the book, Jupyter and Colab (HTML
    with the theme's admonition classes and its own border), and as text elsewhere."""

    def __init__(self, items: list[str], source: str):
        self.items, self.source = items, source

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{_inline(i)}</li>" for i in self.items)
        return (
            '<div class="admonition tip findings" style="border-left:4px solid #2a9d8f;'
            'padding:0.4em 1em;margin:0.5em 0">'
            f'<p class="admonition-title" style="font-weight:bold">{TITLE}</p>'
            f"<ul>{items}</ul>"
            f'<p style="font-size:0.85em">{_inline(self.source)}</p></div>'
        )

    def __repr__(self) -> str:
        return "\n".join([TITLE, *(f"- {i}" for i in self.items), self.source])


def box(chapter: int, preset: Preset) -> Box:
    """Chapter ``chapter``'s findings for ``preset``, read from
    ``results_dir(preset)``."""
    from steerlib.study.folders import results_dir

    out = results_dir(ONLY_RUN.get(chapter, preset.name))
    try:
        where = out.resolve().relative_to(project_root().resolve()).as_posix()
    except ValueError:  # $STEERLIB_RESULTS elsewhere: no machine path on the page
        where = f"results_dir({preset.name!r})"
    return Box(lines(chapter, preset, out), f"Computed from the files in `{where}/`.")
