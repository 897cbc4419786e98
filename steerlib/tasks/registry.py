"""The behavior registry: every behavior by name, in registry order, the built-ins
first; your own added and removed; the digests that file your own behaviors' caches.

Your own behaviors (ours): ``register(Behavior(name, category, paraphrases, rule,
checker, transform=...))`` adds one next to the built-ins, ``unregister(name)`` or the
``registered(...)`` context manager removes it again. Then:

  * training: ``train_behavior_token(bb, name, cfg)`` trains its token like a
    built-in's; constructed targets use its ``transform`` (a behavior without one is not
    constructible); its caches are filed under :func:`cache_name`, the name plus a
    digest of its definition, while the built-ins' cache keys stay what they were;
  * seen / unseen: ``seen`` defaults to False. A behavior added after ``<and>`` was
    trained is, truly, one ``<and>`` never saw, so it composes with the shipped
    ``<and>`` as an unseen behavior and every combination holding it is in the unseen
    split. ``seen=True`` puts it in ``<and>``'s training pairs (and so changes
    ``<and>``'s cache key: stage 2 then needs its token and trains a new ``<and>``);
  * conflicts: the same rules as the built-ins. It never composes with a behavior of its
    own category (a new language in "language" conflicts with French), nor with the
    names listed in its ``conflicts``; a new category conflicts with nothing else;
  * evaluation and composition: ``behaviors.combinations``, ``behaviors.verify_all``
    and the evaluation records include it by name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace

from steerlib.errors import ConfigError, UnknownNameError, WrongTypeError
from steerlib.tasks.builtin import BUILTINS, Behavior, _as_bool
from steerlib.tasks.digests import code_text

_REGISTRY: dict[str, Behavior] = {b.name: b for b in BUILTINS}
_BUILTIN = frozenset(_REGISTRY)


def names() -> list[str]:
    """All behavior names in registry order (languages, lengths, cases, sentences, json,
    then your own in the order they were registered).

    >>> names()[:3]
    ['french', 'spanish', 'italian']
    """
    return list(_REGISTRY)


def get(name: str) -> Behavior:
    """The behavior called ``name``; an unknown name is an ``UnknownNameError`` (a
    KeyError) listing the known ones.

    >>> b = get("sentences_1")
    >>> one, two = "The sky is blue.", "It is blue. It is vast."
    >>> b.category, b.seen, b.verify(one), b.verify(two)
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


def is_builtin(name: str) -> bool:
    """True for the 18 behaviors that ship with steerlib."""
    return name in _BUILTIN


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


_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
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


def register(behavior: Behavior, *, new_category: bool = False) -> Behavior:
    """Add your own behavior; training, composition and evaluation then treat it as a
    built-in.

    Checked before anything is added (each failure is a ValueError or TypeError saying
    what is allowed): the name is a new lower-case identifier (not ``and``); the
    category is a known one, or ``new_category=True`` (a guard against typos); the
    paraphrases are non-empty strings (a list is accepted and stored as a tuple); the
    rule is one line; the checker, tried on a few texts, returns a bool; the transform,
    if any, returns a string or None; every name in ``conflicts`` is registered.
    Returns the stored record.
    """
    if not isinstance(behavior, Behavior):
        raise WrongTypeError(
            f"register() takes a Behavior, got {type(behavior).__name__}"
        )
    b = behavior
    if not isinstance(b.name, str) or not _NAME.fullmatch(b.name) or b.name in RESERVED:
        raise ConfigError(
            f"behavior name {b.name!r:.80} is not allowed: use lower-case letters, "
            "digits and _, starting with a letter or _, at most 64 in all (it is "
            f"written <name>), and not {sorted(RESERVED)}"
        )
    if b.name in _REGISTRY:
        kind = "a built-in" if is_builtin(b.name) else "already registered"
        raise ConfigError(
            f"behavior {b.name!r} is {kind}; choose another name"
            + ("" if is_builtin(b.name) else f" or unregister({b.name!r}) first")
        )
    known = list(categories())
    if b.category not in known and not new_category:
        raise ConfigError(
            f"unknown category {b.category!r}; known: {', '.join(known)}. To start a "
            "new one, "
            f"register(..., new_category=True)"
        )
    if not isinstance(b.category, str) or not _NAME.fullmatch(b.category):
        raise ConfigError(f"category {b.category!r} must be a lower-case identifier")
    paraphrases = (
        (b.paraphrases,) if isinstance(b.paraphrases, str) else tuple(b.paraphrases)
    )
    if not paraphrases or not all(
        isinstance(p, str) and p.strip() for p in paraphrases
    ):
        raise ConfigError(
            f"<{b.name}> needs at least one paraphrase, each a non-empty string; got "
            f"{b.paraphrases!r}"
        )
    if not isinstance(b.rule, str) or not b.rule.strip() or "\n" in b.rule:
        raise ConfigError(
            f"<{b.name}> needs a one-line rule describing its verifier; got {b.rule!r}"
        )
    _probe(b.name, "checker", b.checker, bool)
    if b.transform is not None:
        _probe(b.name, "transform", b.transform, (str, type(None)))
    code_text(b.checker, f"<{b.name}>'s checker")  # refuses what it cannot digest, now
    code_text(b.transform, f"<{b.name}>'s transform")
    unknown = [n for n in b.conflicts if n not in _REGISTRY]
    if unknown or b.name in b.conflicts:
        raise ConfigError(
            f"<{b.name}> conflicts with unknown or itself: {unknown or [b.name]}; "
            f"known: {', '.join(_REGISTRY)}"
        )
    stored = replace(b, paraphrases=paraphrases, conflicts=tuple(b.conflicts))
    _REGISTRY[b.name] = stored
    return stored


