"""The behavior registry: 18 steerable behaviors, their instructions and checkers.

Each :class:`Behavior` is one steering token: a name (``french``,
``words_10_50``, ``upper_case``, ``sentences_2``, ``json``), a category, ten
instruction paraphrases (ours; the paper writes ten per behavior family and
samples one per example), whether it is *seen* (allowed in ``<and>`` training
pairs) and a verifier from :mod:`steerlib.tasks.verifiers`.

Seen / unseen (paper): German, 70-90 words, title case and 3 sentences are held
out of ``<and>`` training; ``json`` is the extra behavior of the 4-behavior test
and is never in a training pair either.

Conflicts (ours):
  * two behaviors of the same category never compose (French + Spanish);
  * a sentence count n and a word range [lo, hi] do not compose when
    lo / n > 40 (every sentence would need over 40 words) or hi / n < 4 (every
    sentence would need under 4 words). This excludes exactly
    (words_50_70, sentences_1), (words_70_90, sentences_1),
    (words_90_120, sentences_1) and (words_90_120, sentences_2);
    see :data:`EXCLUDED_PAIRS`;
  * German + lower_case (German nouns are capitalised) is kept, as in the
    paper: a lower-case German answer is unusual but well defined;
  * json conflicts with nothing: with json, the other behaviors are checked on
    the value of "answer" (see :func:`verify_all`), so "upper_case + json"
    means an upper-case answer under the lower-case key "answer".

Splits (ours, for json): a combination is *seen* when all its members are
seen. The format behavior (json) does not decide the split: a combination
containing it is judged on its other members, so that the 4-behavior test
(a 3-behavior combination plus json) has seen and unseen halves like the
3-behavior test it extends.

Your own behaviors (ours): ``register(Behavior(name, category, paraphrases, rule,
checker, transform=...))`` adds one next to the built-ins, ``unregister(name)`` or the
``registered(...)`` context manager removes it again. Then:

  * training: ``train_behavior_token(bb, name, cfg)`` trains its token like a built-in's;
    constructed targets use its ``transform`` (a behavior without one is not
    constructible); its caches are filed under :func:`cache_name`, the name plus a
    digest of its definition, while the built-ins' cache keys stay what they were;
  * seen / unseen: ``seen`` defaults to False. A behavior added after ``<and>`` was
    trained is, truly, one ``<and>`` never saw, so it composes with the shipped ``<and>``
    as an unseen behavior and every combination holding it is in the unseen split.
    ``seen=True`` puts it in ``<and>``'s training pairs (and so changes ``<and>``'s cache
    key: stage 2 then needs its token and trains a new ``<and>``);
  * conflicts: the same rules as the built-ins. It never composes with a behavior of its
    own category (a new language in "language" conflicts with French), nor with the
    names listed in its ``conflicts``; a new category conflicts with nothing else;
  * evaluation and composition: :func:`combinations`, :func:`verify_all` and the
    evaluation records include it by name.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import itertools
import json
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np

from steerlib.errors import UnknownNameError, VerifierError
from steerlib.tasks import verifiers as V

# ---------------------------------------------------------------- the record


@dataclass(frozen=True)
class Behavior:
    """One steerable behavior and how to ask for it and check it.

    The 18 built-ins are made below; a user's own is made the same way and added with
    :func:`register` (see "Your own behaviors" in the module doc).
    """

    name: str
    """Token name, e.g. "french", "words_10_50", "upper_case", "sentences_2", "json"."""
    category: str
    """"language" | "length" | "case" | "sentences" | "format", or a category of your own."""
    paraphrases: tuple[str, ...]
    """Instructions a user could append after a question (ten for the built-ins); the
    teacher reads one at random per training example."""
    rule: str
    """One-line human-readable verifier rule."""
    checker: Callable[[str], bool] = field(repr=False, compare=False)
    """The verifier: ``text -> bool``."""
    seen: bool = False
    """True: in the ``<and>`` training pairs. False (the default, and every behavior added
    after ``<and>`` was trained): held out, so it is tested as an unseen behavior."""
    transform: Callable[[str], str | None] | None = field(
        default=None, repr=False, compare=False
    )
    """Your own behaviors only: ``plain answer -> an answer that passes the verifier``
    (None where it cannot), for constructed targets; see :mod:`steerlib.train.transforms`."""
    conflicts: tuple[str, ...] = ()
    """Behaviors of other categories it never composes with (same category never does)."""

    def verify(self, text: str) -> bool:
        """True when ``text`` satisfies this behavior alone; a checker answering anything but
        a bool (numpy's counts) raises ``VerifierError`` naming the behavior."""
        return _as_bool(self.name, self.checker(text), text)

    def instruction(self, rng: random.Random | None = None) -> str:
        """A random paraphrase (the first one when ``rng`` is None, for determinism)."""
        return self.paraphrases[0] if rng is None else rng.choice(self.paraphrases)


# ---------------------------------------------------------------- families

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
        "Your whole response must be in title case, With Every Word Capitalized Like This.",
        "Answer with the first letter of every word in uppercase.",
        "Format your answer in title case, so that each word begins with a capital letter.",
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
        rule=f"{lo} <= word count <= {hi}; a word is a whitespace chunk with a letter or digit",
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


_REGISTRY: dict[str, Behavior] = {
    b.name: b
    for b in (
        *map(_language, V.LANGUAGES),
        *map(_length, LENGTH_RANGES),
        *map(_case, _CASE_RULES),
        *map(_sentences, SENTENCE_COUNTS),
        _json(),
    )
}
_BUILTIN = frozenset(_REGISTRY)

# ---------------------------------------------------------------- conflicts

MAX_WORDS_PER_SENTENCE = 40
"""A word range needing more words than this per sentence (lo / n) is excluded."""
MIN_WORDS_PER_SENTENCE = 4
"""A word range allowing fewer words than this per sentence (hi / n) is excluded."""


def _implausible(length: str, sentences: str) -> bool:
    lo, hi = LENGTH_RANGES[length]
    n = SENTENCE_COUNTS[sentences]
    return lo / n > MAX_WORDS_PER_SENTENCE or hi / n < MIN_WORDS_PER_SENTENCE


EXCLUDED_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (length, sentences)
    for length in LENGTH_RANGES
    for sentences in SENTENCE_COUNTS
    if _implausible(length, sentences)
)
"""Cross-category pairs that cannot reasonably both hold (ours, see module doc)."""

