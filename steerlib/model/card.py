"""The model card of a steering-token folder: the README.md that ``save_pretrained``
writes.

It says what the vectors are for (model id, embedding fingerprint, behaviors), how each
token was trained (read from the training record each token carries), how often it
passed its behavior's verifier alone where that was measured, and how to use it. The
Hub renders it as the repository's page; its metadata block is written by
``huggingface_hub.ModelCardData``.

The card reads the token file's metadata (``SteeringTokens.metadata()``), not the
``SteeringTokens`` object, so this module and ``tokens`` do not import each other.
"""

from __future__ import annotations

import enum
import hashlib
import html
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml
from huggingface_hub import ModelCardData

from steerlib._version import __version__
from steerlib.model.backbone import EMBEDDED_ID
from steerlib.tasks import behaviors as B

LIBRARY = "steerlib"
"""The card's ``library_name``: how a folder's README.md is recognised as one steerlib
wrote."""
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
STAMP = "<!-- steerlib card sha256:{} -->"
"""The card's last line: a digest of the text above it, so that a card someone edited
after steerlib wrote it is recognised (and kept) instead of replaced."""
_STAMPED = re.compile(r"\n<!-- steerlib card sha256:([0-9a-f]{64}) -->\n?\Z")
OLD_COMBOS_KEY = "variant"
"""Where a stage-2 training record kept ``combos`` (what ``<and>`` trained on: "2" or
"2+3") before issue 35 renamed it: token files written before then, among them the
shipped ones in ``steerlib/data``, whose bytes stay as they are (their digests are
checked), carry it. Cards read either."""


class CardState(enum.Enum):
    """What a folder's README.md is to ``save_pretrained``."""

    MISSING = "missing"
    OURS = "written by steerlib, unchanged"
    EDITED = "written by steerlib, then edited"
    UNSTAMPED = (
        "an unstamped card (an older steerlib's) that is not the one steerlib writes "
        "for the tokens there"
    )
    FOREIGN = "not steerlib's"


