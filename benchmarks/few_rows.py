"""Benchmark: who decodes a few rows under ``--workers`` (``distributed.FEW_ROWS``).

A validation score decodes 24 questions. Split over two one-thread processes, each
decodes 12 rows, and a decode step of 12 rows costs a process about what one of 24
costs: it is paced by reading all the weights, which each process does for itself.
Two threads of one process share that reading. So ``distributed.map_shards`` gives
fewer than ``FEW_ROWS`` items per rank to rank 0, which decodes them with every rank's
threads while the others wait (``distributed.solo``).

This benchmark times one validation score of ``<upper_case>`` (the stage-1 scorer the
training loop calls) four ways, each pair in turns (``core.measure``): this process at
one thread and at its own threads, and in worker processes both split (``FEW_ROWS`` set
to 0) and as steerlib runs them. The goal: steerlib's way is no slower than the split.
"""

from __future__ import annotations

from collections.abc import Callable
from unittest import mock

import torch

from steerlib import distributed
from steerlib.config import ValidationConfig
from steerlib.model.backbone import Backbone
from steerlib.train.validation import behavior_validator

from .core import Goal, Section, Sizes, measure
from .end_to_end import BEHAVIOR
from .generation import shipped_or_random, threads


def scorer(bb: Backbone, questions: int, new_tokens: int) -> Callable[[], int]:
    """One validation score of ``<BEHAVIOR>`` on ``questions`` validation questions,
    between barriers (all ranks call it together), as a ``measure`` run: it returns
    the questions answered."""
    vector = shipped_or_random(bb, [BEHAVIOR])[BEHAVIOR]
    score = behavior_validator(
        bb,
        BEHAVIOR,
        ValidationConfig(n_questions=questions, max_new_tokens=new_tokens),
    )

    def run() -> int:
        distributed.barrier()
        score({BEHAVIOR: vector})
        distributed.barrier()
        return questions

    return run


def split_and_steerlib(
    bb: Backbone, questions: int, new_tokens: int, repeats: int, warmup: int
) -> dict[str, float]:
    """In worker processes: the median seconds of the score split over the ranks
    (``FEW_ROWS`` set to 0) and as ``map_shards`` decides, timed in turns."""
    run = scorer(bb, questions, new_tokens)

    def split() -> int:
        with mock.patch.object(distributed, "FEW_ROWS", 0):
            return run()

    rates = measure({"split": split, "steerlib": run}, repeats, warmup)
    return {name: rate.seconds for name, rate in rates.items()}


def bench_few_rows(bb: Backbone, sizes: Sizes, model: str, workers: int) -> Section:
    """The four timings as one section (the workers' two when ``workers`` > 1)."""
    from . import workers as launched

    n, new = sizes.val_questions, sizes.val_new_tokens
    here = torch.get_num_threads()
    run = scorer(bb, n, new)

    def one_thread() -> int:
        with threads(1):
            return run()

    rates = measure({"one": one_thread, "own": run}, sizes.repeats, sizes.warmup)
    figures = [
        ("one process, 1 thread", f"{rates['one'].seconds:.2f} s"),
        (f"one process, {here} threads", f"{rates['own'].seconds:.2f} s"),
    ]
    section = Section(
        f"A few rows: one validation score, {n} questions x {new} new tokens",
        figures=figures,
    )
    ratio = None
    if workers > 1:
        result, _ = launched.run(
            "few-rows",
            workers,
            model,
            prompts=n,
            new_tokens=new,
            repeats=sizes.repeats,
            warmup=sizes.warmup,
        )
        figures += [
            (
                f"{workers} workers x 1 thread, each its {n // workers} questions",
                f"{result['split']:.2f} s",
            ),
            (
                f"{workers} workers as steerlib runs them (rank 0, {workers} threads)",
                f"{result['steerlib']:.2f} s",
            ),
        ]
        ratio = result["steerlib"] / result["split"]
    else:
        section.notes.append("--workers 1: the workers' figures are not measured")
    section.goals.append(
        Goal("few rows, steerlib's workers / split workers (time)", ratio, "<=", 1.0)
    )
    return section
