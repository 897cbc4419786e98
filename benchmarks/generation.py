"""Benchmark 2: greedy steered generation against the machine's GEMM ceiling and
today's path.

The workload is an evaluation's: test questions, each asked through the prompt methods
(plain, instruction, concatenation, ``<and>``, hybrid) with one to three steering tokens
(the shipped ones on the embedded model, random vectors otherwise), greedy, in batches
of the evaluation's size. Full size is the ablation protocol's: 512 generations of 128
tokens.

* steerlib: ``SteeredModel.generate_ids``, which decodes greedily with
  ``decoding.greedy``;
* today's path: the same call decoding with transformers' ``generate`` (what steerlib
  did before ``decoding``), run in the same process on the same prompts, as the
  reference;
* ceiling: every ``nn.Linear`` of the model (the LM head included) applied to a batch of
  as many rows as a generation batch holds, timed alone: ``2 x parameters`` FLOPs per
  token at the GEMM rate this machine reaches on the model's own weights and shapes.
  Attention, norms and the prompt's prefill are not in it, so no decoder reaches it.
  Measured twice: at this process's threads (today's figure: torch's default, one per
  physical core) and at one thread; the machine's ceiling is the one-thread rate times
  the workers, what processes of one thread each can reach;
* workers (``--workers``, when more than one): the same requests answered by that many
  processes of one thread, each its share (``benchmarks.workers``), timed between
  barriers after loading; against this process's steerlib run (goal >= 1.15x, the same
  answers) and against the machine's ceiling (aim >= 0.6).

Throughput counts the tokens each row generated up to and including its end token (what
a user gets), so a batch that keeps computing finished rows pays for it. Each side is
timed in wall time (the goals) and in this process's CPU time (what it computed, less
distorted by other processes on a shared machine; equal to wall time on an idle one with
one thread).
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass
from unittest import mock

import torch
import torch.nn.functional as F

from steerlib.errors import SteerlibError
from steerlib.model.backbone import Backbone
from steerlib.model.generate import SteeredModel
from steerlib.model.inits import random_init
from steerlib.model.methods import METHODS
from steerlib.model.packs import Pack
from steerlib.model.tokens import SteeringTokens
from steerlib.presets import presets
from steerlib.tasks import prompts as P

from .core import Goal, Section, Sizes, measure, rate_figure

COMBOS = [
    ("french", "words_10_50"),
    ("json",),
    ("upper_case", "sentences_1", "french"),
    ("spanish",),
    ("title_case", "sentences_2"),
]
METHOD_NAMES = ["plain", "instruction", "concat", "and", "hybrid"]


def answer_length(row: list[int], eos: set[int]) -> int:
    """Generated tokens up to and including the first end token (all of them if
    none)."""
    for i, t in enumerate(row):
        if t in eos:
            return i + 1
    return len(row)


def shipped_or_random(bb: Backbone, names: list[str]) -> SteeringTokens:
    """The paper pack when it fits ``bb``, else a random vector (seed: its index in
    ``names``) under each of ``names``. The paper pack, not the default: its layout is
    one transformers' ``generate`` reads too, the baseline every ratio here is against
    (the default pack's isolated slots decode in steerlib's loop only)."""
    try:
        return SteeringTokens.pretrained(bb, Pack.PAPER)
    except SteerlibError:
        tokens = SteeringTokens.for_backbone(bb)
        for i, name in enumerate(names):
            tokens.set(name, random_init(bb, seed=i))
        return tokens


def steered_model(bb: Backbone) -> SteeredModel:
    """The workload's tokens: the shipped ones when they fit ``bb``, else random
    vectors."""
    return SteeredModel(
        bb, shipped_or_random(bb, sorted({n for c in COMBOS for n in c} | {"and"}))
    )


def workload_names(n: int) -> list[tuple[str, tuple[str, ...]]]:
    """The prompt method and the behaviors of each of ``workload(n)``'s requests."""
    return [
        (METHOD_NAMES[i % len(METHOD_NAMES)], COMBOS[i % len(COMBOS)]) for i in range(n)
    ]


