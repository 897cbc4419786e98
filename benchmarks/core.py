"""What every benchmark shares: sizes, alternating timing, goals, and the report.

A speed goal is always a ratio of two throughputs measured in the same process, never
an absolute time: the machine (and whatever else runs on it) changes from run to run,
but both sides of a ratio see the same machine.
"""

from __future__ import annotations

import gc
import re
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark is. The defaults follow the cpu preset where it has a
    number."""

    batch: int = 8
    """Distillation examples per step (cpu preset: stage-1 batch size 8)."""
    answer_tokens: int = 48
    """Length of each teacher-forced answer (cpu preset: stage 1 trains on the first 48
    tokens of each target, ``max_answer_tokens``)."""
    gen_prompts: int = 512
    """Prompts of the generation benchmark and generations of the end-to-end workload,
    decoded in batches of the cpu preset's evaluation batch size (512: the ablation
    protocol's evaluation)."""
    new_tokens: int = 128
    """max_new_tokens of every generation run (cpu preset: evaluation uses 128)."""
    repeats: int = 5
    """Timed repeats of each run; the median counts."""
    warmup: int = 1
    """Untimed runs of each side first (allocator, lazy init, caches)."""
    load_repeats: int = 2
    """First/second load pairs (a first load de-quantises the GGUF file: slow)."""
    val_questions: int = 24
    """Questions of one validation score in the few-rows benchmark (cpu preset:
    ``ValidationConfig.n_questions``)."""
    val_new_tokens: int = 64
    """Their max_new_tokens (cpu preset: ``ValidationConfig.max_new_tokens``)."""
    e2e_training: str = "cpu"
    """Preset whose stage-1 and stage-2 settings the end-to-end workload trains with
    (cpu: reproduce's, minutes a token on the embedded model, and the only one
    projected to reproduce)."""


FULL = Sizes()
QUICK = Sizes(
    gen_prompts=128,
    new_tokens=48,
    repeats=3,
    load_repeats=1,
    val_questions=8,
    val_new_tokens=16,
    e2e_training="smoke",
)
"""Smaller answers, fewer new tokens and repeats, the smoke preset's training settings:
the embedded model in minutes on 2 cores."""


@dataclass(frozen=True)
class Rate:
    """Median throughput of one timed run: work units (tokens) per second."""

    work: float
    seconds: float
    per_second: float


def measure(
    runs: dict[str, Callable[[], int]], repeats: int, warmup: int = 1
) -> dict[str, Rate]:
    """Time each run (a function returning the tokens it processed), alternating them.

    Runs take turns, and the order rotates every repeat, so a slow drift of the machine
    (another process starting, throttling) falls on all runs alike instead of on
    whichever ran last. The median of per-repeat rates ignores a single outlier.
    """
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    samples: dict[str, list[tuple[int, float]]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            # keep a collection of the previous run's garbage out of this one
            gc.collect()
            start = time.perf_counter()
            work = runs[name]()
            samples[name].append((work, time.perf_counter() - start))
    return {
        name: Rate(
            statistics.median(w for w, _ in s),
            statistics.median(t for _, t in s),
            statistics.median(w / t for w, t in s),
        )
        for name, s in samples.items()
    }


@dataclass(frozen=True)
class Goal:
    """A measured ratio and the bound it should meet; ``ratio=None`` means not
    measured."""

    name: str
    ratio: float | None
    op: str
    bound: float

    def __post_init__(self) -> None:
        if self.op not in (">=", "<="):
            raise ValueError(f"goal op must be '>=' or '<=', not {self.op!r}")

    @property
    def measured(self) -> bool:
        return self.ratio is not None

    @property
    def met(self) -> bool:
        if self.ratio is None:
            return False
        return self.ratio >= self.bound if self.op == ">=" else self.ratio <= self.bound

    @property
    def verdict(self) -> str:
        return (
            "not measured" if not self.measured else ("met" if self.met else "MISSED")
        )


@dataclass
class Section:
    """One benchmark's output: figures (label, formatted value), goals, and notes."""

    title: str
    figures: list[tuple[str, str]] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def rate_figure(
    label: str, rate: Rate, unit: str = "tok/s", per: str = "run"
) -> tuple[str, str]:
    """``(label, "1234.5 tok/s (0.812 s/run, 1016 tokens)")``."""
    return (
        label,
        f"{rate.per_second:,.1f} {unit} ({rate.seconds:.3f} s/{per}, {rate.work:g} "
        "tokens)",
    )


def goals_of(sections: Sequence[Section]) -> list[Goal]:
    return [g for s in sections for g in s.goals]


def summary_line(sections: Sequence[Section]) -> str:
    """``goals met: K/N``, counted from the goals' ratios; unmeasured goals are not in
    N."""
    measured = [g for g in goals_of(sections) if g.measured]
    return f"goals met: {sum(g.met for g in measured)}/{len(measured)}"


SUMMARY = re.compile(r"^goals met: (\d+)/(\d+)$")


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (ru_maxrss: KiB on Linux, bytes on
    macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e9 if sys.platform == "darwin" else peak * 1024 / 1e9


def _goal_cells(g: Goal) -> tuple[str, str, str]:
    ratio = "not measured" if g.ratio is None else f"{g.ratio:.3f}"
    return ratio, f"{g.op} {g.bound:.3g}", g.verdict


def render_text(sections: Sequence[Section], header: Sequence[str] = ()) -> str:
    """The console report; its last line is the summary."""
    lines = list(header)
    for s in sections:
        lines += ["", f"== {s.title} =="]
        width = max(
            [len(label) for label, _ in s.figures]
            + [len(g.name) + 6 for g in s.goals]
            + [0]
        )
        lines += [f"  {label:<{width}}  {value}" for label, value in s.figures]
        for g in s.goals:
            ratio, bound, verdict = _goal_cells(g)
            lines.append(
                f"  {'ratio ' + g.name:<{width}}  {ratio}  (goal {bound})  {verdict}"
            )
        lines += [f"  note: {n}" for n in s.notes]
    return "\n".join(lines + ["", summary_line(sections)])


def render_markdown(sections: Sequence[Section], header: Sequence[str] = ()) -> str:
    """The same report as markdown tables (for benchmarks/RESULTS.md)."""
    blocks = ["# steerlib benchmarks", "\n".join(f"{h}  " for h in header)]
    for s in sections:
        blocks.append(f"## {s.title}")
        if s.figures:
            blocks.append(
                "\n".join(
                    ["| figure | value |", "|---|---|"]
                    + [f"| {label} | {value} |" for label, value in s.figures]
                )
            )
        if s.goals:
            blocks.append(
                "\n".join(
                    ["| ratio | value | goal | verdict |", "|---|---|---|---|"]
                    + [
                        f"| {g.name} | " + " | ".join(_goal_cells(g)) + " |"
                        for g in s.goals
                    ]
                )
            )
        if s.notes:
            blocks.append("\n".join(f"- {n}" for n in s.notes))
    return "\n\n".join(blocks + [summary_line(sections)]) + "\n"
