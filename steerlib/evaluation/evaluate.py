"""The evaluation protocol: methods x combinations x orderings x prompts -> records -> metrics.

Every generation becomes one record (prompt, method, ordered behaviors, text, one
verdict per behavior), so every table can be recomputed from the records alone. Records
are appended to a JSON-lines file as they are made; re-running skips what is there, so
an interrupted evaluation resumes. Under torchrun each rank generates its share of every
batch of jobs and rank 0 appends all of them, so the file equals one process's.

Metrics (paper): a generation is correct when it satisfies *all* behaviors of its
combination. Mean accuracy averages over all k! orderings of the tokens; best accuracy
takes each combination's best ordering; order variance is, per combination, the largest
gap between the accuracies of two orderings, averaged over combinations. Intervals
(ours): 95% Wilson intervals on pooled generations for mean accuracy, and a bootstrap
over combinations for best accuracy and order variance.
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import random
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from steerlib import distributed
from steerlib.errors import RecordsError
from steerlib.guard import refuse_work
from steerlib.model.generate import METHODS, Request, SteeredModel, SteeringMethod
from steerlib.storage import append_jsonl, read_jsonl, write_jsonl
from steerlib.tasks import behaviors as B


def split_of(combo: Sequence[str]) -> str:
    """'seen-2', 'unseen-3', 'seen-4+json' ...: seen when every non-json member is seen."""
    core = [n for n in combo if n != "json"]
    kind = "seen" if all(B.get(n).seen for n in core) else "unseen"
    return f"{kind}-{len(core)}" + ("+json" if "json" in combo else "")


def orderings(combo: Sequence[str]) -> list[tuple[str, ...]]:
    """All k! orders of a combination (one for a single behavior)."""
    return list(itertools.permutations(combo))


def sample_combos(k: int, split: str, n: int | None, seed: int = 0, include_json: bool = False,
                  keep: Callable[[tuple[str, ...]], bool] | None = None) -> list[tuple[str, ...]]:
    """``n`` combinations of one split drawn without replacement (all when n is None),
    from those ``keep`` accepts when given."""
    combos = B.combinations(k, split, include_json=include_json)
    if include_json:
        combos = [c for c in combos if "json" in c]
    if keep is not None:
        combos = [c for c in combos if keep(c)]
    if n is None or n >= len(combos):
        return combos
    return sorted(random.Random(f"{seed}-{k}-{split}-{include_json}").sample(combos, n))


def _resolve(method: str | SteeringMethod) -> SteeringMethod:
    if isinstance(method, str):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; known: {sorted(METHODS)} or a SteeringMethod object")
        return METHODS[method]
    if not isinstance(method, SteeringMethod):
        raise TypeError(f"{method!r} is not a SteeringMethod (it needs name, order_free, changes_model, "
                        "request, digest and context)")
    return method


KEY_FIELDS = ("method", "order", "prompt_id", "prompt_sha", "model", "max_new_tokens", "seed", "tokens", "behaviors")
"""What a record was made from; a record is reused only when all of it matches. ``prompt_sha``
is a digest of the prompt text, ``model`` the backbone's fingerprint, ``max_new_tokens`` and
``seed`` (it picks the instruction paraphrases) the generation settings, ``tokens`` the stamp
of the vectors or baseline parameters used ('' for none), ``behaviors`` the definitions of your own
behaviors in the order (``behaviors.definitions_stamp``; '' for built-ins only)."""
RecordKey = tuple
RECORD_FIELDS = ("method", "combo", "order", "prompt_id", "text", "verdicts", "ok")
"""What every line of a records file holds besides its key (``read_jsonl`` refuses a line without them)."""
"""A record's values of ``KEY_FIELDS``, in that order (records are keyed by tuples in memory;
only the files hold strings)."""


def prompt_digest(prompt: str) -> str:
    """12 hex digits of SHA-256 over the prompt text: a record made for another prompt at the
    same index is recognised as stale."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:12]


def record_key(record: dict) -> RecordKey:
    """The ``KEY_FIELDS`` of a record ('' for a field it lacks, as records written before a
    field existed do: they never match a new key, so they are made again)."""
    return tuple(_missing_as_empty(record.get(f, "")) for f in KEY_FIELDS)


def _stamps(**stamps: str) -> dict[str, str]:
    """The stamps that are not empty: a record without vectors or own behaviors leaves these
    key fields out, as records written before they existed do, so both keep matching."""
    return {k: v for k, v in stamps.items() if v}


def _missing_as_empty(value):
    """'' for None and NaN (a field a table row lacks), the value otherwise."""
    return "" if value is None or (isinstance(value, float) and value != value) else value


