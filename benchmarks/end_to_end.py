"""Benchmark 4: the whole cpu-preset study, read from its timings file, and this process's memory.

``python -m steerlib reproduce --preset cpu`` writes ``results/cpu/timings.json`` (this
run's seconds per stage and ``total``; ``peak_rss_gb``; ``stage1_token_seconds``, what
training the behavior tokens cost when they were trained). Re-running the study here
would take hours, so this benchmark reports that file. A run that found its tokens and
records cached writes a total of seconds, which measures nothing: the time goal counts
only a run that trained its behavior tokens itself (its ``stage1`` took at least the
tokens' recorded training time); after a cached run it is not measured, and the
first-run training time is reported instead.
"""
from __future__ import annotations

import json
from pathlib import Path

from .core import Goal, Section, peak_rss_gb

BUDGET_S = 7200.0
"""The cpu preset's end-to-end budget: two hours on a 2-core machine."""
BUDGET_RSS_GB = 6.0
"""Peak memory budget of that run."""
RSS_KEY = "peak_rss_gb"
TOKEN_KEY = "stage1_token_seconds"


def bench_end_to_end(timings: Path) -> Section:
    """Per-stage wall time and peak RSS from ``timings``, as ratios to their budgets."""
    if not timings.is_file():
        return Section("End to end: cpu preset (reproduce)",
                       goals=[Goal(f"total / {BUDGET_S:g} s", None, "<=", 1.0),
                              Goal(f"peak RSS / {BUDGET_RSS_GB:g} GB", None, "<=", 1.0)],
                       notes=[f"not measured: {timings} not found "
                              "(written by `python -m steerlib reproduce --preset cpu`)"])
    data = json.loads(timings.read_text())
    figures = [(f"{stage}", f"{float(seconds):,.0f} s") for stage, seconds in data.items()
               if stage not in ("total", RSS_KEY)]
    total = data.get("total")
    rss = data.get(RSS_KEY)
    notes = [f"read from {timings.name}"]
    if total is not None:
        figures.append(("total", f"{float(total):,.0f} s ({float(total) / 3600:.2f} h)"))
        trained = float(data.get(TOKEN_KEY, 0.0))
        if float(data.get("stage1", 0.0)) < trained:
            notes.append(f"not measured: a cached run (stage1 {float(data.get('stage1', 0.0)):,.0f} s, while training "
                         f"its tokens took {trained:,.0f} s when they were trained); only a fresh run's total counts")
            total = None
    else:
        notes.append("not measured: no 'total' in the timings file")
    if rss is not None:
        figures.append(("peak RSS", f"{float(rss):.2f} GB"))
    else:
        notes.append(f"not measured: no '{RSS_KEY}' in the timings file")
    return Section("End to end: cpu preset (reproduce)", figures=figures, notes=notes, goals=[
        Goal(f"total / {BUDGET_S:g} s", None if total is None else float(total) / BUDGET_S, "<=", 1.0),
        Goal(f"peak RSS / {BUDGET_RSS_GB:g} GB", None if rss is None else float(rss) / BUDGET_RSS_GB, "<=", 1.0),
    ])


def process_memory() -> Section:
    """Peak RSS of the benchmark process itself (reported, no goal)."""
    return Section("This benchmark process", figures=[("peak RSS", f"{peak_rss_gb():.2f} GB")])
