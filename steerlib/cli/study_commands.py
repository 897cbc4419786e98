"""The study commands: each runs one study on a preset and prints its table.

``teacher-compliance``, ``evaluate``, ``targets-compare``, ``curves``, ``capable``,
``ablations``, ``position``, ``stage2`` and ``reproduce``.

They write into the run's results folder (``study.folders.results_dir``), resumable,
and import the study code only when run, so ``--help`` and the token commands stay
quick.
"""

from __future__ import annotations

from pathlib import Path

from steerlib import distributed
from steerlib.cli.artifacts import backbone_of, tokens_of
from steerlib.cli.overrides import preset_of
from steerlib.errors import ConfigError
from steerlib.tasks import behaviors as B


def cmd_teacher_compliance(args) -> None:
    from steerlib.study.singles import teacher_compliance

    preset = preset_of(args)
    table = teacher_compliance(backbone_of(args, preset), preset)
    print(table.to_markdown(index=False))


def cmd_evaluate(args) -> None:
    from steerlib.study.folders import check_out, results_dir
    from steerlib.study.pipeline import composition_eval

    preset = preset_of(args)
    bb = backbone_of(args, preset)
    out = (
        check_out(args.out, preset, bb, args.overwrite)
        if args.out
        else results_dir(preset, bb) / "evaluate"
    )
    table = composition_eval(bb, tokens_of(args, bb), preset, out, methods=args.methods)
    print(table.to_markdown(index=False))
    if distributed.is_main():
        print(f"records: {out / 'records.jsonl'}")


def cmd_targets_compare(args) -> None:
    from steerlib.study.folders import results_dir
    from steerlib.study.singles import targets_comparison

    preset = preset_of(args)
    names = B.names() if args.behaviors == ["all"] else args.behaviors
    bb = backbone_of(args, preset)
    table = targets_comparison(bb, preset, names, results_dir(preset, bb))
    print(table.round(1).to_markdown(index=False))


def cmd_curves(args) -> None:
    from steerlib.study.curves import measure, peak_steps
    from steerlib.study.folders import results_dir
    from steerlib.study.plots import save, validation_curves

    preset = preset_of(args)
    if preset.validation is None:
        raise ConfigError(
            f"preset {preset.name!r} has no validation settings (Preset.validation)"
        )
    bb = backbone_of(args, preset)
    out = results_dir(preset, bb)
    table = measure(bb, preset, args.behaviors, args.max_steps, preset.validation, out)
    peaks = peak_steps(table)
    save(
        validation_curves(table, dict(zip(peaks["behavior"], peaks["step"]))),
        out / "validation_curves.png",
    )
    print(peaks.to_markdown(index=False))


def cmd_capable(args) -> None:
    from steerlib.baselines import BASELINES
    from steerlib.evaluation.evaluate import COMPOSITION_METHODS
    from steerlib.study import capable
    from steerlib.study.baseline_runs import capable_baselines
    from steerlib.study.folders import results_dir
    from steerlib.study.pipeline import load_tokens

    preset = preset_of(args)
    bb = backbone_of(args, preset)
    tokens = load_tokens(bb, preset)
    out = results_dir(preset, bb)
    methods: list = list(COMPOSITION_METHODS)
    if args.baselines is not None:
        methods += capable_baselines(
            bb, tokens, preset, out, args.baselines or BASELINES
        )
    # the baselines not asked for this time keep their recorded rows
    report = capable.run(
        bb, tokens, preset, out, methods=methods, keep_recorded=BASELINES
    )
    if not report:
        print(f"no pair qualified on validation: see {out / 'capable_pairs.md'}")
        return
    print(report["summary"].round(2).to_markdown(index=False))
    print(report["tests"].round(4).to_markdown(index=False))


def cmd_ablations(args) -> None:
    from steerlib.evaluation.records import read_records
    from steerlib.study import reports
    from steerlib.study.ablation_tests import beside_paper, paired_vs_recipe
    from steerlib.study.ablations import ABLATIONS, ablation_setup, run_ablations
    from steerlib.study.pipeline import load_tokens

    preset = preset_of(args)
    bb = backbone_of(args, preset)
    tokens = load_tokens(bb, preset)
    protocol, out = ablation_setup(bb, tokens, preset, capable_pairs=args.capable)
    table = run_ablations(
        bb,
        tokens,
        preset,
        out,
        which=args.which or ABLATIONS,
        protocol=protocol,
        cached_only=args.cached_only,
    )
    tests = paired_vs_recipe(table, read_records(out / protocol.records))
    reports.ablations(out, protocol.name, table, tests, beside_paper(tests))
    print((out / "ablations.md").read_text())


def _one_stage(args, stages, chosen):
    """The table of ``--stage`` of a staged study (``stages``, its module): run on the
    preset's tokens, in its results folder, for the indexes ``chosen`` (None: all)."""
    from steerlib.study.folders import results_dir
    from steerlib.study.pipeline import load_tokens
    from steerlib.study.position.selection import StageInputs

    preset = preset_of(args)
    bb = backbone_of(args, preset)
    return stages.run(
        StageInputs(bb, load_tokens(bb, preset), preset, results_dir(preset, bb)),
        args.stage,
        chosen,
    )


def cmd_position(args) -> None:
    from steerlib.study.position import stages

    table = _one_stage(args, stages, args.candidates)
    print(
        table.round(1).to_markdown(index=False)
        if len(table)
        else "no candidate has selection records yet"
    )


def cmd_stage2(args) -> None:
    from steerlib.study.stage2 import stages

    print(_one_stage(args, stages, args.candidates).round(1).to_markdown(index=False))


def cmd_reproduce(args) -> None:
    from steerlib.study.pipeline import reproduce

    baselines = (
        True if args.baselines == [] else (args.baselines or False)
    )  # a bare --baselines: all three
    reproduce(
        preset_of(args),
        Path(args.out) if args.out else None,
        with_baselines=baselines,
        overwrite=args.overwrite,
    )
