"""The behavior registry: names, paraphrases, conflicts, splits and the composition
verdict."""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path

import pytest

from steerlib.tasks import behaviors as B

ROOT = Path(__file__).resolve().parent.parent

NAMES = [
    "french", "spanish", "italian", "portuguese", "german",
    "words_10_50", "words_50_70", "words_70_90", "words_90_120",
    "lower_case", "upper_case", "title_case",
    "sentences_1", "sentences_2", "sentences_3", "sentences_4", "sentences_5",
    "json",
]  # fmt: skip


def test_names_in_registry_order():
    """The order is part of the results: it orders each record's combination name and
    the combinations ``sample_combos`` draws, so a reordering would silently change
    both."""
    assert B.names() == NAMES


def _method_page_table() -> list[tuple[int, int | None]]:
    """Per row of book/method.md's behavior table: how many behaviors, and the position
    of the one held out of ``<and>`` training (None: none named)."""
    rows = []
    for line in (ROOT / "book" / "method.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if (
            line.startswith("|")
            and len(cells) == 3
            and cells[0] not in ("category", "---")
        ):
            members = [m.strip() for m in cells[1].split(",")]
            held = [i for i, m in enumerate(members) if m and m in cells[2]]
            rows.append((len(members), held[0] if held else None))
    return rows


def test_registry_matches_the_method_pages_table():
    """The categories, their sizes and the unseen behavior of each, as the book tells
    the reader (the paper's split): German, 70-90 words, title case and 3 sentences are
    held out."""
    categories = list(B.categories().values())
    documented = _method_page_table()
    assert [len(c) for c in categories] == [n for n, _ in documented]
    for members, (_, held) in zip(categories, documented):
        unseen = [i for i, name in enumerate(members) if not B.get(name).seen]
        if members != ["json"]:  # json is never in a training pair and decides no split
            assert unseen == ([held] if held is not None else []), members


def test_records():
    for name in NAMES:
        b = B.get(name)
        assert b.name == name
        assert b.rule and "\n" not in b.rule


@pytest.mark.parametrize("name", NAMES)
def test_ten_distinct_paraphrases(name):
    paraphrases = B.get(name).paraphrases
    assert isinstance(paraphrases, tuple)
    assert len(paraphrases) == 10
    assert len(set(paraphrases)) == 10
    assert all(p.strip() == p and p[-1] in ".:" for p in paraphrases)


@pytest.mark.parametrize("name", NAMES)
def test_paraphrases_state_the_exact_constraint(name):
    b = B.get(name)
    for p in b.paraphrases:
        if b.category == "language":
            assert name.capitalize() in p
        elif b.category == "length":
            lo, hi = B.LENGTH_RANGES[name]
            assert re.findall(r"\d+", p) == [str(lo), str(hi)] and "word" in p
        elif b.category == "sentences":
            n = B.SENTENCE_COUNTS[name]
            word = ("one", "two", "three", "four", "five")[n - 1]
            assert re.search(r"exactly|precisely", p)
            assert re.search(rf"\b({n}|{word}) sentences?\b", p)
            assert ("sentences" in p) == (n > 1)
        elif name == "json":
            assert "JSON" in p and '"answer"' in p


def test_instruction_is_first_paraphrase_or_random():
    b = B.get("french")
    assert b.instruction() == b.paraphrases[0]
    rng = random.Random(0)
    drawn = {b.instruction(rng) for _ in range(200)}
    assert drawn == set(b.paraphrases)
    jb = B.get("json")
    assert jb.instruction(random.Random(1)) == jb.instruction(random.Random(1))


def test_unknown_name_lists_known_ones():
    with pytest.raises(KeyError) as err:
        B.get("klingon")
    assert "klingon" in str(err.value)
    assert all(name in str(err.value) for name in NAMES)


def test_verify_delegates_to_the_checker():
    assert B.get("upper_case").verify("HELLO.")
    assert not B.get("upper_case").verify("Hello.")
    assert B.get("sentences_2").verify("One. Two.")


def test_behavior_is_frozen_and_hashable():
    b = B.get("french")
    with pytest.raises(AttributeError):
        b.name = "spanish"  # type: ignore[misc]
    assert len({B.get(n) for n in NAMES}) == 18


# ---------------------------------------------------------------- conflicts


def test_same_category_never_compatible():
    for members in B.categories().values():
        for a, b in itertools.product(members, repeat=2):
            assert not B.compatible(a, b)


def test_excluded_cross_pairs():
    assert B.EXCLUDED_PAIRS == (
        ("words_50_70", "sentences_1"),
        ("words_70_90", "sentences_1"),
        ("words_90_120", "sentences_1"),
        ("words_90_120", "sentences_2"),
    )
    for a, b in B.EXCLUDED_PAIRS:
        assert not B.compatible(a, b) and not B.compatible(b, a)
        assert f"({a}, {b})" in B.__doc__  # the module doc lists them


def test_other_cross_pairs_are_compatible_and_symmetric():
    excluded = set(map(frozenset, B.EXCLUDED_PAIRS))
    for a, b in itertools.combinations(NAMES, 2):
        expected = B.get(a).category != B.get(b).category and {a, b} not in excluded
        assert B.compatible(a, b) == B.compatible(b, a) == expected
    assert B.compatible("german", "lower_case")  # kept, as in the paper
    assert B.compatible("json", "upper_case")


def test_compatible_rejects_unknown_names():
    with pytest.raises(KeyError):
        B.compatible("french", "klingon")


# ---------------------------------------------------------------- combinations


