"""SteeringTokens: named vectors in a model's input-embedding space.

A behavior token (``<french>``) or the composition token (``<and>``) is one d-dim vector
(or a block of k) that takes the place of a word embedding in the prompt. This module
holds the vectors and writes them: safetensors with a JSON metadata block (model id,
embedding fingerprint, names, per-token training info, library version). The
fingerprint ties the vectors to the embedding space they were trained in, so loading
them onto another model is an error instead of silent garbage. Reading and checking a
file is ``token_file``'s job, folders and Hub repos ``hub``'s, the shipped packs
``packs``', initial vectors ``inits``'.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from steerlib._version import __version__
from steerlib.errors import (
    ConfigError,
    ForeignFileError,
    NonFiniteVectorError,
    TokenFileError,
    UnknownNameError,
)
from steerlib.model import token_file
from steerlib.model.backbone import Backbone
from steerlib.model.hub import FolderMixin
from steerlib.model.layout import DEFAULT as DEFAULT_LAYOUT
from steerlib.model.layout import Layout
from steerlib.model.packs import Pack, pack_path, shipped_path
from steerlib.storage import save_safetensors


class SteeringTokens(FolderMixin):
    """An ordered set of named steering vectors for one backbone.

    >>> import tempfile, torch
    >>> from steerlib import load_backbone
    >>> bb = load_backbone("tiny")
    >>> tokens = SteeringTokens.for_backbone(bb)
    >>> tokens.set("french", torch.ones(bb.hidden_size), {"init": "ones"})
    >>> tokens.names, tuple(tokens["french"].shape)
    (['french'], (64,))
    >>> folder = tempfile.mkdtemp()
    >>> path = tokens.save_file(f"{folder}/tokens.safetensors")
    >>> again = SteeringTokens.load_file(path, backbone=bb)  # checks the model
    >>> torch.equal(again["french"], tokens["french"]), again.info["french"]["init"]
    (True, 'ones')
    """

    def __init__(self, hidden_size: int, model_id: str, fingerprint: str) -> None:
        self.hidden_size = hidden_size
        self.model_id = model_id
        self.fingerprint = fingerprint
        self.vectors: dict[str, torch.Tensor] = {}
        self.info: dict[str, dict] = {}
        """Per-token training record: init, config, target source, steps, time, final
        loss."""
        self.losses: dict[str, list[float]] = {}
        """Per-token loss curve (one value per optimiser step)."""
        self.layout: Layout = DEFAULT_LAYOUT
        """How prompts read these tokens (slot positions, attention): saved with them,
        so ``SteeredModel(bb, tokens)`` reads a pack the way it was measured
        (``model.layout``)."""

    @classmethod
    def for_backbone(cls, bb: Backbone) -> SteeringTokens:
        return cls(bb.hidden_size, bb.model_id, bb.fingerprint)

    # -- container ---------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.vectors)

    def __contains__(self, name: str) -> bool:
        return name in self.vectors

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.vectors:
            raise UnknownNameError(
                f"no token <{name}>; known tokens: "
                f"{', '.join(f'<{n}>' for n in self.names) or 'none'}"
            )
        return self.vectors[name]

    def __len__(self) -> int:
        return len(self.vectors)

    def __repr__(self) -> str:
        return (
            f"SteeringTokens({self.model_id!r}, d={self.hidden_size}, "
            f"names={self.names})"
        )

    def set(
        self,
        name: str,
        vector: torch.Tensor,
        info: dict | None = None,
        losses: list[float] | None = None,
    ) -> None:
        """Store a token (as float32 on CPU) with its training record: one vector of the
        model's width, or a ``(k, width)`` block of ``k`` vectors that ``<name>`` stands
        for in a prompt (its k slots). A NaN or inf in it is refused."""
        vector = vector.detach().to("cpu", torch.float32)
        if vector.numel() == self.hidden_size:
            vector = vector.reshape(-1)  # one vector stays 1-D, as in every older file
        elif vector.dim() != 2 or vector.shape[1] != self.hidden_size:
            raise ConfigError(
                f"<{name}> has shape {tuple(vector.shape)}; a steering token is a "
                f"vector of {self.hidden_size} values (this model's embeddings) or a "
                f"(k, {self.hidden_size}) block of k vectors"
            )
        if not torch.isfinite(vector).all():
            raise NonFiniteVectorError(
                f"<{name}> holds NaN or inf values; a steering vector must be finite"
            )
        self.vectors[name] = vector.clone()
        if info is not None:
            self.info[name] = info
        if losses is not None:
            self.losses[name] = list(losses)

    def width(self, name: str) -> int:
        """How many vectors (prompt slots) ``<name>`` holds: 1, or k for a block."""
        vector = self[name]
        return 1 if vector.dim() == 1 else vector.shape[0]

    def widths(self) -> dict[str, int]:
        """``width`` of every token: what ``template.render`` needs to lay out slots."""
        return {name: self.width(name) for name in self.names}

    def rows(self, name: str) -> torch.Tensor:
        """``<name>``'s vectors as a ``(k, width)`` matrix (k = 1 for a plain token)."""
        return self[name].reshape(-1, self.hidden_size)

    def copy(self) -> SteeringTokens:
        return self.subset(self.names)

    def subset(self, names) -> SteeringTokens:
        """A copy holding only ``names`` (in that order), read with the same layout."""
        new = SteeringTokens(self.hidden_size, self.model_id, self.fingerprint)
        new.layout = self.layout
        for name in names:
            new.set(
                name, self[name], dict(self.info.get(name, {})), self.losses.get(name)
            )
        return new

    def with_layout(self, layout: Layout) -> SteeringTokens:
        """A copy read with ``layout``: the same vectors in other places."""
        new = self.copy()
        new.layout = layout
        return new

    def digest(self, names: Sequence[str]) -> str:
        """A short hash of the named vectors and of the layout they are read with:
        generation records carry it, so a record made with other vectors (a retrained
        token) or in other places is recognised as stale, not reused. The paper's layout
        adds nothing (records made before layouts existed keep matching)."""
        salt = "" if self.layout.is_default else f"layout:{self.layout.label}"
        return tensor_digest(((name, self[name]) for name in sorted(set(names))), salt)

    def check_backbone(self, bb: Backbone) -> None:
        """Fail clearly when these tokens were trained for another embedding space."""
        if bb.fingerprint != self.fingerprint or bb.hidden_size != self.hidden_size:
            raise TokenFileError(
                f"these tokens were trained for {self.model_id!r} (fingerprint "
                f"{self.fingerprint}, d={self.hidden_size}) but the backbone is "
                f"{bb.model_id!r} (fingerprint {bb.fingerprint}, d={bb.hidden_size}); "
                f"train tokens for this model instead"
            )

    # -- files (folders and Hub repos: ``hub.FolderMixin``) -----------------------
    def save_file(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """One safetensors file: ``token/<name>`` vectors, ``loss/<name>`` curves, JSON
        metadata.

        What the training caches write; ``save_pretrained`` adds the model card around
        it. An existing file is replaced only when nothing in it is lost: a steerlib
        token file of the same model whose every token this set holds with the same
        vector (and layout); anything else (not a token file, another model's tokens, a
        token this set drops or changes) is refused with a ``ForeignFileError`` naming
        it, unless ``overwrite=True``.
        """
        path = Path(path)
        if not overwrite:
            self._check_replace(path)
        tensors = {f"token/{n}": v.contiguous() for n, v in self.vectors.items()}
        tensors.update(
            {
                f"loss/{n}": torch.tensor(c, dtype=torch.float32)
                for n, c in self.losses.items()
                if c
            }
        )
        # atomic, under a unique temp name: an interrupted save never leaves a torn file
        return save_safetensors(
            tensors, path, metadata={"steerlib": json.dumps(self.metadata())}
        )

    def _check_replace(self, path: Path) -> None:
        """Refuse (``ForeignFileError``) to replace ``path`` when something in it would
        be lost (``save_file``); a missing file is fine."""
        old = check_replaceable(path, self.model_id, self.fingerprint)
        lost = [
            n
            for n in (old.names if old is not None else ())
            if n not in self or old.digest([n]) != self.digest([n])
        ]
        if lost:
            raise ForeignFileError(
                f"{path} holds {', '.join(f'<{n}>' for n in lost)}, which saving these "
                f"tokens ({', '.join(f'<{n}>' for n in self.names) or 'none'}) would "
                f"drop or change: {REPLACE_HOW}"
            )

    def metadata(self) -> dict:
        """The JSON metadata a token file carries (and the model card reads): format,
        model id, fingerprint, width, names, per-token training records, library
        version, and the layout where it is not the paper's."""
        meta = {
            "format": token_file.FORMAT,
            "model_id": self.model_id,
            "fingerprint": self.fingerprint,
            "hidden_size": self.hidden_size,
            "names": self.names,
            "info": self.info,
            "steerlib_version": __version__,
        }
        if (
            not self.layout.is_default
        ):  # files in the paper's layout stay byte-identical to older ones
            meta["layout"] = self.layout.to_dict()
        blocks = {name: k for name, k in self.widths().items() if k > 1}
        if blocks:  # so do files whose tokens are all one vector
            meta["vectors"] = blocks
        return meta

    @classmethod
    def load_file(
        cls, path: str | Path, backbone: Backbone | None = None
    ) -> SteeringTokens:
        """Read a file written by ``save_file``; with ``backbone``, check it was trained
        for that model.

        Refused with a ``TokenFileError`` naming the file: anything that is not a whole
        safetensors file, metadata that is not steerlib's (bad JSON, no ``names``, an
        unknown ``format``), a named tensor that is missing, and a vector that is not a
        finite floating-point vector of the file's ``hidden_size`` (``token_file``).
        """
        contents = token_file.read(Path(path))
        meta = contents.meta
        tokens = cls(meta["hidden_size"], meta["model_id"], meta["fingerprint"])
        tokens.layout = contents.layout
        for name, vector in contents.vectors.items():
            tokens.set(name, vector, meta["info"].get(name), contents.losses.get(name))
        if backbone is not None:
            tokens.check_backbone(backbone)
        return tokens

    def save(self, path: str | Path) -> Path:
        """Deprecated (removed after 0.2): ``save_pretrained(folder)``, or
        ``save_file(path)``."""
        warnings.warn(
            "SteeringTokens.save is deprecated; use save_pretrained(folder) (or "
            "save_file(path) for a bare file)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.save_file(path)

    @classmethod
    def load(cls, path: str | Path, backbone: Backbone | None = None) -> SteeringTokens:
        """Deprecated (removed after 0.2):
        ``from_pretrained(folder_file_or_repo_id, backbone)``."""
        warnings.warn(
            "SteeringTokens.load is deprecated; use "
            "SteeringTokens.from_pretrained(path, backbone)",
            DeprecationWarning,
            stacklevel=2,
        )
        return cls.load_file(path, backbone)

    @classmethod
    def pretrained(
        cls, backbone: Backbone, pack: Pack | str = Pack.DEFAULT
    ) -> SteeringTokens:
        """A token pack shipped with steerlib for the embedded model, read in the layout
        it was measured in: ``"default"`` (the best composition measured) or ``"paper"``
        (the paper's layout, as chapters 1-3 train and measure it)."""
        return cls.load_file(pack_path(pack), backbone=backbone)


REPLACE_HOW = "save to another path, or pass overwrite=True (--overwrite)"


def check_replaceable(
    path: Path, model_id: str, fingerprint: str
) -> SteeringTokens | None:
    """The tokens in ``path`` (None when there is no file), when it is a steerlib token
    file of the model with ``fingerprint``; else a ``ForeignFileError`` naming it: a
    save there would replace a file steerlib did not write, or another model's
    tokens."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        old = SteeringTokens.load_file(path)
    except (TokenFileError, OSError):
        raise ForeignFileError(
            f"{path} exists and is not a steerlib token file; saving would replace it: "
            f"{REPLACE_HOW}"
        ) from None
    if old.fingerprint != fingerprint:
        raise ForeignFileError(
            f"{path} holds tokens of another model ({old.model_id!r}, fingerprint "
            f"{old.fingerprint}, not {model_id!r}'s {fingerprint}): {REPLACE_HOW}"
        )
    return old


def shipped(
    bb: Backbone, name: str, key: str, path: str | Path | None = None
) -> SteeringTokens | None:
    """The shipped ``<name>`` when it was trained for this model with cache key ``key``.

    Lets a fresh clone (and the book) reuse the committed tokens instead of retraining
    them, exactly when the training run asked for is the one that made them. ``path``:
    another committed token file to look in (default: the tokens shipped in the
    package).
    """
    path = Path(path) if path is not None else shipped_path()
    if not path.is_file():
        return None
    tokens = SteeringTokens.load_file(path)
    if (
        tokens.fingerprint != bb.fingerprint
        or name not in tokens
        or tokens.info.get(name, {}).get("key") != key
    ):
        return None
    return tokens.subset([name])


def tensor_digest(named: Iterable[tuple[str, torch.Tensor]], salt: str = "") -> str:
    """12 hex digits of SHA-256 over ``salt`` and each (name, float32 values) in the
    given order."""
    h = hashlib.sha256(salt.encode())
    for name, tensor in named:
        h.update(
            name.encode() + b"\0" + tensor.detach().float().cpu().numpy().tobytes()
        )
    return h.hexdigest()[:12]
