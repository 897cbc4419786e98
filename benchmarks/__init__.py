"""steerlib's benchmark suite: ``python -m benchmarks [--quick] [--model tiny|embedded]``.

Four benchmarks, each a pair (or triple) of runs timed alternately in one process:

1. a stage-1 distillation step against a raw forward/backward ceiling and PEFT prompt tuning;
2. batched steered generation against HF ``generate`` and one-prompt-at-a-time decoding;
3. first against second load of the embedded model (the de-quantisation cache);
4. the cpu preset's end-to-end time and memory, read from ``results/cpu/timings.json``.

Every goal is a ratio measured in the same run; the report ends with ``goals met: K/N``.
"""
from .core import FULL, QUICK, Goal, Section, Sizes, render_markdown, render_text, summary_line
from .suite import run_suite

__all__ = ["FULL", "QUICK", "Goal", "Section", "Sizes", "render_markdown", "render_text", "run_suite",
           "summary_line"]
