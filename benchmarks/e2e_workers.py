"""The end-to-end workload run by ``--workers`` processes against this process's run.

``bench_end_to_end`` runs the workload of ``benchmarks.end_to_end`` here (at this
process's threads: ``--workers 1``), then in N processes of one thread each started as
a study command starts its default workers (``benchmarks.workers``), and compares
them: the parts and their phases, the speed-up of the parts' total (goal >= 1.15x),
the answers one by one, and the projection recomputed from the workers' parts (goal
<= 2 h).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from steerlib.model.backbone import Backbone
from steerlib.preset import Preset
from steerlib.presets import presets
from steerlib.tasks import behaviors as B

from .core import Goal, Section, Sizes
from .end_to_end import (
    BEHAVIOR,
    BUDGET_S,
    REPRODUCE_GENERATIONS,
    Workload,
    end_to_end_section,
    partner_tokens,
    projected_reproduce_s,
    projects_reproduce,
    run_workload,
    scratch_environment,
)
from .phases import phases_text


def bench_end_to_end(bb: Backbone, sizes: Sizes, model: str, workers: int) -> Section:
    """The workload at ``sizes`` (training settings of ``sizes.e2e_training``,
    ``sizes.gen_prompts`` generations of ``sizes.new_tokens``) in this process, then
    (``workers`` > 1) in that many worker processes, as one section."""
    partners = partner_tokens(bb)
    training = presets.get(sizes.e2e_training)
    w = run_workload(bb, training, sizes.gen_prompts, sizes.new_tokens, partners)
    section = end_to_end_section(
        w, partners if partners.info.get(BEHAVIOR) else None
    )  # random ones have no records
    many, launch_s = (
        run_workload_in_workers(model, workers, training, sizes)
        if workers > 1
        else (None, None)
    )
    workers_comparison(section, w, many, workers, launch_s)
    return section


def run_workload_in_workers(
    model: str, workers: int, training: Preset, sizes: Sizes
) -> tuple[Workload, float]:
    """The workload run by ``workers`` processes of one thread (what a study
    command's default ``--workers`` does) in a new scratch folder, and the launch's
    wall seconds."""
    from . import workers as launched

    with tempfile.TemporaryDirectory(prefix="steerlib-e2e-") as scratch:
        result, launch_s = launched.run(
            "end-to-end",
            workers,
            model,
            env=scratch_environment(Path(scratch)),
            prompts=sizes.gen_prompts,
            new_tokens=sizes.new_tokens,
            training=training.name,
        )
    return Workload(**result), launch_s


def total_s(w: Workload) -> float:
    return w.token_s + w.and_s + w.generation_s


def workers_comparison(
    section: Section,
    one: Workload,
    many: Workload | None,
    workers: int,
    launch_s: float | None,
) -> None:
    """Add to ``section`` the workload run by ``workers`` processes (``many``) against
    this process's run (``one``): parts, answers compared, the projection, goals (not
    measured when ``many`` is None, i.e. ``--workers 1``)."""
    label = f"{workers} workers x 1 thread"
    same = None
    if many is not None:
        same = sum(a == b for a, b in zip(one.answers, many.answers))
        section.figures += [
            (
                f"{label}: stage 1, stage 2, generation",
                (
                    f"{many.token_s:.1f} s ({many.token_steps} steps), "
                    f"{many.and_s:.1f} s ({many.and_steps} steps), "
                    f"{many.generation_s:.1f} s "
                    f"({many.generated_tokens} tokens)"
                ),
            ),
            (
                f"{label}: workload total",
                (
                    f"{total_s(many):.1f} s against {total_s(one):.1f} s in this "
                    f"process ({torch.get_num_threads()} threads); the launch, process "
                    f"start and model loads included: {launch_s:.1f} s"
                ),
            ),
            (
                f"{label}: phases of stage 1",
                phases_text(many.token_s, many.token_phases),
            ),
            (
                f"{label}: phases of stage 2",
                phases_text(many.and_s, many.and_phases),
            ),
            (f"{label}: identical answers", f"{same} of {len(one.answers)}"),
        ]
    projected = None
    if many is not None and projects_reproduce(many):
        projected = projected_reproduce_s(many)
        section.figures.append(
            (
                f"projected cpu reproduce, {label}",
                (
                    f"{projected:,.0f} s ({projected / 3600:.2f} h) = "
                    f"{len(B.names())} x {many.token_s:.1f} s + {many.and_s:.1f} s + "
                    f"{REPRODUCE_GENERATIONS} / {many.generations} x "
                    f"{many.generation_s:.1f} s"
                ),
            )
        )
    if many is None:
        section.notes.append(
            f"--workers {workers}: the workload ran in this process only, so the "
            f"comparison with worker processes is not measured"
        )
    section.goals += [
        Goal(
            f"end to end, {label} / this process (speed)",
            None if many is None else total_s(one) / total_s(many),
            ">=",
            1.15,
        ),
        Goal(
            "end to end, identical answers with workers",
            None if same is None else same / len(one.answers),
            ">=",
            1.0,
        ),
        Goal(
            f"projected reproduce with workers / {BUDGET_S:g} s",
            None if projected is None else projected / BUDGET_S,
            "<=",
            1.0,
        ),
    ]
