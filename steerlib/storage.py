"""Writing files so that nothing is lost: atomic replaces, locks, and JSON-lines that
survive a crash.

* ``atomic_path`` / ``save_safetensors``: write to a temp file with a unique name next
  to the target, then ``os.replace`` it; a crash or a full disk leaves the old file as
  it was, and two processes saving the same file never share a temp name. A temp file a
  killed process left behind is never read (its name is unique), and ``build_once``
  deletes leftover ones of the artifact it builds.
* ``lock``: an exclusive inter-process lock (``filelock``) on a file or folder; the OS
  releases it when its holder dies, even by kill -9.
* ``read_jsonl`` / ``append_jsonl``: one JSON object per line, each line flushed as it
  is written. A torn *last* line (a crash or a full disk mid-append) is dropped with a
  warning naming the file; a bad line anywhere else is refused with its file and line.

Every ``OSError`` of a write becomes a ``StorageError`` naming the path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from filelock import FileLock

from steerlib.errors import RecordsError, StorageError
from steerlib.paths import locks_root

log = logging.getLogger("steerlib")

TEMP_SUFFIX = ".tmp"


def _temp_prefix(path: Path) -> str:
    """Temp files of ``path`` are ``.<name>.<random>.tmp`` in its folder (hidden,
    unique)."""
    return f".{path.name}."


def _make_temp(path: Path, folder: bool = False) -> tuple[Path, int]:
    """A new temp file (or folder) of ``path``, and the mode ``path`` must have once
    the temp replaces it: the existing ``path``'s, else the process umask applied, as
    ``open()`` and ``mkdir`` create files. (``tempfile`` makes them 0600/0700 and
    ``os.replace`` carries that to ``path``: tables and tokens unreadable to the
    group.) Set it just before the replace: a writer such as safetensors may create the
    temp file anew, with a mode of its own."""
    while True:
        tmp = path.parent / f"{_temp_prefix(path)}{secrets.token_hex(6)}{TEMP_SUFFIX}"
        try:
            if folder:
                os.mkdir(tmp, 0o777)
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        return tmp, stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return tmp, stat.S_IMODE(tmp.stat().st_mode)


@contextlib.contextmanager
def storage_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn an ``OSError`` (disk full, read-only, permission) into a ``StorageError``
    naming ``path``."""
    try:
        yield
    except StorageError:
        raise
    except OSError as err:
        raise StorageError(
            err.errno, f"cannot write {path}: {err.strerror or err}"
        ) from err


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A unique temp path next to ``path``; on a clean exit it atomically replaces
    ``path``.

    On an exception the temp file is deleted and ``path`` keeps its old content.
    """
    path = Path(path)
    with storage_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp, mode = _make_temp(path)
        try:
            yield tmp
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically replace ``path`` by ``text`` (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def save_safetensors(
    tensors: dict, path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> Path:
    """``safetensors.torch.save_file`` through ``atomic_path``; its own write error
    (``SafetensorError: Error while serializing: I/O error: No space left on device``)
    becomes a ``StorageError`` naming ``path`` like any ``OSError``."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
    except SafetensorError as err:
        raise StorageError(f"cannot write {path}: {err}") from err
    return Path(path)


def lock(path: str | os.PathLike, timeout: float = -1) -> FileLock:
    """An exclusive lock guarding ``path``, for ``with lock(p): ...``.

    Re-entrant within one process; other processes on this machine wait for it. The lock
    file lives in ``paths.locks_root()``, not next to ``path``: result folders stay
    free of lock files, and a read-only folder can be locked. It is named after
    ``path`` resolved (symlinks, ``..``), so every spelling of one file takes the same
    lock.
    """
    path = Path(path).resolve()
    folder = locks_root()
    with storage_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return FileLock(str(folder / f"{path.name}-{digest}.lock"), timeout=timeout)


