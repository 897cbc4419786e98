"""The exceptions steerlib raises on purpose: one ``SteerlibError`` family.

Each says what was wrong and what is allowed, in one line, so the CLI can print it as
``error: ...`` (exit code 2) without a traceback. Each also subclasses the built-in
exception a caller would have caught before (``ValueError``, ``OSError``, ...), so
``except ValueError`` around steerlib keeps working.
"""

from __future__ import annotations


class SteerlibError(Exception):
    """Base class: a refusal or failure steerlib explains itself."""


class ConfigError(SteerlibError, ValueError):
    """A config value outside what it allows (a zero batch size, a non-finite lr,
    ...)."""


class WrongTypeError(SteerlibError, TypeError):
    """An argument of the wrong kind (``register`` given something that is not a
    ``Behavior``, a checker that is not a function); the message says what is
    expected."""


class UnknownNameError(SteerlibError, KeyError):
    """A behavior, token or baseline name that is not known; the message lists the
    known ones."""

    def __str__(self) -> str:  # the message as written, without KeyError's quotes
        return str(self.args[0]) if self.args else ""


class TooFewTargetsError(SteerlibError, RuntimeError):
    """Fewer teacher targets survived the verifier (or the transform) than a token
    needs: nothing is trained; the study leaves that table cell empty."""


class PromptError(SteerlibError, ValueError):
    """A prompt steerlib will not run: unknown or conflicting tags, too long for the
    model."""


class TokenFileError(SteerlibError, ValueError):
    """A steering-token file that is not one: truncated, bad metadata, missing or bad
    tensors, or made for another model."""


class NonFiniteVectorError(SteerlibError, ValueError):
    """A steering vector holding NaN or inf: it would steer to garbage, so it is never
    kept."""


class RecordsError(SteerlibError, ValueError):
    """A records or cache file that cannot be trusted: corrupt lines, conflicting
    duplicates."""


class VerifierError(SteerlibError, TypeError):
    """A behavior's checker answered something other than True or False: counting a None
    as a fail would lower a pass rate without a word."""


class ConcurrentRunError(SteerlibError, RuntimeError):
    """Another live process is writing the same file (a checkpoint has one writer)."""


class NonFiniteLossError(SteerlibError, FloatingPointError):
    """Training produced a NaN or infinite loss; nothing of that run is cached."""


class ModelNotFoundError(SteerlibError, FileNotFoundError):
    """A model that is neither a local folder or file nor a hub id available offline."""


class TokensNotFoundError(SteerlibError, FileNotFoundError):
    """Steering tokens that are neither a local folder or file nor a Hub repo that
    could be fetched (a mistyped folder, a malformed repo id, no network)."""


class UnsafeModelError(SteerlibError, ValueError):
    """A model whose weights steerlib will not read: pickle files
    (``pytorch_model.bin``), which can run code when loaded. steerlib reads safetensors
    weights only."""


class StorageError(SteerlibError, OSError):
    """A write failed (disk full, read-only, no permission); the message names the path.
    The artifact that was there before, if any, is intact."""


class ForeignFileError(SteerlibError, FileExistsError):
    """A file steerlib would replace but did not write (your own README.md in a token
    folder)."""


class CheckoutError(SteerlibError, ValueError):
    """An output path inside the project checkout that ``git status`` would show (a
    token file where git does not ignore it): a command leaves a clone clean."""


class HubCredentialsError(SteerlibError, PermissionError):
    """A Hub upload without a token: none passed, none in HF_TOKEN, none stored by a
    login."""


__all__ = [
    "SteerlibError",
    "ConfigError",
    "WrongTypeError",
    "PromptError",
    "TokenFileError",
    "RecordsError",
    "NonFiniteVectorError",
    "NonFiniteLossError",
    "VerifierError",
    "ConcurrentRunError",
    "ModelNotFoundError",
    "StorageError",
    "UnsafeModelError",
    "TokensNotFoundError",
    "UnknownNameError",
    "TooFewTargetsError",
    "ForeignFileError",
    "CheckoutError",
    "HubCredentialsError",
]


class DependencyError(SteerlibError, ImportError):
    """An installed library older than steerlib needs (the message names the version
    found, the version needed and the pip command)."""


def one_line(err: BaseException) -> str:
    """The error's message on one line (its type's name when it has none): how the
    CLI prints an error it explains, ``error: ...``."""
    return " ".join(str(err).split()) or type(err).__name__
