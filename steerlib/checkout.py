"""What a command writes inside the project checkout never shows in ``git status``, so
a clone stays clean after any command, whatever its ``--preset``, ``--set``, ``--model``
or ``--out`` (issue 34).

* **A folder** a command makes for its output (``--out`` of ``evaluate`` and
  ``reproduce``, and of ``train`` and ``compose`` when it names a folder) gets a
  ``.gitignore`` holding ``*`` before anything else is written into it, as pytest's
  cache and ``venv`` do: git ignores the folder and everything in it, that file
  included, and you still have every file (delete the ``.gitignore`` to commit them). A
  folder that already holds files is left as it is: they are yours, and git tracks,
  ignores or shows them already.
* **A single file** cannot carry its own ignore rule, and a rule written elsewhere (the
  checkout's ``.gitignore``, which is committed, or ``.git/info/exclude``, git's own
  state where nobody looks) would change what git shows of files steerlib never wrote.
  So a token file (``--out x.safetensors``) inside the checkout is written only where
  git already ignores it (``tokens.safetensors`` at its root, ``artifacts/``), and
  refused otherwise before any work, with one line naming the ways out; ``--overwrite``
  writes it anyway (a committed file you mean to replace).

"Inside the checkout": under ``paths.project_root()`` when that is a git work tree (it
holds ``.git``); elsewhere nothing changes. Whether git ignores a path is ``git
check-ignore``'s answer; with no ``git`` to ask, the file is written. The committed
``results/<preset>/`` folders are written only by their preset itself, unchanged, on
its own model (``study.folders``): rewriting them is what that command is for.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from steerlib import distributed, paths
from steerlib.errors import CheckoutError
from steerlib.storage import write_text

IGNORE_ALL = "# made by steerlib: git ignores this folder (delete me to commit it)\n*\n"
"""The ``.gitignore`` of a folder a command made inside the checkout."""


def checkout_of(path: str | os.PathLike) -> Path | None:
    """The git checkout (``paths.project_root()``) that ``path`` lies in, else None."""
    root = paths.project_root().resolve()
    if not (root / ".git").exists():
        return None
    return root if Path(path).resolve().is_relative_to(root) else None


def output_folder(folder: str | os.PathLike) -> Path:
    """``folder``, which a command is about to write into; when it lies inside the
    checkout and is new (absent, or an empty folder), it is made holding a
    ``.gitignore`` of ``*`` first (written atomically, by rank 0 under torchrun; every
    rank calls this)."""
    folder = Path(folder)
    distributed.main_only(_ignore_if_new, folder)
    return folder


def _ignore_if_new(folder: Path) -> None:
    new = not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))
    if new and checkout_of(folder) is not None:
        write_text(folder / ".gitignore", IGNORE_ALL)


def check_output_file(path: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse (``CheckoutError``) a file a command would write inside the checkout
    where git does not ignore it, since ``git status`` would show it, unless
    ``overwrite``."""
    root = checkout_of(path)
    if overwrite or root is None or _ignored(root, Path(path)):
        return
    raise CheckoutError(
        f"--out {path}: inside the checkout {root} where git does not ignore it, so "
        "`git status` would show it; name a folder instead (steerlib marks a new one "
        "ignored), a path outside the checkout or one git ignores (tokens.safetensors "
        "at its root, artifacts/), or pass --overwrite"
    )


def _ignored(root: Path, path: Path) -> bool:
    """False only when git answers that it does not ignore ``path`` (tracked files
    included: no ignore rule applies to them); True when it ignores it or cannot
    tell."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "check-ignore", "-q", "--", str(path.resolve())],
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return True
    return done.returncode != 1