_EXCLUDED = frozenset(map(frozenset, EXCLUDED_PAIRS))

# ---------------------------------------------------------------- public API


def names() -> list[str]:
    """All behavior names in registry order (languages, lengths, cases, sentences, json,
    then your own in the order they were registered).

    >>> names()[:3]
    ['french', 'spanish', 'italian']
    """
    return list(_REGISTRY)


def get(name: str) -> Behavior:
    """The behavior called ``name``; an unknown name is an ``UnknownNameError`` (a KeyError)
    listing the known ones.

    >>> b = get("sentences_1")
    >>> b.category, b.seen, b.verify("The sky is blue."), b.verify("It is blue. It is vast.")
    ('sentences', True, True, False)
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown behavior {name!r}; known: {', '.join(_REGISTRY)}"
        ) from None


def categories() -> dict[str, list[str]]:
    """Category -> its behavior names, both in registry order."""
    grouped: dict[str, list[str]] = {}
    for b in _REGISTRY.values():
        grouped.setdefault(b.category, []).append(b.name)
    return grouped


def compatible(a: str, b: str) -> bool:
    """True when behaviors ``a`` and ``b`` may be composed (see the module doc).

    >>> compatible("french", "upper_case"), compatible("french", "spanish")
    (True, False)
    """
    first, second = get(a), get(b)
    if (
        first.category == second.category
        or b in first.conflicts
        or a in second.conflicts
    ):
        return False
    return frozenset((a, b)) not in _EXCLUDED


def _is_seen(combo: tuple[str, ...]) -> bool:
    """Seen when all members are; format behaviors (json) are left out of the judgement."""
    judged = [n for n in combo if get(n).category != "format"] or combo
    return all(get(n).seen for n in judged)


_SPLITS = ("all", "seen", "unseen")


def combinations(
    k: int, split: str = "all", *, include_json: bool = False
) -> list[tuple[str, ...]]:
    """All unordered combinations of ``k`` pairwise compatible behaviors.

    Each tuple is in registry order and holds at most one behavior per category.
    ``split``: "seen" (all members seen), "unseen" (at least one unseen member),
    or "all"; json never decides the split (see the module doc). json is in
    the pool only when ``include_json`` is True.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    pool = [n for n in _REGISTRY if include_json or n != "json"]
    return [
        combo
        for combo in itertools.combinations(pool, k)
        if all(compatible(a, b) for a, b in itertools.combinations(combo, 2))
        and (split == "all" or _is_seen(combo) == (split == "seen"))
    ]


