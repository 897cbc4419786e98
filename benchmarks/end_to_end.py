"""Benchmark 4: a fixed, fresh training-and-evaluation workload, projected to the cpu
preset's reproduce.

A run of ``python -m steerlib reproduce --preset cpu`` takes hours, and a second run
finds its tokens and records cached and takes seconds, so timing reproduce itself
measures nothing after the first time. This benchmark times a small workload that
reproduce is made of, always from nothing:

1. stage 1: one behavior token, ``<upper_case>``, trained by self-distillation (targets
   generated, training with validation-guided stopping);
2. stage 2: ``<and>``, trained on pairs with the behavior tokens frozen (the shipped
   tokens as partners where they fit the model, random vectors otherwise, and the new
   one);
3. greedy generation of evaluation-style requests (``generation.workload``) with those
   tokens: 512 of 128 new tokens in batches of 64, the cpu preset's evaluation settings.

Every part runs in a new, empty scratch folder that is deleted afterwards
(``$STEERLIB_ARTIFACTS`` and ``$STEERLIB_LOCKS`` point into it), with ``retrain=True``
so that neither the user's artifacts cache nor the tokens shipped in the package (which
hold exactly the cpu preset's runs) stand in for training: a cached run cannot meet the
goal.

The time goal is an extrapolation, not a measurement of reproduce: the cpu preset's
reproduce time is projected as

    behavior tokens x the token's time + <and>'s time
    + REPRODUCE_GENERATIONS / generations x the generation time

against the two-hour budget. It assumes every behavior token costs what ``<upper_case>``
costs (the recorded first-run times of the 18 shipped tokens range from 217 s to 651 s,
mean 350 s; ``<upper_case>`` took 317 s), and it leaves out loading the model, the
reports and the figures (seconds). Only full mode, which trains with the cpu preset's
settings and generates at its evaluation length, projects; ``--quick`` trains with the
smoke preset's settings and generates fewer, shorter answers, so it reports its parts
but not the goal.

With ``--workers`` N > 1 the same fresh workload also runs in N processes of one thread
each, against this process's run (``benchmarks.e2e_workers``). Each training part's
time is split into its target generation, its validation and its steps
(``benchmarks.phases``), to show where processes gain and where they do not.

Peak RSS is this benchmark process's, read after the workload: the process also ran the
suite's earlier benchmarks, so it bounds the workload's own peak from above.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

from steerlib import distributed
from steerlib.model.backbone import Backbone
from steerlib.model.generate import SteeredModel
from steerlib.model.tokens import SteeringTokens
from steerlib.preset import Preset
from steerlib.presets import presets
from steerlib.tasks import behaviors as B
from steerlib.train.compose import train_composition_token
from steerlib.train.distill import train_behavior_token

from .core import Goal, Section, peak_rss_gb
from .generation import answer_length, shipped_or_random, workload
from .phases import phases_text, timed_phases

BUDGET_S = 7200.0
"""The cpu preset's end-to-end budget: two hours on a 2-core machine."""
BUDGET_RSS_GB = 6.0
"""Peak memory budget of that run."""
BEHAVIOR = "upper_case"
"""The behavior token the workload trains: its targets are the model's own answers (so
any model, the tiny random one too, gives them), the generation workload steers with
it, and its recorded first-run time is near the mean of the 18 shipped tokens'."""
REPRODUCE_GENERATIONS = 8380
"""Greedy generations (128 new tokens, batches of 64) of a cpu-preset reproduce without
baselines, from ``study.pipeline.reproduce`` and the committed results (the capable
pairs are those of ``results/cpu/capable_pairs.md``): teacher compliance 540 (18
behaviors x 30 test prompts, by instruction); the single-behavior table 88 plain (the
same request for every behavior, made once per chunk of 256 jobs), 540 hybrid and 540
by token (instruction reuses teacher compliance's); the composition table 1,200 (5
methods x 240 orderings and prompts); the capable-pairs study 432 tokens alone on
validation questions (18 x 24), 240 tokens alone on test prompts (the 8 behaviors of
the pairs x 30) and 4,800 pairs (16 pairs x 2 orders x 30 prompts x 5 methods).
Validation during training is in the training times."""


