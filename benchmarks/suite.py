"""The whole suite in order: distillation step, generation, a few rows, load, end to
end, memory."""

from __future__ import annotations

import sys

import torch

from steerlib.cores import usable_cores
from steerlib.model.backbone import Backbone

from .core import Section, Sizes
from .distill_step import bench_distill_step
from .e2e_workers import bench_end_to_end
from .end_to_end import process_memory
from .few_rows import bench_few_rows
from .generation import bench_generation
from .load import bench_load, load_not_measured

STEPS = ("distill", "generation", "few-rows", "load", "end-to-end")
"""The benchmarks, in the order they run (``--only`` names them)."""


def run_suite(
    bb: Backbone,
    sizes: Sizes,
    *,
    model: str,
    workers: int = 1,
    only: tuple[str, ...] = STEPS,
    log=sys.stderr,
) -> list[Section]:
    """Every benchmark's section (those named in ``only``, from ``STEPS``). ``model``
    names the backbone ("tiny" or "embedded"); the load benchmark runs only for
    "embedded", whose first load has a cache to fill. ``workers`` > 1: generation, the
    few-rows score and the end-to-end workload also run in that many worker processes
    of one thread (``--workers``), against this process."""
    sections = []
    steps = [
        ("distill", lambda: bench_distill_step(bb, sizes)),
        ("generation", lambda: bench_generation(bb, sizes, model, workers)),
        ("few-rows", lambda: bench_few_rows(bb, sizes, model, workers)),
        (
            "load",
            lambda: (
                bench_load(None, sizes.load_repeats)
                if model == "embedded"
                else load_not_measured(model)
            ),
        ),
        ("end-to-end", lambda: bench_end_to_end(bb, sizes, model, workers)),
    ]
    assert [name for name, _ in steps] == list(STEPS)
    for name, step in steps:
        if name not in only:
            continue
        print(f"[benchmarks] {name} ...", file=log, flush=True)
        sections.append(step())
    sections.append(process_memory())
    return sections


def header(bb: Backbone, sizes: Sizes, quick: bool, workers: int = 1) -> list[str]:
    """What the numbers were measured on: model, threads, workers, sizes."""
    return [
        (
            f"model: {bb.model_id} ({bb.device}, {bb.dtype}); torch "
            f"{torch.__version__}, {torch.get_num_threads()} thread(s) in this "
            f"process, {workers} worker(s) of 1 thread ({usable_cores()} usable cores)"
        ),
        f"mode: {'quick' if quick else 'full'}; {sizes}",
    ]
