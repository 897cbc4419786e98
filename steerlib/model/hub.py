"""Token folders and Hub repos: save_pretrained, from_pretrained and push_to_hub.

A token file is what the library reads; what people share is a folder (or a Hugging
Face repo) of that file and a model card, the way transformers and PEFT share weights.
``SteeringTokens`` gets these three methods from ``FolderMixin`` (as transformers'
models get theirs from ``PushToHubMixin``), which keeps the folder's rules (which files,
what may be replaced, how a repo id is told from a path) apart from the vectors. The
mixin reads and writes the file through its host's ``metadata``, ``save_file``,
``load_file`` and ``_check_replace``, so this module does not import ``tokens``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from steerlib.errors import (
    ForeignFileError,
    HubCredentialsError,
    TokensNotFoundError,
    one_line,
)
from steerlib.model.backbone import Backbone
from steerlib.model.card import CardState, card_state, model_card, without_stamp
from steerlib.model.packs import Pack
from steerlib.storage import storage_errors, write_text

log = logging.getLogger("steerlib")

WEIGHTS_FILE = "tokens.safetensors"
"""The vectors in a ``save_pretrained`` folder (or Hub repo)."""
CARD_FILE = "README.md"
"""The model card in a ``save_pretrained`` folder: what the Hub shows."""


class FolderMixin:
    """The folder and Hub methods of ``SteeringTokens`` (this module's docstring)."""

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
        says so), as is a card without steerlib's stamp (an older steerlib's) that is
        not, byte for byte, the card of the tokens in the folder, each unless
        ``overwrite=True``. Every refusal is a ``ForeignFileError`` naming the file,
        raised before anything is written.
        """
        folder = Path(folder)
        weights, card = folder / WEIGHTS_FILE, folder / CARD_FILE
        if folder.exists() and not folder.is_dir():
            raise ForeignFileError(
                f"{folder} is a file, not a folder; save_pretrained writes a folder "
                f"(save_file writes a bare .safetensors file)"
            )
        args = (
            repo_id or folder.name,
            pass_rates,
            Pack(pack).value if pack is not None else None,
        )
        text = model_card(self.metadata(), *args)
        kept = None
        if not overwrite:
            self._check_replace(weights)
            # an unstamped card is steerlib's only as the card of the tokens there
            old = self.load_file(weights) if weights.is_file() else None
            state = card_state(
                card,
                without_stamp(model_card(old.metadata(), *args))
                if old is not None
                else None,
            )
            if state is CardState.FOREIGN:
                raise ForeignFileError(
                    f"{card} exists and steerlib did not write it; save_pretrained "
                    f"would replace it: save to another folder, or pass overwrite=True"
                )
            if state in (CardState.EDITED, CardState.UNSTAMPED):
                kept = state
        with storage_errors(folder):
            folder.mkdir(parents=True, exist_ok=True)
        self.save_file(weights, overwrite=True)
        if kept is not None:
            log.warning(
                "%s is %s: kept as it is (pass overwrite=True to replace it with the "
                "card of these tokens)",
                card,
                kept.value,
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
    ) -> Self:
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
