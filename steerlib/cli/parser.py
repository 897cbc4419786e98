"""The command line's grammar: every command, its options, its help, its function.

``build_parser`` declares each command and the ``cmd_*`` function that runs it.

In one place so that ``python -m steerlib --help`` lists every command with one line
each and the options shared by many commands (``--model``, ``--preset``/``--set``,
``--workers``, ``--overwrite``) read the same everywhere.
"""

from __future__ import annotations

import argparse

from steerlib import launch
from steerlib.cli.argtypes import ablation, baseline, behavior, method
from steerlib.cli.study_commands import (
    cmd_ablations,
    cmd_capable,
    cmd_curves,
    cmd_evaluate,
    cmd_position,
    cmd_reproduce,
    cmd_stage2,
    cmd_targets_compare,
    cmd_teacher_compliance,
)
from steerlib.cli.token_commands import (
    cmd_behaviors,
    cmd_compose,
    cmd_generate,
    cmd_train,
)
from steerlib.config import Init, Stage2Combos

TOKENS_HELP = (
    "token folder, file or Hub repo id, 'pretrained' (shipped) or 'none' (default: the "
    "shipped ones; "
    "none, with a warning, for a --model they were not trained for)"
)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line like every other error (exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Every command: its options, its help line and its ``cmd_*`` function (``fn``)."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback of an error",
    )
    p = _Parser(
        prog="python -m steerlib",
        description="Compositional steering tokens.",
        parents=[common],
    )
    sub = p.add_subparsers(dest="command", required=True)

    def preset_args(
        sp, help="smoke | cpu | colab | paper (default $STEERLIB_PRESET or cpu)"
    ):
        sp.add_argument("--preset", default=None, help=help)
        sp.add_argument(
            "--set",
            action="append",
            default=None,
            metavar="FIELD=VALUE",
            help="override a preset field, e.g. stage1.batch_size=4 (repeatable; "
            "checked)",
        )

    def command(name, fn, help, model=True, preset_help=None, workers=False):
        """A study subcommand: --model (unless ``model=False``), --preset and --set,
        --workers (with ``workers=True``: many generations or training steps), then its
        own."""
        sp = sub.add_parser(name, parents=[common], help=help)
        if model:
            model_args(sp)
        preset_args(sp, **({"help": preset_help} if preset_help else {}))
        if workers:
            launch.add_workers_argument(sp)
        sp.set_defaults(fn=fn)
        return sp

    def model_args(sp):
        sp.add_argument(
            "--model",
            default=None,
            help="hub id, local folder or .gguf (default: embedded SmolLM2-135M)",
        )
        sp.add_argument(
            "--trust-remote-code",
            action="store_true",
            help="allow model code from the hub (off by default)",
        )

    def overwrite_arg(sp):
        sp.add_argument(
            "--overwrite",
            action="store_true",
            help="let --out replace files steerlib did not write, another model's or "
            "config's results, or tokens the new file would drop, and write a token "
            "file that git would show inside the checkout (refused otherwise)",
        )

    def candidates_arg(sp, help, *names):
        """``--candidates I [I ...]``: which of a study stage's candidates to run, by
        index (``names``: older spellings of the flag, accepted but not shown)."""
        for flag in ("--candidates", *names):
            sp.add_argument(
                flag,
                nargs="+",
                type=int,
                default=None,
                dest="candidates",
                metavar="I",
                help=help if flag == "--candidates" else argparse.SUPPRESS,
            )

    def baselines_arg(sp, help):
        """``--baselines [NAME ...]``: baselines to train and evaluate too (no names:
        all)."""
        sp.add_argument(
            "--baselines",
            nargs="*",
            default=None,
            type=baseline,
            metavar="NAME",
            help=help,
        )

    sp = sub.add_parser(
        "behaviors",
        parents=[common],
        help="list behaviors, categories and verifier rules",
    )
    sp.set_defaults(fn=cmd_behaviors)

    sp = sub.add_parser(
        "generate", parents=[common], help="generate from prompts in token syntax"
    )
    model_args(sp)
    sp.add_argument(
        "--prompt",
        action="append",
        required=True,
        help='e.g. "Why do cats purr? <french>" (repeatable)',
    )
    sp.add_argument("--tokens", default=None, help=TOKENS_HELP)
    sp.add_argument("--max-new-tokens", type=int, default=256)
    sp.add_argument(
        "--repetition-penalty",
        type=float,
        default=None,
        help="divide the logits of tokens already generated by this (default: "
        "steerlib.model.generate.DEMO_REPETITION_PENALTY, demo decoding; 1.0 = plain "
        "greedy "
        "decoding, as in every evaluation)",
    )
    sp.set_defaults(fn=cmd_generate)

    command(
        "teacher-compliance",
        cmd_teacher_compliance,
        "how often the model follows each behavior's instruction",
        preset_help="prompts and lengths of this preset; writes its results folder",
    )

    sp = command("train", cmd_train, "stage 1: train behavior tokens", workers=True)
    sp.add_argument(
        "--behaviors", nargs="+", default=["all"], type=behavior, help="'all' or names"
    )
    sp.add_argument(
        "--out",
        default="tokens.safetensors",
        help="a .safetensors file, or a folder with a model card",
    )
    sp.add_argument("--retrain", action="store_true", help="ignore cached tokens")
    overwrite_arg(sp)

    sp = command(
        "compose",
        cmd_compose,
        "stage 2: train <and> on top of a token file",
        workers=True,
    )
    sp.add_argument(
        "--tokens",
        required=True,
        help="token file or folder holding the behavior tokens",
    )
    sp.add_argument(
        "--combos",
        default=Stage2Combos.PAIRS,
        choices=list(Stage2Combos),
        help="2: pairs (paper); 2+3: pairs and triples",
    )
    sp.add_argument(
        "--init",
        default=Init.ZERO,
        choices=[Init.ZERO, Init.WORD, Init.MEAN, Init.RANDOM],
    )
    sp.add_argument("--orth-weight", type=float, default=0.5, help="lambda of L_orth")
    sp.add_argument(
        "--out",
        default=None,
        help="output token file (default: --tokens, which keeps its tokens and gains "
        "<and>)",
    )
    sp.add_argument("--retrain", action="store_true")
    overwrite_arg(sp)

    sp = command(
        "evaluate", cmd_evaluate, "evaluate compositions (paper protocol)", workers=True
    )
    sp.add_argument("--tokens", default=None, help=TOKENS_HELP)
    sp.add_argument(
        "--methods",
        nargs="+",
        default=None,
        type=method,
        help="default: instruction concat native_and and hybrid",
    )
    sp.add_argument(
        "--out",
        default=None,
        help="records and tables folder (default: the run's results folder, "
        "steerlib.study.folders.results_dir, "
        "/evaluate)",
    )
    overwrite_arg(sp)

    sp = command(
        "targets-compare",
        cmd_targets_compare,
        "tokens trained on self / filtered / constructed targets, per behavior",
    )
    sp.add_argument(
        "--behaviors", nargs="+", default=["all"], type=behavior, help="'all' or names"
    )

    sp = command(
        "curves",
        cmd_curves,
        "validation curves of a few behaviors trained without early stopping",
    )
    sp.add_argument(
        "--behaviors", nargs="+", required=True, type=behavior, help="behavior names"
    )
    sp.add_argument("--max-steps", type=int, default=64)

    sp = command(
        "capable",
        cmd_capable,
        "the capable-pairs study: pairs chosen on validation, paired tests",
        workers=True,
    )
    baselines_arg(
        sp,
        "also train (for the chosen pairs' behaviors) and evaluate baselines (no "
        "names: all)",
    )

    sp = command(
        "ablations",
        cmd_ablations,
        "stage-2 ablations: no <and>, init, lambda, 2 vs 2+3 (resumable)",
        workers=True,
    )
    sp.add_argument(
        "--which",
        nargs="+",
        default=None,
        type=ablation,
        help="no_and | init | lambda | combos (default: all four)",
    )
    sp.add_argument(
        "--capable",
        action="store_true",
        help="test on the capable pairs of the composition study (chosen on validation "
        "data) with "
        "eval.n_ablation prompts, instead of the paper protocol's sampled combinations",
    )
    sp.add_argument(
        "--cached-only",
        action="store_true",
        help="train and generate nothing: report the settings whose records are "
        "complete",
    )

    sp = command(
        "position",
        cmd_position,
        "the position study (results/<preset>/position/PLAN.md), one stage",
        workers=True,
    )
    sp.add_argument(
        "--stage",
        required=True,
        choices=["filter", "screen", "retrain", "displace", "search", "test"],
    )
    candidates_arg(
        sp,
        "screen: indexes into candidates.screen_methods(); retrain: into "
        "candidates.RETRAINS; displace: into runs.displace_jobs(); test: into "
        "testrun.PACK_METHODS (default: all)",
        "--variants",  # the flag's name before issue 35, removed after 0.2
    )

    sp = command(
        "stage2",
        cmd_stage2,
        "the stage-2 study (results/<preset>/stage2/PLAN.md), one stage",
        workers=True,
    )
    sp.add_argument(
        "--stage",
        required=True,
        choices=["targets", "screen", "search", "test", "ship"],
    )
    candidates_arg(
        sp, "screen: indexes into stage2.candidates.CANDIDATES (default: all)"
    )

    sp = command(
        "reproduce",
        cmd_reproduce,
        "stage 1, stage 2, evaluation, tables and figures (resumable)",
        model=False,
        workers=True,
    )
    sp.add_argument(
        "--out",
        default=None,
        help="results folder (default: results/<preset> for a shipped preset, "
        "else under artifacts/results; steerlib.study.folders.results_dir)",
    )
    baselines_arg(
        sp,
        "also train and evaluate baselines: caa lm_steer lora_dare (no names: all "
        "three)",
    )
    overwrite_arg(sp)
    return p
