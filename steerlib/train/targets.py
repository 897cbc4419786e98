"""The answers y that teacher and student are both teacher-forced on.

The paper forces both on answers a larger model wrote under the instruction. Our
sources (``TargetConfig.source``):

* ``self``: the steered model itself answers under the instruction (true
  self-distillation; the default);
* ``filtered``: ``self`` answers (the same cached generations) kept only where every
  behavior's verifier passes, so a token can beat a weak teacher; too few survivors is
  an error, not a silent tiny run;
* ``constructed``: the model's answer transformed so it satisfies the behaviors that
  have a faithful transform (case, sentence count, word range, JSON; see
  ``transforms``); behaviors without one (languages) are asked for by instruction and
  filtered first;
* ``model``: another model's answers under the instruction (the paper's setting).

Targets are cached as JSON lines under the artifacts folder, keyed by the model's
fingerprint, the behaviors and the target config, and written batch by batch, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from steerlib import distributed
from steerlib.config import TargetConfig, TargetSource, config_hash
from steerlib.errors import TooFewTargetsError
from steerlib.guard import refuse_work
from steerlib.model.backbone import Backbone, load_backbone
from steerlib.model.generate import Request, SteeredModel
from steerlib.model.methods import instructions_for
from steerlib.paths import artifacts_root
from steerlib.storage import append_jsonl, read_jsonl
from steerlib.tasks import behaviors as B
from steerlib.train import transforms

log = logging.getLogger("steerlib")


@dataclass(frozen=True)
class Target:
    """One training example: a question, the instruction the teacher read, the answer
    ids."""

    question: str
    names: tuple[str, ...]
    instructions: str
    answer: tuple[int, ...]
    text: str


def _cache_file(bb: Backbone, key: str, cfg: TargetConfig, seed: int) -> Path:
    return (
        artifacts_root()
        / bb.fingerprint
        / "targets"
        / f"{key}-{config_hash(cfg)}-s{seed}.jsonl"
    )


def _encode_answer(bb: Backbone, text: str) -> tuple[int, ...]:
    """Token ids of an answer written as text, closed by the end-of-turn token."""
    ids = bb.tokenizer(text, add_special_tokens=False)["input_ids"]
    return tuple(ids) + (bb.eos_ids[0],)


def make_targets(
    bb: Backbone,
    jobs: Sequence[tuple[str, Sequence[str]]],
    cfg: TargetConfig,
    *,
    key: str,
    seed: int = 0,
    progress: bool | None = None,
    teacher: Backbone | None = None,
) -> list[Target]:
    """Targets for ``jobs`` = [(question, ordered behavior names), ...], cached under
    ``key``.

    Jobs of different behaviors are generated together in batches. For filtered and
    constructed sources, jobs whose answer cannot be kept are dropped, and too few
    survivors is an error. ``teacher`` is the answering model for ``source='model'``
    (loaded from ``cfg.model`` when not given).
    """
    if cfg.source == TargetSource.FILTERED:
        # the 'self' answers to the same jobs (same paraphrases), kept where they pass:
        # one generation serves both sources
        answers = make_targets(
            bb,
            jobs,
            replace(cfg, source=TargetSource.SELF),
            key=key,
            seed=seed,
            progress=progress,
        )
        return _enough(
            [t for t in answers if all(B.verify_all(t.text, t.names).values())],
            len(jobs),
            cfg,
            key,
        )
    rng = random.Random(seed)
    plan = []
    for question, names in jobs:
        names = tuple(names)
        instr = instructions_for(names, rng)  # what the teacher reads in training
        # what the answering model is asked: constructed targets ask only for what no
        # transform can produce (a language), and build the rest from that answer
        free = tuple(x for x in names if not B.constructible(x))
        asked = (
            instructions_for(free, rng)
            if cfg.source == TargetSource.CONSTRUCTED
            else instr
        )
        plan.append((question, names, instr, asked))
    path = _cache_file(bb, key, cfg, seed)
    with distributed.main_lock(
        path
    ):  # a second run making these targets waits, then reads them
        done = _read(path)
        todo = list(dict.fromkeys(job for job in plan if _key(job) not in done))
        if todo:
            refuse_work(f"{len(todo)} {cfg.source} targets for {key} ({path.name})")
            start = time.perf_counter()
            answer = _answerer(bb, cfg, teacher)
            chunk = 64
            for i in range(0, len(todo), chunk):
                rows = answer(todo[i : i + chunk], progress)
                distributed.main_only(_append, path, todo[i : i + chunk], rows)
                done.update(
                    (_key(job), row) for job, row in zip(todo[i : i + chunk], rows)
                )
            log.info(
                "targets %s (%s): %d made in %.0f s",
                key,
                cfg.source,
                len(todo),
                time.perf_counter() - start,
            )
    return _enough(
        [done[_key(job)] for job in plan if done[_key(job)] is not None],
        len(plan),
        cfg,
        key,
    )


def _enough(
    kept: list[Target], n_jobs: int, cfg: TargetConfig, key: str
) -> list[Target]:
    """``kept``, after a loud error when fewer than ``min_kept`` survived and a warning
    when some were dropped."""
    if (
        cfg.source in (TargetSource.FILTERED, TargetSource.CONSTRUCTED)
        and len(kept) < cfg.min_kept
    ):
        raise TooFewTargetsError(
            f"only {len(kept)} of {n_jobs} {cfg.source} targets for {key} could be "
            f"kept (need {cfg.min_kept}); use source='self', give more jobs, or lower "
            f"min_kept"
        )
    if len(kept) < n_jobs:
        log.warning("%s: %d of %d %s targets kept", key, len(kept), n_jobs, cfg.source)
    return kept


def _answerer(bb: Backbone, cfg: TargetConfig, teacher: Backbone | None):
    """A function: batch of planned jobs -> Target-or-None rows, by source."""
    gen_kw = dict(
        max_new_tokens=cfg.max_new_tokens,
        batch_size=32,
        do_sample=cfg.do_sample,
        temperature=cfg.temperature,
        desc="targets",
    )
    own = SteeredModel(bb)
    other = (
        SteeredModel(teacher or load_backbone(cfg.model, device=str(bb.device)))
        if cfg.source == TargetSource.MODEL
        else None
    )

    def answer(batch, progress):
        reqs = [Request(q, (), asked) for q, _, _, asked in batch]
        if cfg.source == TargetSource.CONSTRUCTED and not any(
            asked for *_, asked in batch
        ):
            # nothing to ask: transform the plain answers, made once and shared by all
            # behaviors
            plain = replace(
                cfg, source=TargetSource.SELF, max_new_tokens=cfg.plain_max_new_tokens
            )
            texts = [
                t.text
                for t in make_targets(
                    bb,
                    [(q, ()) for q, *_ in batch],
                    plain,
                    key="plain",
                    progress=progress,
                )
            ]
            return [
                _construct(bb, q, names, instr, text)
                for (q, names, instr, _), text in zip(batch, texts)
            ]
        if cfg.source == TargetSource.MODEL:
            texts = distributed.map_shards(
                lambda part: other.generate(part, progress=progress, **gen_kw), reqs
            )
            return [
                Target(q, n, i, _encode_answer(bb, t), t)
                for (q, n, i, _), t in zip(batch, texts)
            ]
        ids = distributed.map_shards(
            lambda part: own.generate_ids(part, progress=progress, **gen_kw), reqs
        )
        texts = [bb.tokenizer.decode(x, skip_special_tokens=True).strip() for x in ids]
        rows = []
        for (q, names, instr, _), a, text in zip(batch, ids, texts):
            if cfg.source == TargetSource.CONSTRUCTED:
                rows.append(_construct(bb, q, names, instr, text))
            else:
                rows.append(Target(q, names, instr, tuple(a), text))
        return rows

    return answer


def _construct(
    bb: Backbone, question: str, names: tuple[str, ...], instr: str, text: str
) -> Target | None:
    """Transform an answer to satisfy ``names``; None if a behavior without a transform
    (a language) is not already satisfied, or no faithful transform exists."""
    free = [x for x in names if not B.constructible(x)]
    if not all(B.verify_all(text, free).values()):
        return None
    built = transforms.construct([x for x in names if x not in free], text)
    if built is None or not all(
        B.verify_all(built, names).values()
    ):  # e.g. a cut left too little French
        return None
    return Target(question, names, instr, _encode_answer(bb, built), built)


def _key(job: tuple) -> str:
    """Cache key of a planned job: question, behaviors, teacher instruction, what was
    asked."""
    return json.dumps(job, ensure_ascii=False)


def _read(path: Path) -> dict[str, Target | None]:
    """The cached targets by job key (None where a job's answer could not be kept)."""
    out: dict[str, Target | None] = {}
    for obj in read_jsonl(path):
        t = obj["target"]
        out[obj["key"]] = (
            None
            if t is None
            else Target(
                t["question"],
                tuple(t["names"]),
                t["instructions"],
                tuple(t["answer"]),
                t["text"],
            )
        )
    return out


def _append(path: Path, jobs: list[tuple], rows: list[Target | None]) -> None:
    append_jsonl(
        path,
        (
            {
                "key": _key(job),
                "target": None
                if r is None
                else r.__dict__ | {"answer": list(r.answer)},
            }
            for job, r in zip(jobs, rows)
        ),
    )
