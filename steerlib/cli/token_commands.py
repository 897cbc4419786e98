"""The token commands: list behaviors, generate with tokens, train and compose them.

``behaviors``, ``generate``, ``train`` (stage 1) and ``compose`` (stage 2).

Each writes its tokens only where ``artifacts.check_writable`` allowed before any
training, so a refused ``--out`` costs nothing.
"""

from __future__ import annotations

from dataclasses import replace

from steerlib import distributed
from steerlib.cli.artifacts import (
    backbone_of,
    check_writable,
    token_file,
    tokens_of,
    write_tokens,
)
from steerlib.cli.overrides import preset_of
from steerlib.tasks import behaviors as B


def cmd_behaviors(args) -> None:
    """Each behavior: its tag, category, a paraphrase of its instruction, its rule."""
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
    bb = backbone_of(args)
    sm = SteeredModel(bb, tokens_of(args, bb))
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


def cmd_train(args) -> None:
    """Stage 1: a token per behavior (cached, resumable), saved to ``--out``."""
    from steerlib.study.singles import train_all_behaviors

    preset = preset_of(args)
    names = B.names() if args.behaviors == ["all"] else args.behaviors
    bb = backbone_of(args, preset)
    check_writable(args.out, bb, names, args.overwrite)
    tokens = train_all_behaviors(bb, preset, names, retrain=args.retrain)
    if distributed.main_only(write_tokens, tokens, args.out, args.overwrite):
        print(f"saved {tokens.names} to {args.out}")


def cmd_compose(args) -> None:
    """Stage 2: ``<and>`` trained on top of the tokens of ``--tokens``, saved with
    them."""
    from steerlib.train.compose import train_composition_token

    preset = preset_of(args)
    bb = backbone_of(args, preset)
    tokens = token_file(args.tokens, bb)
    out = args.out or args.tokens
    check_writable(out, bb, [*tokens.names, "and"], args.overwrite)
    cfg = replace(preset.stage2, init=args.init, orth_weight=args.orth_weight)
    tokens = train_composition_token(
        bb, tokens, cfg, combos=args.combos, retrain=args.retrain
    )
    if distributed.main_only(write_tokens, tokens, out, args.overwrite):
        print(f"saved {tokens.names} to {args.out or args.tokens}")