@contextlib.contextmanager
def atomic_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """A unique temp folder next to ``folder``; on a clean exit it takes ``folder``'s
    place.

    An existing ``folder`` is swapped out under ``folder``'s lock and deleted only once
    the new one is in place, so readers see the old folder or the new one, never a mix.
    """
    folder = Path(folder)
    with storage_errors(folder):
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp, mode = _make_temp(folder, folder=True)
        try:
            yield tmp
            os.chmod(tmp, mode)
            with lock(folder):
                old = None
                if folder.exists():
                    old = Path(
                        tempfile.mkdtemp(
                            dir=folder.parent,
                            prefix=_temp_prefix(folder),
                            suffix=TEMP_SUFFIX,
                        )
                    )
                    os.replace(folder, old / folder.name)
                os.replace(tmp, folder)
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def build_once(folder: str | os.PathLike, build: Callable[[Path], None]) -> Path:
    """Make ``folder`` with ``build(tmp_folder)`` unless it exists, once across
    processes.

    Holds the folder's build lock meanwhile, so a second process waits and then finds
    the folder made; temp folders left by killed builds are deleted first (no one else
    can be writing them while the lock is held).
    """
    folder = Path(folder)
    with lock(folder.with_name(folder.name + ".build")):
        if folder.is_dir():
            return folder
        for stale in folder.parent.glob(_temp_prefix(folder) + "*" + TEMP_SUFFIX):
            log.info("removing %s, left by an interrupted build", stale)
            shutil.rmtree(stale, ignore_errors=True)
        with atomic_folder(folder) as tmp:
            build(tmp)
    return folder


# -- JSON lines
# ------------------------------------------------------------------------------
def read_jsonl(path: str | os.PathLike, required: Sequence[str] = ()) -> list[dict]:
    """The objects of a JSON-lines file ([] when it does not exist), each holding the
    keys in ``required``: a line that is valid JSON but not such an object (``42``,
    ``{"foo": 1}``) raises ``RecordsError`` naming the file and line, not a KeyError
    far from it.

    A torn last line is dropped with a warning; any other bad line raises
    ``RecordsError`` naming the file and line number. Lines are split as bytes and
    decoded one by one: a write cut inside a multi-byte character (any non-English
    text) tears only its own line.
    """
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_bytes().split(b"\n")
    rows = []
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line.decode("utf-8")))
        except ValueError as err:  # UnicodeDecodeError or JSONDecodeError
            if i == last:
                log.warning(
                    "%s: dropping a torn last line (%d bytes; an interrupted write), "
                    "it will be made again",
                    path,
                    len(line),
                )
                break
            what = (
                f"UTF-8 ({err.reason})"
                if isinstance(err, UnicodeDecodeError)
                else f"JSON ({err.msg})"
            )
            raise RecordsError(
                f"{path}, line {i + 1}: not valid {what}; the file is corrupt "
                f"before its last line, so steerlib will not guess: repair or delete it"
            ) from err
        row = rows[-1]
        missing = (
            [k for k in required if k not in row] if isinstance(row, dict) else None
        )
        if missing is None or missing:
            shown = line.decode("utf-8")
            raise RecordsError(
                f"{path}, line {i + 1}: not a record "
                f"({shown[:60]}{'...' if len(shown) > 60 else ''}"
                f"{f'; missing {missing}' if missing else '; not a JSON object'}): "
                "each line holds an "
                f"object with {', '.join(required) or 'fields'}; repair or delete the "
                "line"
            )
    return rows


def _drop_torn_tail(path: Path) -> None:
    """Before appending: cut a last line that has no newline (a torn write), so the next
    line does not glue onto it. A complete object without its newline gets one."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        start = data.rfind(b"\n") + 1
        try:
            json.loads(data[start:].decode("utf-8"))
            f.write(b"\n")
        except ValueError:
            log.warning(
                "%s: dropping a torn last line (%d bytes; an interrupted write)",
                path,
                len(data) - start,
            )
            f.truncate(start)


def append_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Append one line per object, each flushed to the OS as it is written.

    Call it holding ``lock(path)`` when another process may append to the same file.
    """
    path = Path(path)
    with storage_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(path)
        with open(path, "a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Atomically replace ``path`` by these rows."""
    return write_text(
        path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    )


__all__ = [
    "atomic_path",
    "atomic_folder",
    "write_text",
    "save_safetensors",
    "lock",
    "build_once",
    "read_jsonl",
    "append_jsonl",
    "write_jsonl",
    "storage_errors",
]
