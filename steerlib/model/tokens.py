"""SteeringTokens: named vectors in a model's input-embedding space.

A behavior token (``<french>``) or the composition token (``<and>``) is one d-dim vector
that takes the place of a word embedding in the prompt. This module holds the vectors,
their initialisations and their file format: safetensors with a JSON metadata block
(model id, embedding fingerprint, names, per-token training info, library version).
The fingerprint ties the vectors to the embedding space they were trained in, so loading
them onto another model is an error instead of silent garbage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from steerlib._version import __version__
from steerlib.errors import (
    ConfigError,
    ForeignFileError,
    HubCredentialsError,
    NonFiniteVectorError,
    TokenFileError,
    TokensNotFoundError,
    UnknownNameError,
)
from steerlib.model.backbone import Backbone
from steerlib.model.card import CardState, card_state, model_card
from steerlib.model.layout import DEFAULT as DEFAULT_LAYOUT
from steerlib.model.layout import Layout
from steerlib.storage import save_safetensors, storage_errors, write_text

log = logging.getLogger("steerlib")

FORMAT = "steerlib.tokens/1"
PRETRAINED_FILE = "tokens_smollm2_135m.safetensors"
"""Behavior tokens and <and> trained for the embedded model by the cpu preset, read in
the paper's layout, shipped in the package (``Pack.PAPER``; the training caches reuse
it)."""


class Pack(StrEnum):
    """The token packs shipped for the embedded model
    (``SteeringTokens.pretrained``)."""

    DEFAULT = "default"
    """The best composition measured on the embedded model: the paper pack's behavior
    tokens with the stage-2 study's ``<and>``, read in the position study's layout
    (``shared+isolate``): ``results/cpu/stage2/`` says which ``<and>`` and why."""
    PAPER = "paper"
    """The cpu preset's stage 1 and stage 2 in the paper's layout (chapters 1-3)."""


PACK_FILES = {
    Pack.DEFAULT: "pack_smollm2_135m.safetensors",
    Pack.PAPER: PRETRAINED_FILE,
}
"""Each shipped pack's file in ``steerlib/data``."""
WEIGHTS_FILE = "tokens.safetensors"
"""The vectors in a ``save_pretrained`` folder (or Hub repo)."""
CARD_FILE = "README.md"
"""The model card in a ``save_pretrained`` folder: what the Hub shows."""