def _slot(record: dict) -> tuple:
    """Where a record sits in an evaluation: (method, order, prompt index)."""
    return record["method"], record["order"], record["prompt_id"]


def evaluate(sm: SteeredModel, methods: Sequence[str | SteeringMethod], combos: Sequence[Sequence[str]],
             prompts: Sequence[str], *, max_new_tokens: int = 256, batch_size: int = 32,
             records: str | Path | None = None, seed: int = 0, progress: bool | None = None) -> pd.DataFrame:
    """Generate and verify every (method, ordering, prompt); return all records.

    ``records`` is a JSON-lines file to append to and resume from; a recorded generation is
    reused only when its whole key (``KEY_FIELDS``: model, generation settings, prompt text,
    vectors) matches, and a record of the same (method, ordering, prompt index) with another
    key is dropped from the file and made again. The file is locked for the whole call, so a
    second evaluation of the same file waits and then reuses these records. Prompt-level
    methods batch all their combinations together; methods with a model context (baselines)
    generate one ordering at a time inside it (one combination at a time when the method is
    order-free).
    """
    path = Path(records) if records else None
    with distributed.main_lock(path) if path is not None else contextlib.nullcontext():
        rows = _evaluate(sm, [_resolve(m) for m in methods], combos, prompts, max_new_tokens, batch_size, path,
                         seed, progress)
    return pd.DataFrame(rows)


def _evaluate(sm: SteeredModel, methods: Sequence[SteeringMethod], combos: Sequence[Sequence[str]],
              prompts: Sequence[str], max_new_tokens: int, batch_size: int, path: Path | None, seed: int,
              progress: bool | None) -> list[dict]:
    """``evaluate`` holding the records file: the records asked for, reused or made."""
    rows = _read_records(path)
    settings = {"model": sm.backbone.fingerprint, "max_new_tokens": max_new_tokens, "seed": seed}
    digests = [prompt_digest(p) for p in prompts]
    keep: set[RecordKey] = set()
    for method in methods:
        def request(order: tuple[str, ...], pid: int) -> Request:
            return method.request(prompts[pid], order, random.Random(f"{seed}-{pid}-{'+'.join(order)}"))

        asked = {(method.name, "+".join(order), pid): request(order, pid)
                 for combo in combos for order in orderings(tuple(combo)) for pid in range(len(prompts))}
        stamps = {k: method.digest(sm, k[1].split("+")) for k in asked}
        defined = {order: B.definitions_stamp(order.split("+")) for order in {k[1] for k in asked}}
        fields = {k: {"prompt_sha": digests[k[2]], **settings, **_stamps(tokens=s, behaviors=defined[k[1]])}
                  for k, s in stamps.items()}
        wanted = {k: record_key({"method": k[0], "order": k[1], "prompt_id": k[2], **f}) for k, f in fields.items()}
        stale = [r for r in rows if _slot(r) in wanted and record_key(r) != wanted[_slot(r)]]
        if stale:  # made with another model, settings, prompt or vectors: drop them and generate anew
            refuse_work(f"{len(stale)} '{method.name}' records of {path} anew (the recorded ones were made "
                        f"with another model, generation settings, prompt or vectors than these)")
            gone = {id(r) for r in stale}
            rows = [r for r in rows if id(r) not in gone]
            _rewrite(path, rows)
        have = {record_key(r) for r in rows}
        keep |= set(wanted.values())
        jobs = [(tuple(k[1].split("+")), k[2]) for k, key in wanted.items() if key not in have]
        if jobs:
            refuse_work(f"{len(jobs)} '{method.name}' generations for {path or 'this evaluation'} "
                        f"(e.g. {jobs[0][0]} on prompt {jobs[0][1]})")
        groups = _group(jobs, method)
        for group in tqdm(groups, desc=method.name, disable=progress is False or len(groups) < 2, leave=False):
            with method.context(sm, group[0][0]) as model:
                reqs = [asked[(method.name, "+".join(order), pid)] for order, pid in group]
                unique = list(dict.fromkeys(reqs))  # e.g. 'plain' asks the same for every behavior
                answers = dict(zip(unique, distributed.map_shards(  # each rank its share, all get all
                    lambda part: model.generate(part, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                                progress=progress, desc=method.name), unique)))
                texts = [answers[r] for r in reqs]
            new = [_record(method.name, order, pid, prompts[pid], text, fields[(method.name, "+".join(order), pid)])
                   for (order, pid), text in zip(group, texts)]
            _append(path, new)
            rows += new
    return _unique([r for r in rows if record_key(r) in keep])


