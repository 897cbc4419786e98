"""The generation driver: methods x combinations x orderings x prompts -> verified
records.

Every generation becomes one record (``steerlib.evaluation.records``), appended to a
JSON-lines file as it is made; re-running skips what is there, so an interrupted
evaluation resumes. Under torchrun each rank generates its share of every batch of jobs
and rank 0 appends all of them, so the file equals one process's. The metrics and their
intervals over these records are ``steerlib.evaluation.stats``.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from steerlib import distributed
from steerlib.errors import ConfigError, VerifierError, WrongTypeError
from steerlib.evaluation import records as R
from steerlib.guard import refuse_work
from steerlib.model.generate import Request, SteeredModel
from steerlib.model.methods import METHODS, SteeringMethod
from steerlib.tasks import behaviors as B
from steerlib.tasks.combos import orderings

COMPOSITION_METHODS = ("instruction", "concat", "native_and", "and", "hybrid")
"""The prompt-level methods every composition table compares (``METHODS`` has them
all)."""


def _resolve(method: str | SteeringMethod) -> SteeringMethod:
    if isinstance(method, str):
        if method not in METHODS:
            raise ConfigError(
                f"unknown method {method!r}; known: {sorted(METHODS)} or a "
                "SteeringMethod object"
            )
        return METHODS[method]
    if not isinstance(method, SteeringMethod):
        raise WrongTypeError(
            f"{method!r} is not a SteeringMethod (it needs name, order_free, "
            "changes_model, "
            "request, digest and context)"
        )
    return method


def evaluate(
    sm: SteeredModel,
    methods: Sequence[str | SteeringMethod],
    combos: Sequence[Sequence[str]],
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 256,
    batch_size: int = 32,
    records: str | Path | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Generate and verify every (method, ordering, prompt); return all records.

    ``records`` is a JSON-lines file to append to and resume from; a recorded
    generation is reused only when its whole key (``KEY_FIELDS``: model, generation
    settings, prompt text, vectors) matches, and a record of the same (method,
    ordering, prompt index) with another key is dropped from the file and made again.
    The file is locked for the whole call, so a second evaluation of the same file
    waits and then reuses these records. Prompt-level methods batch all their
    combinations together; methods with a model context (baselines) generate one
    ordering at a time inside it (one combination at a time when the method is
    order-free).
    """
    path = Path(records) if records else None
    with distributed.main_lock(path) if path is not None else contextlib.nullcontext():
        rows = _evaluate(
            sm,
            [_resolve(m) for m in methods],
            combos,
            prompts,
            max_new_tokens,
            batch_size,
            path,
            seed,
            progress,
        )
    return pd.DataFrame(rows)


def _evaluate(
    sm: SteeredModel,
    methods: Sequence[SteeringMethod],
    combos: Sequence[Sequence[str]],
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int,
    path: Path | None,
    seed: int,
    progress: bool | None,
) -> list[dict]:
    """``evaluate`` holding the records file: the records asked for, reused or made."""
    rows = R.load(path)
    settings = {
        "model": sm.backbone.fingerprint,
        "max_new_tokens": max_new_tokens,
        "seed": seed,
    }
    digests = [R.prompt_digest(p) for p in prompts]
    keep: set[R.RecordKey] = set()
    for method in methods:

        def request(order: tuple[str, ...], pid: int, method=method) -> Request:
            return method.request(
                prompts[pid], order, random.Random(f"{seed}-{pid}-{'+'.join(order)}")
            )

        asked = {
            (method.name, "+".join(order), pid): request(order, pid)
            for combo in combos
            for order in orderings(tuple(combo))
            for pid in range(len(prompts))
        }
        stamps = {k: method.digest(sm, k[1].split("+")) for k in asked}
        defined = {
            order: B.definitions_stamp(order.split("+"))
            for order in {k[1] for k in asked}
        }
        fields = {
            k: {
                "prompt_sha": digests[k[2]],
                **settings,
                **R.stamps(tokens=s, behaviors=defined[k[1]]),
            }
            for k, s in stamps.items()
        }
        wanted = {
            k: R.record_key({"method": k[0], "order": k[1], "prompt_id": k[2], **f})
            for k, f in fields.items()
        }
        stale = [
            r
            for r in rows
            if R.slot(r) in wanted and R.record_key(r) != wanted[R.slot(r)]
        ]
        # made with another model, settings, prompt or vectors: drop them and generate
        # anew
        if stale:
            refuse_work(
                f"{len(stale)} '{method.name}' records of {path} anew (the recorded "
                "ones were made "
                "with another model, generation settings, prompt or vectors than "
                "these)"
            )
            gone = {id(r) for r in stale}
            rows = [r for r in rows if id(r) not in gone]
            R.rewrite(path, rows)
        have = {R.record_key(r) for r in rows}
        keep |= set(wanted.values())
        jobs = [
            (tuple(k[1].split("+")), k[2])
            for k, key in wanted.items()
            if key not in have
        ]
        if jobs:
            refuse_work(
                f"{len(jobs)} '{method.name}' generations for "
                f"{path or 'this evaluation'} "
                f"(e.g. {jobs[0][0]} on prompt {jobs[0][1]})"
            )
        groups = _group(jobs, method)
        for group in tqdm(
            groups,
            desc=method.name,
            disable=progress is False or len(groups) < 2,
            leave=False,
        ):
            with method.context(sm, group[0][0]) as model:
                reqs = [
                    asked[(method.name, "+".join(order), pid)] for order, pid in group
                ]
                unique = list(
                    dict.fromkeys(reqs)
                )  # e.g. 'plain' asks the same for every behavior
                answers = dict(
                    zip(
                        unique,
                        distributed.map_shards(  # each rank its share, all get all
                            lambda part, method=method: model.generate(
                                part,
                                max_new_tokens=max_new_tokens,
                                batch_size=batch_size,
                                progress=progress,
                                desc=method.name,
                            ),
                            unique,
                        ),
                    )
                )
                texts = [answers[r] for r in reqs]
            new = []
            try:
                for (order, pid), text in zip(group, texts):
                    key = (method.name, "+".join(order), pid)
                    new.append(
                        R.make_record(
                            *key[:1], order, pid, prompts[pid], text, fields[key]
                        )
                    )
            except VerifierError as err:  # a checker failed: keep what was verified
                R.append(path, new)
                raise VerifierError(
                    f"{err} ('{method.name}', prompt {pid}; the {len(new)} generations "
                    f"verified before it are saved{f' in {path}' if path else ''}, so "
                    f"a rerun resumes after fixing the checker)"
                ) from err
            R.append(path, new)
            rows += new
    return R.unique_rows([r for r in rows if R.record_key(r) in keep])


def _group(jobs, method: SteeringMethod, size: int = 256):
    """Chunks of jobs to generate under one context each.

    A model-changing method's context depends on the ordering, or only on the set of
    behaviors when it is order-free (every ordering of a combination then shares one
    context, and its identical plain prompts one generation). A prompt method's context
    serves all jobs: fixed-size chunks.
    """
    if not method.changes_model:
        return [jobs[i : i + size] for i in range(0, len(jobs), size)]
    out: dict[tuple, list] = {}
    for job in jobs:
        out.setdefault(
            tuple(sorted(job[0])) if method.order_free else job[0], []
        ).append(job)
    return list(out.values())