def test_training_pairs():
    pairs = B.training_pairs()
    # seen members per category 4, 3, 2, 4: 4*3 + 4*2 + 4*4 + 3*2 + 3*4 + 2*4 = 62
    # cross-category pairs, less the 3 excluded pairs of seen behaviors (words 50-70 &
    # 1 sentence, 90-120 & 1, 90-120 & 2)
    assert len(pairs) == 4 * 3 + 4 * 2 + 4 * 4 + 3 * 2 + 3 * 4 + 2 * 4 - 3
    assert len(set(pairs)) == len(pairs)
    for a, b in pairs:
        assert B.get(a).seen and B.get(b).seen
        assert B.get(a).category != B.get(b).category
        assert B.compatible(a, b)
        assert NAMES.index(a) < NAMES.index(b)
    assert all("json" not in pair for pair in pairs)
    assert pairs == B.combinations(2, "seen")


def test_combination_counts():
    counts = {
        (k, split): len(B.combinations(k, split))
        for k in (2, 3)
        for split in ("all", "seen", "unseen")
    }
    # Derivation. Categories (all / seen): language 5/4, length 4/3, case 3/2,
    # sentences 5/4 (german, words_70_90, title_case, sentences_3 are unseen; json is
    # not in the pool). A combination takes at most one behavior per category, so k
    # behaviors = k categories, one member each. Excluded length x sentences pairs:
    # 50-70 & 1, 70-90 & 1, 90-120 & 1, 90-120 & 2 (4 in all; 3 seen, 70-90 being
    # unseen).
    pairs_all = (
        5 * 4 + 5 * 3 + 5 * 5 + 4 * 3 + 4 * 5 + 3 * 5 - 4
    )  # 107 cross-category pairs, less 4
    pairs_seen = 4 * 3 + 4 * 2 + 4 * 4 + 3 * 2 + 3 * 4 + 2 * 4 - 3
    # triples: choose 3 of the 4 categories; then drop the triples holding an excluded
    # pair, whose third member comes from language or case
    triples_all = 5 * 4 * 3 + 5 * 4 * 5 + 5 * 3 * 5 + 4 * 3 * 5 - 4 * (5 + 3)
    triples_seen = 4 * 3 * 2 + 4 * 3 * 4 + 4 * 2 * 4 + 3 * 2 * 4 - 3 * (4 + 2)
    assert counts == {
        (2, "all"): pairs_all, (2, "seen"): pairs_seen,
        (2, "unseen"): pairs_all - pairs_seen,
        (3, "all"): triples_all, (3, "seen"): triples_seen,
        (3, "unseen"): triples_all - triples_seen,
    }  # fmt: skip
    assert (pairs_all, pairs_seen, triples_all, triples_seen) == (103, 59, 263, 110)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_combinations_are_valid_and_split(k):
    seen, unseen, every = (B.combinations(k, s) for s in ("seen", "unseen", "all"))
    assert sorted(seen + unseen) == sorted(every)
    for combo in every:
        assert len(combo) == k
        assert list(combo) == sorted(combo, key=NAMES.index)
        assert len({B.get(n).category for n in combo}) == k
        assert all(B.compatible(a, b) for a, b in itertools.combinations(combo, 2))
        assert "json" not in combo
    assert all(all(B.get(n).seen for n in c) for c in seen)
    assert all(any(not B.get(n).seen for n in c) for c in unseen)


def test_combinations_with_json():
    with_json = [c for c in B.combinations(4, "all", include_json=True) if "json" in c]
    assert {c[:-1] for c in with_json} == set(B.combinations(3))
    # json does not decide the split: the 4-behavior test has a seen half
    seen = [c for c in B.combinations(4, "seen", include_json=True) if "json" in c]
    assert {c[:-1] for c in seen} == set(B.combinations(3, "seen"))
    assert ("json",) in B.combinations(1, "unseen", include_json=True)


def test_combinations_rejects_unknown_split():
    with pytest.raises(ValueError):
        B.combinations(2, "train")


# ---------------------------------------------------------------- verify_all


def test_verify_all_without_json_checks_raw_text():
    text = "THE SKY IS BLUE. IT IS SCATTERING."
    assert B.verify_all(text, ["upper_case", "sentences_2"]) == {
        "upper_case": True,
        "sentences_2": True,
    }
    assert B.verify_all(text, ["sentences_1", "lower_case"]) == {
        "sentences_1": False,
        "lower_case": False,
    }


def test_verify_all_json_checks_others_on_the_answer():
    text = json.dumps(
        {"answer": "LE CIEL EST BLEU À CAUSE DE LA DIFFUSION DE LA LUMIÈRE."}
    )
    verdicts = B.verify_all(text, ["french", "upper_case", "sentences_1", "json"])
    assert verdicts == {
        "french": True,
        "upper_case": True,
        "sentences_1": True,
        "json": True,
    }
    assert not B.get("upper_case").verify(text)  # the key "answer" is lower-case


def test_verify_all_json_failure_falls_back_to_raw_text():
    fenced = '```json\n{"answer": "HELLO."}\n```'
    assert B.verify_all(fenced, ["upper_case", "json"]) == {
        "upper_case": False,
        "json": False,
    }
    plain = "HELLO THERE."
    assert B.verify_all(plain, ["json", "upper_case"]) == {
        "json": False,
        "upper_case": True,
    }


def test_verify_all_keeps_the_given_order_and_rejects_unknown():
    assert list(B.verify_all("x", ["sentences_1", "french"])) == [
        "sentences_1",
        "french",
    ]
    with pytest.raises(KeyError):
        B.verify_all("x", ["klingon"])