def training_pairs() -> list[tuple[str, str]]:
    """The pairs ``<and>`` trains on: every compatible pair of seen behaviors."""
    return combinations(2, "seen")


def verify_all(text: str, names: Sequence[str]) -> dict[str, bool]:
    """Per-behavior verdicts for a composition, keyed by name in the given order.

    Rule (ours): when "json" is among ``names`` and the text is a valid JSON
    answer, the other behaviors are checked on the value of "answer" (upper
    case + json: the answer is upper-case, the key stays "answer"). When json
    fails, it is False and the others are checked on the raw text.
    """
    behaviors = [get(n) for n in names]
    answer = V.json_answer(text) if "json" in names else None
    body = text if answer is None else answer
    return {b.name: b.verify(text if b.name == "json" else body) for b in behaviors}


# ---------------------------------------------------------------- your own behaviors

_NAME = re.compile(r"[a-z_][a-z0-9_]*")
"""A behavior name must be writable as a steering tag ``<name>`` (lower-case)."""
RESERVED = frozenset({"and"})
"""Token names that are not behaviors: ``<and>`` is the composition token."""
_PROBES = (
    "",
    "Paris is the capital of France.",
    "Why is the sky blue? It scatters light.\n\n- one\n- two",
)
"""Texts a new verifier (and transform) is tried on at registration: it must answer each
with True or False, so a bad checker fails there, not in the middle of an evaluation."""


def is_builtin(name: str) -> bool:
    """True for the 18 behaviors that ship with steerlib."""
    return name in _BUILTIN


def register(behavior: Behavior, *, new_category: bool = False) -> Behavior:
    """Add your own behavior; training, composition and evaluation then treat it as a built-in.

    Checked before anything is added (each failure is a ValueError or TypeError saying what
    is allowed): the name is a new lower-case identifier (not ``and``); the category is a
    known one, or ``new_category=True`` (a guard against typos); the paraphrases are
    non-empty strings (a list is accepted and stored as a tuple); the rule is one line;
    the checker, tried on a few texts, returns a bool; the transform, if any, returns a
    string or None; every name in ``conflicts`` is registered. Returns the stored record.
    """
    if not isinstance(behavior, Behavior):
        raise TypeError(f"register() takes a Behavior, got {type(behavior).__name__}")
    b = behavior
    if not isinstance(b.name, str) or not _NAME.fullmatch(b.name) or b.name in RESERVED:
        raise ValueError(
            f"behavior name {b.name!r} is not allowed: use lower-case letters, digits and _, "
            f"starting with a letter or _ (it is written <{b.name}>), and not {sorted(RESERVED)}"
        )
    if b.name in _REGISTRY:
        kind = "a built-in" if is_builtin(b.name) else "already registered"
        raise ValueError(
            f"behavior {b.name!r} is {kind}; choose another name"
            + ("" if is_builtin(b.name) else f" or unregister({b.name!r}) first")
        )
    known = list(categories())
    if b.category not in known and not new_category:
        raise ValueError(
            f"unknown category {b.category!r}; known: {', '.join(known)}. To start a new one, "
            f"register(..., new_category=True)"
        )
    if not isinstance(b.category, str) or not _NAME.fullmatch(b.category):
        raise ValueError(f"category {b.category!r} must be a lower-case identifier")
    paraphrases = (
        (b.paraphrases,) if isinstance(b.paraphrases, str) else tuple(b.paraphrases)
    )
    if not paraphrases or not all(
        isinstance(p, str) and p.strip() for p in paraphrases
    ):
        raise ValueError(
            f"<{b.name}> needs at least one paraphrase, each a non-empty string; got {b.paraphrases!r}"
        )
    if not isinstance(b.rule, str) or not b.rule.strip() or "\n" in b.rule:
        raise ValueError(
            f"<{b.name}> needs a one-line rule describing its verifier; got {b.rule!r}"
        )
    _probe(b.name, "checker", b.checker, bool)
    if b.transform is not None:
        _probe(b.name, "transform", b.transform, (str, type(None)))
    unknown = [n for n in b.conflicts if n not in _REGISTRY]
    if unknown or b.name in b.conflicts:
        raise ValueError(
            f"<{b.name}> conflicts with unknown or itself: {unknown or [b.name]}; "
            f"known: {', '.join(_REGISTRY)}"
        )
    stored = replace(b, paraphrases=paraphrases, conflicts=tuple(b.conflicts))
    _REGISTRY[b.name] = stored
    return stored


