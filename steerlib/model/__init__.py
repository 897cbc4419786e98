"""The steered model: the frozen backbone, the steering tokens, the chat template with
token slots, and generation for every steering method.

Importing it checks the installed transformers first: ``model.decoding`` and its cache
(``model.kv_cache``) use its KV-cache API, which older releases name differently.
"""

import transformers
from packaging.version import Version

from steerlib.errors import DependencyError

TRANSFORMERS_FLOOR = "5.24"
"""The oldest transformers whose cache API ``decoding`` and ``kv_cache`` use: a
model's forward takes ``cache=`` and returns ``.cache`` (5.24 renamed them from
``past_key_values``), and a ``Cache`` is built from ``DynamicLayer``s (requirements.txt
holds the same floor)."""


def require_transformers(version: str) -> None:
    """A ``DependencyError`` in one line unless ``version`` is at least the floor.

    >>> require_transformers("5.24.0")
    >>> require_transformers("4.57.1")
    Traceback (most recent call last):
    ...
    steerlib.errors.DependencyError: steerlib needs transformers >= 5.24 ...4.57.1...
    """
    if Version(version) < Version(TRANSFORMERS_FLOOR):
        raise DependencyError(
            f"steerlib needs transformers >= {TRANSFORMERS_FLOOR} (its KV-cache API); "
            f"found {version}: pip install -U 'transformers>={TRANSFORMERS_FLOOR},<6'"
        )


require_transformers(transformers.__version__)
