"""Checkers that decide whether a generated answer satisfies one behavior.

The paper gives no checker rules for language, words, sentences or case, so
every rule here is **ours**; each function states its exact rule in its
docstring. All functions are pure: ``text -> bool`` (or a count).

Shared building blocks, reused by :mod:`steerlib.train.transforms` so that a
constructed target is judged by the very splitter that built it:

* :func:`content_spans` -- one span per line, without its markdown line marker.
* :func:`sentence_spans` -- character spans of the sentences, in text order.
* :func:`count_words` -- the word counter.
"""

from __future__ import annotations

import functools
import json
import re

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

from steerlib.errors import ConfigError

# ---------------------------------------------------------------- language

LANGUAGES: dict[str, Language] = {
    "french": Language.FRENCH,
    "spanish": Language.SPANISH,
    "italian": Language.ITALIAN,
    "portuguese": Language.PORTUGUESE,
    "german": Language.GERMAN,
}
"""Target languages a language behavior may ask for."""

# English is the model's default language, so it must be a candidate or English
# answers would be forced onto some other language. Dutch and Catalan are the
# closest neighbours of the targets (German, Spanish) and keep near-misses from
# being credited to a target.
_CANDIDATES = (
    Language.ENGLISH,
    *LANGUAGES.values(),
    Language.DUTCH,
    Language.CATALAN,
)


@functools.cache
def _detector() -> LanguageDetector:
    """The lingua detector, built once on first use.

    A closed candidate set keeps detection fast and deterministic: the answer
    is always attributed to one of a few plausible languages, never to an
    exotic language that happens to share a few n-grams.
    """
    return LanguageDetectorBuilder.from_languages(*_CANDIDATES).build()


def is_language(text: str, lang: str) -> bool:
    """True when the whole text is detected as language ``lang``.

    Rule: lingua-language-detector, restricted to English, French, Spanish,
    Italian, Portuguese, German, Dutch and Catalan, detects the language of the
    whole text, and that language is ``lang``. Text without any letter
    (empty, whitespace, numbers, emoji) is False.

    No minimum-confidence condition: lingua spreads its confidence over the
    eight related candidates, so a short, plainly French sentence ("Paris est
    la capitale de la France.") scores only about 0.4; a threshold would reject
    correct short answers. Mixed text goes to its dominant language (a French
    answer with one English term is French; half English, half French is
    usually English).
    """
    if lang not in LANGUAGES:
        raise ConfigError(f"unknown language {lang!r}; known: {sorted(LANGUAGES)}")
    if not any(ch.isalpha() for ch in text):
        return False
    return _detector().detect_language_of(text) == LANGUAGES[lang]


# ---------------------------------------------------------------- lines

# Markdown markers at the start of a line: heading hashes, block-quote '>',
# bullets (- * + •) and list numbers ("1." or "2)"), each followed by a blank.
# They are layout, not words, and they never end a sentence.
_LINE_MARKER = re.compile(r"[ \t]*(?:(?:#{1,6}|>|[-*+•]|\d{1,3}[.)])[ \t]+)*")
_LINE = re.compile(r"[^\r\n]+")


def content_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each non-empty line's content, its line marker skipped."""
    spans = []
    for line in _LINE.finditer(text):
        marker = _LINE_MARKER.match(text, line.start(), line.end())
        spans.append((marker.end(), line.end()))
    return spans


# ---------------------------------------------------------------- words


def is_word(chunk: str) -> bool:
    """A whitespace-free chunk is a word when it holds a letter or a digit."""
    return any(ch.isalnum() for ch in chunk)


def count_words(text: str) -> int:
    """Number of words.

    Rule: a word is a whitespace-separated chunk that contains at least one
    letter or digit ("3.14", "1,000", "well-known", "l'eau", "**bold**" are one
    word each). Chunks without a letter or digit (lone dashes, bullets,
    markdown symbols, emoji) are not words, and neither are markdown line
    markers at the start of a line: "#", ">", "-", "*", "+", "•" and list
    numbers such as "1." or "2)".
    """
    return sum(
        is_word(chunk)
        for start, end in content_spans(text)
        for chunk in text[start:end].split()
    )