def _unique(rows: list[dict]) -> list[dict]:
    """``rows`` with each key once; two records of one key that disagree raise RecordsError."""
    first: dict[RecordKey, dict] = {}
    for r in rows:
        key = record_key(r)
        if key not in first:
            first[key] = r
        elif (r.get("text"), r["ok"]) != (first[key].get("text"), first[key]["ok"]):
            raise RecordsError(f"two records of {dict(zip(KEY_FIELDS, key))} disagree ({first[key].get('text')!r:.40} "
                               f"vs {r.get('text')!r:.40}): they were written by two runs that did not make the "
                               f"same generation; delete the file's duplicates or regenerate it")
    return list(first.values())


def unique_records(records: pd.DataFrame) -> pd.DataFrame:
    """A records table with each key (``KEY_FIELDS``) counted once.

    Two processes appending to one file without a lock (before records files were locked)
    wrote some generations twice; counting them twice would inflate n and narrow every
    interval. Identical duplicates are dropped; duplicates that disagree raise RecordsError.
    """
    if not len(records) or "prompt_id" not in records:  # not records of evaluate (no key to go by)
        return records
    rows = records.to_dict("records")
    kept = _unique(rows)
    return records if len(kept) == len(rows) else pd.DataFrame(kept)


def _group(jobs, method: SteeringMethod, size: int = 256):
    """Chunks of jobs to generate under one context each.

    A model-changing method's context depends on the ordering, or only on the set of
    behaviors when it is order-free (every ordering of a combination then shares one
    context, and its identical plain prompts one generation). A prompt method's context
    serves all jobs: fixed-size chunks.
    """
    if not method.changes_model:
        return [jobs[i: i + size] for i in range(0, len(jobs), size)]
    out: dict[tuple, list] = {}
    for job in jobs:
        out.setdefault(tuple(sorted(job[0])) if method.order_free else job[0], []).append(job)
    return list(out.values())


def _record(method: str, order: tuple[str, ...], pid: int, prompt: str, text: str, fields: dict) -> dict:
    """One generation, verified; ``fields`` are the rest of its key (``KEY_FIELDS``)."""
    verdicts = B.verify_all(text, order)
    return {"method": method, "combo": "+".join(sorted(order, key=B.names().index)), "order": "+".join(order),
            "k": len(order), "split": split_of(order), "prompt_id": pid, "prompt": prompt, "text": text,
            "verdicts": verdicts, "ok": all(verdicts.values())} | fields


def read_records(path: str | Path, *, model: str | None = None, prompts: Sequence[str] | None = None,
                 max_new_tokens: int | None = None, seed: int | None = None) -> pd.DataFrame:
    """The records of a file as a table, each key once, without generating anything.

    Optionally only those made with this model fingerprint, generation settings, and
    ``prompts`` at their indices: how a reader that does not hold the vectors (the book,
    ``run_ablations(cached_only=True)``) still never shows records of another run.
    """
    rows = [r for r in read_jsonl(path, RECORD_FIELDS)
            if (model is None or r.get("model") == model)
            and (max_new_tokens is None or r.get("max_new_tokens") == max_new_tokens)
            and (seed is None or r.get("seed") == seed)
            and (prompts is None or (r["prompt_id"] < len(prompts)
                                     and r.get("prompt_sha") == prompt_digest(prompts[r["prompt_id"]])))]
    return pd.DataFrame(_unique(rows), columns=None if rows else [*KEY_FIELDS, "combo", "split", "text", "ok"])


def _read_records(path: Path | None) -> list[dict]:
    return read_jsonl(path, RECORD_FIELDS) if path is not None else []


def _append(path: Path | None, rows: list[dict]) -> None:
    """Append records (rank 0 only, under torchrun: every rank holds all of them)."""
    if path is not None:
        distributed.main_only(append_jsonl, path, rows)


def _rewrite(path: Path | None, rows: list[dict]) -> None:
    """Replace the records file by ``rows`` (atomically: an interruption keeps the old file)."""
    if path is not None:
        distributed.main_only(write_jsonl, path, rows)


