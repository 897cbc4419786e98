"""Constructed targets: outputs have their behaviors' properties, checked here without
the verifiers (``construct`` already runs them and returns None when they fail, so
asserting that they pass could not fail); impossible cases give None."""

from __future__ import annotations

import json
import re

import pytest

from steerlib.tasks import behaviors as B
from steerlib.tasks import verifiers as V
from steerlib.tasks.behaviors import constructible
from steerlib.train.transforms import construct, to_title_case

# Realistic plain answers, as a chat model writes them.
ANSWERS = {
    "sky": (
        "The sky looks blue because of Rayleigh scattering. Sunlight contains all "
        "colours, "
        "but air molecules scatter short blue wavelengths far more than red ones. That "
        "scattered blue light reaches our eyes from every direction! At sunset the "
        "light "
        "crosses more air, so the blue is scattered away and reds dominate."
    ),
    "photosynthesis": (
        "Photosynthesis is the process by which green plants turn light into chemical "
        "energy. "
        "Inside the chloroplasts, chlorophyll absorbs mostly red and blue light. The "
        "plant "
        "takes in carbon dioxide through small pores called stomata. It also draws "
        "water up "
        "from its roots. Using the captured energy, it splits water molecules and "
        "releases "
        "oxygen. The hydrogen and carbon dioxide are then combined into glucose. This "
        "happens "
        "during the Calvin cycle. Glucose feeds the plant and is stored as starch. "
        "Nearly all "
        "life on Earth depends on this process. It supplies the oxygen we breathe. It "
        "also "
        "provides the food at the base of every food chain. Without it, our planet "
        "would be "
        "a very different place. Scientists still study it to improve crops."
    ),
    "sleep_tips": (
        "Here are three tips for better sleep:\n\n"
        "- Keep a regular schedule, even on weekends.\n"
        "- Avoid screens for an hour before bed.\n"
        "- Keep your bedroom cool, dark and quiet.\n\n"
        "Following these habits usually helps within a week or two."
    ),
    "boil_egg": (
        "## How to boil an egg\n\n"
        "1. Place the egg in a pot of cold water.\n"
        "2. Bring the water to a boil over high heat.\n"
        "3. Simmer for 9 minutes for a firm yolk.\n"
        "4. Cool the egg in ice water before peeling.\n\n"
        "**Tip:** older eggs are easier to peel."
    ),
    "pi": (
        "Pi is approximately 3.14159. It appears in many formulas, e.g. the area of a "
        "circle. "
        "Dr. Smith explained that it is irrational, i.e. its digits never repeat. The "
        "U.S. "
        "even celebrates Pi Day on March 14!"
    ),
    "water": (
        "**Short answer:** yes. Drinking water is healthy 💧. Most adults need about 2 "
        "litres "
        "a day, though needs vary with climate and activity. Thirst is usually a good "
        "guide."
    ),
    "rome": (
        "Ancient Rome began as a small settlement on the Tiber around 753 BC. It grew "
        "into a "
        "republic ruled by elected magistrates and a senate. Over several centuries, "
        "Roman "
        "armies conquered Italy and then the whole Mediterranean. Julius Caesar's rise "
        "ended "
        "the republic in the first century BC. His heir Augustus became the first "
        "emperor in "
        "27 BC. The empire reached its greatest size under Trajan. Roads, aqueducts "
        "and laws "
        "spread Roman culture across Europe. Latin, the language of Rome, became the "
        "root of "
        "French, Spanish and Italian. The western empire fell in 476 AD. The eastern "
        "half "
        "survived as the Byzantine Empire until 1453. Its legacy still shapes our "
        "alphabet, "
        "our calendar and our legal systems."
    ),
    "cats": (
        "Why do cats purr?! Nobody knows for sure... Some scientists think purring "
        "helps "
        "bones heal. Others believe it is simply a sign of contentment."
    ),
    # Long sentences, so that every word range meets every compatible sentence count.
    "climate": (
        "Climate change refers to the long-term shift in global temperatures and "
        "weather "
        "patterns, which today is driven mainly by the burning of coal, oil and gas "
        "that "
        "releases carbon dioxide and other heat-trapping gases into the atmosphere. "
        "These "
        "gases act like a blanket around the planet, letting sunlight in but slowing "
        "the "
        "escape of heat, so the average surface temperature has already risen by about "
        "1.1 °C "
        "since the late nineteenth century. The consequences include rising sea "
        "levels, more "
        "intense heatwaves and heavier rainfall in some regions, while other areas "
        "face longer "
        "droughts that threaten harvests, water supplies and the ecosystems that "
        "people rely on."
    ),
    "internet": (
        "The internet is a global network of computers that exchange data using a "
        "shared set "
        "of rules called protocols. When you open a web page, your browser sends a "
        "request "
        "through your router to servers that may be thousands of kilometres away. The "
        "data "
        "travels in small packets, each of which can take a different route before "
        "being "
        "reassembled at the destination. Undersea fibre-optic cables carry most of "
        "this traffic "
        "between continents at close to the speed of light. Domain names such as "
        "example.com "
        "are translated into numeric addresses by the Domain Name System before any "
        "connection "
        "is made."
    ),
    "exercise": (
        "Regular exercise strengthens the heart and improves blood circulation "
        "throughout the "
        "whole body. It also helps you control your weight by burning the extra "
        "calories you "
        "eat. Strength training keeps your muscles and bones strong as you get older. "
        "Many "
        "people find that a brisk daily walk lifts their mood in a noticeable way. "
        "Exercise "
        "also improves the quality of your sleep, as long as it is not too close to "
        "bedtime. "
        "Even ten minutes of activity a day brings measurable benefits."
    ),
    "coffee": (
        "Coffee is made from the roasted seeds of the coffee plant, which grows best "
        "in tropical "
        "highlands of Africa, Asia and Latin America with steady rainfall and mild "
        "temperatures. "
        "After harvesting, the cherries are processed to remove the fruit, dried in "
        "the sun or "
        "by machine, and then shipped green to roasters around the world. Roasting "
        "develops "
        "hundreds of aroma compounds and turns the beans brown, while grinding and "
        "brewing with "
        "hot water extract the flavours and the caffeine that so many people enjoy. "
        "Light "
        "roasts keep more of the fruity acidity, whereas dark roasts taste more bitter "
        "and smoky."
    ),
}
LONG = ("photosynthesis", "rome")
CONSTRUCTIBLE = [n for n in B.names() if constructible(n)]