@dataclass(frozen=True)
class Workload:
    """The measured parts of one fresh run of the workload."""

    training: str
    """The preset whose stage-1 and stage-2 settings trained the tokens."""
    token_s: float
    token_steps: int
    and_s: float
    and_steps: int
    generations: int
    new_tokens: int
    batch: int
    generation_s: float
    generated_tokens: int
    """Tokens generated up to and including each answer's end token."""
    peak_rss_gb: float
    answers: list = field(default_factory=list, repr=False)
    """The token ids of each answer (to compare runs)."""
    token_phases: dict = field(default_factory=dict)
    """Stage 1's seconds in target generation and validation (``phases``)."""
    and_phases: dict = field(default_factory=dict)
    """Stage 2's, the same way."""


def partner_tokens(bb: Backbone) -> SteeringTokens:
    """The behavior tokens ``<and>`` composes: the shipped ones where they fit ``bb``,
    else a random vector per behavior (stage 2 needs every seen behavior's token)."""
    return shipped_or_random(bb, B.names())


def run_workload(
    bb: Backbone,
    training: Preset,
    generations: int,
    new_tokens: int,
    partners: SteeringTokens,
) -> Workload:
    """``timed_parts`` in a new scratch folder, deleted afterwards."""
    with (
        tempfile.TemporaryDirectory(prefix="steerlib-e2e-") as scratch,
        mock.patch.dict(os.environ, scratch_environment(Path(scratch))),
    ):
        return timed_parts(bb, training, generations, new_tokens, partners)


def scratch_environment(scratch: Path) -> dict[str, str]:
    """The variables that point steerlib's caches and locks into ``scratch``."""
    return {
        "STEERLIB_ARTIFACTS": str(scratch / "artifacts"),
        "STEERLIB_LOCKS": str(scratch / "locks"),
    }


def timed_parts(
    bb: Backbone,
    training: Preset,
    generations: int,
    new_tokens: int,
    partners: SteeringTokens,
) -> Workload:
    """Train ``<BEHAVIOR>`` and ``<and>`` (beside ``partners``) with ``training``'s
    settings, then generate ``generations`` answers of up to ``new_tokens`` tokens.
    Under several processes (``--workers``) they share each part as a study command's
    workers do, and each part is timed from a barrier (identities in one process)."""
    batch = presets.cpu().eval.batch_size

    def timed(part):
        distributed.barrier()
        start = time.perf_counter()
        result = part()
        distributed.barrier()
        return result, time.perf_counter() - start

    with timed_phases() as token_phases:
        tokens, token_s = timed(
            lambda: train_behavior_token(
                bb,
                BEHAVIOR,
                training.stage1_config(BEHAVIOR),
                tokens=partners,
                retrain=True,
                progress=False,
            )
        )
    with timed_phases() as and_phases:
        tokens, and_s = timed(
            lambda: train_composition_token(
                bb, tokens, training.stage2, retrain=True, progress=False
            )
        )
    sm = SteeredModel(bb, tokens)
    answers, generation_s = timed(
        lambda: distributed.map_shards(
            lambda part: sm.generate_ids(
                part, max_new_tokens=new_tokens, batch_size=batch, progress=False
            ),
            workload(generations),
        )
    )
    eos = set(bb.eos_ids)
    return Workload(
        training.name,
        token_s,
        tokens.info[BEHAVIOR]["steps"],
        and_s,
        tokens.info["and"]["steps"],
        generations,
        new_tokens,
        batch,
        generation_s,
        sum(answer_length(a, eos) for a in answers),
        peak_rss_gb(),
        answers,
        token_phases,
        and_phases,
    )


def projected_reproduce_s(w: Workload) -> float:
    """The cpu preset's reproduce time extrapolated from the workload's parts (module
    docstring)."""
    return (
        len(B.names()) * w.token_s
        + w.and_s
        + REPRODUCE_GENERATIONS / w.generations * w.generation_s
    )


