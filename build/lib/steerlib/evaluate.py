"""The evaluation protocol: methods x combinations x orderings x prompts -> records -> metrics.

Every generation becomes one record (prompt, method, ordered behaviors, text, one
verdict per behavior), so every table can be recomputed from the records alone. Records
are appended to a JSON-lines file as they are made; re-running skips what is there, so
an interrupted evaluation resumes.

Metrics (paper): a generation is correct when it satisfies *all* behaviors of its
combination. Mean accuracy averages over all k! orderings of the tokens; best accuracy
takes each combination's best ordering; order variance is, per combination, the largest
gap between the accuracies of two orderings, averaged over combinations. Intervals
(ours): 95% Wilson intervals on pooled generations for mean accuracy, and a bootstrap
over combinations for best accuracy and order variance.
"""
from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import behaviors as B
from .generate import METHODS, Method, Request, SteeredModel
from .guard import refuse_work
from .io import append_jsonl, read_jsonl, write_jsonl

SPLITS = ("seen", "unseen")


def split_of(combo: Sequence[str]) -> str:
    """'seen-2', 'unseen-3', 'seen-4+json' ...: seen when every non-json member is seen."""
    core = [n for n in combo if n != "json"]
    kind = "seen" if all(B.get(n).seen for n in core) else "unseen"
    return f"{kind}-{len(core)}" + ("+json" if "json" in combo else "")


def orderings(combo: Sequence[str]) -> list[tuple[str, ...]]:
    """All k! orders of a combination (one for a single behavior)."""
    return list(itertools.permutations(combo))


def sample_combos(k: int, split: str, n: int | None, seed: int = 0, include_json: bool = False
                  ) -> list[tuple[str, ...]]:
    """``n`` combinations of one split drawn without replacement (all when n is None)."""
    combos = B.combinations(k, split, include_json=include_json)
    if include_json:
        combos = [c for c in combos if "json" in c]
    if n is None or n >= len(combos):
        return combos
    return sorted(random.Random(f"{seed}-{k}-{split}-{include_json}").sample(combos, n))


def _resolve(method: str | Method) -> Method:
    if isinstance(method, Method):
        return method
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {sorted(METHODS)} or a Method object")
    return METHODS[method]


def evaluate(sm: SteeredModel, methods: Sequence[str | Method], combos: Sequence[Sequence[str]],
             prompts: Sequence[str], *, max_new_tokens: int = 256, batch_size: int = 32,
             records: str | Path | None = None, seed: int = 0, progress: bool | None = None) -> pd.DataFrame:
    """Generate and verify every (method, ordering, prompt); return all records.

    ``records`` is a JSON-lines file to append to and resume from. Prompt-level methods
    batch all their combinations together; methods with a model context (baselines)
    generate one ordering at a time inside it (one combination at a time when the
    method is order-free).
    """
    path = Path(records) if records else None
    rows = _read_records(path)
    keep: set[tuple] = set()  # (method, order, prompt id, stamp) of every record asked for
    for method in map(_resolve, methods):
        model = method.prepare(sm)

        def request(order: tuple[str, ...], pid: int) -> Request:
            return method.request(prompts[pid], order, random.Random(f"{seed}-{pid}-{'+'.join(order)}"))

        asked = {(method.name, "+".join(order), pid): request(order, pid)
                 for combo in combos for order in orderings(tuple(combo)) for pid in range(len(prompts))}
        wanted = {k: _stamp(method, model, k[1].split("+"), req) for k, req in asked.items()}
        stale = [r for r in rows if wanted.get(_rkey(r), r.get("tokens", "")) != r.get("tokens", "")]
        if stale:  # made with other vectors: drop them from the file and generate anew
            refuse_work(f"{len(stale)} '{method.name}' records of {path} anew (the recorded ones were made "
                        f"with other vectors than these)")
            gone = {id(r) for r in stale}
            rows = [r for r in rows if id(r) not in gone]
            _rewrite(path, rows)
        have = {_rkey(r) for r in rows}
        keep |= {(*k, s) for k, s in wanted.items()}
        jobs = [(tuple(k[1].split("+")), k[2]) for k in wanted if k not in have]
        if jobs:
            refuse_work(f"{len(jobs)} '{method.name}' generations for {path or 'this evaluation'} "
                        f"(e.g. {jobs[0][0]} on prompt {jobs[0][1]})")
        groups = _group(jobs, _context_key(method))
        for group in tqdm(groups, desc=method.name, disable=progress is False or len(groups) < 2, leave=False):
            with method.context(sm, group[0][0]) as model:
                reqs = [asked[(method.name, "+".join(order), pid)] for order, pid in group]
                unique = list(dict.fromkeys(reqs))  # e.g. 'plain' asks the same for every behavior
                answers = dict(zip(unique, model.generate(unique, max_new_tokens=max_new_tokens,
                                                          batch_size=batch_size, progress=progress,
                                                          desc=method.name)))
                texts = [answers[r] for r in reqs]
            new = [_record(method.name, order, pid, prompts[pid], text, wanted[(method.name, "+".join(order), pid)])
                   for (order, pid), text in zip(group, texts)]
            _append(path, new)
            rows += new
    df = pd.DataFrame(rows)
    if not len(df):
        return df
    mine = [(*_rkey(r), r.get("tokens", "")) in keep for r in rows]
    return df[mine].reset_index(drop=True)


