"""The ways to steer a prompt, and the registry of them by name (``METHODS``).

The methods that differ only in what the prompt holds: plain, instruction (the
instructions as text), concatenation (behavior tokens side by side), native " and" (the
vocabulary's own " and" embedding between them), ``<and>``, and hybrid (``<and>`` tokens
plus the instructions). Methods that change the model (CAA, LM-Steer, LoRA) live in
``steerlib.baselines``; every method, of either kind, is a ``SteeringMethod``.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from steerlib.model.generate import Request, SteeredModel
from steerlib.model.inits import text_init
from steerlib.model.layout import Layout
from steerlib.model.tokens import SteeringTokens
from steerlib.tasks import behaviors as B


def interleave(names: Sequence[str], joiner: str | None = "and") -> tuple[str, ...]:
    """``[a, b, c] -> (a, and, b, and, c)``; ``joiner=None`` concatenates.

    >>> interleave(["french", "upper_case", "json"])
    ('french', 'and', 'upper_case', 'and', 'json')
    >>> interleave(["french", "json"], joiner=None)
    ('french', 'json')
    """
    out: list[str] = []
    for i, name in enumerate(names):
        if i and joiner:
            out.append(joiner)
        out.append(name)
    return tuple(out)


def instructions_for(names: Sequence[str], rng: random.Random | None) -> str:
    """One paraphrase per behavior (random when ``rng`` is given), joined by spaces."""
    return " ".join(B.get(n).instruction(rng) for n in names)


@runtime_checkable
class SteeringMethod(Protocol):
    """What ``evaluate`` asks of a way to steer: prompt methods and model-changing
    baselines alike.

    For a combination's ordered behavior ``names``: ``request`` is the prompt,
    ``context`` the model to generate it with (entered around the generation and undone
    after), and ``digest`` what the records carry, so that a record made with other
    vectors or parameters is recognised as stale.
    """

    name: str
    order_free: bool
    """Every ordering of a combination is steered identically: evaluate then enters one
    context per combination, and generates each identical prompt once."""
    changes_model: bool
    """``context`` changes the model per combination (a baseline): evaluate groups the
    generations by context. False when one context serves every combination."""

    def request(
        self, question: str, names: Sequence[str], rng: random.Random | None = None
    ) -> Request: ...

    def digest(self, sm: SteeredModel, names: Sequence[str]) -> str: ...

    def context(
        self, sm: SteeredModel, names: Sequence[str]
    ) -> AbstractContextManager[SteeredModel]: ...


@dataclass(frozen=True)
class Method:
    """A prompt-level way to steer (a ``SteeringMethod``): how a (question, ordered
    behaviors) becomes a prompt.

    ``joiner`` is the token between behavior tokens (None = concatenation);
    ``tokens=False`` uses no steering tokens; ``instructions`` appends the text;
    ``layout`` reads the tokens in other places than their own
    (``steerlib.model.layout``).

    >>> Method("and").request("Why?", ("french", "sentences_1"))
    Request(question='Why?', slots=('french', 'and', 'sentences_1'), instructions='')
    >>> Method("concat", joiner=None).request("Why?", ("french", "sentences_1")).slots
    ('french', 'sentences_1')
    """

    name: str
    tokens: bool = True
    instructions: bool = False
    joiner: str | None = "and"
    native_and: bool = False
    layout: Layout | None = None

    order_free: ClassVar[bool] = False
    changes_model: ClassVar[bool] = False

    def slots(self, names: Sequence[str]) -> tuple[str, ...]:
        """The steering tokens the prompt for ``names`` reads, in order."""
        return interleave(names, self.joiner) if self.tokens else ()

    def request(
        self, question: str, names: Sequence[str], rng: random.Random | None = None
    ) -> Request:
        text = instructions_for(names, rng) if self.instructions else ""
        return Request(question, self.slots(names), text)

    def digest(self, sm: SteeredModel, names: Sequence[str]) -> str:
        """The digest of the vectors the prompt reads ('' when it reads none)."""
        slots = self.slots(names)
        model = self.prepare(sm)
        return model.tokens.digest(slots) if slots and model.tokens is not None else ""

    def prepare(self, sm: SteeredModel) -> SteeredModel:
        """The model this method generates with (native " and" swaps the <and> vector; a
        layout reads the tokens in its places)."""
        if not self.native_and and self.layout is None:
            return sm
        tokens = (
            sm.tokens.copy()
            if sm.tokens is not None
            else SteeringTokens.for_backbone(sm.backbone)
        )
        if self.native_and:
            tokens.set(
                "and", text_init(sm.backbone, " and"), {"init": "vocabulary ' and'"}
            )
        if self.layout is not None:
            tokens.layout = self.layout
        return SteeredModel(sm.backbone, tokens, strict=sm.strict)

    @contextlib.contextmanager
    def context(self, sm: SteeredModel, names: Sequence[str]) -> Iterator[SteeredModel]:
        """The model for every combination: ``sm``, with the vocabulary's " and" for
        native_and."""
        yield self.prepare(sm)


METHODS: dict[str, Method] = {
    "plain": Method("plain", tokens=False),
    "instruction": Method("instruction", tokens=False, instructions=True),
    "concat": Method("concat", joiner=None),
    "native_and": Method("native_and", native_and=True),
    "and": Method("and"),
    "hybrid": Method("hybrid", instructions=True),
}
"""The prompt-level methods, by the names ``evaluate`` and the CLI use."""