def projects_reproduce(w: Workload) -> bool:
    """Whether ``w`` ran reproduce's settings: the cpu preset's training and evaluation
    length."""
    return w.training == "cpu" and w.new_tokens == presets.cpu().eval.max_new_tokens


def end_to_end_section(w: Workload, recorded: SteeringTokens | None = None) -> Section:
    """The workload's parts, the projection (where ``w`` ran reproduce's settings) and
    the goals. ``recorded``: tokens whose training records give the first-run times to
    show beside the measured ones (the shipped tokens)."""
    figures = [
        (
            f"stage 1: <{BEHAVIOR}> ({w.training} settings)",
            f"{w.token_s:.1f} s ({w.token_steps} steps)",
        ),
        (
            f"stage 2: <and> ({w.training} settings)",
            f"{w.and_s:.1f} s ({w.and_steps} steps)",
        ),
        ("phases of stage 1", phases_text(w.token_s, w.token_phases)),
        ("phases of stage 2", phases_text(w.and_s, w.and_phases)),
        (
            f"generation: {w.generations} x {w.new_tokens} new tokens, batches of "
            f"{w.batch}",
            f"{w.generation_s:.1f} s ({w.generated_tokens} tokens, "
            f"{w.generated_tokens / w.generation_s:,.1f} tok/s)",
        ),
        ("workload total", f"{w.token_s + w.and_s + w.generation_s:.1f} s"),
    ]
    if recorded is not None:
        firsts = [recorded.info[n]["seconds"] for n in B.names()]
        figures.append(
            (
                "first-run training, recorded in the shipped tokens",
                f"<{BEHAVIOR}> {recorded.info[BEHAVIOR]['seconds']:.0f} s, the "
                f"{len(firsts)} behavior "
                f"tokens {sum(firsts):,.0f} s (mean {statistics.mean(firsts):.0f} s), "
                f"<and> {recorded.info['and']['seconds']:.0f} s",
            )
        )
    notes = []
    projected = None
    if projects_reproduce(w):
        projected = projected_reproduce_s(w)
        figures.append(
            (
                "projected cpu reproduce",
                f"{projected:,.0f} s ({projected / 3600:.2f} h) = {len(B.names())} x "
                f"{w.token_s:.1f} s "
                f"+ {w.and_s:.1f} s + {REPRODUCE_GENERATIONS} / {w.generations} x "
                f"{w.generation_s:.1f} s",
            )
        )
        notes.append(
            "the projection is an extrapolation: every behavior token is assumed to "
            "cost what "
            f"<{BEHAVIOR}> cost, and loading, reports and figures are left out"
        )
    else:
        notes.append(
            "projection not measured: it needs the cpu preset's training settings and "
            "its "
            f"{presets.cpu().eval.max_new_tokens}-token answers (full mode, without "
            "--quick); this workload "
            f"trained with the {w.training} preset's settings and generated "
            f"{w.new_tokens} new tokens"
        )
    figures.append(
        ("peak RSS (this process, after the workload)", f"{w.peak_rss_gb:.2f} GB")
    )
    return Section(
        f"End to end: a fresh <{BEHAVIOR}>, <and> and {w.generations} generations",
        figures=figures,
        notes=notes,
        goals=[
            Goal(
                f"projected reproduce / {BUDGET_S:g} s",
                None if projected is None else projected / BUDGET_S,
                "<=",
                1.0,
            ),
            Goal(
                f"peak RSS / {BUDGET_RSS_GB:g} GB",
                w.peak_rss_gb / BUDGET_RSS_GB,
                "<=",
                1.0,
            ),
        ],
    )


def process_memory() -> Section:
    """Peak RSS of the benchmark process itself (reported, no goal)."""
    return Section(
        "This benchmark process", figures=[("peak RSS", f"{peak_rss_gb():.2f} GB")]
    )
