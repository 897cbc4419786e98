"""From "question <french><and><words_10_50>" to ``inputs_embeds``.

Placement (paper): the steering tokens sit right after the question, in the user turn
of the model's own chat template; the teacher reads the instruction text there instead.
The hybrid form has both: ``question instructions <tokens>`` (that order is ours).

We render the chat template with one private-use character per slot, cut the text at
those characters, tokenise the pieces without adding special tokens (the template
already wrote BOS where the model wants one, so there is never a second), each piece
after a slot as mid-text (SentencePiece would start it with a word-start space), and
remember the slot positions. The embeddings of a batch are the model's word embeddings
with the slot rows replaced by the steering vectors: gradients reach only those vectors.

Token syntax: a trailing run of ``<name>`` tags is steering syntax and every name in
it must be a known token (else an error lists the known ones). Any other ``<`` text
(``a < b``, HTML tags mid-sentence) stays ordinary text. Checks (``parse``):

* a run that breaks the composition rules is refused with the rule it breaks: ``<and>``
  first, last or twice in a row, a behavior twice, or two behaviors that never compose
  (same category, e.g. ``<french><and><spanish>``; see ``behaviors.compatible``), unless
  the caller opts out with ``strict=False``;
* text that looks like a known token but is not steering syntax (``<french``,
  ``< french >``, ``<French>``, or ``<french>`` mid-sentence) draws a ``TagWarning``;
* a backslash escapes a tag: ``\\<json>`` is the literal text ``<json>``, never a token,
  so "Show me an example of \\<json>" or a prompt ending in "\\<br>" stays text. (Or
  pass the text and the tokens apart: ``Request(question, slots)``.)
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from steerlib.errors import ConfigError, PromptError
from steerlib.model import layout as L
from steerlib.model.backbone import Backbone
from steerlib.model.tokens import SteeringTokens
from steerlib.tasks import behaviors as B

SLOT = "\ue000"  # Unicode private use: never in real text, one unmistakable cut point
_TRAILING_TAGS = re.compile(r"(?:\s*(?<!\\)<[A-Za-z_][A-Za-z0-9_]*>)+\s*$")
_TAG = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")
_ESCAPED_TAG = re.compile(r"\\(<[A-Za-z_][A-Za-z0-9_]*>)")
_TAG_LIKE = re.compile(r"(?<!\\)<\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>?)")
"""Anything that may be meant as a tag: ``<name>``, ``<name``, ``< name >`` (not
escaped)."""
AND = "and"


class TagWarning(UserWarning):
    """Prompt text that looks like a steering token but is plain text (it steers
    nothing)."""


def parse(
    text: str, known: Sequence[str] | None = None, strict: bool = True
) -> tuple[str, list[str]]:
    """Split ``"question <a><and><b>"`` into ``("question", ["a", "and", "b"])``.

    ``known`` lists the allowed token names; a tag outside it raises a PromptError that
    names the known tokens. With ``strict`` (the default), a run against the composition
    rules raises a PromptError naming the rule (``check_run``). Text without trailing
    tags returns no names. Escaped tags (``\\<json>``) become literal text; near-misses
    of known tokens draw a ``TagWarning``.

    >>> parse("Why is the sky blue? <french><and><sentences_1>")
    ('Why is the sky blue?', ['french', 'and', 'sentences_1'])
    >>> parse("Why is the sky blue?")
    ('Why is the sky blue?', [])
    """
    match = _TRAILING_TAGS.search(text)
    question, names = (
        (text[: match.start()].rstrip(), _TAG.findall(match.group(0)))
        if match
        else (text, [])
    )
    if known is not None:
        unknown = [n for n in names if n not in known]
        if unknown:
            raise PromptError(
                f"unknown steering token(s) {', '.join(f'<{n}>' for n in unknown)} in "
                f"{text!r}; known tokens: "
                f"{', '.join(f'<{n}>' for n in known) or 'none (no tokens loaded)'}"
            )
        _warn_near_misses(question, known)
    if strict:
        check_run(names)
    return _ESCAPED_TAG.sub(r"\1", question), names


def check_run(names: Sequence[str]) -> None:
    """Refuse a run of steering tokens that breaks the composition rules, naming the
    rule.

    ``<and>`` joins two behavior tokens (never first, last or twice in a row); a
    behavior appears once; two behaviors compose only when ``behaviors.compatible``
    allows it (never two of one category). Names that are not registered behaviors are
    checked for the first two rules only.
    """
    if not names:
        return
    hint = "; pass strict=False to run it anyway"
    if names[0] == AND or names[-1] == AND:
        raise PromptError(
            f"{_run(names)}: <and> must stand between two behavior tokens{hint}"
        )
    for a, b in zip(names, names[1:]):
        if a == b == AND:
            raise PromptError(
                f"{_run(names)}: <and><and> joins nothing; one <and> between two "
                f"behaviors{hint}"
            )
    behaviors = [n for n in names if n != AND]
    twice = sorted({n for n in behaviors if behaviors.count(n) > 1})
    if twice:
        raise PromptError(
            f"{_run(names)}: {', '.join(f'<{n}>' for n in twice)} given twice; each "
            f"behavior appears once{hint}"
        )
    registered = [n for n in dict.fromkeys(behaviors) if n in B.names()]
    for i, a in enumerate(registered):
        for b in registered[i + 1 :]:
            if not B.compatible(a, b):
                same = B.get(a).category == B.get(b).category
                rule = (
                    f"two {B.get(a).category} behaviors never compose"
                    if same
                    else "they cannot both hold (see behaviors.compatible)"
                )
                raise PromptError(
                    f"{_run(names)}: <{a}> and <{b}> conflict: {rule}{hint}"
                )


def _run(names: Sequence[str]) -> str:
    return "".join(f"<{n}>" for n in names)


def _warn_near_misses(question: str, known: Sequence[str]) -> None:
    """Warn about text in ``question`` that looks like a known token but steers
    nothing."""
    lower = {n.lower(): n for n in known}
    for match in _TAG_LIKE.finditer(question):
        name = lower.get(match.group(1).lower())
        if name is not None:
            warnings.warn(
                f"{match.group(0)!r} in the prompt looks like the steering token "
                f"<{name}> but is plain text: steering tokens go at the end of the "
                f"prompt, written exactly <{name}>; write \\<{name}> for the literal "
                f"text",
                TagWarning,
                stacklevel=3,
            )


@dataclass
class Rendered:
    """One chat prompt as token ids, with the positions of its steering slots."""

    ids: list[int]
    slots: list[tuple[int, str]] = field(default_factory=list)
    """(position in ids, token name) for every steering slot."""
    blocks: list[L.Block] = field(default_factory=list)
    """(position of its first slot, token name, slot count) for every steering token: a
    token of k vectors fills k consecutive slots. Left empty, one slot per token."""

    def __post_init__(self) -> None:
        if self.slots and not self.blocks:
            self.blocks = [(pos, name, 1) for pos, name in self.slots]


def render(
    bb: Backbone,
    question: str,
    slots: Sequence[str] = (),
    instructions: str = "",
    widths: Mapping[str, int] | None = None,
) -> Rendered:
    """Chat-template ``question [instructions]<slot>...`` as ids with slot positions.

    ``slots`` names the steering tokens in order; ``widths[name]`` is how many vectors
    (consecutive slots) a token holds (``SteeringTokens.widths()``; default 1)."""
    if SLOT in question or SLOT in instructions:
        raise PromptError(
            "prompt text contains U+E000, which steerlib reserves for token slots"
        )
    cells = [
        (name, j) for name in slots for j in range((widths or {}).get(name, 1))
    ]  # one per slot: the token and which of its vectors
    content = (
        question + (f" {instructions}" if instructions else "") + SLOT * len(cells)
    )
    text = bb.tokenizer.apply_chat_template(
        [{"role": "user", "content": content}],
        tokenize=False,
        add_generation_prompt=True,
        **bb.chat_kwargs,
    )
    pieces = text.split(SLOT)
    ids: list[int] = []
    positions: list[tuple[int, str]] = []
    blocks: list[L.Block] = []
    for i, piece in enumerate(pieces):
        if piece:
            ids += (
                _tokenize(bb.tokenizer, piece)
                if i == 0
                else _tokenize_after_slot(bb.tokenizer, piece)
            )
        if i < len(cells):
            name, j = cells[i]
            if j == 0:
                blocks.append((len(ids), name, (widths or {}).get(name, 1)))
            positions.append((len(ids), name))
            ids.append(
                bb.tokenizer.pad_token_id
            )  # placeholder; its embedding is replaced
    return Rendered(ids, positions, blocks)


def _tokenize(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _tokenize_after_slot(tokenizer, piece: str) -> list[int]:
    """Ids of ``piece`` as it tokenizes in mid-text, after a steering slot.

    Tokenized alone, a piece counts as the start of a text, and SentencePiece-style
    tokenizers (Llama 2, Mistral) prepend their word-start space to it:
    ``"\\n\\nAssistant:"`` after a slot would gain a token that the same text after a
    word never has. So the piece is tokenized behind a slot character, whose own ids are
    then dropped.
    """
    anchor = _tokenize(tokenizer, SLOT)
    ids = _tokenize(tokenizer, SLOT + piece)
    if ids[: len(anchor)] != anchor:
        raise ConfigError(
            f"{type(tokenizer).__name__} merges the text after a steering slot with "
            f"the slot marker U+E000 ({piece[:20]!r}); steerlib cannot place slots in "
            f"this chat template"
        )
    return ids[len(anchor) :]


def render_text(
    bb: Backbone,
    text: str,
    tokens: SteeringTokens | None = None,
    instructions: str = "",
    strict: bool = True,
) -> Rendered:
    """Render a prompt written in token syntax (``"Why? <french><and><upper_case>"``);
    ``strict`` as in ``parse``."""
    question, names = parse(text, tokens.names if tokens is not None else [], strict)
    return render(
        bb,
        question,
        names,
        instructions,
        tokens.widths() if tokens is not None else None,
    )


@dataclass
class Batch:
    """Left-padded model inputs for a list of rendered prompts (plus optional
    answers)."""

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    """(batch, width): 1 on real tokens, 0 on the left padding."""
    position_ids: torch.Tensor
    """(batch, width): each row's positions from 0 at its first real token, as its
    ``Layout`` numbers them."""
    prefill_mask: torch.Tensor | None = None
    """(batch, 1, width, width) bool, True where a query may attend to a key, when the
    layout restricts attention beyond causal + padding (``Layout.isolate``); else
    None."""

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments of one forward pass over the whole batch."""
        mask = (
            L.additive(self.prefill_mask, self.inputs_embeds.dtype)
            if self.prefill_mask is not None
            else self.attention_mask
        )
        return {
            "inputs_embeds": self.inputs_embeds,
            "attention_mask": mask,
            "position_ids": self.position_ids,
        }


