"""Command line: ``python -m steerlib behaviors|generate|teacher-compliance|train|compose|evaluate|targets-compare|ablations|reproduce``."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import behaviors as B


def _backbone(args, preset=None):
    """The model of ``--model``, else the preset's (the smoke preset's is the tiny random model)."""
    from .backbone import load_backbone

    model = args.model if args.model is not None or preset is None else preset.model
    return load_backbone(model, trust_remote_code=args.trust_remote_code)


def _tokens(args, bb):
    from .tokens import SteeringTokens

    if args.tokens == "none":
        return None
    if args.tokens == "pretrained":
        try:
            return SteeringTokens.pretrained(bb)
        except (FileNotFoundError, ValueError) as err:
            if args.model is not None:
                return None  # shipped tokens exist for the embedded model only
            raise err
    return SteeringTokens.load(args.tokens, bb)


def cmd_behaviors(args) -> None:
    for name in B.names():
        b = B.get(name)
        print(f"<{name}>  [{b.category}{'' if b.seen else ', unseen'}]  e.g. {b.paraphrases[0]!r}\n    rule: {b.rule}")


def cmd_generate(args) -> None:
    """Answers on stdout (each under its prompt when there are several); loading messages
    and progress bars stay on stderr, or off."""
    from transformers.utils import logging as hf_logging

    from .generate import DEMO_REPETITION_PENALTY, SteeredModel

    hf_logging.disable_progress_bar()
    bb = _backbone(args)
    sm = SteeredModel(bb, _tokens(args, bb))
    answers = sm.generate(args.prompt, max_new_tokens=args.max_new_tokens, progress=False,
                          repetition_penalty=DEMO_REPETITION_PENALTY if args.repetition_penalty is None
                          else args.repetition_penalty)
    for i, (prompt, text) in enumerate(zip(args.prompt, answers), 1):
        print(f"[{i}] {prompt}\n{text}\n" if len(args.prompt) > 1 else text)


def cmd_teacher_compliance(args) -> None:
    from .config import presets
    from .pipeline import teacher_compliance

    preset = presets.get(args.preset)
    table = teacher_compliance(_backbone(args, preset), preset)
    print(table.to_markdown(index=False))


def cmd_train(args) -> None:
    from .pipeline import train_all_behaviors
    from .config import presets

    preset = presets.get(args.preset)
    names = B.names() if args.behaviors == ["all"] else args.behaviors
    bb = _backbone(args, preset)
    tokens = train_all_behaviors(bb, preset, names, retrain=args.retrain)
    path = tokens.save(args.out)
    print(f"saved {tokens.names} to {path}")


def cmd_compose(args) -> None:
    from .compose import train_composition_token
    from .config import presets, replace
    from .tokens import SteeringTokens

    preset = presets.get(args.preset)
    bb = _backbone(args, preset)
    tokens = SteeringTokens.load(args.tokens, bb)
    cfg = replace(preset.stage2, init=args.init, orth_weight=args.orth_weight)
    tokens = train_composition_token(bb, tokens, cfg, variant=args.variant, retrain=args.retrain)
    print(f"saved {tokens.names} to {tokens.save(args.out or args.tokens)}")


def cmd_evaluate(args) -> None:
    from .config import presets
    from .pipeline import composition_eval

    preset = presets.get(args.preset)
    bb = _backbone(args, preset)
    table = composition_eval(bb, _tokens(args, bb), preset, Path(args.out), methods=args.methods)
    print(table.to_markdown(index=False))


def cmd_targets_compare(args) -> None:
    from .config import presets
    from .paths import results_dir
    from .pipeline import targets_comparison

    preset = presets.get(args.preset)
    names = B.names() if args.behaviors == ["all"] else args.behaviors
    table = targets_comparison(_backbone(args, preset), preset, names, results_dir(preset.name))
    print(table.round(1).to_markdown(index=False))


def cmd_ablations(args) -> None:
    from .ablations import ABLATIONS, run_ablations
    from .config import presets
    from .paths import results_dir
    from .pipeline import load_tokens

    preset = presets.get(args.preset)
    bb = _backbone(args, preset)
    table = run_ablations(bb, load_tokens(bb, preset), preset, results_dir(preset.name) / "ablations",
                          which=args.which or ABLATIONS)
    print(table.round(1).to_markdown(index=False))


def cmd_reproduce(args) -> None:
    from .config import presets
    from .pipeline import reproduce

    baselines = True if args.baselines == [] else (args.baselines or False)  # a bare --baselines: all three
    reproduce(presets.get(args.preset), Path(args.out) if args.out else None, with_baselines=baselines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m steerlib", description="Compositional steering tokens.")
    sub = p.add_subparsers(dest="command", required=True)

    def model_args(sp):
        sp.add_argument("--model", default=None, help="hub id, local folder or .gguf (default: embedded SmolLM2-135M)")
        sp.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub (off by default)")

    sp = sub.add_parser("behaviors", help="list behaviors, categories and verifier rules")
    sp.set_defaults(fn=cmd_behaviors)

    sp = sub.add_parser("generate", help="generate from prompts in token syntax")
    model_args(sp)
    sp.add_argument("--prompt", action="append", required=True, help='e.g. "Why do cats purr? <french>" (repeatable)')
    sp.add_argument("--tokens", default="pretrained", help="token file, 'pretrained' (shipped) or 'none'")
    sp.add_argument("--max-new-tokens", type=int, default=256)
    sp.add_argument("--repetition-penalty", type=float, default=None,
                    help="divide the logits of tokens already generated by this (default: "
                         "steerlib.generate.DEMO_REPETITION_PENALTY, demo decoding; 1.0 = plain greedy "
                         "decoding, as in every evaluation)")
    sp.set_defaults(fn=cmd_generate)

    sp = sub.add_parser("teacher-compliance", help="how often the model follows each behavior's instruction")
    model_args(sp)
    sp.add_argument("--preset", default=None, help="prompts and lengths of this preset; writes its results folder")
    sp.set_defaults(fn=cmd_teacher_compliance)

    sp = sub.add_parser("train", help="stage 1: train behavior tokens")
    model_args(sp)
    sp.add_argument("--behaviors", nargs="+", default=["all"], help="'all' or names")
    sp.add_argument("--preset", default=None, help="smoke | cpu | paper (default $STEERLIB_PRESET or cpu)")
    sp.add_argument("--out", default="tokens.safetensors")
    sp.add_argument("--retrain", action="store_true", help="ignore cached tokens")
    sp.set_defaults(fn=cmd_train)

    sp = sub.add_parser("compose", help="stage 2: train <and> on top of a token file")
    model_args(sp)
    sp.add_argument("--tokens", required=True, help="token file holding the behavior tokens")
    sp.add_argument("--preset", default=None)
    sp.add_argument("--variant", default="2", choices=["2", "2+3"])
    sp.add_argument("--init", default="zero", choices=["zero", "word", "mean", "random"])
    sp.add_argument("--orth-weight", type=float, default=0.5, help="lambda of L_orth")
    sp.add_argument("--out", default=None, help="output token file (default: overwrite --tokens)")
    sp.add_argument("--retrain", action="store_true")
    sp.set_defaults(fn=cmd_compose)

    sp = sub.add_parser("evaluate", help="evaluate compositions (paper protocol)")
    model_args(sp)
    sp.add_argument("--tokens", default="pretrained")
    sp.add_argument("--preset", default=None)
    sp.add_argument("--methods", nargs="+", default=None, help="default: instruction concat native_and and hybrid")
    sp.add_argument("--out", default="results/evaluate")
    sp.set_defaults(fn=cmd_evaluate)

    sp = sub.add_parser("targets-compare", help="tokens trained on self / filtered / constructed targets, per behavior")
    model_args(sp)
    sp.add_argument("--behaviors", nargs="+", default=["all"], help="'all' or names")
    sp.add_argument("--preset", default=None)
    sp.set_defaults(fn=cmd_targets_compare)

    sp = sub.add_parser("ablations", help="stage-2 ablations: no <and>, init, lambda, 2 vs 2+3 (resumable)")
    model_args(sp)
    sp.add_argument("--preset", default=None)
    sp.add_argument("--which", nargs="+", default=None, help="no_and | init | lambda | variant (default: all four)")
    sp.set_defaults(fn=cmd_ablations)

    sp = sub.add_parser("reproduce", help="stage 1, stage 2, evaluation, tables and figures (resumable)")
    sp.add_argument("--preset", default=None)
    sp.add_argument("--out", default=None, help="results folder (default results/<preset>)")
    sp.add_argument("--baselines", nargs="*", default=None, metavar="NAME",
                    help="also train and evaluate baselines: caa lm_steer lora_dare (no names: all three)")
    sp.set_defaults(fn=cmd_reproduce)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