def test_constructible():
    assert [n for n in B.names() if not constructible(n)] == B.categories()["language"]
    with pytest.raises(KeyError):
        constructible("klingon")


def test_answers_are_realistic_and_varied():
    sentences = {k: V.count_sentences(t) for k, t in ANSWERS.items()}
    words = {k: V.count_words(t) for k, t in ANSWERS.items()}
    assert min(sentences.values()) >= 3 and max(sentences.values()) >= 12
    assert all(words[k] > 110 for k in LONG)


PROSE = (
    "sky",
    "photosynthesis",
    "rome",
    "cats",
    "climate",
    "internet",
    "exercise",
    "coffee",
)
"""Plain prose: every '.', '!' or '?' run followed by a space or the end closes a
sentence."""


def _sentences(text: str) -> int:
    return len(re.findall(r"[.!?]+(?=\s|$)", text))


def _first_alnum_upper(text: str) -> bool:
    """Title case as promised: each whitespace-separated chunk's first letter or digit
    is not lower case."""
    firsts = [
        m.group(0) for chunk in text.split() for m in [re.search(r"[^\W_]", chunk)] if m
    ]
    return bool(firsts) and not any(c.islower() for c in firsts)


def _has(name: str, out: str, text: str) -> bool:
    """``out`` (unwrapped from json) has ``name``'s property and is ``text`` cut and
    re-cased, judged with plain string operations instead of the verifiers."""
    b = B.get(name)
    if not text.strip().lower().startswith(out.lower()):
        return False
    if name == "lower_case":
        return out == out.lower()
    if name == "upper_case":
        return out == out.upper()
    if name == "title_case":
        return _first_alnum_upper(out)
    if b.category == "sentences":
        return _sentences(out) == B.SENTENCE_COUNTS[name]
    if b.category == "length":
        lo, hi = B.LENGTH_RANGES[name]
        return lo <= len(out.split()) <= hi
    raise AssertionError(f"no independent check for <{name}>")


@pytest.mark.parametrize("key", PROSE)
@pytest.mark.parametrize("name", [n for n in CONSTRUCTIBLE if n != "json"])
def test_single_transform_has_its_property(name, key):
    text = ANSWERS[key]
    out = construct([name], text)
    category = B.get(name).category
    if category == "sentences":
        expected_possible = B.SENTENCE_COUNTS[name] <= _sentences(text)
    elif category == "length":  # some sentence end falls inside the word range
        lo, hi = B.LENGTH_RANGES[name]
        expected_possible = any(
            lo <= len(text[: m.end()].split()) <= hi
            for m in re.finditer(r"[.!?]+(?=\s|$)", text)
        )
    else:
        expected_possible = True
    assert (out is not None) == expected_possible, (name, key)
    if out is not None:
        assert _has(name, out, text), (name, out)