def embed(
    bb: Backbone,
    rows: Sequence[Rendered],
    tokens: SteeringTokens | None = None,
    answers: Sequence[Sequence[int]] | None = None,
    vectors: dict[str, torch.Tensor] | None = None,
    layout: L.Layout | None = None,
) -> Batch:
    """Embed a batch, replacing slot rows by steering vectors.

    ``vectors`` overrides ``tokens`` name by name; training passes its live (gradient
    carrying) parameters here. ``answers`` are appended after each prompt for teacher
    forcing. Padding is on the left so every sequence ends at the same position.
    ``layout`` (default: the one ``tokens`` were made for, else the paper's) sets the
    slots' position ids and attention (``steerlib.model.layout``).
    """
    if layout is None:
        layout = tokens.layout if tokens is not None else L.DEFAULT
    answers = answers if answers is not None else [[] for _ in rows]
    seqs = [r.ids + list(a) for r, a in zip(rows, answers)]
    width = max(len(s) for s in seqs)
    pad = bb.tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=bb.device)
    mask = torch.tensor(
        [[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=bb.device
    )
    embeds = bb.model.get_input_embeddings()(ids)
    slot_b, slot_p, slot_vecs = [], [], []
    for b, (row, seq) in enumerate(zip(rows, seqs)):
        offset = width - len(seq)
        for start, name, count in row.blocks:
            vec = vectors[name] if vectors is not None and name in vectors else None
            if vec is None:
                if tokens is None:
                    raise PromptError(
                        f"prompt has a <{name}> slot but no tokens were given"
                    )
                vec = tokens[name]
            block = vec.reshape(-1, vec.shape[-1])
            if len(block) != count:
                raise ConfigError(
                    f"<{name}> holds {len(block)} vector(s) but the prompt was "
                    f"rendered with {count} slot(s) for it; render with the tokens' "
                    f"widths()"
                )
            slot_b += [b] * count
            slot_p += range(offset + start, offset + start + count)
            slot_vecs += list(block.to(bb.device, embeds.dtype))
    if slot_vecs:
        values = torch.stack(slot_vecs)
        if (
            bb.embed_scale != 1.0
        ):  # scaled as the embedding layer scales a looked-up row
            values = values * torch.tensor(
                bb.embed_scale, dtype=embeds.dtype, device=bb.device
            )
        embeds = embeds.index_put(
            (
                torch.tensor(slot_b, device=bb.device),
                torch.tensor(slot_p, device=bb.device),
            ),
            values,
        )
    position_ids = torch.tensor(
        [
            [0] * (width - len(s)) + L.positions(len(s), r.blocks, layout)
            for r, s in zip(rows, seqs)
        ],
        device=bb.device,
    )
    allowed = L.allowed(
        [len(s) for s in seqs], width, [r.blocks for r in rows], layout, bb.device
    )
    return Batch(embeds, mask, position_ids, allowed)