def words_in_range(text: str, lo: int, hi: int) -> bool:
    """True when ``lo <= count_words(text) <= hi`` (both bounds inclusive)."""
    return lo <= count_words(text) <= hi


# ---------------------------------------------------------------- sentences

# A run of terminators (". ! ? …", so "?!" and "..." count once), then any
# closing quotes or markdown emphasis, then a blank or the end of the line.
# Closing brackets are deliberately not allowed: a terminator inside brackets
# ("(really!) a lot") ends the aside, not the enclosing sentence.
_TERMINATOR = re.compile(r"[.!?…]+[\"'”’»*_]*(?=\s|$)")
_OPENERS = "\"'“‘«(*_["
_CLOSERS = "\"'”’»*_"
# Two or more single letters each followed by a dot: "e.g.", "i.e.", "U.S.", "z.B.".
# A lone "C." is not included: "Take vitamin C. It helps." is far more common
# in answers than a middle initial.
_INITIALS = re.compile(r"(?:[^\W\d_]\.){2,}")
_ABBREVIATIONS = frozenset(
    "mr. mrs. ms. dr. dra. prof. sr. sra. jr. st. vs. cf. ca. approx. fig. nr. "
    "bzw.".split()
)


def _is_abbreviation(token: str) -> bool:
    """True when a token ending in '.' is an abbreviation or initials."""
    core = token.lstrip(_OPENERS).rstrip(_CLOSERS).lower()
    return core in _ABBREVIATIONS or _INITIALS.fullmatch(core) is not None


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences (rule: :func:`count_sentences`).

    ``text[:end]`` of any span, cut there, has exactly as many sentences as
    that span's position: the transforms rely on it to cut after sentence n.
    """
    spans = []
    for line_start, line_end in content_spans(text):
        start = line_start
        for match in _TERMINATOR.finditer(text, line_start, line_end):
            if _is_abbreviation(text[start : match.end()].split()[-1]):
                continue
            spans.append((start, match.end()))
            start = match.end()
        spans.append((start, line_end))
    return [(start, end) for start, end in spans if is_word(text[start:end])]


def count_sentences(text: str) -> int:
    """Number of sentences.

    Rule: a sentence ends
      * at a run of terminators ". ! ? …" (a run such as "?!" or "..." counts
        once), optionally followed by closing quotes or markdown emphasis
        (" ' ” ’ » * _), when the run is followed by whitespace or the end of
        the text. So decimals ("3.14") never end a sentence, and French spacing
        ("Bonjour !") does;
      * at every line break: each non-empty line is at least one sentence, so a
        heading is one sentence and a bullet list of 3 items is 3 sentences
        (chat answers are not hard-wrapped, so a line is a unit of text);
      * at the end of the text.
    A terminator does not end a sentence when its token is an abbreviation
    (Mr. Mrs. Ms. Dr. Dra. Prof. Sr. Sra. Jr. St. vs. cf. ca. approx. fig. Nr.
    bzw., any case) or two or more single letters with dots ("e.g.", "i.e.",
    "U.S.", "z.B."; a lone initial such as "F." does end one); nor when a
    closing bracket follows it ("(see above.) and"), which ends an aside only.
    "etc." is not an abbreviation here: it only matches when followed by
    whitespace, which is nearly always the end of a sentence.
    Markdown line markers ("#", ">", "-", "*", "+", "•", "1.", "2)") are
    skipped, and a piece without a letter or digit ("---", "```", an emoji)
    is not a sentence.
    """
    return len(sentence_spans(text))


def has_sentences(text: str, n: int) -> bool:
    """True when the text has exactly ``n`` sentences (see :func:`count_sentences`)."""
    return count_sentences(text) == n


# ---------------------------------------------------------------- case


def _is_upper_letter(ch: str) -> bool:
    """Uppercase: lower-casing changes it. Digits, 'º' and the like are caseless."""
    return ch != ch.lower()


def _is_lower_letter(ch: str) -> bool:
    """Lowercase: upper-casing changes it ('ß' is lowercase: it becomes 'SS')."""
    return ch != ch.upper()


def is_lower_case(text: str) -> bool:
    """True when the text has a lowercase letter and no uppercase letter.

    Rule: a letter is lowercase when ``str.upper`` changes it and uppercase
    when ``str.lower`` changes it; caseless characters (digits, punctuation,
    emoji, 'º') are ignored. This matches ``text.lower()`` exactly.
    """
    return any(map(_is_lower_letter, text)) and not any(map(_is_upper_letter, text))


def is_upper_case(text: str) -> bool:
    """True when the text has an uppercase letter and no lowercase letter.

    Rule: as :func:`is_lower_case` with the cases swapped; 'ß' is lowercase
    (its uppercase is 'SS'), so it fails, as ``text.upper()`` never yields it.
    """
    return any(map(_is_upper_letter, text)) and not any(map(_is_lower_letter, text))


# Function words that title-case styles may leave lower-case: articles,
# conjunctions and short prepositions of English and of the five targets
# (a word shared by several languages is listed once). Entries ending in an
# apostrophe are elided forms ("l'eau", "dell'arte").
_MINOR_WORDS = frozenset(
    # English
    "a an the and or nor but as at by for in of off on per to up via vs"
    # French
    " le la les un une des du de d' l' et ou à au aux en par pour sur"
    # Spanish
    " el los las unos unas y e o u del al con por para"
    # Italian
    " il lo gli i di della dei da dal dalla su nel nella dell' all' nell' un'"
    # Portuguese
    " os as um uma do da dos das em no na nos nas com"
    # German
    " der die das den dem des ein eine und oder von zu im am mit".split()
)


def _first_alnum(word: str) -> str:
    """The first letter or digit of a word ('' when it has none)."""
    return next((ch for ch in word if ch.isalnum()), "")


def _is_minor_word(word: str) -> bool:
    """True for a word of the minor-word list, or an elided one ("l'eau")."""
    core = word.strip(_OPENERS + _CLOSERS + ".,;:!?…)]").lower().replace("’", "'")
    elided = core[: core.find("'") + 1] if "'" in core else ""
    return core in _MINOR_WORDS or elided in _MINOR_WORDS


def is_title_case(text: str) -> bool:
    """True when every word starts with an uppercase letter, minor words aside.

    Rule: in each sentence (see :func:`count_sentences`), each word (see
    :func:`count_words`) whose first letter-or-digit is a cased letter must
    start with an uppercase one; a minor word (English, French, Spanish,
    Italian, Portuguese and German articles, conjunctions and short
    prepositions, e.g. "of", "the", "and", "de", "la", "und", also elided
    "l'", "d'") may stay lower-case unless it is the first word of a sentence.
    Words starting with a digit ("3D") are not checked. Other letters of a word
    are free ("NASA", "McDonald"). At least one word must start with a cased
    letter, and the text must not be all upper-case (that is
    :func:`is_upper_case`, a different behavior).
    """
    checked = 0
    for start, end in sentence_spans(text):
        sentence_words = [w for w in text[start:end].split() if is_word(w)]
        for position, word in enumerate(sentence_words):
            first = _first_alnum(word)
            if not (_is_upper_letter(first) or _is_lower_letter(first)):
                continue
            checked += 1
            if _is_lower_letter(first) and (position == 0 or not _is_minor_word(word)):
                return False
    return checked > 0 and not is_upper_case(text)


# ---------------------------------------------------------------- format

JSON_KEY = "answer"
"""The single key the JSON behavior asks for."""


def json_answer(text: str) -> str | None:
    """The value of "answer" when the text is a valid JSON answer, else None.

    Rule (see :func:`is_json_answer`).
    """
    try:
        obj = json.loads(text.strip())
    except ValueError:
        return None
    if not isinstance(obj, dict) or set(obj) != {JSON_KEY}:
        return None
    value = obj[JSON_KEY]
    return value if isinstance(value, str) and value.strip() else None


def is_json_answer(text: str) -> bool:
    """True when the text is a JSON object with exactly one key "answer".

    Rule: ``json.loads(text.strip())`` parses; the result is a dict whose keys
    are exactly {"answer"}; its value is a string with at least one
    non-whitespace character (an answer must be text, and the other behaviors
    of a composition are checked on it). Markdown code fences are not
    stripped: the paper requires ``json.loads`` to parse the answer as it is.
    """
    return json_answer(text) is not None
