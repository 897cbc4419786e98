"""Command line: ``python -m steerlib COMMAND [options]``, and under ``torchrun`` for
several processes.

Each command is a ``cmd_<name>`` function registered in ``build_parser``;
``python -m steerlib --help`` lists them all with one line each (so no list here can
go stale).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import traceback
import typing
from pathlib import Path

from steerlib import distributed, launch
from steerlib.config import Init, Stage2Combos
from steerlib.errors import ConfigError, SteerlibError, TokenFileError
from steerlib.tasks import behaviors as B

log = logging.getLogger("steerlib")


def _preset(args):
    """The preset of ``--preset``, with each ``--set FIELD=VALUE`` applied
    (validated)."""
    from steerlib.presets import presets

    preset = presets.get(args.preset)
    for item in args.set or []:
        preset = override(preset, item)
    return preset


def override(config, item: str):
    """``config`` (a dataclass) with one dotted field set from
    ``"stage1.batch_size=4"``.

    The value is read as JSON (numbers, true/false, null, quoted strings, objects), else
    taken as a string; the config's own checks then refuse values it does not allow. A
    sub-config (``stage1``, ``stage1.validation``) is set field by field, or whole from
    a JSON object (how a sub-config that is off, None, is turned on); a mapping
    (``steps``, ``sources``) is set whole. Anything else names the fields there are.
    """
    path, sep, raw = item.partition("=")
    if not sep or not path:
        raise ConfigError(
            f"--set {item!r}: expected FIELD=VALUE, e.g. stage1.batch_size=4"
        )
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw

    def refuse(what: str):
        return ConfigError(f"--set {item!r}: {what}")

    def build(cls, where: str, data):
        """A ``cls`` config from a JSON object (nested sub-configs from nested
        objects)."""
        if not isinstance(data, dict):
            raise refuse(
                f"{where} is a {cls.__name__}, not a value; set one of its fields ("
                f"{', '.join(f'{where}.{n}' for n in _fields(cls))}) or all of it as a "
                "JSON object"
            )
        unknown = sorted(set(data) - set(_fields(cls)))
        if unknown:
            raise refuse(
                f"{cls.__name__} has no field {unknown[0]!r}; its fields: "
                f"{', '.join(_fields(cls))}"
            )
        return cls(
            **{
                k: v
                if v is None or _sub_config(cls, k)[0] is None
                else build(_sub_config(cls, k)[0], f"{where}.{k}", v)
                for k, v in data.items()
            }
        )

    def put(obj, parts: list[str], where: str):
        names = _fields(type(obj))
        if parts[0] not in names:
            raise refuse(
                f"{type(obj).__name__} has no field {parts[0]!r}; its fields: "
                f"{', '.join(names)}"
            )
        here = f"{where}.{parts[0]}" if where else parts[0]
        current, (kind, optional) = (
            getattr(obj, parts[0]),
            _sub_config(type(obj), parts[0]),
        )
        if len(parts) == 1:
            if value is None and kind is not None and not optional:
                raise refuse(
                    f"{here} is a {kind.__name__} and cannot be null; set one of its "
                    "fields"
                )
            new = value if kind is None or value is None else build(kind, here, value)
        elif isinstance(current, dict):
            raise refuse(
                f"{here} is a mapping, not a config: set it whole as a JSON object, "
                "e.g. "
                f"{here}='{{\"{parts[1]}\": ...}}' (now {json.dumps(current)})"
            )
        elif current is None and kind is not None:
            raise refuse(
                f"{here} is off (None) in this preset, so it has no fields to set; "
                "turn it on with "
                f"{here}='{{...}}', a JSON object of {kind.__name__}'s fields: "
                f"{', '.join(_fields(kind))}"
            )
        elif kind is None:
            raise refuse(
                f"{here} is a value ({current!r}), it has no field {parts[1]!r}"
            )
        else:
            new = put(current, parts[1:], here)
        return dataclasses.replace(obj, **{parts[0]: new})

    return put(config, path.split("."), "")


def _fields(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _sub_config(cls, name: str) -> tuple[type | None, bool]:
    """The config dataclass field ``name`` of ``cls`` holds (``X`` or ``X | None``;
    else None), and whether the field may be None."""
    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint)
    return next((t for t in (hint, *args) if dataclasses.is_dataclass(t)), None), type(
        None
    ) in args


def _backbone(args, preset=None):
    """The model of ``--model``, else the preset's (the smoke preset's is the tiny
    random model)."""
    from steerlib.model.backbone import load_backbone

    model = args.model if args.model is not None or preset is None else preset.model
    return load_backbone(model, trust_remote_code=args.trust_remote_code)


def _tokens(args, bb):
    """The tokens of ``--tokens``. Left out, the shipped ones; for a ``--model`` they
    were not trained for, none, which a warning says at once (a tag then names the
    missing token)."""
    from steerlib.model.tokens import SteeringTokens

    if args.tokens == "none":
        return None
    if args.tokens in (None, "pretrained"):
        try:
            return SteeringTokens.pretrained(bb)
        except (FileNotFoundError, ValueError) as err:
            if isinstance(err, TokenFileError) and args.model is None:
                raise TokenFileError(_fix(err, "shipped tokens")) from None
            if args.tokens is not None or args.model is None:
                raise
            log.warning(
                "%s has no shipped steering tokens (steerlib ships them for the "
                "embedded model): "
                "generating without any; pass --tokens FILE for tokens trained on this "
                "model (%s)",
                bb.model_id,
                one_line(err),
            )
            return None
    return _token_file(args.tokens, bb)


def _fix(err: Exception, what: str) -> str:
    """A token/model mismatch with the two ways out, as command-line options."""
    return (
        f"{one_line(err).split('; train tokens')[0]}. The {what} are for another "
        "model: pass --tokens FILE with tokens trained on this one "
        "(python -m steerlib train ... --out FILE), or the --preset/--model "
        "they were trained with"
    )


def _token_file(path: str, bb):
    from steerlib.model.tokens import SteeringTokens

    try:
        return SteeringTokens.from_pretrained(path, bb)
    except TokenFileError as err:
        raise TokenFileError(_fix(err, f"tokens of {path}")) from None


def _write(tokens, out: str, overwrite: bool = False) -> Path:
    """A bare token file when ``out`` ends in .safetensors, else a ``save_pretrained``
    folder."""
    return (
        tokens.save_file(out, overwrite=overwrite)
        if out.endswith(".safetensors")
        else tokens.save_pretrained(out, overwrite=overwrite)
    )


def _check_write(out: str, bb, keeps: list[str], overwrite: bool) -> None:
    """Before any training: refuse what ``_write`` would refuse at the end for sure (a
    file steerlib did not write, another model's tokens, tokens other than ``keeps``
    that the new file would drop), so that a refusal costs nothing."""
    from steerlib.errors import ForeignFileError
    from steerlib.model.card import CardState, card_state
    from steerlib.model.hub import CARD_FILE, WEIGHTS_FILE
    from steerlib.model.tokens import REPLACE_HOW, check_replaceable

    if overwrite:
        return
    path = Path(out)
    folder = not out.endswith(".safetensors")
    if folder and path.exists() and not path.is_dir():
        raise ForeignFileError(
            f"--out {out}: a file that is not a .safetensors file; name a .safetensors "
            f"file or a folder"
        )
    old = check_replaceable(
        path / WEIGHTS_FILE if folder else path, bb.model_id, bb.fingerprint
    )
    dropped = [n for n in (old.names if old is not None else ()) if n not in keeps]
    if dropped:
        raise ForeignFileError(
            f"{out} holds {', '.join(f'<{n}>' for n in dropped)}, which the tokens of "
            "this "
            f"run would drop: {REPLACE_HOW}"
        )
    if folder and card_state(path / CARD_FILE) is CardState.FOREIGN:
        raise ForeignFileError(
            f"{path / CARD_FILE} exists and steerlib did not write it: name another "
            f"folder, or pass --overwrite"
        )


def cmd_behaviors(args) -> None:
    for name in B.names():
        b = B.get(name)
        print(
            f"<{name}>  [{b.category}{'' if b.seen else ', unseen'}]  e.g. "
            f"{b.paraphrases[0]!r}\n    rule: {b.rule}"
        )


def cmd_generate(args) -> None:
    """Answers on stdout (each under its prompt when there are several); loading
    messages and progress bars stay on stderr, or off."""
    from transformers.utils import logging as hf_logging

    from steerlib.model.generate import DEMO_REPETITION_PENALTY, SteeredModel

    hf_logging.disable_progress_bar()
    bb = _backbone(args)
    sm = SteeredModel(bb, _tokens(args, bb))
    answers = sm.generate(
        args.prompt,
        max_new_tokens=args.max_new_tokens,
        progress=False,
        repetition_penalty=DEMO_REPETITION_PENALTY
        if args.repetition_penalty is None
        else args.repetition_penalty,
    )
    for i, (prompt, text) in enumerate(zip(args.prompt, answers), 1):
        print(f"[{i}] {prompt}\n{text}\n" if len(args.prompt) > 1 else text)


def cmd_teacher_compliance(args) -> None:
    from steerlib.study.singles import teacher_compliance

    preset = _preset(args)
    table = teacher_compliance(_backbone(args, preset), preset)
    print(table.to_markdown(index=False))


def cmd_train(args) -> None:
    from steerlib.study.singles import train_all_behaviors

    preset = _preset(args)
    names = B.names() if args.behaviors == ["all"] else args.behaviors
    bb = _backbone(args, preset)
    _check_write(args.out, bb, names, args.overwrite)
    tokens = train_all_behaviors(bb, preset, names, retrain=args.retrain)
    if distributed.main_only(_write, tokens, args.out, args.overwrite):
        print(f"saved {tokens.names} to {args.out}")


def cmd_compose(args) -> None:
    from dataclasses import replace

    from steerlib.train.compose import train_composition_token

    preset = _preset(args)
    bb = _backbone(args, preset)
    tokens = _token_file(args.tokens, bb)
    out = args.out or args.tokens
    _check_write(out, bb, [*tokens.names, "and"], args.overwrite)
    cfg = replace(preset.stage2, init=args.init, orth_weight=args.orth_weight)
    tokens = train_composition_token(
        bb, tokens, cfg, combos=args.combos, retrain=args.retrain
    )
    if distributed.main_only(_write, tokens, out, args.overwrite):
        print(f"saved {tokens.names} to {args.out or args.tokens}")


def cmd_evaluate(args) -> None:
    from steerlib.study.folders import check_out, results_dir
    from steerlib.study.pipeline import composition_eval

    preset = _preset(args)
    bb = _backbone(args, preset)
    out = (
        check_out(args.out, preset, bb, args.overwrite)
        if args.out
        else results_dir(preset, bb) / "evaluate"
    )
    table = composition_eval(bb, _tokens(args, bb), preset, out, methods=args.methods)
    print(table.to_markdown(index=False))
    if distributed.is_main():
        print(f"records: {out / 'records.jsonl'}")


def cmd_targets_compare(args) -> None:
    from steerlib.study.folders import results_dir
    from steerlib.study.singles import targets_comparison

    preset = _preset(args)
    names = B.names() if args.behaviors == ["all"] else args.behaviors
    bb = _backbone(args, preset)
    table = targets_comparison(bb, preset, names, results_dir(preset, bb))
    print(table.round(1).to_markdown(index=False))


def cmd_curves(args) -> None:
    from steerlib.study.curves import measure, peak_steps
    from steerlib.study.folders import results_dir
    from steerlib.study.plots import save, validation_curves

    preset = _preset(args)
    if preset.validation is None:
        raise ConfigError(
            f"preset {preset.name!r} has no validation settings (Preset.validation)"
        )
    bb = _backbone(args, preset)
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

    preset = _preset(args)
    bb = _backbone(args, preset)
    tokens = load_tokens(bb, preset)
    out = results_dir(preset, bb)
    methods: list = list(COMPOSITION_METHODS)
    if args.baselines is not None:
        methods += capable_baselines(
            bb, tokens, preset, out, args.baselines or BASELINES
        )
    # the baselines not asked for this time keep their recorded rows
    report = capable.run(bb, tokens, preset, out, methods, keep_recorded=BASELINES)
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

    preset = _preset(args)
    bb = _backbone(args, preset)
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


def cmd_position(args) -> None:
    from steerlib.study.folders import results_dir
    from steerlib.study.pipeline import load_tokens
    from steerlib.study.position import stages

    preset = _preset(args)
    bb = _backbone(args, preset)
    table = stages.run(
        bb,
        load_tokens(bb, preset),
        preset,
        results_dir(preset, bb),
        args.stage,
        args.variants,
    )
    print(
        table.round(1).to_markdown(index=False)
        if len(table)
        else "no variant has selection records yet"
    )


def cmd_stage2(args) -> None:
    from steerlib.study.folders import results_dir
    from steerlib.study.pipeline import load_tokens
    from steerlib.study.stage2 import stages

    preset = _preset(args)
    bb = _backbone(args, preset)
    table = stages.run(
        bb,
        load_tokens(bb, preset),
        preset,
        results_dir(preset, bb),
        args.stage,
        args.candidates,
    )
    print(table.round(1).to_markdown(index=False))


def cmd_reproduce(args) -> None:
    from steerlib.study.pipeline import reproduce

    baselines = (
        True if args.baselines == [] else (args.baselines or False)
    )  # a bare --baselines: all three
    reproduce(
        _preset(args),
        Path(args.out) if args.out else None,
        with_baselines=baselines,
        overwrite=args.overwrite,
    )


TOKENS_HELP = (
    "token folder, file or Hub repo id, 'pretrained' (shipped) or 'none' (default: the "
    "shipped ones; "
    "none, with a warning, for a --model they were not trained for)"
)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line like every other error (exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _behavior(name: str) -> str:
    """A ``--behaviors`` value: 'all' or a behavior's name, checked before any work."""
    if name != "all" and name not in B.names():
        raise argparse.ArgumentTypeError(
            f"unknown behavior {name!r}; known: all, {', '.join(B.names())}"
        )
    return name


