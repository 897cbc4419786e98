"""Helpers for the book's notebooks only: display defaults, prompt printing, text tables.

Nothing in the library imports this module; ``import steerlib`` does not load it (the
chapters do, as ``st.book``). What a chapter computes lives in the library; what is here
only shapes how a page shows it.
"""

from __future__ import annotations

import html
import importlib
import sys
import warnings
from types import ModuleType

import matplotlib as mpl
import pandas as pd

from steerlib.config import Preset, presets
from steerlib.model.backbone import Backbone
from steerlib.model.template import Rendered
from steerlib.paths import project_root


def setup() -> Preset:
    """Display defaults for a chapter; returns the preset of ``$STEERLIB_PRESET`` ("cpu" unless told).

    Quiets the widget warning (text progress bars are fine), keeps pandas tables to the
    page width, and sizes figures for the book's text column (about 7 inches at 110 dpi),
    so a figure is never shrunk until its labels are unreadable.
    """
    warnings.filterwarnings("ignore", message="IProgress not found")
    pd.set_option("display.width", 110)
    pd.set_option("display.max_colwidth", 80)
    mpl.rcParams.update(
        {
            "figure.dpi": 110,
            "figure.figsize": (7, 3.6),
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "xtick.labelsize": 9,
            "ytick.labelsize": 9,
            "legend.fontsize": 8,
        }
    )
    preset = presets.get()
    print(
        f"preset {preset.name!r}: model {preset.model or 'embedded SmolLM2-135M-Instruct'}"
    )
    return preset


def exercises(chapter: int) -> ModuleType:
    """The solutions of a chapter's exercises (``notebooks/exercises/ch<chapter>.py``), imported
    from the checkout, also in Colab's clone; each chapter's last cells show and run them."""
    folder = project_root() / "notebooks"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return importlib.import_module(f"exercises.ch{chapter}")


def summary(
    lines: list[str],
    preset: Preset,
    about: str = "the numbers say nothing about the method.",
) -> None:
    """Show a chapter's computed summary (markdown bullets). On the smoke preset's tiny random
    model, end it by saying what its numbers are worth (``about``)."""
    from IPython.display import Markdown, display

    if preset.model == "tiny":
        lines = [
            *lines,
            f"- This run used the tiny random model of the smoke preset: {about}",
        ]
    display(Markdown("\n".join(lines)))


def show(bb: Backbone, rendered: Rendered) -> str:
    """A rendered prompt as text, each steering slot written ``[<name> vector]`` instead of
    its placeholder id (the model reads the learned vector there, not any text)."""
    parts, last = [], 0
    for pos, name in rendered.slots:
        parts += [bb.tokenizer.decode(rendered.ids[last:pos]), f"[<{name}> vector]"]
        last = pos + 1
    return "".join(parts + [bb.tokenizer.decode(rendered.ids[last:])])


def text_table(table: pd.DataFrame):
    """A table of free text (answers) as HTML: line breaks kept as breaks, not shown as
    ``\\n``, long cells wrapped, and no index column."""
    from IPython.display import HTML

    cells = table.map(
        lambda v: html.escape(v).replace("\n", "<br>") if isinstance(v, str) else v
    )
    return HTML(cells.to_html(index=False, escape=False, classes="text-table"))


# -- the names and number formats every page shares ---------------------------------------
METHOD_NAMES = {
    "instruction": "instruction",
    "hybrid": "hybrid",
    "concat": "concatenation",
    "and": "<and>",
    "native_and": 'native " and"',
    "lora_dare": "LoRA-DARE",
    "lm_steer": "LM-Steer",
    "caa": "CAA",
    "plain": "plain",
    "token": "token",
}
"""One display name per method on every page (the records keep the short ids on the left)."""

HEADLINE_METHODS = ("instruction", "hybrid", "lora_dare", "concat", "and", "native_and")
"""The headline table's rows: the prompt-side methods of the paper, and the best baseline."""


