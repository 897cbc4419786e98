"""Constructed targets: rewrite a plain answer so that it satisfies behaviors.

When the teacher does not follow an instruction (a small model rarely writes
in upper case), a faithful target can still be built from its plain answer for
behaviors that are a mechanical edit of it (ours; the paper teacher-forces a
larger model's answers instead). Language has no such edit: translating is not
a transform, so language behaviors are not constructible.

Order of a composition (ours), so that later steps cannot undo earlier ones:
  1. cut: keep a prefix of whole sentences. ``sentences_n`` allows only the cut
     after sentence n; a word range [lo, hi] allows the cuts whose running word
     count lies in [lo, hi]; the last allowed cut wins (the longest answer).
     No allowed cut -> None.
  2. your own behaviors' transforms (``Behavior.transform``), in the order given;
     one that returns None makes the whole composition unconstructible. Whether the
     cut still holds afterwards is the final check's business (below).
  3. case: lower / upper / title. Changing case never moves a sentence boundary
     or a word boundary, so the cut stays valid.
  4. json: wrap last, ``json.dumps({"answer": text}, ensure_ascii=False)``, so
     the other behaviors hold on the value, as :func:`behaviors.verify_all` reads it.
The cut and the counts reuse the verifiers' own splitter and word counter, and
the result is checked with :func:`behaviors.verify_all`: whatever is returned
satisfies every behavior of the composition, anything else is None.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

from steerlib.tasks import behaviors as B
from steerlib.tasks import verifiers as V


def _capitalise_word(chunk: str) -> str:
    """Upper-case the first letter-or-digit of a chunk ("**bold" -> "**Bold")."""
    for i, ch in enumerate(chunk):
        if ch.isalnum():
            return chunk[:i] + ch.upper() + chunk[i + 1 :]
    return chunk


def to_title_case(text: str) -> str:
    """Capitalise every word's first letter; whitespace and other letters are kept.

    Minor words are capitalised too: the verifier allows both, and "every word"
    is what the instructions ask for.
    """
    return re.sub(r"\S+", lambda m: _capitalise_word(m.group()), text)


_CASE_TRANSFORMS: dict[str, Callable[[str], str]] = {
    "lower_case": str.lower,
    "upper_case": str.upper,
    "title_case": to_title_case,
}


def _cut(text: str, names: Sequence[str]) -> str | None:
    """The longest prefix of whole sentences allowed by the sentence and length
    behaviors."""
    counts = [B.SENTENCE_COUNTS[n] for n in names if n in B.SENTENCE_COUNTS]
    ranges = [B.LENGTH_RANGES[n] for n in names if n in B.LENGTH_RANGES]
    if not counts and not ranges:
        return text
    ends = [end for _, end in V.sentence_spans(text)]
    allowed = [
        end
        for i, end in enumerate(ends, start=1)
        if all(i == n for n in counts)
        and all(lo <= V.count_words(text[:end]) <= hi for lo, hi in ranges)
    ]
    return text[: allowed[-1]] if allowed else None


def construct(names: Sequence[str], text: str) -> str | None:
    """``text`` rewritten to satisfy every behavior in ``names``, or None if impossible.

    None when a behavior is not constructible (a language), when no sentence
    boundary allows the cut (fewer sentences than asked, no boundary inside
    the word range), or when the result still fails a verifier (e.g. title
    case of an all-caps text).
    """
    if not all(map(B.constructible, names)):
        return None
    out = _cut(text, names)
    if out is None:
        return None
    out = out.strip()
    for name in names:  # your own behaviors' transforms, in the given order
        transform = B.get(name).transform
        out = transform(out) if transform is not None else out
        if out is None:
            return None
    for name in names:
        if name in _CASE_TRANSFORMS:
            out = _CASE_TRANSFORMS[name](out)
    if "json" in names:
        out = json.dumps({V.JSON_KEY: out}, ensure_ascii=False)
    return out if all(B.verify_all(out, names).values()) else None
