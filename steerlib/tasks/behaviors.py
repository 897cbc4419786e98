"""Which behaviors compose, and the face of the behavior registry (``st.behaviors``).

18 steerable behaviors ship, with their instructions and checkers.

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

Your own behaviors: ``register`` (``steerlib.tasks.registry``) adds one beside the
built-ins; training, composition and evaluation then treat it as one of them.

The built-in definitions live in ``steerlib.tasks.builtin``, the registry (lookup by
name, your own behaviors, their cache digests) in ``steerlib.tasks.registry``; this
module decides which behaviors compose and is the face of both (``st.behaviors``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from steerlib.errors import ConfigError
from steerlib.tasks import verifiers as V
from steerlib.tasks.builtin import LENGTH_RANGES, SENTENCE_COUNTS, Behavior
from steerlib.tasks.registry import (
    RESERVED,
    cache_name,
    categories,
    constructible,
    definitions_stamp,
    get,
    is_builtin,
    names,
    register,
    registered,
    unregister,
)

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
    """Seen when all members are; format behaviors (json) are left out of the
    judgement."""
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
        raise ConfigError(f"split must be one of {_SPLITS}, got {split!r}")
    pool = [n for n in names() if include_json or n != "json"]
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


__all__ = [
    "Behavior",
    "LENGTH_RANGES",
    "SENTENCE_COUNTS",
    "RESERVED",
    "MAX_WORDS_PER_SENTENCE",
    "MIN_WORDS_PER_SENTENCE",
    "EXCLUDED_PAIRS",
    "names",
    "get",
    "categories",
    "compatible",
    "combinations",
    "training_pairs",
    "verify_all",
    "is_builtin",
    "constructible",
    "register",
    "unregister",
    "registered",
    "cache_name",
    "definitions_stamp",
]
"""``st.behaviors``: the built-ins and the registry's names, with the composition rules
here."""