def p_text(p: float) -> str:
    """A p-value as the pages print it: "< 0.001", else three decimals; "–" when there is none."""
    if p is None or pd.isna(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_phrase(p: float) -> str:
    """ "p < 0.001" or "p = 0.017": for prose."""
    text = p_text(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def interval(value: float, lo: float, hi: float, digits: int = 1) -> str:
    """``value [lo, hi]`` (percentages), or "–" for a missing value."""
    if value is None or pd.isna(value):
        return "–"
    return f"{value:.{digits}f} [{lo:.0f}, {hi:.0f}]"


def clip(text: str, limit: int = 200) -> str:
    """A generation cut to ``limit`` characters for a table cell: whitespace runs collapsed,
    a line repeated right after itself shown once with a count, "…" where it was cut."""
    lines, out = [line.strip() for line in str(text).splitlines() if line.strip()], []
    for line in lines:
        if out and out[-1][0] == line:
            out[-1][1] += 1
        else:
            out.append([line, 1])
    flat = " / ".join(line if n == 1 else f"{line} (x{n})" for line, n in out)
    flat = " ".join(flat.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _split_label(split: str) -> str:
    return {"seen-2": "seen pairs", "unseen-2": "unseen pairs"}.get(split, split)


def headline(records: pd.DataFrame, methods=HEADLINE_METHODS) -> pd.DataFrame:
    """The book's answer in one table: on the capable pairs, each method's joint pass rate
    [95% Wilson interval] per split, and the exact McNemar p-value of its paired
    difference from ``<and>`` (same prompts and orderings). ``records``: the capable-pairs
    study's 2-behavior records (``capable_records.jsonl``)."""
    from steerlib.evaluation.stats import paired_test, wilson

    records = records[(records["k"] == 2) & records["method"].isin(methods)]
    rows = []
    for method in [m for m in methods if m in set(records["method"])]:
        row = {"method": METHOD_NAMES.get(method, method)}
        for split, g in records[records["method"] == method].groupby("split"):
            k, n = int(g["ok"].sum()), len(g)
            lo, hi = wilson(k, n)
            row[f"{_split_label(split)} (%)"] = interval(
                100 * k / n, 100 * lo, 100 * hi
            )
            if method == "and":
                row[f"p vs <and>, {_split_label(split).split()[0]}"] = "–"
        if method != "and":
            for _, t in paired_test(records, method, "and").iterrows():
                row[f"p vs <and>, {_split_label(t['split']).split()[0]}"] = p_text(
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
        _split_label(s): (g["combo"].nunique(), len(g))
        for s, g in part.groupby("split")
    }


def caveats(out, tokens=None) -> list[str]:
    """What to keep in mind when reading any table of the book, computed from the committed
    results in ``out`` and the shipped tokens' metadata (markdown bullets)."""
    from pathlib import Path

    from steerlib.evaluation.records import read_records
    from steerlib.model.tokens import SteeringTokens

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
            f"- **`<{n}>` was never trained.** Validation kept step 0, its initialisation (the mean "
            f"embedding of an instruction), so it is not a learned token; the plain model, unsteered, "
            f"already passes it on {100 * plain.get(n, float('nan')):.0f}% of the test prompts. It sits in "
            f"{len(inside)} of the {len(chosen)} capable pairs: there a token method passes the length by doing "
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
                f"{n} ({comparison.loc[n, 'self']:.0f}% vs {comparison.loc[n, 'instruction']:.0f}% "
                "by instruction)"
                for n in failed.index
            )
            + ": a token trained on the model's own answers under the instruction. The shipped tokens are "
            "rescued by other training targets (filtered, constructed, or with a cross-entropy term)."
        )
    lines.append(
        f"- **The target variant of each token was chosen on the test prompts** (chapter 1's comparison of "
        f"target variants, {int(single[single['method'] == 'plain'].groupby('combo').size().max())} prompts "
        "per behavior): every token rate, alone or composed, is optimistic by that choice."
    )
    at_cap = [n for n in names if val[n].get("best_step") == cap]
    lines.append(
        f"- **{len(at_cap)} of {len(names)} tokens kept the last allowed step ({cap})**: validation was still "
        f"improving, or flat, when the budget ended ({', '.join(at_cap)}); they might do better with more steps."
    )
    return lines


def headline_markdown(out) -> str:
    """``results/<preset>/headline.md``: the headline table with its caption, then the caveats."""
    from pathlib import Path

    from steerlib.evaluation.records import read_records

    out = Path(out)
    records = read_records(out / "capable_records.jsonl")
    counts = headline_counts(records)
    where = "; ".join(
        f"{split}: {p} pairs x 2 orders x {n // (2 * p)} prompts = {n} generations per method"
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
            f"Share of answers (%) that satisfy both behaviors of a capable pair [95% Wilson interval] ({where}); "
            "p: exact McNemar test of the method against `<and>` on the same prompts and orderings. "
            "Made by `steerlib.study.book.write_headline` from the committed records.",
            "",
            "Read it with these caveats:",
            "",
            *caveats(out),
            "",
        ]
    )


