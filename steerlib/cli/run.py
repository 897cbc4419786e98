"""Running one command, ``main``: its processes, its errors and its exit code.

``main`` reads the command line, starts ``--workers`` processes or joins torchrun's,
runs the command and turns what went wrong into an exit code.

The exit code says whose fault an error is, so scripts can tell a bad input (2, one
line) from a bug in steerlib (1, the whole traceback).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback

from steerlib import distributed, launch
from steerlib.cli.parser import build_parser
from steerlib.errors import SteerlibError, one_line

USER_ERRORS = (SteerlibError, OSError)
"""Errors about the input or the machine, not a bug: one line and exit code 2."""


def main(argv: list[str] | None = None) -> int:
    """Run a command; returns the exit code.

    An error steerlib explains (a ``SteerlibError``: bad input, a refused file, a
    missing artifact) or one of the machine (an ``OSError``: disk full, no permission,
    a missing file) is one line on stderr, ``error: ...``, exit code 2; ``--debug``
    adds its traceback. Anything else is a bug: its full traceback, exit code 1.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S"
    )
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error, printed in one line (2)
        return done.code if isinstance(done.code, int) else 2
    try:
        workers = launch.workers_wanted(args)
        if workers > 1:  # the same command in that many processes, which run the rest
            return launch.run_workers(workers, ["-m", "steerlib", *argv])
        # under torchrun: join the other processes (a no-op otherwise)
        distributed.init()
        if not distributed.is_main():
            _quiet()
        args.fn(args)
    except USER_ERRORS as err:
        if getattr(args, "debug", False):
            traceback.print_exc()
        elif not launch.record_worker_error(one_line(err)):
            print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug: shown whole, never as one line
        if not launch.record_worker_failure(err):  # a worker's: the launcher shows it
            traceback.print_exc()
        return 1
    return 0


def _quiet() -> None:
    """In a process other than rank 0: no tables on stdout, no progress messages and no
    warnings, which rank 0 prints once (every rank reads the same caches and computes
    the same targets, so its warnings are rank 0's again); errors still show."""
    sys.stdout = open(os.devnull, "w")
    logging.getLogger("steerlib").setLevel(logging.ERROR)
