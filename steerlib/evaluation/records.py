"""The records store: one JSON line per verified generation, and what makes a record
reusable.

A record holds the prompt, the method, the ordered behaviors, the text and one verdict
per behavior, so every table can be recomputed from the records alone. A record is
reused only when its whole key (``KEY_FIELDS``) matches the one asked for; two records
of one key that disagree are an error, never silently counted twice. Writes go through
rank 0 only under torchrun (every rank holds all records), atomically where a file is
replaced.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from steerlib import distributed
from steerlib.errors import RecordsError
from steerlib.storage import append_jsonl, read_jsonl, write_jsonl
from steerlib.tasks import behaviors as B
from steerlib.tasks.combos import split_of

KEY_FIELDS = (
    "method",
    "order",
    "prompt_id",
    "prompt_sha",
    "model",
    "max_new_tokens",
    "seed",
    "tokens",
    "behaviors",
)
"""What a record was made from; a record is reused only when all of it matches.
``prompt_sha`` is a digest of the prompt text, ``model`` the backbone's fingerprint,
``max_new_tokens`` and ``seed`` (it picks the instruction paraphrases) the generation
settings, ``tokens`` the stamp of the vectors or baseline parameters used ('' for
none), ``behaviors`` the definitions of your own behaviors in the order
(``behaviors.definitions_stamp``; '' for built-ins only)."""
RecordKey = tuple
"""A record's values of ``KEY_FIELDS``, in that order (records are keyed by tuples in
memory; only the files hold strings)."""
RECORD_FIELDS = ("method", "combo", "order", "prompt_id", "text", "verdicts", "ok")
"""What every line of a records file holds besides its key (``read_jsonl`` refuses a
line without them)."""


def prompt_digest(prompt: str) -> str:
    """12 hex digits of SHA-256 over the prompt text: a record made for another prompt
    at the same index is recognised as stale.

    >>> prompt_digest("Why is the sky blue?")
    '09ea26793343'
    """
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:12]


def record_key(record: dict) -> RecordKey:
    """The ``KEY_FIELDS`` of a record ('' for a field it lacks, as records written
    before a field existed do: they never match a new key, so they are made again)."""
    return tuple(_missing_as_empty(record.get(f, "")) for f in KEY_FIELDS)


def stamps(**given: str) -> dict[str, str]:
    """The stamps that are not empty: a record without vectors or own behaviors leaves
    these key fields out, as records written before they existed do, so both keep
    matching."""
    return {k: v for k, v in given.items() if v}


def _missing_as_empty(value):
    """'' for None and NaN (a field a table row lacks), the value otherwise."""
    return (
        "" if value is None or (isinstance(value, float) and value != value) else value
    )


def slot(record: dict) -> tuple:
    """Where a record sits in an evaluation: (method, order, prompt index)."""
    return record["method"], record["order"], record["prompt_id"]


def make_record(
    method: str, order: tuple[str, ...], pid: int, prompt: str, text: str, fields: dict
) -> dict:
    """One generation, verified; ``fields`` are the rest of its key (``KEY_FIELDS``)."""
    verdicts = B.verify_all(text, order)
    return {
        "method": method,
        "combo": "+".join(sorted(order, key=B.names().index)),
        "order": "+".join(order),
        "k": len(order),
        "split": split_of(order),
        "prompt_id": pid,
        "prompt": prompt,
        "text": text,
        "verdicts": verdicts,
        "ok": all(verdicts.values()),
    } | fields


def unique_rows(rows: list[dict]) -> list[dict]:
    """``rows`` with each key once; two records of one key that disagree raise
    RecordsError."""
    first: dict[RecordKey, dict] = {}
    for r in rows:
        key = record_key(r)
        if key not in first:
            first[key] = r
        elif (r.get("text"), r["ok"]) != (first[key].get("text"), first[key]["ok"]):
            raise RecordsError(
                f"two records of {dict(zip(KEY_FIELDS, key))} disagree "
                f"({first[key].get('text')!r:.40} "
                f"vs {r.get('text')!r:.40}): they were written by two runs that did "
                "not make the "
                f"same generation; delete the file's duplicates or regenerate it"
            )
    return list(first.values())


def unique_records(records: pd.DataFrame) -> pd.DataFrame:
    """A records table with each key (``KEY_FIELDS``) counted once.

    Two processes appending to one file without a lock (before records files were
    locked) wrote some generations twice; counting them twice would inflate n and
    narrow every interval. Identical duplicates are dropped; duplicates that disagree
    raise RecordsError.
    """
    if (
        not len(records) or "prompt_id" not in records
    ):  # not records of evaluate (no key to go by)
        return records
    rows = records.to_dict("records")
    kept = unique_rows(rows)
    return records if len(kept) == len(rows) else pd.DataFrame(kept)


def read_records(
    path: str | Path,
    *,
    model: str | None = None,
    prompts: Sequence[str] | None = None,
    max_new_tokens: int | None = None,
    seed: int | None = None,
) -> pd.DataFrame:
    """The records of a file as a table, each key once, without generating anything.

    Optionally only those made with this model fingerprint, generation settings, and
    ``prompts`` at their indices: how a reader that does not hold the vectors (the book,
    ``run_ablations(cached_only=True)``) still never shows records of another run.
    """
    rows = [
        r
        for r in read_jsonl(path, RECORD_FIELDS)
        if (model is None or r.get("model") == model)
        and (max_new_tokens is None or r.get("max_new_tokens") == max_new_tokens)
        and (seed is None or r.get("seed") == seed)
        and (
            prompts is None
            or (
                r["prompt_id"] < len(prompts)
                and r.get("prompt_sha") == prompt_digest(prompts[r["prompt_id"]])
            )
        )
    ]
    return pd.DataFrame(
        unique_rows(rows),
        columns=None if rows else [*KEY_FIELDS, "combo", "split", "text", "ok"],
    )


def load(path: Path | None) -> list[dict]:
    """Every record of ``path`` as it is in the file (none without a file)."""
    return read_jsonl(path, RECORD_FIELDS) if path is not None else []


def append(path: Path | None, rows: list[dict]) -> None:
    """Append records (rank 0 only, under torchrun: every rank holds all of them)."""
    if path is not None:
        distributed.main_only(append_jsonl, path, rows)


def rewrite(path: Path | None, rows: list[dict]) -> None:
    """Replace the records file by ``rows`` (atomically: an interruption keeps the old
    file)."""
    if path is not None:
        distributed.main_only(write_jsonl, path, rows)