def write_headline(out) -> None:
    """Write ``headline.md`` next to the records it is computed from (``python -m steerlib.study.book``)."""
    from pathlib import Path

    from steerlib.storage import write_text

    write_text(Path(out) / "headline.md", headline_markdown(out))


def show_headline(out) -> None:
    """Display the headline table computed from ``out/capable_records.jsonl`` with its caption,
    or say that the capable-pairs study has not run yet (the smoke preset, before chapter 2)."""
    from pathlib import Path

    from IPython.display import Markdown, display

    from steerlib.evaluation.records import read_records

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
            f"Share of answers (%) that satisfy both behaviors [95% Wilson interval] ({counts}); "
            "p: exact McNemar test against `<and>` on the same prompts and orderings."
        )
    )


# -- chapter 2: the capable pairs and the paper's protocol, as the page shows them -----------
MIN_EXPECTED = 10.0
"""Efficiency (joint / product of the single rates) is shown only where that product is at
least this many percent: below it, a few chance passes make the ratio explode."""


def expected_joint(pairs: pd.DataFrame, singles: pd.DataFrame) -> pd.Series:
    """Per (method, split): the joint rate (%) two independent behaviors would reach, the mean
    over the pair generations of the product of the two single rates (same method)."""
    from steerlib.study.capable import SINGLE_OF

    alone = (
        singles[singles["k"] == 1].groupby(["method", "combo"])["ok"].mean().to_dict()
    )
    out = {}
    for (method, split), g in pairs.groupby(["method", "split"]):
        m = SINGLE_OF.get(method, method)
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
    order=(
        "instruction",
        "hybrid",
        "lora_dare",
        "concat",
        "and",
        "native_and",
        "lm_steer",
        "caa",
    ),
) -> pd.DataFrame:
    """Table 2.1: joint rate [Wilson] per method and split, and efficiency [bootstrap] where
    the single rates allow it (``MIN_EXPECTED``), else "–"."""
    expected = expected_joint(pairs, singles)
    rows = []
    for method in [m for m in order if m in set(summary["method"])]:
        row = {"method": METHOD_NAMES.get(method, method)}
        for _, r in (
            summary[summary["method"] == method].sort_values("split").iterrows()
        ):
            s = _split_label(r["split"]).split()[0]
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
    """``capable.joint_table`` (joint rate and bootstrap efficiency per method and split), read
    from ``out/capable_pairs.csv`` when that file holds exactly these records' methods,
    splits and counts: the bootstrap takes minutes on a busy CPU, and the committed file
    is what it computed from the same records. Computed otherwise."""
    from pathlib import Path

    from steerlib.study import capable

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
    """Paired McNemar tests as the page shows them: names, rates, discordant counts, p."""
    return pd.DataFrame(
        {
            "pairs": [_split_label(s).split()[0] for s in tests["split"]],
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
    order=(
        "instruction",
        "hybrid",
        "lora_dare",
        "concat",
        "and",
        "native_and",
        "lm_steer",
        "caa",
    ),
) -> pd.DataFrame:
    """Figure 2.1 as a table: per behavior (rows) and method (columns), "in pairs / alone" (%)."""
    cells = retained.assign(
        cell=[
            f"{a:.0f} / {b:.0f}" if pd.notna(b) else f"{a:.0f} / –"
            for a, b in zip(retained["in_pair"], retained["alone"])
        ],
        row=[
            f"{b} ({_split_label(s).split()[0]})"
            for b, s in zip(retained["behavior"], retained["split"])
        ],
    )
    table = cells.pivot_table(
        index="row", columns="method", values="cell", aggfunc="first"
    )
    table = table[[m for m in order if m in table.columns]].rename(columns=METHOD_NAMES)
    table.index.name = "behavior (pairs)"
    return table.fillna("–")


def answers_table(
    records: pd.DataFrame,
    order: str,
    prompt_ids=(0,),
    limit: int = 200,
    methods=(
        "instruction",
        "hybrid",
        "lora_dare",
        "concat",
        "and",
        "native_and",
        "lm_steer",
        "caa",
    ),
):
    """What each method wrote for one ordering of a pair: verdicts first, answers cut at
    ``limit`` characters (as HTML, so line breaks do not show as ``\\n``)."""
    shown = records[
        (records["order"] == order)
        & records["prompt_id"].isin(prompt_ids)
        & records["method"].isin(methods)
    ].copy()
    shown["rank"] = shown["method"].map({m: i for i, m in enumerate(methods)})
    shown = shown.sort_values(["prompt_id", "rank"])
    from IPython.display import Markdown, display

    for q in dict.fromkeys(shown["prompt"]):
        display(Markdown(f"Question: *{clip(q, 200)}*; ordering `{order}`"))
    return text_table(
        pd.DataFrame(
            {
                "method": [METHOD_NAMES.get(m, m) for m in shown["method"]],
                "verdicts": [
                    ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in d.items())
                    for d in shown["verdicts"]
                ],
                "answer (first 200 characters)": [
                    clip(t, limit) for t in shown["text"]
                ],
            }
        )
    )