def _baseline(name: str) -> str:
    """A ``--baselines`` value, checked before any work."""
    from steerlib.baselines import check_names

    try:
        check_names([name])
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return name


def _ablation(name: str) -> str:
    """An ``ablations --which`` value, checked before any work."""
    from steerlib.study.ablations import ABLATIONS

    if name not in ABLATIONS:
        raise argparse.ArgumentTypeError(
            f"unknown ablation {name!r}; known: {', '.join(ABLATIONS)}"
        )
    return name


def _method(name: str) -> str:
    """An ``evaluate --methods`` value, checked before any work."""
    from steerlib.model.methods import METHODS

    if name not in METHODS:
        raise argparse.ArgumentTypeError(
            f"unknown method {name!r}; known: {', '.join(METHODS)}"
        )
    return name


def build_parser() -> argparse.ArgumentParser:
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
            "config's results, or tokens the new file would drop (refused otherwise)",
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
        "--behaviors", nargs="+", default=["all"], type=_behavior, help="'all' or names"
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
        type=_method,
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
        "--behaviors", nargs="+", default=["all"], type=_behavior, help="'all' or names"
    )

    sp = command(
        "curves",
        cmd_curves,
        "validation curves of a few behaviors trained without early stopping",
    )
    sp.add_argument(
        "--behaviors", nargs="+", required=True, type=_behavior, help="behavior names"
    )
    sp.add_argument("--max-steps", type=int, default=64)

    sp = command(
        "capable",
        cmd_capable,
        "the capable-pairs study: pairs chosen on validation, paired tests",
        workers=True,
    )
    sp.add_argument(
        "--baselines",
        nargs="*",
        default=None,
        type=_baseline,
        metavar="NAME",
        help="also train (for the chosen pairs' behaviors) and evaluate baselines (no "
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
        type=_ablation,
        help="no_and | init | lambda | variant (default: all four)",
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
        help="train and generate nothing: report the variants whose records are "
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
    sp.add_argument(
        "--variants",
        nargs="+",
        type=int,
        default=None,
        metavar="I",
        help="screen: indexes into variants.screen_methods(); retrain: into "
        "variants.RETRAINS; "
        "displace: into runs.displace_jobs(); test: into testrun.PACK_METHODS "
        "(default: all)",
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
    sp.add_argument(
        "--candidates",
        nargs="+",
        type=int,
        default=None,
        metavar="I",
        help="screen: indexes into stage2.candidates.CANDIDATES (default: all)",
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
    sp.add_argument(
        "--baselines",
        nargs="*",
        default=None,
        type=_baseline,
        metavar="NAME",
        help="also train and evaluate baselines: caa lm_steer lora_dare (no names: all "
        "three)",
    )
    overwrite_arg(sp)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run a command; returns the exit code.

    An error steerlib explains (a ``SteerlibError``: bad input, a refused file, a
    missing artifact) or one of the machine (an ``OSError``: disk full, no permission,
    a missing file) is one line on stderr, ``error: ...``, exit code 2; ``--debug``
    adds its traceback. Anything else is a bug: its full traceback, exit code 1.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S"
    )
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error, printed in one line (2)
        return done.code if isinstance(done.code, int) else 2
    try:
        workers = launch.workers_wanted(args)
        if workers > 1:  # the same command in that many processes, which run the rest
            return launch.run_workers(workers, ["-m", "steerlib", *argv])
        # under torchrun: join the other processes (a no-op otherwise)
        distributed.init()
        if not distributed.is_main():
            _quiet()
        args.fn(args)
    except USER_ERRORS as err:
        if getattr(args, "debug", False):
            traceback.print_exc()
        elif not launch.record_worker_error(one_line(err)):
            print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug: shown whole, never as one line
        if not launch.record_worker_failure(err):  # a worker's: the launcher shows it
            traceback.print_exc()
        return 1
    return 0


def _quiet() -> None:
    """In a process other than rank 0: no tables on stdout and no progress messages
    (rank 0 prints them once); warnings and errors still show."""
    sys.stdout = open(os.devnull, "w")
    logging.getLogger("steerlib").setLevel(logging.WARNING)


USER_ERRORS = (SteerlibError, OSError)
"""Errors about the input or the machine, not a bug: one line and exit code 2."""


def one_line(err: BaseException) -> str:
    """The error's message on one line (its type's name when it has none)."""
    return " ".join(str(err).split()) or type(err).__name__
