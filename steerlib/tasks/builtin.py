"""The 18 built-in behaviors: the ``Behavior`` record, ten instruction paraphrases per
behavior (ours; the paper writes ten per behavior family and samples one per example)
and a verifier from :mod:`steerlib.tasks.verifiers` for each.

Seen / unseen (paper): German, 70-90 words, title case and 3 sentences are held out of
``<and>`` training; ``json`` is the extra behavior of the 4-behavior test.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from steerlib.errors import VerifierError
from steerlib.tasks import verifiers as V


@dataclass(frozen=True)
class Behavior:
    """One steerable behavior and how to ask for it and check it.

    The 18 built-ins are made below; a user's own is made the same way and added with
    :func:`register` (see "Your own behaviors" in the module doc).
    """

    name: str
    """Token name, e.g. "french", "words_10_50", "upper_case", "sentences_2", "json"."""
    category: str
    """"language" | "length" | "case" | "sentences" | "format", or a category of your
    own."""
    paraphrases: tuple[str, ...]
    """Instructions a user could append after a question (ten for the built-ins); the
    teacher reads one at random per training example."""
    rule: str
    """One-line human-readable verifier rule."""
    checker: Callable[[str], bool] = field(repr=False, compare=False)
    """The verifier: ``text -> bool``."""
    seen: bool = False
    """True: in the ``<and>`` training pairs. False (the default, and every behavior
    added after ``<and>`` was trained): held out, so it is tested as an unseen
    behavior."""
    transform: Callable[[str], str | None] | None = field(
        default=None, repr=False, compare=False
    )
    """Your own behaviors only: ``plain answer -> an answer that passes the verifier``
    (None where it cannot), for constructed targets; see
    :mod:`steerlib.train.transforms`."""
    conflicts: tuple[str, ...] = ()
    """Behaviors of other categories it never composes with (same category never
    does)."""

    def verify(self, text: str) -> bool:
        """True when ``text`` satisfies this behavior alone; a checker answering
        anything but a bool (numpy's counts) raises ``VerifierError`` naming the
        behavior, and one that raises a ``VerifierError`` naming it and the text."""
        try:
            answer = self.checker(text)
        except Exception as err:  # the user's checker's failure, named
            raise VerifierError(
                f"<{self.name}>'s checker raised {type(err).__name__} "
                f"({' '.join(str(err).split())[:120]}) on the text {text!r:.80}; a "
                f"checker must answer True or False for any text"
            ) from err
        return _as_bool(self.name, answer, text)

    def instruction(self, rng: random.Random | None = None) -> str:
        """A random paraphrase (the first one when ``rng`` is None, for determinism)."""
        return self.paraphrases[0] if rng is None else rng.choice(self.paraphrases)


def _as_bool(name: str, out, text: str) -> bool:
    """A checker's answer as a bool: True/False or numpy's bools, else a
    VerifierError."""
    if isinstance(out, (bool, np.bool_)):
        return bool(out)
    raise VerifierError(
        f"<{name}>'s checker returned {type(out).__name__} ({out!r}) for {text!r:.80}; "
        f"it must return True or False"
    )


_LANGUAGE_TEMPLATES = (
    "Answer in {lang}.",
    "Please write your reply in {lang}.",
    "Respond only in {lang}.",
    "Your entire answer must be written in {lang}.",
    "Write your response in the {lang} language.",
    "Give your answer in {lang}, not in English.",
    "Use {lang} for your whole reply.",
    "Make sure your answer is in {lang}.",
    "Reply in {lang}, please.",
    "Answer the question above in {lang}.",
)


_LENGTH_TEMPLATES = (
    "Respond using between {lo} and {hi} words.",
    "Your answer should be {lo} to {hi} words long.",
    "Answer in no fewer than {lo} and no more than {hi} words.",
    "Keep your reply between {lo} and {hi} words.",
    "Use at least {lo} and at most {hi} words in your answer.",
    "Your response must contain between {lo} and {hi} words.",
    "Make your answer at least {lo} words and at most {hi} words long.",
    "The length of your answer must be between {lo} and {hi} words.",
    "Answer with a word count between {lo} and {hi}.",
    "Please write {lo} to {hi} words in your reply.",
)


# {words}: "two sentences"; {digits}: "2 sentences".
_SENTENCE_TEMPLATES = (
    "Answer in exactly {words}.",
    "Your reply must consist of exactly {digits}.",
    "Respond using exactly {words}, no more and no fewer.",
    "Write your answer as exactly {words}.",
    "Use exactly {words} in your answer.",
    "Your response should contain exactly {digits}.",
    "Make your answer exactly {words} long.",
    "Give an answer of exactly {digits}.",
    "Reply with precisely {words}.",
    "Compose your reply as exactly {digits}, no more and no fewer.",
)


_CASE_PARAPHRASES = {
    "lower_case": (
        "Write your entire answer in lowercase letters.",
        "Answer using only lowercase letters, with no capital letters at all.",
        "Please reply in all lowercase.",
        "Do not use any capital letters in your response.",
        "Your whole response must be in lowercase.",
        "Respond entirely in lower case, even at the start of sentences.",
        "Use lowercase letters only in your answer.",
        "Write everything in lowercase, including names.",
        "Make sure every letter of your answer is lowercase.",
        "Type your reply without any uppercase letters.",
    ),
    "upper_case": (
        "Write your entire answer in uppercase letters.",
        "Answer using only capital letters.",
        "Please reply in all caps.",
        "Do not use any lowercase letters in your response.",
        "Your whole response must be in uppercase.",
        "Respond entirely in upper case.",
        "Use uppercase letters only in your answer.",
        "Write everything in capital letters.",
        "Make sure every letter of your answer is uppercase.",
        "Type your reply with every letter capitalized.",
    ),
    "title_case": (
        "Write your answer in title case, capitalizing the first letter of every word.",
        "Capitalize the first letter of each word in your answer.",
        "Please reply in title case: every word starts with a capital letter.",
        "Start every word of your response with an uppercase letter.",
        "Use title case for your entire answer.",
        "Make each word in your reply begin with a capital letter.",
        "Your whole response must be in title case, With Every Word Capitalized Like "
        "This.",
        "Answer with the first letter of every word in uppercase.",
        "Format your answer in title case, so that each word begins with a capital "
        "letter.",
        "Respond so that every single word starts with an uppercase letter.",
    ),
}


_JSON_PARAPHRASES = (
    'Reply with a JSON object that has a single key "answer".',
    'Format your response as JSON: an object with exactly one key, "answer", '
    "holding your answer as a string.",
    'Return only a JSON object of the form {"answer": "..."}, with no code fences.',
    'Answer in JSON, with your whole answer as the string value of the key "answer".',
    'Output valid JSON containing one key, "answer", and nothing else.',
    'Give your response as a JSON object whose only key is "answer".',
    'Wrap your answer in a JSON object with the single key "answer".',
    'Respond with nothing but a JSON object like {"answer": "your answer here"}.',
    'Your reply must be a valid JSON object with exactly one field named "answer".',
    'Write your answer as JSON, {"answer": "<your answer as a string>"}, with no other '
    "keys and no text or code fences around it.",
)


_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five")


LENGTH_RANGES: dict[str, tuple[int, int]] = {
    "words_10_50": (10, 50),
    "words_50_70": (50, 70),
    "words_70_90": (70, 90),
    "words_90_120": (90, 120),
}
"""Word range [lo, hi] (inclusive) of each length behavior."""


SENTENCE_COUNTS: dict[str, int] = {f"sentences_{n}": n for n in range(1, 6)}
"""Exact sentence count of each sentences behavior."""


_UNSEEN = frozenset({"german", "words_70_90", "title_case", "sentences_3"})


def _language(name: str) -> Behavior:
    lang = name.capitalize()
    return Behavior(
        name=name,
        category="language",
        paraphrases=tuple(t.format(lang=lang) for t in _LANGUAGE_TEMPLATES),
        seen=name not in _UNSEEN,
        rule=f"lingua (en/fr/es/it/pt/de/nl/ca) detects the whole text as {lang}",
        checker=partial(V.is_language, lang=name),
    )


def _length(name: str) -> Behavior:
    lo, hi = LENGTH_RANGES[name]
    return Behavior(
        name=name,
        category="length",
        paraphrases=tuple(t.format(lo=lo, hi=hi) for t in _LENGTH_TEMPLATES),
        seen=name not in _UNSEEN,
        rule=f"{lo} <= word count <= {hi}; a word is a whitespace chunk with a letter "
        "or digit",
        checker=partial(V.words_in_range, lo=lo, hi=hi),
    )


def _sentences(name: str) -> Behavior:
    n = SENTENCE_COUNTS[name]
    noun = "sentence" if n == 1 else "sentences"
    return Behavior(
        name=name,
        category="sentences",
        paraphrases=tuple(
            t.format(words=f"{_NUMBER_WORDS[n]} {noun}", digits=f"{n} {noun}")
            for t in _SENTENCE_TEMPLATES
        ),
        seen=name not in _UNSEEN,
        rule=f"exactly {n} {noun}: ended by . ! ? runs before a blank, or by a line "
        "break; decimals and abbreviations do not end one",
        checker=partial(V.has_sentences, n=n),
    )


_CASE_RULES = {
    "lower_case": ("a lowercase letter and no uppercase letter", V.is_lower_case),
    "upper_case": ("an uppercase letter and no lowercase letter", V.is_upper_case),
    "title_case": (
        "every word starts upper-case (minor words like 'of' may not, unless "
        "sentence-initial) and the text is not all upper-case",
        V.is_title_case,
    ),
}


def _case(name: str) -> Behavior:
    rule, checker = _CASE_RULES[name]
    return Behavior(
        name=name,
        category="case",
        paraphrases=_CASE_PARAPHRASES[name],
        seen=name not in _UNSEEN,
        rule=rule,
        checker=checker,
    )


def _json() -> Behavior:
    return Behavior(
        name="json",
        category="format",
        paraphrases=_JSON_PARAPHRASES,
        seen=False,
        rule='json.loads(text.strip()) is an object with keys exactly {"answer"} '
        "and a non-empty string value",
        checker=V.is_json_answer,
    )


BUILTINS: tuple[Behavior, ...] = (
    *map(_language, V.LANGUAGES),
    *map(_length, LENGTH_RANGES),
    *map(_case, _CASE_RULES),
    *map(_sentences, SENTENCE_COUNTS),
    _json(),
)
"""The built-ins in registry order: languages, lengths, cases, sentences, json."""