def verdict(a_only: int, b_only: int, p: float, a: str, b: str) -> str:
    """Plain words for a paired test: which method is higher, or no significant difference."""
    if p >= 0.05:
        return f"{a} and {b} are not distinguishable ({p_phrase(p)})"
    return f"{a} {'beats' if a_only > b_only else 'trails'} {b} ({p_phrase(p)})"


def capable_answer(tests: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """Chapter 2's answer in plain words, from the capable pairs' paired tests (bullets)."""
    rate = summary.set_index(["method", "split"])["joint"]
    t = {(r["a"], r["b"], r["split"]): r for _, r in tests.iterrows()}
    lines = []
    for split in ("seen-2", "unseen-2"):
        if ("and", "concat", split) not in t:
            continue
        words = _split_label(split)
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
    """The paper's protocol, paired: per split (rows) ``<and>`` against each method (columns),
    "<and> % vs other %, p" on the same prompts and orderings (exact McNemar)."""
    from steerlib.evaluation.stats import paired_test

    cells = {}
    for other in ("concat", "native_and", "instruction"):
        for _, r in paired_test(records, "and", other).iterrows():
            cells.setdefault(r["split"], {"n": r["n"]})[
                f"<and> vs {METHOD_NAMES[other]}"
            ] = f"{r['and %']:.1f} vs {r[other + ' %']:.1f}, {p_phrase(r['p'])}"
    return pd.DataFrame.from_dict(cells, orient="index").rename_axis("split")


def training_line(info: dict, name: str = "and") -> str:
    """One bullet on what validation-guided training did to a token: the score of the step
    kept against the score of its starting point (step 0)."""
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
        how = "no better than its starting point: training did not improve it on validation"
    else:
        how = f"{best - start:.0f} points above its starting point"
    return (
        f"- `<{name}>` kept step {v['best_step']} of {v['stopped_at']}: {best:.0f}% of the validation questions "
        f"at that step against {start:.0f}% at step 0, {how}."
    )


def show_caveats(out) -> None:
    """The caveats of the committed run (``caveats``) as bullets, or nothing where the run's
    files are not there."""
    from IPython.display import Markdown, display

    lines = caveat_lines(out)
    if lines:
        display(Markdown("\n".join(lines)))


def caveat_lines(out) -> list[str]:
    """``caveats(out)``, or no line where the run's files are not there (the smoke preset)."""
    from pathlib import Path

    out = Path(out)
    needed = (
        "tokens.safetensors",
        "single_records.jsonl",
        "capable_records.jsonl",
        "targets_comparison.csv",
    )
    return caveats(out) if all((out / f).is_file() for f in needed) else []


# -- chapter 3: the ablations, one name per variant ---------------------------------------
INIT_NAMES = {
    "zero": "zero init",
    "word": '" and" init',
    "mean": "mean-of-tokens init",
    "random": "random init",
}


def variant_name(v) -> str:
    """One display name per ``<and>`` variant (``ablations.Variant``), whichever ablation lists it:
    the recipe is "zero init, λ 0.5, pairs" in all four."""
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
    from steerlib.study.ablations import settings

    return {(v.ablation, v.setting): variant_name(v) for v in settings()}


def ablation_table(
    table: pd.DataFrame, tests: pd.DataFrame, splits=("seen-2", "unseen-2")
) -> pd.DataFrame:
    """One row per ``<and>`` variant (each once, by ``variant_name``), for ``splits``: its rate
    [Wilson interval] and the paired p against the recipe on the same generations, and the
    minutes its ``<and>`` took to train. "–": the recipe itself, or no test on that split."""
    names = _names_by_setting()
    rows = {}
    for _, r in table[table["split"].isin(splits)].iterrows():
        name = names.get((r["ablation"], r["setting"]), r["setting"])
        row = rows.setdefault(name, {"variant": name})
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
            {"note": [f"no variant was tested on {', '.join(splits)} here"]}
        )
    out = pd.DataFrame(list(rows.values())).set_index("variant")
    cols = [
        c for s in splits for c in (f"{s} (%)", f"{s}: p vs recipe") if c in out.columns
    ]
    return out[cols + (["train (min)"] if "train (min)" in out.columns else [])].fillna(
        "–"
    )


