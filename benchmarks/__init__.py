"""steerlib's benchmark suite: ``python -m benchmarks [--quick] [--model
tiny|embedded]``.

Four benchmarks, each a pair (or triple) of runs timed alternately in one process:

1. a stage-1 distillation step against a raw forward/backward ceiling and PEFT prompt
   tuning;
2. greedy steered generation against the GEMM ceiling and today's path (transformers'
   ``generate`` in static batches);
3. first against second load of the embedded model (the de-quantisation cache);
4. a fresh end-to-end workload (one behavior token, ``<and>``, 512 generations) in a
   scratch folder, projected to the cpu preset's whole study, and the process's memory.

Every goal is a ratio measured in the same run; the report ends with ``goals met: K/N``.
"""

from .core import (
    FULL,
    QUICK,
    Goal,
    Section,
    Sizes,
    render_markdown,
    render_text,
    summary_line,
)
from .suite import run_suite

__all__ = [
    "FULL",
    "QUICK",
    "Goal",
    "Section",
    "Sizes",
    "render_markdown",
    "render_text",
    "run_suite",
    "summary_line",
]
