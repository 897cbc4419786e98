"""Token files written by hand, for the tests that hand steerlib bad or hostile ones."""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from steerlib.model.token_file import FORMAT

METADATA = {
    "format": FORMAT,
    "model_id": "m",
    "fingerprint": "f" * 16,
    "hidden_size": 8,
    "names": ["french"],
    "info": {},
}
"""The metadata ``SteeringTokens.save_file`` writes for one 8-wide ``<french>`` of a
model that does not exist."""


def token_file(
    path: Path, meta: dict | str | None = None, tensors: dict | None = None
) -> Path:
    """A token file at ``path``: ``METADATA`` with the fields of ``meta`` replaced (or
    ``meta`` itself when it is text, such as broken JSON), holding ``tensors`` (default:
    a vector of ones for each name of the metadata, for ``<french>`` where it has no
    list of names)."""
    fields = METADATA | meta if isinstance(meta, dict) else METADATA
    names = fields["names"] if isinstance(fields["names"], list) else ["french"]
    if tensors is None:
        tensors = {f"token/{n}": torch.ones(8) for n in names}
    text = meta if isinstance(meta, str) else json.dumps(fields)
    save_file(tensors, str(path), metadata={"steerlib": text})
    return path