def holm(ps) -> list[float]:
    """Holm's step-down adjustment of p-values (family-wise error across the comparisons)."""
    ps = list(ps)
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    adjusted, running = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        adjusted[i] = running
    return adjusted


def ablation_conclusion(tests: pd.DataFrame) -> list[str]:
    """Chapter 3's conclusion from its paired tests: each difference at p < 0.05 in words,
    then whether any survives a correction for the number of comparisons (bullets)."""
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
            f"- {name} {'beats' if t['a_only'] > t['b_only'] else 'falls below'} the recipe on "
            f"{t['split']}: {t['setting %']:.1f}% vs {t['recipe %']:.1f}% on {t['n']} paired answers "
            f"({p_phrase(t['p'])})."
        )
    adjusted = holm(tests["p"])
    survive = sum(a < 0.05 for a in adjusted)
    lines.append(
        f"- {len(tests) - len(lines)} of the {len(tests)} distinct comparisons show no difference at p < 0.05. "
        f"At that level about {0.05 * len(tests):.1f} would pass by chance alone; after Holm's correction for "
        f"all {len(tests)}, {survive if survive else 'none'} "
        f"{'survives' if survive == 1 else 'survive'} (smallest adjusted p: {p_text(min(adjusted))})."
    )
    recipe = tests.drop_duplicates("split").set_index("split")
    half = {
        split: 196 * (r["recipe %"] / 100 * (1 - r["recipe %"] / 100) / r["n"]) ** 0.5
        for split, r in recipe.iterrows()
    }
    lines.append(
        "- What these samples can resolve: a 95% interval of about "
        + ", ".join(
            f"±{h:.0f} points on {split} ({int(recipe.loc[split, 'n'])} answers)"
            for split, h in half.items()
        )
        + " around the recipe's rate; the paper's ablation effects are mostly a few points."
    )
    return lines