def model_card(
    meta: Mapping,
    repo_id: str,
    pass_rates: Mapping[str, tuple[float, int]] | None = None,
    pack: str | None = None,
) -> str:
    """Markdown (with Hub metadata) describing a token file; ``meta`` is its metadata
    (``SteeringTokens.metadata()``), ``pass_rates[name] = (percent, n prompts)``.
    ``pack``: the shipped pack these tokens are (``packs.Pack``), whose usage line
    loads them with ``SteeringTokens.pretrained``: it works from any directory."""
    pass_rates = pass_rates or {}
    model_id, names, info = meta["model_id"], list(meta["names"]), meta.get("info", {})
    base = model_id.split(" ")[0]
    data = ModelCardData(
        library_name=LIBRARY,
        tags=[LIBRARY, "steering-tokens"],
        base_model=base if _REPO_ID.match(base) else None,
    )
    listed = ", ".join(_code_cell(f"<{n}>") for n in names) or "none"
    lines = [
        "---",
        data.to_yaml(),
        "---",
        "",
        f"# Steering tokens for {_text(base)}",
        "",
        f"{len(names)} steering tokens made with steerlib {__version__}. Each is one "
        f"{int(meta['hidden_size'])}-dim "
        "vector in the model's input-embedding space that takes the place of a word "
        "after the question; "
        "`<and>`, where present, composes behavior tokens (arXiv 2601.05062)."
        + _blocks_and_layout(meta),
        "",
        "| | |",
        "|---|---|",
        f"| model | {_code_cell(model_id)} |",
        f"| embedding fingerprint | {_code_cell(meta['fingerprint'])} (loading checks "
        "it) |",
        f"| tokens | {listed} |",
        "",
        "## How each token was trained",
        "",
        "Stage 1 distils a behavior token from the model's answers under the "
        "behavior's instruction; "
        "stage 2 trains `<and>` on pairs of frozen behavior tokens. The pass rate is "
        "the share of held-out "
        "prompts whose answer, with the token alone, passed the behavior's verifier.",
        "",
        "| token | stage | init | targets | steps x batch | lr | CE weight | final "
        "loss | pass rate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        lines.append(_row(name, info.get(name, {}), pass_rates.get(name)))
    load = (
        "st.load_backbone()"
        if model_id == EMBEDDED_ID
        else f"st.load_backbone({_py(base)})"
    )
    lines += [
        "",
        "## Usage",
        "",
        "```python",
        "import steerlib as st",
        "",
        f"bb = {load}",
        (
            f"tokens = st.SteeringTokens.pretrained(bb, {_py(pack)})"
            if pack is not None
            else f"tokens = st.SteeringTokens.from_pretrained({_py(repo_id)}, "
            "backbone=bb)"
        ),
        "sm = st.SteeredModel(bb, tokens)",
        f"print(sm.generate({_py('Why is the sky blue? ' + _example(names))}, "
        "max_new_tokens=128))",
        "```",
        "",
    ]
    text = "\n".join(lines)
    return text + STAMP.format(_sha(text)) + "\n"


def _py(value) -> str:
    """``value`` as a Python string literal (a JSON string is one: every quote,
    backslash and control character escaped), so that nothing in it runs when the
    snippet is pasted."""
    return json.dumps(str(value))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _text(value) -> str:
    """``value`` as inert markdown text on one line: HTML escaped, table pipes
    escaped."""
    one = " ".join(str(value).split())
    return html.escape(one, quote=False).replace("|", "\\|")


def _blocks_and_layout(meta: Mapping) -> str:
    """The sentences a card adds for tokens of several vectors and for a layout other
    than the paper's (both recorded in the file, and applied when it loads)."""
    out = ""
    blocks = meta.get("vectors") or {}
    if blocks:
        listed = ", ".join(
            f"{_code_cell(f'<{n}>')}: {int(k)}" for n, k in blocks.items()
        )
        out += f" Some tokens hold several vectors, one prompt slot each ({listed})."
    layout = meta.get("layout")
    if layout:
        label = str(layout.get("positions", "")) + (
            "+isolate" if layout.get("isolate") else ""
        )
        out += (
            f" The tokens are read in the {_code_cell(label)} layout "
            "(`steerlib.model.layout`), recorded in the file and applied when it loads."
        )
    return out


def _code_cell(value) -> str:
    """``value`` as inline code in a table cell: one line, no backticks or pipes that
    could end the code span or the cell."""
    one = " ".join(str(value).split()).replace("`", "'").replace("|", "/")
    return f"`{one}`"


def card_state(path: Path, unstamped: str | None = None) -> CardState:
    """What ``path`` (a folder's README.md) is: missing, steerlib's card unchanged or
    edited since, or a file steerlib did not write. Its metadata block is read with
    ``yaml.safe_load`` (never executing a tag); bad YAML is not steerlib's.

    A card without the stamp (written before steerlib stamped its cards) is steerlib's
    unchanged only when it is, byte for byte, ``unstamped``: the card this steerlib
    writes for the tokens in that folder, less its stamp (``without_stamp``). Any other
    is ``UNSTAMPED`` and kept: an edit inside steerlib's own sentences reads like
    steerlib's text, so nothing short of the whole text tells it apart.
    """
    if not path.exists():
        return CardState.MISSING
    try:
        text = path.read_text(encoding="utf-8")
        meta = (
            yaml.safe_load(text.split("---", 2)[1]) if text.startswith("---") else None
        )
    except (OSError, UnicodeDecodeError, IndexError, yaml.YAMLError):
        return CardState.FOREIGN
    if not isinstance(meta, dict) or meta.get("library_name") != LIBRARY:
        return CardState.FOREIGN
    stamped = _STAMPED.search(text)
    if stamped:
        body = text[: stamped.start() + 1]
        return CardState.OURS if _sha(body) == stamped.group(1) else CardState.EDITED
    return CardState.OURS if text == unstamped else CardState.UNSTAMPED


def without_stamp(card: str) -> str:
    """A card as steerlib wrote it before it stamped its cards: ``card`` (a
    ``model_card``) less its last line, the stamp."""
    stamped = _STAMPED.search(card)
    return card[: stamped.start() + 1] if stamped else card


def _row(name: str, info: dict, rate: tuple[float, int] | None) -> str:
    """One table row from a token's training record ('-' where the record says
    nothing)."""
    cfg = info.get("config", {})
    targets = info.get("target_source", "-")
    if "n_targets" in info:
        targets = f"{targets} ({info['n_targets']})"
    combos = info.get("combos", info.get(OLD_COMBOS_KEY))
    if info.get("stage") == 2 and combos is not None:
        targets += (
            f", trained on {combos}, L_orth weight {info.get('orth_weight', '-')}"
        )
    steps = (
        f"{info['steps']} x {cfg['batch_size']}"
        if "steps" in info and "batch_size" in cfg
        else "-"
    )
    loss = f"{float(info['final_loss']):.3f}" if "final_loss" in info else "-"
    passed = f"{rate[0]:.1f}% of {rate[1]}" if rate and rate[1] else "not measured"
    cells = [
        _code_cell(f"<{name}>"),
        info.get("stage", "-"),
        info.get("init", "-"),
        targets,
        steps,
        cfg.get("lr", "-"),
        cfg.get("ce_weight", "-"),
        loss,
        passed,
    ]
    return "| " + " | ".join([cells[0], *(_text(c) for c in cells[1:])]) + " |"


def _example(names: Sequence[str]) -> str:
    """The usage snippet's steering: the first pair of the file's behaviors that may be
    composed (the conflict rule refuses e.g. two languages), else its first token."""
    known = [n for n in names if n != "and" and n in B.names()]
    pair = next(
        ((a, b) for a, b in itertools.combinations(known, 2) if B.compatible(a, b)),
        None,
    )
    if pair and "and" in names:
        return f"<{pair[0]}><and><{pair[1]}>"
    return f"<{names[0]}>" if names else ""