def _probe(name: str, what: str, fn, returns) -> None:
    """Call ``fn`` on the probe texts; it must not raise and must return ``returns``."""
    if not callable(fn):
        raise TypeError(
            f"<{name}>'s {what} must be a function text -> ..., got {type(fn).__name__}"
        )
    for text in _PROBES:
        try:
            out = fn(text)
        except Exception as err:  # noqa: BLE001 - any failure here is the user's function's
            raise ValueError(
                f"<{name}>'s {what} raised {type(err).__name__}: {err} on the text {text!r}; "
                f"it must accept any string"
            ) from err
        if returns is bool:
            _as_bool(name, out, text)
        elif not isinstance(out, returns):
            raise TypeError(
                f"<{name}>'s {what} returned {type(out).__name__} ({out!r}) for {text!r}; "
                "it must return a string or None"
            )


def _as_bool(name: str, out, text: str) -> bool:
    """A checker's answer as a bool: True/False or numpy's bools, else a VerifierError."""
    if isinstance(out, (bool, np.bool_)):
        return bool(out)
    raise VerifierError(
        f"<{name}>'s checker returned {type(out).__name__} ({out!r}) for {text!r:.80}; "
        f"it must return True or False"
    )


def unregister(name: str) -> None:
    """Remove a behavior added with :func:`register` (built-ins stay)."""
    if is_builtin(name):
        raise ValueError(f"{name!r} is a built-in behavior and cannot be unregistered")
    if name not in _REGISTRY:
        custom = [n for n in _REGISTRY if not is_builtin(n)]
        raise KeyError(
            f"no registered behavior {name!r}; your own: {', '.join(custom) or 'none'}"
        )
    del _REGISTRY[name]


@contextlib.contextmanager
def registered(
    *behaviors: Behavior, new_category: bool = False
) -> Iterator[list[Behavior]]:
    """Register ``behaviors`` for the ``with`` block only (tests, experiments)."""
    added: list[Behavior] = []
    try:
        for b in behaviors:
            added.append(register(b, new_category=new_category))
        yield added
    finally:
        for b in reversed(added):
            unregister(b.name)


def constructible(name: str) -> bool:
    """True when behavior ``name`` has a faithful target transform
    (``steerlib.train.transforms``): every built-in but the languages, and your own
    behaviors registered with a ``transform``. A behavior without one trains on filtered
    targets where constructed ones are asked for.

    >>> constructible("upper_case"), constructible("french")
    (True, False)
    """
    behavior = get(name)
    if not is_builtin(name):
        return behavior.transform is not None
    return behavior.category != "language"


def cache_name(name: str) -> str:
    """The name a behavior's cached targets and tokens are filed under.

    A built-in's own name (its cache keys never change). Your own behavior's name plus a
    digest of what its training data depends on: paraphrases, rule, and the source code
    of its checker and transform, so that editing the behavior retrains it instead of
    reusing a stale token. (Values a function reads from outside its body, such as a
    global constant, are not in the digest: change the rule text when they change.)
    """
    b = get(name)
    if is_builtin(name):
        return name
    parts = {
        "category": b.category,
        "paraphrases": list(b.paraphrases),
        "rule": b.rule,
        "checker": _code(b.checker),
        "transform": _code(b.transform),
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:8]
    return f"{name}-{digest}"


def definitions_stamp(names: Sequence[str]) -> str:
    """What a generation record of ``names`` owes to their definitions: the ``cache_name`` of
    each of your own behaviors among them, joined by "+" ('' when all are built-ins).

    The paraphrases shape an instruction prompt and the checker every verdict, so a
    behavior registered again under its name with another checker, rule or instruction gets
    records of its own instead of the old verdicts. A built-in cannot be registered again;
    its definition changes only with steerlib's code, whose committed records are migrated
    with it, so it adds nothing (the records of built-ins keep their keys).
    """
    return "+".join(cache_name(n) for n in names if not is_builtin(n))


def _code(fn) -> str:
    """A function's source (a partial's function and arguments), or its qualified name."""
    if fn is None:
        return ""
    if isinstance(fn, partial):
        return f"{_code(fn.func)}{fn.args!r}{sorted(fn.keywords.items())!r}"
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return (
            f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"
        )
