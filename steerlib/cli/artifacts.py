"""What a command reads and writes: the model, its steering tokens and ``--out``.

The model of ``--model``, the tokens of ``--tokens``, the token file or folder of
``--out``.

The commands share these so that every one of them loads a model, finds shipped tokens
and refuses an ``--out`` it must not replace in the same way, with the same one-line
errors (each naming the option to change).
"""

from __future__ import annotations

import logging
from pathlib import Path

from steerlib.errors import ForeignFileError, TokenFileError, one_line

log = logging.getLogger("steerlib")


def backbone_of(args, preset=None):
    """The model of ``--model``, else the preset's (the smoke preset's is the tiny
    random model)."""
    from steerlib.model.backbone import load_backbone

    model = args.model if args.model is not None or preset is None else preset.model
    return load_backbone(model, trust_remote_code=args.trust_remote_code)


def tokens_of(args, bb):
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
                raise TokenFileError(_mismatch(err, "shipped tokens")) from None
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
    return token_file(args.tokens, bb)


def _mismatch(err: Exception, what: str) -> str:
    """A token/model mismatch with the two ways out, as command-line options."""
    return (
        f"{one_line(err).split('; train tokens')[0]}. The {what} are for another "
        "model: pass --tokens FILE with tokens trained on this one "
        "(python -m steerlib train ... --out FILE), or the --preset/--model "
        "they were trained with"
    )


def token_file(path: str, bb):
    """The tokens of the file, folder or Hub repo ``path``, for ``bb``; a mismatch says
    which options fix it."""
    from steerlib.model.tokens import SteeringTokens

    try:
        return SteeringTokens.from_pretrained(path, bb)
    except TokenFileError as err:
        raise TokenFileError(_mismatch(err, f"tokens of {path}")) from None


def write_tokens(tokens, out: str, overwrite: bool = False) -> Path:
    """A bare token file when ``out`` ends in .safetensors, else a ``save_pretrained``
    folder."""
    return (
        tokens.save_file(out, overwrite=overwrite)
        if out.endswith(".safetensors")
        else tokens.save_pretrained(out, overwrite=overwrite)
    )


def check_writable(out: str, bb, keeps: list[str], overwrite: bool) -> None:
    """Before any training: refuse what ``write_tokens`` would refuse at the end for
    sure (a file steerlib did not write, another model's tokens, tokens other than
    ``keeps`` that the new file would drop), and a token file ``git status`` would
    show in the checkout, so that a refusal costs nothing; a new folder there is made
    git-ignored (``steerlib.checkout``)."""
    from steerlib.checkout import check_output_file, output_folder

    if not overwrite:
        _refuse_replacing(out, bb, keeps)
    if out.endswith(".safetensors"):
        check_output_file(out, overwrite)
    else:
        output_folder(out)


def _refuse_replacing(out: str, bb, keeps: list[str]) -> None:
    """``check_writable``'s refusals of what ``write_tokens`` would replace."""
    from steerlib.model.card import CardState, card_state
    from steerlib.model.hub import CARD_FILE, WEIGHTS_FILE
    from steerlib.model.tokens import REPLACE_HOW, check_replaceable

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
