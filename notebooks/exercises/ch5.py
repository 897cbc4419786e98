"""Chapter 5 exercises: a second behavior of your own, and a rival in the same
category."""

from __future__ import annotations

import pandas as pd
import steerlib as st
from steerlib.tasks import behaviors as B

from .ch1 import mentions_a_number


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


# -- checks (st.book.check) ----------------------------------------------------
def check_number_compliance(
    fn, sm: st.SteeredModel, questions, max_new_tokens: int = 8
) -> bool:
    """Exercise 5.1: plain answers are the model's own, every verdict is the
    verifier's, and the registry is left as it was."""
    before = B.names()

    def right(table):
        return (
            list(table["method"])
            == ["plain"] * len(questions) + ["instruction"] * len(questions)
            and list(table[table["method"] == "plain"]["text"])
            == sm.generate(list(questions), max_new_tokens=max_new_tokens)
            and list(table["ok"])
            == [mentions_a_number(t) for t in table["text"]]
            and B.names() == before
        )

    return st.book.check(
        "number_compliance",
        fn,
        [((sm, list(questions), max_new_tokens), right)],
    )


def check_rival_pairs(fn) -> bool:
    """Exercise 5.2: the solution's answer for the registry as it is now, which
    stays unchanged."""
    before = B.names()
    expected = rival_pairs()
    return st.book.check(
        "rival_pairs",
        fn,
        [((), lambda got: got == expected and B.names() == before)],
    )


def check_with_and_or_not(
    fn, sm: st.SteeredModel, questions, max_new_tokens: int = 8
) -> bool:
    """Exercise 5.3: each form's answers are the model's for that token string,
    with every verdict and "all" right."""
    names = ("french", "ends_with_question")

    def right(table):
        texts = {
            form: sm.generate(
                [f"{q} {tags}" for q in questions],
                max_new_tokens=max_new_tokens,
            )
            for form, tags in (
                ("<and>", "<french><and><ends_with_question>"),
                ("concat", "<french><ends_with_question>"),
            )
        }
        return (
            list(table["form"])
            == ["<and>"] * len(questions) + ["concat"] * len(questions)
            and all(
                list(table[table["form"] == f]["text"]) == t
                for f, t in texts.items()
            )
            and all(
                r[n] == B.get(n).verify(r["text"])
                for _, r in table.iterrows()
                for n in names
            )
            and all(
                r["all"] == all(r[n] for n in names)
                for _, r in table.iterrows()
            )
        )

    return st.book.check(
        "with_and_or_not",
        fn,
        [((sm, list(questions), names, max_new_tokens), right)],
    )
