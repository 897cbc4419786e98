"""Every exercise solution of the book (notebooks/exercises/), run on the tiny model or
on records made up here, with answers worked out by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import steerlib as st
from steerlib.model.inits import text_init
from steerlib.tasks import behaviors as B

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "notebooks"))
from exercises import ch1, ch2, ch3, ch4, ch5, ch6, ch7

QUESTIONS = ["Why is the sky blue?", "How do bees make honey?"]
STAGE2 = Path(__file__).resolve().parent.parent / "results" / "cpu" / "stage2"


@pytest.fixture(scope="module")
def tiny_tokens(tiny):
    """Random behavior tokens and <and> for the tiny model (the exercises need vectors,
    not skill)."""
    tokens = st.SteeringTokens.for_backbone(tiny)
    g = torch.Generator().manual_seed(0)
    for name in [*B.names(), "and"]:
        tokens.set(name, torch.randn(tiny.hidden_size, generator=g) * 0.2)
    return tokens


# ---------------------------------------------------------------- chapter 1


@pytest.mark.parametrize(
    "text, expected",
    [
        ("A spider has 8 legs.", True),
        ("It is about 1,000 km away.", True),
        ("Pi is roughly 3.14.", True),
        ("(42)", True),
        ("Water is H2O.", False),
        ("The 1990s were loud.", False),
        ("three cats", False),
        ("", False),
    ],
)
def test_ch1_mentions_a_number(text, expected):
    assert ch1.mentions_a_number(text) is expected


def test_ch1_token_drift(tiny, tiny_tokens):
    tokens = tiny_tokens.copy()
    init = text_init(tiny, B.get("french").paraphrases[0])
    tokens.set(
        "french", 3 * init
    )  # same direction as its init: cosine 1, three times the norm
    drift = ch1.token_drift(tiny, tokens, "french")
    assert drift["cosine_to_init"] == pytest.approx(1.0, abs=1e-5)
    assert drift["norm"] == pytest.approx(3 * drift["init_norm"], rel=1e-5)
    assert drift["vocab_median_norm"] == pytest.approx(
        tiny.embeddings.float().norm(dim=1).median().item()
    )


def test_ch1_strength_sweep(tiny, tiny_tokens):
    table = ch1.strength_sweep(
        tiny, tiny_tokens, "french", [0.0, 1.0], QUESTIONS, max_new_tokens=5
    )
    assert list(table["scale"]) == [0.0, 0.0, 1.0, 1.0]
    direct = st.SteeredModel(tiny, tiny_tokens).generate(
        [f"{q} <french>" for q in QUESTIONS], max_new_tokens=5
    )
    assert (
        list(table[table["scale"] == 1.0]["text"]) == direct
    )  # scale 1 is the token itself
    zero = tiny_tokens.copy()
    zero.set("french", torch.zeros(tiny.hidden_size))
    assert list(table[table["scale"] == 0.0]["text"]) == st.SteeredModel(
        tiny, zero
    ).generate([f"{q} <french>" for q in QUESTIONS], max_new_tokens=5)
    assert list(table["ok"]) == [B.get("french").verify(t) for t in table["text"]]


# ---------------------------------------------------------------- chapter 2


def _records(
    accs: dict[tuple[str, str], list[bool]], method: str = "and"
) -> pd.DataFrame:
    rows = []
    for (combo, order), oks in accs.items():
        k = order.count("+") + 1
        rows += [
            {
                "method": method,
                "combo": combo,
                "order": order,
                "k": k,
                "split": f"seen-{k}",
                "prompt_id": i,
                "ok": ok,
            }
            for i, ok in enumerate(oks)
        ]
    return pd.DataFrame(rows)


def test_ch2_order_variance_by_hand():
    # combination 1: orderings at 100%, 50%, 0% -> gap 100; combination 2: both at 50%
    # -> gap 0; mean 50
    recs = _records(
        {
            ("a+b+c", "a+b+c"): [True, True],
            ("a+b+c", "b+a+c"): [True, False],
            ("a+b+c", "c+b+a"): [False, False],
            ("d+e", "d+e"): [True, False],
            ("d+e", "e+d"): [False, True],
        }
    )
    assert ch2.order_variance(recs, "and") == pytest.approx(50.0)
    accs = ch2.order_accuracies(recs, "and").set_index("order")["acc"]
    assert accs["b+a+c"] == 0.5 and accs["c+b+a"] == 0.0
    # the library's metric agrees (it pools by split: give both combinations one split)
    assert st.metrics(recs.assign(split="seen"))["order_var"].iloc[0] == pytest.approx(
        50.0
    )


def test_ch2_excluded_with_reason():
    # worked out from the ranges: 50/1, 70/1, 90/1 and 90/2 = 45 words per sentence at
    # least, all > 40; no range has hi / n < 4 (the smallest is 50 / 5 = 10)
    found = ch2.excluded_with_reason()
    assert [(a, b) for a, b, _ in found] == [
        ("words_50_70", "sentences_1"),
        ("words_70_90", "sentences_1"),
        ("words_90_120", "sentences_1"),
        ("words_90_120", "sentences_2"),
    ]
    assert all("> 40" in reason for *_, reason in found)
    assert "90/2 = 45" in found[-1][2]


# ---------------------------------------------------------------- chapter 3


def test_ch3_orthogonality_terms(tiny, tiny_tokens):
    tokens = tiny_tokens.copy()
    seen = torch.stack([tokens[n] for n in B.names() if B.get(n).seen])
    # a vector orthogonal to every seen token: L_orth 0
    q, _ = torch.linalg.qr(seen.T)
    v = torch.randn(tiny.hidden_size, generator=torch.Generator().manual_seed(1))
    tokens.set("and", v - q @ (q.T @ v))
    terms = ch3.orthogonality_terms(tiny, tokens)
    assert terms["<and>"] == pytest.approx(0.0, abs=1e-8)
    # " and": the sum of squared cosines, computed here directly
    word = text_init(tiny, " and")
    expected = sum(F.cosine_similarity(word, s, dim=0).item() ** 2 for s in seen)
    assert terms["' and'"] == pytest.approx(expected, rel=1e-4)
    assert set(terms.index) == {"<and>", "' and'", "random"}


def test_ch3_mcnemar():
    # 8 pairs only <and> passed, 1 only concat passed, 3 both, 2 neither
    a = [True] * 8 + [False] * 1 + [True] * 3 + [False] * 2
    b = [False] * 8 + [True] * 1 + [True] * 3 + [False] * 2
    recs = pd.concat(
        [_records({("x+y", "x+y"): a}, "and"), _records({("x+y", "x+y"): b}, "concat")]
    )
    result = ch3.mcnemar(recs, "and", "concat")
    assert (result["pairs"], result["a_only"], result["b_only"]) == (14, 8, 1)
    # two-sided exact binomial: 2 * P(X <= 1 | n = 9, p = 1/2) = 2 * (1 + 9) / 512
    assert result["p_value"] == pytest.approx(20 / 512)
    same = ch3.mcnemar(
        pd.concat(
            [
                _records({("x+y", "x+y"): a}, "and"),
                _records({("x+y", "x+y"): a}, "concat"),
            ]
        ),
        "and",
        "concat",
    )
    assert (same["a_only"], same["b_only"], same["p_value"]) == (0, 0, 1.0)


# ---------------------------------------------------------------- chapter 4


def test_ch4_vocabulary_rank(tiny):
    ids = tiny.tokenizer(" and", add_special_tokens=False)["input_ids"]
    vector = tiny.embeddings[ids[0]].detach().float()
    assert ch4.vocabulary_rank(tiny, vector, " and") == 1
    assert (
        ch4.vocabulary_rank(tiny, -vector, " and") == tiny.embeddings.shape[0]
    )  # the farthest of all


def test_ch4_top_cosine_vs_random(tiny):
    tokens = st.SteeringTokens.for_backbone(tiny)
    tokens.set(
        "copy", tiny.embeddings[100].detach()
    )  # a vocabulary embedding itself: top cosine 1
    table = ch4.top_cosine_vs_random(tiny, tokens)
    assert table.loc["<copy>", "top_cosine"] == pytest.approx(1.0, abs=1e-3)
    assert table.loc["<copy>", "random_top_cosine"] < 0.99


# ---------------------------------------------------------------- chapter 5


def test_ch5_number_compliance(tiny):
    sm = st.SteeredModel(tiny)
    table = ch5.number_compliance(sm, QUESTIONS, max_new_tokens=5)
    assert list(table["method"]) == ["plain", "plain", "instruction", "instruction"]
    assert list(table[table["method"] == "plain"]["text"]) == sm.generate(
        QUESTIONS, max_new_tokens=5
    )
    assert list(table["ok"]) == [ch1.mentions_a_number(t) for t in table["text"]]
    assert "mentions_a_number" not in B.names()  # the registry is left as it was


def test_ch5_rival_pairs():
    mine = B.Behavior(
        name="ends_with_question",
        category="ending",
        paraphrases=("End with a question.",),
        rule="ends with '?'",
        checker=lambda t: t.rstrip().endswith("?"),
    )
    with B.registered(mine, new_category=True):
        found = ch5.rival_pairs()
    # the 17 non-json built-ins; json is left out of combinations unless asked for
    assert found == {
        "same category": ["ends_with_question"],
        "composes with a rival": False,
        "pairs": 17,
        "unseen": True,
    }
    assert "ends_with_exclamation" not in B.names()
    assert ch5.ends_with_exclamation("Great!**") and not ch5.ends_with_exclamation(
        "Great."
    )


def test_ch5_with_and_or_not(tiny, tiny_tokens):
    mine = B.Behavior(
        name="ends_with_question",
        category="ending",
        paraphrases=("End with a question.",),
        rule="ends with '?'",
        checker=lambda t: t.rstrip().endswith("?"),
    )
    tokens = tiny_tokens.copy()
    tokens.set("ends_with_question", torch.ones(tiny.hidden_size) * 0.1)
    sm = st.SteeredModel(tiny, tokens)
    with B.registered(mine, new_category=True):
        table = ch5.with_and_or_not(sm, QUESTIONS, max_new_tokens=5)
    assert list(table["form"]) == ["<and>", "<and>", "concat", "concat"]
    assert list(table[table["form"] == "concat"]["text"]) == sm.generate(
        [f"{q} <french><ends_with_question>" for q in QUESTIONS], max_new_tokens=5
    )
    assert list(table[table["form"] == "<and>"]["text"]) == sm.generate(
        [f"{q} <french><and><ends_with_question>" for q in QUESTIONS], max_new_tokens=5
    )
    for _, r in table.iterrows():
        assert r["ends_with_question"] == r["text"].rstrip().endswith("?")
        assert r["all"] == (r["french"] and r["ends_with_question"])


# ---------------------------------------------------------------- chapter 6


def test_ch6_place_rates_by_hand():
    # french: first in 2 generations (both pass), second in 1 (fails); json the reverse
    recs = pd.DataFrame(
        [
            {"method": "and", "k": 2, "order": o, "verdicts": v}
            for o, v in [
                ("french+json", {"french": True, "json": False}),
                ("french+json", {"french": True, "json": True}),
                ("json+french", {"json": False, "french": False}),
            ]
        ]
        + [{"method": "concat", "k": 2, "order": "json+french", "verdicts": {}}]
    )
    table = ch6.place_rates(recs, "and")
    assert table.loc["french", "first"] == 100.0
    assert table.loc["french", "second"] == 0.0
    assert table.loc["json", "first"] == 0.0
    assert table.loc["json", "second"] == 50.0


def test_ch6_shared_positions_by_hand(tiny):
    # question tokens 0-2, slots at 3-5, two tokens after: the run counts as one
    slots = [(3, "french"), (4, "and"), (5, "json")]
    assert ch6.shared_positions(8, slots) == [0, 1, 2, 3, 3, 3, 4, 5]
    assert ch6.shared_positions(4, [(1, "french")]) == [0, 1, 2, 3]
    assert ch6.check_shared_positions(ch6.shared_positions, tiny)


# ---------------------------------------------------------------- chapter 7


@pytest.mark.parametrize(
    "a_only, b_only, expected",
    [
        # 2 * P(X <= 1), X ~ Bin(9, 1/2): 2 * (1 + 9) / 512, either way round
        (8, 1, 20 / 512),
        (1, 8, 20 / 512),
        # 2 * P(X <= 2), X ~ Bin(10, 1/2): 2 * (1 + 10 + 45) / 1024
        (8, 2, 112 / 1024),
        (4, 0, 2 / 16),
        (2, 2, 1.0),  # the tail at an equal split is over 1/2: p is capped at 1
        (0, 0, 1.0),
    ],
)
def test_ch7_mcnemar_p_by_hand(a_only, b_only, expected):
    assert ch7.mcnemar_p(a_only, b_only) == pytest.approx(expected)


def test_ch7_mcnemar_p_matches_the_committed_test():
    tests = pd.read_csv(STAGE2 / "test_tests.csv")
    for a, b, p in zip(tests["a_only"], tests["b_only"], tests["p"]):
        assert ch7.mcnemar_p(int(a), int(b)) == pytest.approx(p, abs=5e-5)


def test_ch7_pick_winner_by_hand():
    nan = float("nan")
    search = pd.DataFrame(
        [
            ("A", "E", 61.0, -3.0),  # tied on joint with B, larger absolute gap
            ("B", "G", 61.0, 1.0),
            ("C", "F", nan, nan),  # not run
            ("ref", "ref", 70.0, 0.0),  # a reference row never wins
        ],
        columns=["candidate", "family", "joint", "gap"],
    )
    assert ch7.pick_winner(search) == "B"
    assert ch7.pick_winner(search.assign(gap=[0.5, 1.0, nan, 0.0])) == "A"
    # the committed search: G2 has the highest selection rate (58.85%)
    assert ch7.pick_winner(pd.read_csv(STAGE2 / "search.csv")) == "G2"


# ---------------------------------------------------------------- the check cells


def _stub(*args, **kwargs):
    raise NotImplementedError


def _wrong(*args, **kwargs):
    return None


def test_checks_pass_the_solutions_and_fail_stubs(tiny, tiny_tokens, capsys):
    """Each chapter's check cell, run on its solution: pass; on the stub the page
    shows: not attempted; on a wrong answer: fail (the check is not a formality)."""
    sm = st.SteeredModel(tiny, tiny_tokens)
    checks = [
        (ch1.check_mentions_a_number, ch1.mentions_a_number, ()),
        (ch1.check_token_drift, ch1.token_drift, (tiny, tiny_tokens)),
        (
            ch1.check_strength_sweep,
            ch1.strength_sweep,
            (tiny, tiny_tokens, QUESTIONS, 4),
        ),
        (ch2.check_order_variance, ch2.order_variance, ()),
        (ch2.check_excluded_with_reason, ch2.excluded_with_reason, ()),
        (ch3.check_orthogonality_terms, ch3.orthogonality_terms, (tiny, tiny_tokens)),
        (ch3.check_mcnemar, ch3.mcnemar, ()),
        (ch4.check_vocabulary_rank, ch4.vocabulary_rank, (tiny,)),
        (ch4.check_top_cosine_vs_random, ch4.top_cosine_vs_random, (tiny, tiny_tokens)),
        (ch5.check_number_compliance, ch5.number_compliance, (sm, QUESTIONS, 4)),
        (ch5.check_rival_pairs, ch5.rival_pairs, ()),
        (ch6.check_place_rates, ch6.place_rates, ()),
        (ch6.check_shared_positions, ch6.shared_positions, (tiny,)),
        (ch7.check_mcnemar_p, ch7.mcnemar_p, ()),
        (ch7.check_pick_winner, ch7.pick_winner, ()),
    ]
    for check, solution, args in checks:
        assert check(solution, *args), check.__name__
        assert "[PASS]" in capsys.readouterr().out
        assert not check(_stub, *args)
        assert "[not yet]" in capsys.readouterr().out
        assert not check(_wrong, *args)
        assert "[FAIL]" in capsys.readouterr().out


def test_check_with_and_or_not(tiny, tiny_tokens, capsys):
    mine = B.Behavior(
        name="ends_with_question",
        category="ending",
        paraphrases=("End with a question.",),
        rule="ends with '?'",
        checker=lambda t: t.rstrip().endswith("?"),
    )
    tokens = tiny_tokens.copy()
    tokens.set("ends_with_question", torch.ones(tiny.hidden_size) * 0.1)
    sm = st.SteeredModel(tiny, tokens)
    with B.registered(mine, new_category=True):
        assert ch5.check_with_and_or_not(ch5.with_and_or_not, sm, QUESTIONS, 4)
        assert not ch5.check_with_and_or_not(_stub, sm, QUESTIONS, 4)


def test_checks_on_records(capsys):
    """The record-based checks also compare with the library on real-shaped records."""
    recs = _records(
        {("a+b+c", "a+b+c"): [True, False], ("a+b+c", "b+a+c"): [True, True]}
    )
    assert ch2.check_order_variance(ch2.order_variance, recs)
    pair = pd.concat(
        [
            _records({("x+y", "x+y"): [True, False, True]}, "and"),
            _records({("x+y", "x+y"): [False, False, True]}, "concat"),
        ]
    )
    assert ch3.check_mcnemar(ch3.mcnemar, pair)
    stage2_tests = pd.read_csv(STAGE2 / "test_tests.csv")
    assert ch7.check_mcnemar_p(ch7.mcnemar_p, stage2_tests)
    # a one-sided p (half the two-sided one) fails on the committed counts
    assert not ch7.check_mcnemar_p(
        lambda a, b: ch7.mcnemar_p(a, b) / 2 if a + b > 60 else ch7.mcnemar_p(a, b),
        stage2_tests,
    )
    search = pd.read_csv(STAGE2 / "search.csv")
    assert ch7.check_pick_winner(ch7.pick_winner, search)
    # the best row that comes first, ignoring the order gap, fails the made-up tie;
    # so does the smaller signed gap
    for keys, up in ((["joint"], [False]), (["joint", "gap"], [False, True])):
        assert not ch7.check_pick_winner(
            lambda s, keys=keys, up=up: (
                s[s["family"] != "ref"]
                .sort_values(keys, ascending=up, kind="stable")
                .iloc[0]["candidate"]
            ),
            search,
        )
    assert not ch3.check_mcnemar(
        lambda r, a, b: {**ch3.mcnemar(r, a, b), "p_value": 0.5}, pair
    )


def test_a_failed_check_shows_the_input_that_failed(capsys):
    """The learner sees which input broke their function, named as they named it."""
    assert not ch1.check_mentions_a_number(lambda answer: True)
    out = capsys.readouterr().out
    assert "[FAIL] mentions_a_number, case 5 of 8" in out
    assert "input: answer='Water is H2O.'" in out

    def raises(records, method):
        raise KeyError("verdicts")

    assert not ch6.check_place_rates(raises)
    out = capsys.readouterr().out
    assert "raised KeyError" in out
    assert "input: records=<a table of 6 rows: method, " in out
    assert "method='and'" in out
