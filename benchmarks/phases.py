"""Where a training part's seconds go: its targets, its validation scores, its steps.

Stage 1 and stage 2 each generate targets, train, and score the vector on validation
questions every few steps. Under ``--workers`` these phases scale differently (issue
37): target generation decodes whole batches on each process, a training step is split
over the processes, and validation decodes 24 questions, too few to split well
(``distributed.map_shards``). ``timed_phases`` times the first two by wrapping the
library functions the training code calls for them; the steps are the part's rest.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from unittest import mock

from steerlib.train import compose, distill, validation

PHASES = ("targets", "validation")
"""The timed phases of a training part; its steps are the rest (``steps_s``)."""


@contextlib.contextmanager
def timed_phases() -> Iterator[dict[str, float]]:
    """A dict of the seconds spent in each of ``PHASES`` inside the block: stage 1's and
    stage 2's target generation (``make_targets`` as ``distill`` and ``compose`` call
    it) and the validation scores (``validation.pass_rate``)."""
    seconds = dict.fromkeys(PHASES, 0.0)

    def timer(fn: Callable, phase: str) -> Callable:
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[phase] += time.perf_counter() - start

        return timed

    with (
        mock.patch.object(
            distill, "make_targets", timer(distill.make_targets, "targets")
        ),
        mock.patch.object(
            compose, "make_targets", timer(compose.make_targets, "targets")
        ),
        mock.patch.object(
            validation, "pass_rate", timer(validation.pass_rate, "validation")
        ),
    ):
        yield seconds


def steps_s(part_s: float, phases: dict[str, float]) -> float:
    """A part's seconds outside its timed phases: the training steps."""
    return part_s - sum(phases.values())


def phases_text(part_s: float, phases: dict[str, float]) -> str:
    """``targets 37.6 s, validation 52.2 s, steps 69.6 s``; "not timed" for a workload
    made without ``timed_phases``."""
    if not phases:
        return "not timed"
    parts = [f"{name} {phases[name]:.1f} s" for name in PHASES]
    return ", ".join([*parts, f"steps {steps_s(part_s, phases):.1f} s"])