class SteeringTokens:
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

    # -- files -------------------------------------------------------------------
    def save_pretrained(
        self,
        folder: str | Path,
        *,
        pass_rates: Mapping[str, tuple[float, int]] | None = None,
        repo_id: str | None = None,
        overwrite: bool = False,
        pack: Pack | str | None = None,
    ) -> Path:
        """Write a folder that ``from_pretrained`` (and the Hub) read:
        ``tokens.safetensors`` and a ``README.md`` model card.

        ``pass_rates[name] = (percent, n)``: the single-behavior pass rate of ``<name>``
        on ``n`` held-out prompts, where known, for the card; ``repo_id`` names the
        repository in the card's usage snippet (default: the folder's name); ``pack``:
        these tokens are that shipped pack, and the snippet loads it with
        ``pretrained`` instead (a line that works from any directory).

        Only those two files are written; anything else in the folder is left as it is.
        ``tokens.safetensors`` is replaced only as ``save_file`` replaces a file; a
        ``README.md`` that steerlib did not write (no steerlib metadata) is refused, and
        a card steerlib wrote that someone edited since is kept as it is (a log line
        says so), each unless ``overwrite=True``. Every refusal is a
        ``ForeignFileError`` naming the file, raised before anything is written.
        """
        folder = Path(folder)
        weights, card = folder / WEIGHTS_FILE, folder / CARD_FILE
        if folder.exists() and not folder.is_dir():
            raise ForeignFileError(
                f"{folder} is a file, not a folder; save_pretrained writes a folder "
                f"(save_file writes a bare .safetensors file)"
            )
        text = model_card(
            self.metadata(),
            repo_id or folder.name,
            pass_rates,
            Pack(pack).value if pack is not None else None,
        )
        keep_card = False
        if not overwrite:
            self._check_replace(weights)
            state = card_state(card)
            if state is CardState.FOREIGN:
                raise ForeignFileError(
                    f"{card} exists and steerlib did not write it; save_pretrained "
                    f"would replace it: save to another folder, or pass overwrite=True"
                )
            keep_card = state is CardState.EDITED
        with storage_errors(folder):
            folder.mkdir(parents=True, exist_ok=True)
        self.save_file(weights, overwrite=True)
        if keep_card:
            log.warning(
                "%s was edited after steerlib wrote it: kept as it is (pass "
                "overwrite=True to replace it with the card of these tokens)",
                card,
            )
        else:
            write_text(card, text)
        return folder

    @classmethod
    def from_pretrained(
        cls,
        source: str | Path,
        backbone: Backbone | None = None,
        *,
        revision: str | None = None,
    ) -> SteeringTokens:
        """Tokens from a folder written by ``save_pretrained``, a Hub repo id, or a
        token file.

        A repo id (``"org/name"``) resolves through
        ``huggingface_hub.snapshot_download``: the local Hub cache first, the network
        only when the files are not cached, never with ``HF_HUB_OFFLINE=1``. With
        ``backbone``, the tokens must have been trained for that model (same embedding
        fingerprint), else a ValueError says which model they are for.
        """
        path = Path(source)
        if path.is_file():
            return cls.load_file(path, backbone)
        if path.is_dir():
            if not (path / WEIGHTS_FILE).is_file():
                raise TokensNotFoundError(
                    f"{path} has no {WEIGHTS_FILE}; save_pretrained writes one"
                )
            return cls.load_file(path / WEIGHTS_FILE, backbone)
        from huggingface_hub import snapshot_download
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        nothing_here = f"there is no folder or file {str(source)!r} here ({Path.cwd()})"
        try:
            if str(source).count("/") != 1 or str(source).startswith((".", "/", "~")):
                raise HFValidationError("a Hub repo id is 'org/name'")
            validate_repo_id(str(source))
        except HFValidationError as err:
            raise TokensNotFoundError(
                f"{nothing_here}, and it is not a Hub repo id ({one_line(err)}): pass "
                f"a token folder, a .safetensors file or 'org/name'"
            ) from None
        try:
            folder = snapshot_download(
                str(source),
                revision=revision,
                allow_patterns=[WEIGHTS_FILE, CARD_FILE],
            )
        except Exception as err:
            raise TokensNotFoundError(
                f"{nothing_here}, and the Hub could not provide a repo of that name "
                f"({type(err).__name__}: {one_line(err)[:120]}); check the folder's "
                f"name, or the repo id and the network (HF_HUB_OFFLINE=1 reads the "
                f"local cache only)"
            ) from None
        return cls.load_file(Path(folder) / WEIGHTS_FILE, backbone)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        pass_rates: Mapping[str, tuple[float, int]] | None = None,
        private: bool | None = None,
        token: str | None = None,
        commit_message: str = "Upload steering tokens",
    ) -> str:
        """Create ``repo_id`` on the Hub (if needed) and upload the ``save_pretrained``
        folder.

        Returns the URL of the commit.
        """
        import tempfile

        from huggingface_hub import HfApi, get_token

        if (
            token is None and get_token() is None
        ):  # fail here, not as a connection error of the upload
            raise HubCredentialsError(
                f"push_to_hub({repo_id!r}) needs a Hugging Face token with write "
                f"access and found none: pass token=..., set HF_TOKEN, or run `hf auth "
                f"login`"
            )
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(
                Path(tmp) / "tokens", pass_rates=pass_rates, repo_id=repo_id
            )
            info = api.upload_folder(
                repo_id=repo_id, folder_path=str(folder), commit_message=commit_message
            )
        return str(getattr(info, "commit_url", info))

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
            "format": FORMAT,
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
        finite floating-point vector of the file's ``hidden_size``.
        """
        path = Path(path)
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
            tokens = cls(meta["hidden_size"], meta["model_id"], meta["fingerprint"])
            try:
                tokens.layout = Layout.from_dict(meta.get("layout"))
            except (ConfigError, TypeError) as err:
                raise TokenFileError(
                    f"{path}: its metadata 'layout' is not a layout ({err})"
                ) from err
            keys = set(f.keys())
            for name in meta["names"]:
                if f"token/{name}" not in keys:
                    raise TokenFileError(
                        f"{path}: its metadata names <{name}> but it holds no tensor "
                        f"'token/{name}'"
                    )
                vector = _checked(
                    path,
                    f"token/{name}",
                    f.get_tensor(f"token/{name}"),
                    meta["hidden_size"],
                    meta["vectors"].get(name, 1),
                )
                curve = f"loss/{name}"
                losses = (
                    _checked(path, curve, f.get_tensor(curve)).tolist()
                    if curve in keys
                    else None
                )
                tokens.set(name, vector, meta["info"].get(name), losses)
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
        try:
            pack = Pack(pack)
        except ValueError:
            allowed = ", ".join(repr(p.value) for p in Pack)
            raise ConfigError(f"no shipped pack {pack!r}; packs: {allowed}") from None
        return cls.load_file(_shipped_path(PACK_FILES[pack]), backbone=backbone)


def _shipped_path(name: str = PRETRAINED_FILE) -> Path:
    return Path(str(resources.files("steerlib") / "data" / name))


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


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


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


TOKEN_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
"""A token's name: a behavior name (``behaviors.register``'s rule) or ``and``."""
MODEL_ID_BANNED = frozenset("\"'`\\<>|")
"""Characters no model id (Hub id, folder path, the embedded model's description) has
and that could end a quoted string, a code span or a table cell of the model card."""
FINGERPRINT = re.compile(r"[0-9A-Za-z_-]{1,64}")
_NUMBERS = {"steps": int, "stage": int, "n_targets": int, "seconds": float}
"""Fields of a training record that the model card formats as numbers."""


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


def shipped(
    bb: Backbone, name: str, key: str, path: str | Path | None = None
) -> SteeringTokens | None:
    """The shipped ``<name>`` when it was trained for this model with cache key ``key``.

    Lets a fresh clone (and the book) reuse the committed tokens instead of retraining
    them, exactly when the training run asked for is the one that made them. ``path``:
    another committed token file to look in (default: the tokens shipped in the
    package).
    """
    path = Path(path) if path is not None else _shipped_path()
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


# -- initialisations ------------------------------------------------------------------
def tensor_digest(named: Iterable[tuple[str, torch.Tensor]], salt: str = "") -> str:
    """12 hex digits of SHA-256 over ``salt`` and each (name, float32 values) in the
    given order."""
    h = hashlib.sha256(salt.encode())
    for name, tensor in named:
        h.update(
            name.encode() + b"\0" + tensor.detach().float().cpu().numpy().tobytes()
        )
    return h.hexdigest()[:12]


def text_init(bb: Backbone, text: str) -> torch.Tensor:
    """Mean input embedding of ``text``'s tokens.

    The paper's behavior-token init (the instruction's tokens), and also our ' and'
    init for <and> when ' and' is one token it is exactly that token's embedding.
    """
    ids = bb.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ConfigError(f"{text!r} has no tokens to initialise from")
    return bb.embeddings[ids].detach().float().mean(0).cpu()


def text_rows(bb: Backbone, text: str, k: int) -> torch.Tensor:
    """The semantic init of a token of ``k`` vectors: ``text_init`` (the mean) for one
    vector; for k > 1, the input embeddings of ``text``'s first k tokens, the text
    repeated when it is shorter (as PEFT's prompt-tuning text init), so each vector
    starts as a word of the instruction. A ``(k, d)`` block."""
    if k == 1:
        return text_init(bb, text)
    ids = bb.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ConfigError(f"{text!r} has no tokens to initialise from")
    ids = (ids * -(-k // len(ids)))[:k]
    return bb.embeddings[ids].detach().float().cpu()


def random_rows(bb: Backbone, k: int, seed: int = 0) -> torch.Tensor:
    """``k`` vectors of ``random_init`` (seeds ``seed``, ``seed + 1``, ...); one vector
    for k = 1, else a ``(k, d)`` block."""
    if k == 1:
        return random_init(bb, seed)
    return torch.stack([random_init(bb, seed + i) for i in range(k)])


def random_init(bb: Backbone, seed: int = 0) -> torch.Tensor:
    """A Gaussian vector with the vocabulary's mean embedding norm (ours)."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(bb.hidden_size, generator=gen)
    return v / v.norm() * bb.embeddings.detach().float().norm(dim=1).mean().cpu()