@pytest.mark.parametrize("key", ANSWERS)
def test_case_transforms_keep_the_text(key):
    text = ANSWERS[key]
    assert construct(["lower_case"], text) == text.lower()
    assert construct(["upper_case"], text) == text.upper()
    assert construct(["title_case"], text).lower() == text.lower()
    assert construct(["json"], text) == json.dumps({"answer": text}, ensure_ascii=False)


def test_sentence_cut_keeps_the_first_sentences():
    cats = construct(["sentences_2"], ANSWERS["cats"])
    assert cats == "Why do cats purr?! Nobody knows for sure..."
    assert construct(["sentences_1"], ANSWERS["pi"]) == "Pi is approximately 3.14159."
    assert construct(["sentences_3"], ANSWERS["boil_egg"]) == (
        "## How to boil an egg\n\n1. Place the egg in a pot of cold water.\n"
        "2. Bring the water to a boil over high heat."
    )


def test_length_cut_takes_the_last_boundary_in_range():
    text = ANSWERS["rome"]
    out = construct(["words_10_50"], text)
    ends = [end for _, end in V.sentence_spans(text)]
    counts = [V.count_words(text[:end]) for end in ends]
    best = max(c for c in counts if 10 <= c <= 50)
    assert V.count_words(out) == best
    assert text.startswith(out)


@pytest.mark.parametrize("k", [2, 3])
def test_compositions_have_every_property(k):
    built = 0
    for combo in B.combinations(k, include_json=True):
        if not all(map(constructible, combo)):
            continue
        for key in PROSE:
            out = construct(combo, ANSWERS[key])
            if out is None:
                continue
            built += 1
            if "json" in combo:
                wrapped = json.loads(out)
                assert list(wrapped) == ["answer"] and isinstance(
                    wrapped["answer"], str
                ), out
                out = wrapped["answer"]
            missing = [
                n for n in combo if n != "json" and not _has(n, out, ANSWERS[key])
            ]
            assert not missing, (combo, key, missing, out)
    assert built > 100


def test_composition_order_json_wraps_last():
    out = construct(["json", "upper_case", "sentences_1"], ANSWERS["sky"])
    assert json.loads(out) == {
        "answer": "THE SKY LOOKS BLUE BECAUSE OF RAYLEIGH SCATTERING."
    }
    out = construct(["words_10_50", "sentences_2", "title_case"], ANSWERS["pi"])
    assert out == (
        "Pi Is Approximately 3.14159. It Appears In Many Formulas, E.g. The Area Of A "
        "Circle."
    )
    assert all(B.verify_all(out, ["words_10_50", "sentences_2", "title_case"]).values())


def test_title_case_transform():
    assert to_title_case("the **bold** (nice) l'eau 3d NASA\n- item") == (
        "The **Bold** (Nice) L'eau 3d NASA\n- Item"
    )


@pytest.mark.parametrize(
    ("names", "text"),
    [
        (["french"], ANSWERS["sky"]),
        (["german", "upper_case"], ANSWERS["sky"]),
        (["sentences_5"], ANSWERS["sky"]),  # only 4 sentences
        (["words_90_120"], ANSWERS["sky"]),  # too short
        (
            ["words_10_50"],
            " ".join(["word"] * 60) + ".",
        ),  # no boundary inside the range
        (["words_50_70", "sentences_4"], ANSWERS["cats"]),  # 4 sentences, too few words
        (["title_case"], "NASA IS GREAT."),  # stays all upper-case
        (["upper_case"], "123 🙂"),  # no letter to case
        (["json"], "   "),  # empty answer
        (["sentences_1"], ""),
    ],
)
def test_impossible_cases_return_none(names, text):
    assert construct(names, text) is None


def test_trailing_whitespace_is_stripped():
    assert construct(["sentences_1"], "Hello there.   \n\n") == "Hello there."
    assert construct([], "  Hello.\n") == "Hello."


def test_every_pair_of_constructible_behaviors_is_checked_somewhere():
    covered = {
        combo
        for combo in B.combinations(2, include_json=True)
        if any(construct(combo, text) is not None for text in ANSWERS.values())
    }
    pairs = [
        c for c in B.combinations(2, include_json=True) if all(map(constructible, c))
    ]
    missing = [c for c in pairs if c not in covered]
    assert not missing, missing