# -- metrics ---------------------------------------------------------------------------------
def paired_test(records: pd.DataFrame, a: str, b: str, by: str = "split") -> pd.DataFrame:
    """Methods ``a`` and ``b`` on the same generations' prompts, per group of ``by``: exact McNemar test.

    Pairs are the records of both methods with the same ordering and prompt id. Only the
    discordant pairs carry information: ``a_only`` (a passed, b failed) and ``b_only``;
    under "no difference" each is Binomial(a_only + b_only, 1/2), and ``p`` is the
    two-sided exact p-value (McNemar's test without its normal approximation). Rates are in
    percent over the pairs.
    """
    from scipy.stats import binomtest

    key = [by, "order", "prompt_id"]
    both = records[records["method"] == a][key + ["ok"]].merge(records[records["method"] == b][key + ["ok"]],
                                                                on=key, suffixes=("_a", "_b"))
    rows = []
    for group, g in both.groupby(by, sort=False):
        only_a = int((g["ok_a"] & ~g["ok_b"]).sum())
        only_b = int((g["ok_b"] & ~g["ok_a"]).sum())
        p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
        rows.append({by: group, "n": len(g), f"{a} %": 100 * g["ok_a"].mean(), f"{b} %": 100 * g["ok_b"].mean(),
                     "a_only": only_a, "b_only": only_b, "p": p})
    return pd.DataFrame(rows)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion k/n."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def per_ordering(records: pd.DataFrame) -> pd.DataFrame:
    """Accuracy of each (method, split, combination, ordering) over its prompts (each record once)."""
    return (unique_records(records).groupby(["method", "split", "combo", "order"], as_index=False)
            .agg(acc=("ok", "mean"), n=("ok", "size")))


def metrics(records: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Paper metrics per method and split, in percent, with 95% intervals.

    Columns: mean accuracy (+ Wilson interval), best-ordering accuracy and order
    variance (+ bootstrap intervals over combinations), number of combinations and of
    generations.
    """
    rng = np.random.default_rng(seed)
    records = unique_records(records)
    per_order = per_ordering(records)
    out = []
    for (method, split), g in per_order.groupby(["method", "split"]):
        combos = g.groupby("combo")["acc"].agg(["mean", "max", "min"])
        mean_acc = combos["mean"].to_numpy()
        best = combos["max"].to_numpy()
        ov = (combos["max"] - combos["min"]).to_numpy()
        sub = records[(records["method"] == method) & (records["split"] == split)]
        lo, hi = wilson(int(sub["ok"].sum()), len(sub))
        idx = rng.integers(0, len(combos), size=(n_boot, len(combos)))
        row = {"method": method, "split": split, "mean_acc": 100 * mean_acc.mean(),
               "mean_lo": 100 * lo, "mean_hi": 100 * hi, "best_acc": 100 * best.mean(),
               "best_lo": 100 * np.percentile(best[idx].mean(1), 2.5),
               "best_hi": 100 * np.percentile(best[idx].mean(1), 97.5),
               "order_var": 100 * ov.mean(),
               "ov_lo": 100 * np.percentile(ov[idx].mean(1), 2.5),
               "ov_hi": 100 * np.percentile(ov[idx].mean(1), 97.5),
               "combos": len(combos), "n": len(sub)}
        out.append(row)
    return pd.DataFrame(out)


def behavior_pass_rates(records: pd.DataFrame, by: Sequence[str] = ("method",)) -> pd.DataFrame:
    """Per ``by`` group (default: method) and behavior: the share of generations passing
    that behavior's verifier, whatever the other behaviors of the generation did."""
    rows = [{**{c: r[c] for c in by}, "behavior": name, "ok": ok}
            for _, r in unique_records(records).iterrows() for name, ok in r["verdicts"].items()]
    return pd.DataFrame(rows).groupby([*by, "behavior"], as_index=False).agg(pass_rate=("ok", "mean"),
                                                                             n=("ok", "size"))


def interval_cells(table: pd.DataFrame, value: str, lo: str, hi: str) -> list[str]:
    """One "value [lo, hi]" string per row (percentages, for markdown and notebooks)."""
    return [f"{v:.1f} [{a:.0f}, {b:.0f}]" for v, a, b in zip(table[value], table[lo], table[hi])]


def format_table(table: pd.DataFrame, value: str = "mean_acc", lo: str = "mean_lo", hi: str = "mean_hi",
                 index: str = "method", columns: str = "split") -> pd.DataFrame:
    """A methods x splits table of "value [lo, hi]" strings (for markdown)."""
    return table.assign(cell=interval_cells(table, value, lo, hi)).pivot(index=index, columns=columns, values="cell")


def format_metrics(table: pd.DataFrame) -> pd.DataFrame:
    """The long metrics table as readable "value [lo, hi]" cells, one row per method and split."""
    return pd.DataFrame({
        "method": table["method"], "split": table["split"],
        "mean acc": interval_cells(table, "mean_acc", "mean_lo", "mean_hi"),
        "best acc": interval_cells(table, "best_acc", "best_lo", "best_hi"),
        "order var": interval_cells(table, "order_var", "ov_lo", "ov_hi"),
        "combos": table["combos"], "n": table["n"]})
