"""Plain questions that steering tokens are trained and evaluated on.

A steering token has to supply a behaviour (answer in French, be brief, ...)
that the prompt itself does not ask for. The paper therefore drew its prompts
from SmolTalk and stripped them of any constraints or format instructions, so
that the only source of the behaviour is the token. To work offline, steerlib
ships its own set of such questions instead: over 700 self-contained questions
written for this project across 18 domains, with a fixed split of 200 "test"
questions held out for evaluation, the last 48 of the others "val" (validation-guided
training scores tokens on them; they are never training targets) and the rest
"train". The set is our choice,
not the paper's; `load` also accepts your own questions, a local file or a
Hugging Face dataset.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from steerlib.errors import ConfigError, DependencyError, WrongTypeError

SPLITS = ("train", "val", "test")
N_VAL = 48
"""The last N_VAL train questions of the shipped file form the "val" split (ours): the
file's train rows are shuffled across domains, and the first 472 "train" questions,
which every cached target so far was drawn from, keep their order."""
TEXT_FIELDS = ("prompt", "question", "instruction", "text")
FILE_SUFFIXES = (".jsonl", ".txt")


SHIPPED_DIGESTS = {
    "train": "58778949c9321733adec53a6a710ee8ca44e85ae486c3a6eb9879e480ca14e75",
    "val": "66917384d97db7c2b245741f4553c9e4759eede814191144c3fed25cba66feb6",
    "test": "909ef3964b78b83ceefe334f849e795dab6be0b44bf246bcb293deb3d22e62cd",
}
"""SHA-256 of each split of the prompts file as it shipped when the cached and committed
tokens were trained (``questions_digest``). Pinned, not computed from the file: a split
edited in place (your own questions in ``steerlib/data/prompts.jsonl``) no longer
matches, so its cache keys change and no token trained on the old questions is
reused."""


def questions_digest(questions: Sequence[str]) -> str:
    """SHA-256 over a question list (JSON, in order)."""
    return hashlib.sha256(
        json.dumps(list(questions), ensure_ascii=False).encode()
    ).hexdigest()


def cache_tag(questions: Sequence[str] | None, split: str = "train") -> str:
    """The part of a cache key that names the questions a run trains on.

    '' for the questions of ``split`` exactly as they shipped (``SHIPPED_DIGESTS``; None
    means the shipped file's ``split`` as it is now), so every key made before questions
    were part of keys, the shipped tokens' included, stays valid; else ``-q`` and 12 hex
    digits of their SHA-256, so training on other questions, an edited shipped file's
    included, never reuses a result made from these.
    """
    digest = questions_digest(load(split) if questions is None else questions)
    return "" if digest == SHIPPED_DIGESTS.get(split) else "-q" + digest[:12]


def load(
    split: str | None = "test",
    source: str | Path | Sequence[str] | None = None,
    limit: int | None = None,
    seed: int | None = None,
    *,
    text_field: str | None = None,
) -> list[str]:
    """Return questions from `source`, optionally shuffled and truncated.

    `source` may be None (the shipped set), a list or tuple of strings
    (returned as is, `split` ignored), a path to a ``.jsonl`` file (objects
    with a ``"text"`` field and an optional ``"split"``) or ``.txt`` file (one
    question per line), or a Hugging Face dataset name. `split` is "train",
    "val", "test" or None (all); it filters the shipped set and files whose rows
    carry a split, and names the split of a Hugging Face dataset (default
    "train"). With `seed` the questions are shuffled deterministically before
    the first `limit` are taken; without it, source order is kept.
    `text_field` picks the column of a Hugging Face dataset.
    """
    if source is None:
        _check_split(split)
        texts = [
            text for text, _, row_split in _shipped() if split in (None, row_split)
        ]
    elif isinstance(source, (list, tuple)):
        texts = _check_texts(source)
    elif isinstance(source, (str, Path)) and _is_local_file(source):
        _check_split(split)
        texts = _read_file(Path(source), split)
    elif isinstance(source, str):
        texts = _load_hf(source, split or "train", text_field)
    else:
        raise WrongTypeError(
            f"source must be None, a list of strings, a path or a dataset name, "
            f"not {type(source).__name__}"
        )
    return _take(texts, limit, seed)


def domains(split: str | None = None) -> dict[str, int]:
    """Count the shipped questions per domain, for one split or all."""
    _check_split(split)
    counts = Counter(
        domain for _, domain, row_split in _shipped() if split in (None, row_split)
    )
    return dict(sorted(counts.items()))


@lru_cache(maxsize=1)
def _shipped() -> tuple[tuple[str, str, str], ...]:
    """The shipped set as (text, domain, split) rows, in file order, the last ``N_VAL``
    train rows relabelled "val"."""
    path = files("steerlib") / "data" / "prompts.jsonl"
    with path.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    train = [i for i, row in enumerate(rows) if row["split"] == "train"]
    val = set(train[-N_VAL:])
    return tuple(
        (row["text"], row["domain"], "val" if i in val else row["split"])
        for i, row in enumerate(rows)
    )


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS} or None, got {split!r}")


def _check_texts(texts: Sequence[object]) -> list[str]:
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise WrongTypeError(
                f"source[{i}] must be a str, got {type(text).__name__}"
            )
        if not text.strip():
            raise ConfigError(f"source[{i}] is an empty string")
    return list(texts)


def _is_local_file(source: str | Path) -> bool:
    path = Path(source)
    return (
        isinstance(source, Path)
        or path.suffix.lower() in FILE_SUFFIXES
        or path.is_file()
    )


def _read_file(path: Path, split: str | None) -> list[str]:
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise ConfigError(f"{path}: expected a {' or '.join(FILE_SUFFIXES)} file")
    lines = path.read_text(encoding="utf-8").splitlines()
    if suffix == ".txt":
        return [line.strip() for line in lines if line.strip()]
    texts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        text = row.get("text") if isinstance(row, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(
                f"{path}, line {number}: expected an object with a non-empty 'text'"
            )
        if split is None or row.get("split") in (None, split):
            texts.append(text)
    return texts


def _load_hf(name: str, split: str, text_field: str | None) -> list[str]:
    """Load one text column of a Hugging Face dataset (needs network)."""
    try:
        from datasets import load_dataset
    except ImportError as err:
        raise DependencyError(
            f"loading the dataset {name!r} needs the datasets package: pip install "
            "'steerlib[datasets]'"
        ) from err
    dataset = load_dataset(name, split=split)
    candidates = (text_field,) if text_field else TEXT_FIELDS
    column = next((c for c in candidates if c in dataset.column_names), None)
    if column is None:
        raise ConfigError(
            f"{name!r} has no column among {candidates}; columns are "
            f"{dataset.column_names}, "
            f"pick one with text_field="
        )
    return [text for text in dataset[column] if isinstance(text, str) and text.strip()]


def _take(texts: list[str], limit: int | None, seed: int | None) -> list[str]:
    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be >= 0 or None, got {limit}")
    if seed is not None:
        texts = texts.copy()
        random.Random(seed).shuffle(texts)
    return texts[:limit]