def workload(n: int) -> list:
    """``n`` evaluation-style requests: questions x methods x combinations, cycled."""
    questions = P.load("test")
    rng = random.Random(0)
    return [
        METHODS[method].request(
            questions[(i // len(METHOD_NAMES)) % len(questions)], names, rng
        )
        for i, (method, names) in enumerate(workload_names(n))
    ]


def gemm_ceiling(bb: Backbone, rows: int):
    """A run that applies every ``nn.Linear`` of the model once to ``rows`` rows: one
    decode step's GEMMs; it returns ``rows`` tokens."""
    linears = [m for m in bb.model.modules() if isinstance(m, torch.nn.Linear)]
    inputs = {
        m.in_features: torch.randn(
            rows, m.in_features, dtype=bb.dtype, device=bb.device
        )
        for m in linears
    }

    @torch.inference_mode()
    def run() -> int:
        for m in linears:
            F.linear(inputs[m.in_features], m.weight)
        return rows

    return run


@dataclass(frozen=True)
class Timed:
    tokens: int
    wall: float
    cpu: float
    answers: list


def timed_generation(
    sm: SteeredModel, reqs: list, k: int, batch: int, generate: bool
) -> Timed:
    """One evaluation of ``reqs``: with ``generate``, decoded by transformers'
    ``generate`` (the decision ``decode`` makes is patched to 'not plain greedy')."""
    eos = set(sm.backbone.eos_ids)
    patch = mock.patch("steerlib.model.generate.is_plain_greedy", return_value=False)
    with patch if generate else contextlib.nullcontext():
        wall, cpu = time.perf_counter(), time.process_time()
        answers = sm.generate_ids(reqs, max_new_tokens=k, batch_size=batch)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Timed(sum(answer_length(a, eos) for a in answers), wall, cpu, answers)


@contextlib.contextmanager
def threads(n: int):
    """torch's intra-op threads set to ``n`` inside the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def bench_generation(bb: Backbone, sizes: Sizes, model: str, workers: int) -> Section:
    sm = steered_model(bb)
    reqs = workload(sizes.gen_prompts)
    n, k, batch = len(reqs), sizes.new_tokens, presets.cpu().eval.batch_size
    here = torch.get_num_threads()
    ceiling = measure(
        {"ceiling": gemm_ceiling(bb, batch)}, max(3, sizes.repeats), sizes.warmup
    )["ceiling"]
    with threads(1):
        per_core = measure(
            {"ceiling": gemm_ceiling(bb, batch)}, max(3, sizes.repeats), sizes.warmup
        )["ceiling"]
    machine = per_core.per_second * workers
    cpu_start = time.process_time()
    gemm_ceiling(bb, batch)()
    ceiling_cpu = batch / max(time.process_time() - cpu_start, 1e-9)
    if sizes.warmup:
        timed_generation(sm, reqs[:batch], 8, batch, generate=False)
        timed_generation(sm, reqs[:batch], 8, batch, generate=True)
    today = timed_generation(sm, reqs, k, batch, generate=True)
    ours = timed_generation(sm, reqs, k, batch, generate=False)
    same = sum(a == b for a, b in zip(ours.answers, today.answers))
    many = (
        in_workers(model, workers, sizes, batch, set(bb.eos_ids))
        if workers > 1
        else None
    )

    def fig(label: str, t: Timed) -> tuple[str, str]:
        return label, (
            f"{t.tokens / t.wall:,.1f} tok/s wall ({t.wall:.1f} s), "
            f"{t.tokens / t.cpu:,.1f} tok/s CPU ({t.cpu:.1f} s), {t.tokens} tokens"
        )

    figures = [
        fig(f"steerlib (decoding.greedy), {here} threads", ours),
        fig("today's path (transformers generate)", today),
        rate_figure(f"GEMM ceiling, {batch} rows, {here} threads", ceiling, per="step"),
        rate_figure(f"GEMM ceiling, {batch} rows, 1 thread", per_core, per="step"),
        (
            f"machine ceiling: 1 thread x {workers} workers",
            (
                f"{machine:,.1f} tok/s (today's {here}-thread ceiling: "
                f"{ceiling.per_second:,.1f} tok/s)"
            ),
        ),
        ("GEMM ceiling, CPU time", f"{ceiling_cpu:,.1f} tok/s"),
        (
            "CPU-time ratios",
            (
                f"steerlib / ceiling {ours.tokens / ours.cpu / ceiling_cpu:.3f}, "
                f"steerlib / today {today.cpu / ours.cpu:.3f}"
            ),
        ),
        (
            "steerlib against both ceilings",
            (
                f"{ours.tokens / ours.wall / ceiling.per_second:.3f} of today's "
                f"{here}-thread ceiling, {ours.tokens / ours.wall / machine:.3f} of "
                f"the machine's (1 thread x {workers})"
            ),
        ),
        ("identical answers", f"{same} of {n}"),
    ]
    workers_goals = [None, None, None]
    if many is not None:
        rate = many.tokens / many.seconds
        many_same = sum(a == b for a, b in zip(ours.answers, many.answers))
        figures += [
            (
                f"{workers} workers x 1 thread (--workers default)",
                (
                    f"{rate:,.1f} tok/s ({many.seconds:.1f} s, {many.tokens} tokens; "
                    f"the launch, process start and model loads included: "
                    f"{many.launch_s:.1f} s)"
                ),
            ),
            (
                f"{workers} workers against both ceilings",
                (
                    f"{rate / machine:.3f} of the machine's, "
                    f"{rate / ceiling.per_second:.3f} of today's {here}-thread ceiling"
                ),
            ),
            (
                f"{workers} workers: answers identical to one process's",
                f"{many_same} of {n}",
            ),
        ]
        workers_goals = [
            rate / (ours.tokens / ours.wall),
            rate / machine,
            many_same / n,
        ]
    return Section(
        f"Steered generation: {n} evaluation prompts, batches of {batch}, greedy, "
        f"max_new_tokens {k}",
        figures=figures,
        notes=[]
        if many is not None
        else [f"--workers {workers}: generation by worker processes not measured"],
        goals=[
            Goal(
                "steerlib / GEMM ceiling",
                ours.tokens / ours.wall / ceiling.per_second,
                ">=",
                0.7,
            ),
            Goal(
                "steerlib / today's path (tok/s)",
                (ours.tokens / ours.wall) / (today.tokens / today.wall),
                ">=",
                1.8,
            ),
            Goal(
                "steerlib / today's path (wall time)", ours.wall / today.wall, "<=", 0.6
            ),
            Goal("identical answers", same / n, ">=", 1.0),
            Goal("workers / one process (tok/s)", workers_goals[0], ">=", 1.15),
            Goal(
                "workers / machine ceiling (1 thread x workers)",
                workers_goals[1],
                ">=",
                0.6,
            ),
            Goal("workers' identical answers", workers_goals[2], ">=", 1.0),
        ],
    )


@dataclass(frozen=True)
class InWorkers:
    tokens: int
    seconds: float
    """Generation alone, timed between barriers."""
    launch_s: float
    answers: list


def in_workers(
    model: str, workers: int, sizes: Sizes, batch: int, eos: set[int]
) -> InWorkers:
    """The same requests answered by ``workers`` processes of one thread
    (``--workers``); tokens counted up to each answer's end token (``eos``), as in
    this process."""
    from . import workers as launched

    result, launch_s = launched.run(
        "generation",
        workers,
        model,
        prompts=sizes.gen_prompts,
        new_tokens=sizes.new_tokens,
        batch=batch,
    )
    answers = result["answers"]
    return InWorkers(
        sum(answer_length(a, eos) for a in answers),
        result["seconds"],
        launch_s,
        answers,
    )