def _probe(name: str, what: str, fn, returns) -> None:
    """Call ``fn`` on the probe texts; it must not raise and must return ``returns``."""
    if not callable(fn):
        raise WrongTypeError(
            f"<{name}>'s {what} must be a function text -> ..., got {type(fn).__name__}"
        )
    for text in _PROBES:
        try:
            out = fn(text)
        except Exception as err:
            raise ConfigError(
                f"<{name}>'s {what} raised {type(err).__name__}: {err} on the text "
                f"{text!r}; "
                f"it must accept any string"
            ) from err
        if returns is bool:
            _as_bool(name, out, text)
        elif not isinstance(out, returns):
            raise WrongTypeError(
                f"<{name}>'s {what} returned {type(out).__name__} ({out!r}) for "
                f"{text!r}; "
                "it must return a string or None"
            )


def unregister(name: str) -> None:
    """Remove a behavior added with :func:`register` (built-ins stay)."""
    if is_builtin(name):
        raise ConfigError(f"{name!r} is a built-in behavior and cannot be unregistered")
    if name not in _REGISTRY:
        custom = [n for n in _REGISTRY if not is_builtin(n)]
        raise UnknownNameError(
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


def cache_name(name: str) -> str:
    """The name a behavior's cached targets and tokens are filed under.

    A built-in's own name (its cache keys never change). Your own behavior's name plus a
    digest of what its training data depends on: paraphrases, rule, and the source code
    of its checker and transform (docstrings aside) with the values they close over and
    their defaults (``digests.code_text``), so that editing the behavior retrains it
    instead of reusing a stale token. (Globals a function reads, such as a module
    constant, are not in the digest: change the rule text when they change.)"""
    b = get(name)
    if is_builtin(name):
        return name
    parts = {
        "category": b.category,
        "paraphrases": list(b.paraphrases),
        "rule": b.rule,
        "checker": code_text(b.checker, f"<{name}>'s checker"),
        "transform": code_text(b.transform, f"<{name}>'s transform"),
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:8]
    return f"{name}-{digest}"


def definitions_stamp(names: Sequence[str]) -> str:
    """What a generation record of ``names`` owes to their definitions: the
    ``cache_name`` of each of your own behaviors among them, joined by "+" ('' when all
    are built-ins).

    The paraphrases shape an instruction prompt and the checker every verdict, so a
    behavior registered again under its name with another checker, rule or instruction
    gets records of its own instead of the old verdicts. A built-in cannot be
    registered again; its definition changes only with steerlib's code, whose committed
    records are migrated with it, so it adds nothing (the records of built-ins keep
    their keys).
    """
    return "+".join(cache_name(n) for n in names if not is_builtin(n))
