"""Read a steering-token file: safetensors, its JSON metadata checked field by field.

A token file (``SteeringTokens.save_file``) holds ``token/<name>`` vectors,
``loss/<name>`` curves and a ``steerlib`` metadata block (format, model id, embedding
fingerprint, width, names, per-token training records, layout). Files come from
anywhere (a download, a colleague, a truncated copy), so everything read here is
checked before a ``SteeringTokens`` is built from it: a bad file is one
``TokenFileError`` naming the file and what is wrong, never a ``KeyError`` deep in a
generation or a model card with a broken table. This module knows the format only;
``tokens`` builds the object.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from steerlib.errors import ConfigError, TokenFileError, TokensNotFoundError
from steerlib.model.layout import Layout

FORMAT = "steerlib.tokens/1"
TOKEN_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
"""A token's name: a behavior name (``behaviors.register``'s rule) or ``and``."""
MODEL_ID_BANNED = frozenset("\"'`\\<>|")
"""Characters no model id (Hub id, folder path, the embedded model's description) has
and that could end a quoted string, a code span or a table cell of the model card."""
FINGERPRINT = re.compile(r"[0-9A-Za-z_-]{1,64}")
_NUMBERS = {"steps": int, "stage": int, "n_targets": int, "seconds": float}
"""Fields of a training record that the model card formats as numbers."""


@dataclass
class Contents:
    """A token file's contents, checked: what ``SteeringTokens.load_file`` builds
    from."""

    meta: dict
    """The ``steerlib`` metadata (``info`` and ``vectors`` present, maybe empty)."""
    layout: Layout
    vectors: dict[str, torch.Tensor]
    """Each name's vector, or ``(k, hidden_size)`` block, in the file's order."""
    losses: dict[str, list[float]]
    """Each name's loss curve, where the file holds one."""


def read(path: Path) -> Contents:
    """Read the file written by ``save_file`` at ``path``.

    Refused with a ``TokenFileError`` naming the file: anything that is not a whole
    safetensors file, metadata that is not steerlib's (bad JSON, no ``names``, an
    unknown ``format``), a named tensor that is missing, and a vector that is not a
    finite floating-point vector of the file's ``hidden_size``.
    """
    if not path.is_file():
        raise TokensNotFoundError(f"token file not found: {path}")
    try:
        f = safe_open(str(path), framework="pt")
    except SafetensorError as err:
        raise TokenFileError(
            f"{path} is not a whole safetensors file (empty, truncated or another "
            f"format): {err}"
        ) from err
    with f:
        meta = _read_metadata(path, f.metadata())
        try:
            layout = Layout.from_dict(meta.get("layout"))
        except (ConfigError, TypeError) as err:
            raise TokenFileError(
                f"{path}: its metadata 'layout' is not a layout ({err})"
            ) from err
        contents = Contents(meta, layout, {}, {})
        keys = set(f.keys())
        for name in meta["names"]:
            if f"token/{name}" not in keys:
                raise TokenFileError(
                    f"{path}: its metadata names <{name}> but it holds no tensor "
                    f"'token/{name}'"
                )
            contents.vectors[name] = _checked(
                path,
                f"token/{name}",
                f.get_tensor(f"token/{name}"),
                meta["hidden_size"],
                meta["vectors"].get(name, 1),
            )
            curve = f"loss/{name}"
            if curve in keys:
                contents.losses[name] = _checked(
                    path, curve, f.get_tensor(curve)
                ).tolist()
    return contents


def read_fingerprint(path: Path) -> str | None:
    """The embedding fingerprint a token file was made for; None when ``path`` is not a
    readable steerlib token file."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["steerlib"])
    except (SafetensorError, OSError, KeyError, ValueError):
        return None
    return meta.get("fingerprint") if isinstance(meta, dict) else None


def _read_metadata(path: Path, metadata: dict | None) -> dict:
    """The ``steerlib`` metadata of a token file, checked field by field."""
    raw = (metadata or {}).get("steerlib")
    if raw is None:
        raise TokenFileError(
            f"{path} is not a steerlib token file (no 'steerlib' metadata)"
        )
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as err:
        raise TokenFileError(
            f"{path}: its 'steerlib' metadata is not valid JSON ({err.msg})"
        ) from err
    if not isinstance(meta, dict):
        raise TokenFileError(f"{path}: its 'steerlib' metadata is not a JSON object")
    if meta.get("format") != FORMAT:
        raise TokenFileError(
            f"{path}: unknown format {meta.get('format')!r}; this steerlib reads "
            f"{FORMAT!r}"
        )
    names = meta.get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise TokenFileError(f"{path}: its metadata has no 'names' list of token names")
    hidden = meta.get("hidden_size")
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise TokenFileError(
            f"{path}: its metadata has no positive integer 'hidden_size' (got "
            f"{hidden!r})"
        )
    for field in ("model_id", "fingerprint"):
        if not isinstance(meta.get(field), str):
            raise TokenFileError(f"{path}: its metadata has no '{field}' string")
    bad = [n for n in names if not TOKEN_NAME.fullmatch(n)]
    if bad:
        raise TokenFileError(
            f"{path}: token name {bad[0]!r:.80} is not a name: lower-case letters, "
            f"digits and _, starting with a letter or _, at most 64"
        )
    model_id = meta["model_id"]
    if (
        not 0 < len(model_id) <= 256
        or not model_id.isprintable()
        or MODEL_ID_BANNED & set(model_id)
    ):
        raise TokenFileError(
            f"{path}: model_id {model_id!r:.80} is not a model id: 1 to 256 printable "
            f"characters without {' '.join(sorted(MODEL_ID_BANNED))}"
        )
    if not FINGERPRINT.fullmatch(meta["fingerprint"]):
        raise TokenFileError(
            f"{path}: fingerprint {meta['fingerprint']!r:.80} is not 1 to 64 letters, "
            f"digits, _ or -"
        )
    info = meta.setdefault("info", {})
    if not isinstance(info, dict):
        raise TokenFileError(f"{path}: its metadata 'info' is not a JSON object")
    blocks = meta.setdefault("vectors", {})
    if not isinstance(blocks, dict) or not all(
        isinstance(k, int) and not isinstance(k, bool) and k > 1
        for k in blocks.values()
    ):
        raise TokenFileError(
            f"{path}: its metadata 'vectors' is not an object of token name -> vector "
            f"count (an integer > 1)"
        )
    for name, record in info.items():
        _check_info(path, name, record)
    return meta


def _check_info(path: Path, name: str, record) -> None:
    """A token's training record: a JSON object whose numeric fields are numbers."""
    if not isinstance(record, dict):
        raise TokenFileError(
            f"{path}: the training record of <{name}> ('info') is not a JSON object "
            f"(got {record!r:.40})"
        )
    for field, kind in {**_NUMBERS, "final_loss": float}.items():
        value = record.get(field)
        allowed = (int,) if kind is int else (int, float)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, allowed)
        ):
            raise TokenFileError(
                f"{path}: the training record of <{name}> has {field}={value!r:.40}; "
                f"it must be a number"
            )
    if not isinstance(record.get("config", {}), dict):
        raise TokenFileError(
            f"{path}: the training record of <{name}> has a 'config' that is not an "
            f"object"
        )


def _checked(
    path: Path,
    key: str,
    tensor: torch.Tensor,
    size: int | None = None,
    count: int = 1,
) -> torch.Tensor:
    """``tensor`` when it is finite and floating point: a vector (of ``size`` values, if
    given), or a ``(count, size)`` block when the metadata says the token has ``count``
    vectors."""
    if not tensor.dtype.is_floating_point:
        raise TokenFileError(
            f"{path}: tensor {key!r} is {tensor.dtype}; steering vectors are floating "
            f"point"
        )
    shape = (count, size) if count > 1 else (size,)
    if tensor.dim() != len(shape) or (
        size is not None and tuple(tensor.shape) != shape
    ):
        raise TokenFileError(
            f"{path}: tensor {key!r} has shape {tuple(tensor.shape)}; expected "
            + (
                f"shape {shape} ({count} vectors of hidden_size)"
                if count > 1
                else "a vector"
                + (f" of {size} values (hidden_size)" if size is not None else "")
            )
        )
    if not torch.isfinite(tensor).all():
        raise TokenFileError(f"{path}: tensor {key!r} holds NaN or inf values")
    return tensor