def _rkey(record: dict) -> tuple:
    return record["method"], record["order"], record["prompt_id"]


def _stamp(method: Method, sm: SteeredModel, order: Sequence[str], req: Request) -> str:
    """What a record was made with: the digest of the steering vectors its prompt reads, or
    of a model-changing method's settings and parameters ('' when it uses neither)."""
    if hasattr(method, "digest"):
        return method.digest(order)
    return sm.tokens.digest(req.slots) if req.slots and sm.tokens is not None else ""


def _context_key(method: Method) -> Callable[[tuple[str, ...]], tuple[str, ...]] | None:
    """What a model-changing method's context depends on: the ordering, or only the set of
    behaviors when the method is order-free (then every ordering of a combination shares one
    context, and its identical plain prompts one generation). None for prompt methods."""
    if type(method).context is Method.context:
        return None
    return (lambda order: tuple(sorted(order))) if getattr(method, "ORDER_FREE", False) else (lambda order: order)


def _group(jobs, key: Callable[[tuple[str, ...]], tuple[str, ...]] | None, size: int = 256):
    """Chunks of jobs: one per model context (``key`` of the ordering), else fixed-size chunks."""
    if key is not None:
        out: dict[tuple, list] = {}
        for job in jobs:
            out.setdefault(key(job[0]), []).append(job)
        return list(out.values())
    return [jobs[i: i + size] for i in range(0, len(jobs), size)]


def _record(method: str, order: tuple[str, ...], pid: int, prompt: str, text: str, stamp: str) -> dict:
    verdicts = B.verify_all(text, order)
    record = {"method": method, "combo": "+".join(sorted(order, key=B.names().index)), "order": "+".join(order),
              "k": len(order), "split": split_of(order), "prompt_id": pid, "prompt": prompt, "text": text,
              "verdicts": verdicts, "ok": all(verdicts.values())}
    return record | ({"tokens": stamp} if stamp else {})


def _read_records(path: Path | None) -> list[dict]:
    return read_jsonl(path) if path is not None else []


def _append(path: Path | None, rows: list[dict]) -> None:
    if path is not None:
        append_jsonl(path, rows)


def _rewrite(path: Path | None, rows: list[dict]) -> None:
    """Replace the records file by ``rows`` (atomically: an interruption keeps the old file)."""
    if path is not None:
        write_jsonl(path, rows)


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
    """Accuracy of each (method, split, combination, ordering) over its prompts."""
    return (records.groupby(["method", "split", "combo", "order"], as_index=False)
            .agg(acc=("ok", "mean"), n=("ok", "size")))


def metrics(records: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Paper metrics per method and split, in percent, with 95% intervals.

    Columns: mean accuracy (+ Wilson interval), best-ordering accuracy and order
    variance (+ bootstrap intervals over combinations), number of combinations and of
    generations.
    """
    rng = np.random.default_rng(seed)
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


def behavior_pass_rates(records: pd.DataFrame) -> pd.DataFrame:
    """Per method and behavior: share of generations passing that behavior's verifier."""
    rows = []
    for _, r in records.iterrows():
        for name, ok in r["verdicts"].items():
            rows.append({"method": r["method"], "behavior": name, "ok": ok})
    df = pd.DataFrame(rows)
    return df.groupby(["method", "behavior"], as_index=False).agg(pass_rate=("ok", "mean"), n=("ok", "size"))


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
