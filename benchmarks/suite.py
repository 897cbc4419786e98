"""The whole suite in order: distillation step, generation, load, end to end, memory."""

from __future__ import annotations

import sys

import torch

from steerlib.model.backbone import Backbone

from .core import Section, Sizes
from .distill_step import bench_distill_step
from .end_to_end import bench_end_to_end, process_memory
from .generation import bench_generation
from .load import bench_load, load_not_measured


def run_suite(
    bb: Backbone, sizes: Sizes, *, model: str, log=sys.stderr
) -> list[Section]:
    """Every benchmark's section. ``model`` names the backbone ("tiny" or "embedded");
    the load benchmark runs only for "embedded", whose first load has a cache to
    fill."""
    sections = []
    steps = [
        ("distillation step", lambda: bench_distill_step(bb, sizes)),
        ("steered generation", lambda: bench_generation(bb, sizes)),
        (
            "load",
            lambda: (
                bench_load(None, sizes.load_repeats)
                if model == "embedded"
                else load_not_measured(model)
            ),
        ),
        ("end to end", lambda: bench_end_to_end(bb, sizes)),
    ]
    for name, step in steps:
        print(f"[benchmarks] {name} ...", file=log, flush=True)
        sections.append(step())
    sections.append(process_memory())
    return sections


def header(bb: Backbone, sizes: Sizes, quick: bool) -> list[str]:
    """What the numbers were measured on: model, threads, sizes."""
    return [
        f"model: {bb.model_id} ({bb.device}, {bb.dtype}); torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s)",
        f"mode: {'quick' if quick else 'full'}; {sizes}",
    ]