def paper_table(paper: pd.DataFrame) -> pd.DataFrame:
    """``ablations.beside_paper`` as the page shows it: one name per variant, differences in
    points with their interval, p as text, and "–" where the paper has no number."""
    names = _names_by_setting()
    shown = paper[paper["verdict"] != "no paper number"]
    return (
        pd.DataFrame(
            {
                "variant": [
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
        .drop_duplicates(["variant", "split"])
        .set_index("variant")
    )


# -- exercises ---------------------------------------------------------------------------
def _same(got, expected, tol: float = 1e-6) -> bool:
    """Equal up to float tolerance: numbers, strings, bools, sequences, dicts, pandas objects."""
    import math

    if isinstance(expected, (pd.DataFrame, pd.Series)):
        try:
            (
                pd.testing.assert_frame_equal
                if isinstance(expected, pd.DataFrame)
                else pd.testing.assert_series_equal
            )(got, expected, check_dtype=False, check_names=False, rtol=1e-5, atol=tol)
            return True
        except (AssertionError, TypeError):
            return False
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        return got == expected
    if isinstance(expected, (int, float)):
        return (
            isinstance(got, (int, float))
            and not isinstance(got, bool)
            and math.isclose(float(got), float(expected), rel_tol=1e-5, abs_tol=tol)
        )
    if isinstance(expected, dict):
        return (
            isinstance(got, dict)
            and got.keys() == expected.keys()
            and all(_same(got[k], v, tol) for k, v in expected.items())
        )
    if isinstance(expected, (list, tuple)):
        return (
            isinstance(got, (list, tuple))
            and len(got) == len(expected)
            and all(_same(g, e, tol) for g, e in zip(got, expected))
        )
    return got == expected


def _short(value, limit: int = 120) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check(name: str, fn, cases) -> bool:
    """Run a learner's ``fn`` on each case ``(args, expected)`` and say pass or fail, with the
    first case that failed; ``expected`` may be a predicate (a callable taking the result).
    A stub that still raises ``NotImplementedError`` is reported as not attempted. Returns
    True only when every case passed (``tests/test_exercises.py`` runs the solutions here)."""
    cases = list(cases)
    for i, (args, expected) in enumerate(cases, 1):
        try:
            got = fn(*args)
        except NotImplementedError:
            print(
                f"[not yet] {name}: the stub still raises NotImplementedError. Fill it in and rerun this cell."
            )
            return False
        except Exception as e:  # the learner's bug, shown in one line
            print(
                f"[FAIL] {name}, case {i} of {len(cases)}: raised {type(e).__name__}: {e}"
            )
            return False
        try:
            ok = bool(expected(got)) if callable(expected) else _same(got, expected)
        except Exception:  # a result of the wrong shape: a failed case, not a crash
            ok = False
        if not ok:
            shown = "" if callable(expected) else f", expected {_short(expected)}"
            print(f"[FAIL] {name}, case {i} of {len(cases)}: got {_short(got)}{shown}")
            return False
    print(f"[PASS] {name}: all {len(cases)} checks passed.")
    return True


if __name__ == "__main__":  # python -m steerlib.study.book [results folder]
    from steerlib.study.folders import results_dir

    write_headline(sys.argv[1] if len(sys.argv) > 1 else results_dir("cpu"))
