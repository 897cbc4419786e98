"""Verifier rules: hand-written positives and negatives for all 18 behaviors, plus edge
cases."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from steerlib.tasks import behaviors
from steerlib.tasks import verifiers as V

ENGLISH = (
    "The sky is blue because sunlight is scattered by the molecules of the atmosphere."
)
FRENCH = (
    "Le ciel est bleu à cause de la diffusion de la lumière par les molécules de l'air."
)
SPANISH = "El cielo es azul porque la luz del sol se dispersa en la atmósfera."
ITALIAN = "Il cielo è blu perché la luce del sole viene diffusa dall'atmosfera."
PORTUGUESE = "O céu é azul porque a luz do sol é espalhada pela atmosfera."
GERMAN = "Der Himmel ist blau, weil das Sonnenlicht in der Atmosphäre gestreut wird."
CATALAN = (
    "El cel és blau perquè la llum del sol es dispersa a l'atmosfera i arriba als ulls."
)
DUTCH = "De lucht is blauw omdat het zonlicht door de atmosfeer wordt verstrooid."

# A plain 130-word English text; its first n words make texts of exact lengths.
PARAGRAPH = (
    "Photosynthesis is the process by which green plants turn light into chemical "
    "energy. "
    "Inside the chloroplasts, chlorophyll absorbs mostly red and blue light and "
    "reflects green, "
    "which is why leaves look green to us. The plant takes in carbon dioxide through "
    "small pores "
    "called stomata and draws water up from its roots. Using the captured energy, it "
    "splits the "
    "water molecules and releases oxygen as a by-product. The hydrogen and the carbon "
    "dioxide are "
    "then combined into glucose during the Calvin cycle. Glucose feeds the plant and "
    "is stored as "
    "starch for later use. Nearly all life on Earth depends on this process, directly "
    "or "
    "indirectly, "
    "because it supplies both the oxygen we breathe and the food at the base of every "
    "chain. "
    "Without it, our planet would look very different today and for a long time."
)


def first_words(n: int) -> str:
    return " ".join(PARAGRAPH.split()[:n])


# Every behavior: at least three texts that satisfy it and three that do not.
CASES: dict[str, tuple[list[str], list[str]]] = {
    "french": (
        [
            FRENCH,
            "Paris est la capitale de la France. C'est une ville magnifique.",
            "LA RÉPONSE EST SIMPLE : IL FAUT BOIRE BEAUCOUP D'EAU CHAQUE JOUR.",
            # mostly French with an English term
            "Le machine learning permet aux ordinateurs d'apprendre à partir des "
            "données "
            "sans être programmés explicitement.",
            "- Dormez huit heures par nuit.\n- Mangez des légumes.\n- Faites du sport.",
        ],
        [
            ENGLISH,
            SPANISH,
            "Bonjour! How are you doing today, my friend?",
            "",
            " \n",
            "3.14 🙂",
        ],
    ),
    "spanish": (
        [
            SPANISH,
            "¿Por qué? Porque el agua hierve a cien grados al nivel del mar.",
            "madrid es la capital de españa y tiene muchos museos famosos.",
        ],
        [ENGLISH, CATALAN, PORTUGUESE, ""],
    ),
    "italian": (
        [
            ITALIAN,
            "Roma è la capitale d'Italia ed è famosa per la sua storia millenaria.",
            "PER IMPARARE UNA LINGUA BISOGNA PARLARE OGNI GIORNO CON PERSONE "
            "MADRELINGUA.",
        ],
        [ENGLISH, SPANISH, FRENCH, "!!!"],
    ),
    "portuguese": (
        [
            PORTUGUESE,
            "Lisboa é a capital de Portugal e fica à beira do rio Tejo.",
            "para dormir melhor, evite usar o telemóvel antes de se deitar.",
        ],
        [ENGLISH, SPANISH, ITALIAN, "\n\n"],
    ),
    "german": (
        [
            GERMAN,
            "Berlin ist die Hauptstadt von Deutschland und hat viele Museen.",
            "um besser zu schlafen, sollten sie abends keinen kaffee trinken.",
        ],
        [ENGLISH, DUTCH, FRENCH, "1,000"],
    ),
    "words_10_50": (
        [
            first_words(10),
            first_words(50),
            "**Short answer:** drink water, sleep eight hours and walk every day 🙂.",
        ],
        [first_words(9), first_words(51), "Yes, definitely — 100%."],
    ),
    "words_50_70": (
        [
            first_words(50),
            first_words(70),
            first_words(60) + "\n\n- " + "\n- ".join("abc"),
        ],
        [first_words(49), first_words(71), ""],
    ),
    "words_70_90": (
        [first_words(70), first_words(90), "## Summary\n\n" + first_words(80)],
        [first_words(69), first_words(91), first_words(60) + " — — 🙂 🙂 * # -"],
    ),
    "words_90_120": (
        [first_words(90), first_words(120), "1. " + first_words(100)],
        [first_words(89), first_words(121), first_words(130)],
    ),
    "lower_case": (
        [
            "the sky is blue because of rayleigh scattering.",
            "paris is the capital of france, with 2,100,000 people 🙂",
            "- drink water\n- sleep well\n\nthat's it!",
        ],
        [
            "The sky is blue.",
            "paris is the capital of France.",
            "3.14 🙂 !!!",
            "",
        ],
    ),
    "upper_case": (
        [
            "THE SKY IS BLUE BECAUSE OF RAYLEIGH SCATTERING.",
            "LA RÉPONSE EST OUI : 42, 3.14 ET 1,000!",
            "# TIPS\n\n- DRINK WATER\n- SLEEP WELL",
        ],
        [
            "THE SKY IS BLUE because of scattering.",
            "DIE STRAßE IST LANG.",  # 'ß' is lower-case; upper case writes SS
            "1,000 🙂",
            "The Sky Is Blue.",
        ],
    ),
    "title_case": (
        [
            "The Sky Is Blue Because Of Rayleigh Scattering.",
            "The Capital of France Is Paris, and It Is Beautiful.",
            "**Short Answer:** Drink Water. The Rest Is Easy 🙂.",
            "La Capitale de la France Est Paris.",
            "L'Eau de l'Océan Est Salée.",
        ],
        [
            "The sky is blue because of Rayleigh scattering.",
            "THE SKY IS BLUE.",
            # sentence-initial minor word
            "The Capital Of France. of Course It Is Paris.",
            "1,000 🙂",
            "",
        ],
    ),
    "sentences_1": (
        [
            "The sky is blue because of Rayleigh scattering.",
            "Pi is about 3.14, e.g. in the area of a circle",
            "Dr. Smith moved to the U.S. in 1990 and stayed there (he liked it!) for "
            "years.",
        ],
        [
            "The sky is blue. It is because of scattering.",
            "Yes! Definitely.",
            "- one\n- two",
            "",
        ],
    ),
    "sentences_2": (
        [
            "The sky is blue. It is because of scattering.",
            "Why?! Because light scatters... ",
            "# Answer\nThe sky is blue because of Rayleigh scattering.\n",
        ],
        [
            "The sky is blue.",
            "One. Two. Three.",
            "- one\n- two\n- three",
        ],
    ),
    "sentences_3": (
        [
            "One. Two. Three.",
            "- Keep a regular schedule\n- Avoid screens before bed\n- Keep the room "
            "cool",
            "Water boils at 100 °C. At altitude it boils lower! Why? ",
        ],
        ["One. Two.", "One. Two. Three. Four.", "Mr. Smith arrived. Mrs. Smith left."],
    ),
    "sentences_4": (
        [
            "One. Two. Three. Four.",
            "## Steps\n\n1. Boil water.\n2. Add pasta.\n3. Wait 9.5 minutes.",
            "Is it safe? Yes. Is it cheap? No, not really!",
        ],
        [
            "One. Two. Three.",
            "One. Two. Three. Four. Five.",
            "One! Two? Three... Four. Five",
        ],
    ),
    "sentences_5": (
        [
            "One. Two. Three. Four. Five.",
            "First, rinse. Then soap. Then rinse again. Dry it. Done!",
            "**Tips**\n- Eat well.\n- Sleep well.\n- Move daily.\n- Drink water.",
        ],
        ["One. Two. Three. Four.", "One. Two. Three. Four. Five. Six.", ""],
    ),
    "json": (
        [
            '{"answer": "Paris is the capital of France."}',
            '  {"answer":"La réponse est 42 🙂"}\n',
            '{\n  "answer": "YES"\n}',
        ],
        [
            '```json\n{"answer": "Paris"}\n```',
            '{"answer": "Paris", "confidence": 0.9}',
            '{"Answer": "Paris"}',
            '{"answer": 42}',
            '{"answer": "  "}',
            '["Paris"]',
            '{"answer": "Paris"',
            "",
        ],
    ),
}


def test_cases_cover_every_behavior_three_each_way():
    assert set(CASES) == set(behaviors.names())
    for positives, negatives in CASES.values():
        assert len(positives) >= 3 and len(negatives) >= 3


@pytest.mark.parametrize(
    ("name", "text"), [(n, t) for n, (pos, _) in CASES.items() for t in pos]
)
def test_positive(name, text):
    assert behaviors.get(name).verify(text)


@pytest.mark.parametrize(
    ("name", "text"), [(n, t) for n, (_, neg) in CASES.items() for t in neg]
)
def test_negative(name, text):
    assert not behaviors.get(name).verify(text)


# ---------------------------------------------------------------- language


def test_language_rejects_unknown_target():
    with pytest.raises(ValueError, match="known"):
        V.is_language(FRENCH, "klingon")


@pytest.mark.parametrize(
    "text", ["", "   ", "\n\t", "42", "3.14 1,000", "🙂🙂", "--- ***"]
)
def test_language_without_letters_is_false(text):
    assert not any(V.is_language(text, lang) for lang in V.LANGUAGES)


def test_language_detector_is_built_once(monkeypatch):
    """Building lingua's detector takes seconds: verifying many texts must build it
    once."""
    builds = []
    real = V.LanguageDetectorBuilder.from_languages

    def counting(*languages):
        builds.append(languages)
        return real(*languages)

    monkeypatch.setattr(
        V, "LanguageDetectorBuilder", SimpleNamespace(from_languages=counting)
    )
    V._detector.cache_clear()
    try:
        assert [
            V.is_language(FRENCH, lang) for lang in ("french", "spanish", "french")
        ] == [True, False, True]
        assert len(builds) == 1
    finally:
        V._detector.cache_clear()  # the next test builds a real one again


def test_language_is_not_fooled_by_markdown_or_trailing_whitespace():
    assert V.is_language("## Réponse\n\n**" + FRENCH + "**\n\n\n", "french")


# ---------------------------------------------------------------- words


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("", 0),
        ("   \n\t ", 0),
        ("one two three", 3),
        ("  one   two\nthree  \n\n", 3),
        ("Pi is 3.14 and a kilometre is 1,000 metres.", 9),
        ("well-known l'eau don't", 3),
        ("**Bold** and _italic_ text", 4),
        ("Fast — very fast - indeed", 4),
        ("I love it 🙂 🎉", 3),
        ("- apples\n- pears\n* plums\n+ figs\n• kiwis", 5),
        ("1. apples\n2) pears\n10. plums", 3),
        ("# Heading\n## Sub heading\n> quoted text", 5),
        ("---\n```\ncode\n```", 1),
        ("#hashtag 42", 2),
        ("42.", 1),
    ],
)
def test_count_words(text, n):
    assert V.count_words(text) == n


def test_words_in_range_is_inclusive():
    assert V.words_in_range("a b c", 3, 5)
    assert V.words_in_range("a b c d e", 3, 5)
    assert not V.words_in_range("a b", 3, 5)
    assert not V.words_in_range("a b c d e f", 3, 5)


# ---------------------------------------------------------------- sentences


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("", 0),
        ("  \n\n ", 0),
        ("Hello", 1),
        ("Hello.", 1),
        ("Hello.   \n\n", 1),
        ("Hello. World", 2),
        ("Really?! Yes... Fine.", 3),
        ("Wait… what?", 2),
        ("Pi is 3.14. Euler's number is 2.718.", 2),
        ("It costs $1,000.50 in total.", 1),
        ("I met Dr. Smith and Mrs. Jones, vs. last year.", 1),
        ("Use a sieve, e.g. a fine one, i.e. with small holes.", 1),
        ("She lives in the U.S. now.", 1),
        ("Take vitamin C. It helps.", 2),
        ("He left (he was tired.) and slept.", 1),
        ("It was great (really!) and cheap.", 1),
        ('He said "Stop." Then he left.', 2),
        ("**Note.** Bold text works too.", 2),
        ("Bonjour ! Comment ça va ?", 2),
        ("¿Qué hora es? Son las tres.", 2),
        ("Apples, pears, etc. They are all fruit.", 2),
        ("# Title\nA sentence.", 2),
        ("- one\n- two\n- three", 3),
        ("1. Boil water.\n2. Add pasta.\n3. Serve.", 3),
        ("Here are tips:\n\n- Sleep\n- Eat well. Move a lot.", 4),
        ("---\n\n***\n\n```", 0),
        ("🙂 🙂 🙂", 0),
        ("42.", 1),
    ],
)
def test_count_sentences(text, n):
    assert V.count_sentences(text) == n


def test_sentence_spans_cut_is_a_prefix_with_that_many_sentences():
    text = "Hi there. Dr. Who came!\n- a list item\n- another one. Done? Yes... ok"
    spans = V.sentence_spans(text)
    for i, (_, end) in enumerate(spans, start=1):
        assert V.count_sentences(text[:end]) == i


# ---------------------------------------------------------------- case


@pytest.mark.parametrize("text", ["", "   ", "123 456", "🙂", "3.14 - 1,000 !?"])
def test_case_needs_a_cased_letter(text):
    assert not V.is_lower_case(text)
    assert not V.is_upper_case(text)
    assert not V.is_title_case(text)


def test_case_ignores_caseless_characters():
    assert V.is_upper_case("O 1º LUGAR É NOSSO!")  # 'º' has no case
    assert V.is_lower_case("o 1º lugar é nosso!")
    assert V.is_lower_case("die straße ist lang.")


def test_title_case_minor_words_only_inside_a_sentence():
    assert V.is_title_case("War and Peace Is a Long Book.")
    assert not V.is_title_case("War and Peace Is a Long Book. and It Is Good.")
    assert V.is_title_case("- The First Item\n- The Second of Them")
    assert not V.is_title_case("- the First Item")  # each list item starts a sentence


def test_title_case_skips_words_starting_with_a_digit_and_keeps_acronyms():
    assert V.is_title_case("3D Printing Uses NASA Technology Since 1980.")


# ---------------------------------------------------------------- json


def test_json_answer_value():
    assert V.json_answer(' {"answer": "Oui."} \n') == "Oui."
    assert V.json_answer('{"answer": null}') is None
    assert V.json_answer("not json") is None
    assert V.json_answer('"answer"') is None
