"""``--workers N``: a command run by N processes, started by torch's own launcher.

On a CPU a process of one thread reaches the per-core rate and threads do not
(``steerlib.cores``), so the commands that do many generations or training steps run as
one process per usable core by default: the same command, started N times by
torchrun's elastic agent (``torch.distributed.run``, standalone, gloo), one thread each.
The processes then share the work as under a ``torchrun`` the user types
(``steerlib.distributed``): each generates its share of the answers and takes its share
of every training batch, rank 0 writes every file, so records, tokens and caches are
those of one process. On a GPU the default is one process (the GPU does the work).

* ``--workers 1`` runs the command in this process, as before.
* Already under ``torchrun`` (``WORLD_SIZE`` set): the command runs in the processes
  torchrun started; no process starts more.
* A worker that fails ends the run: the agent stops the others, and the run ends with
  one line, the worker's own error (bad input: exit code 2) or what happened to it.
  Everything written so far is kept, and the same command resumes from it.

A CLI command opts in with one line, ``add_workers_argument(parser)``; ``cli.main``
does the rest (``workers_wanted``, ``run_workers``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence

from steerlib.cores import usable_cores
from steerlib.errors import ConfigError

log = logging.getLogger("steerlib")

WORKERS = "STEERLIB_WORKERS"
"""An environment variable that sets the default of ``--workers`` (e.g. 1: every
command in its own process, as before)."""
LAUNCHED = "STEERLIB_LAUNCHED"
"""Set in the environment of the workers ``run_workers`` starts (to their number)."""
USER_ERROR = 2
"""A worker's exit code for an error it explained (``cli.run.USER_ERRORS``)."""


def default_workers() -> int:
    """``$STEERLIB_WORKERS`` when set; else one process per usable core on a CPU, one
    on a machine with a CUDA GPU."""
    import torch

    if os.environ.get(WORKERS):
        try:
            return _count(os.environ[WORKERS])
        except argparse.ArgumentTypeError as err:
            raise ConfigError(f"${WORKERS}: {err}") from None
    return 1 if torch.cuda.is_available() else usable_cores()


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of processes: give a whole number >= 1"
        )
    return n


def add_workers_argument(parser: argparse.ArgumentParser) -> None:
    """Give a command ``--workers N`` (the one line a command needs to opt in)."""
    parser.add_argument(
        "--workers",
        type=_count,
        default=None,
        metavar="N",
        help="processes that share the work, one thread each (default: "
        "$STEERLIB_WORKERS, "
        "else one per usable core on a CPU, 1 on a GPU; 1: this process alone)",
    )


def under_torchrun() -> bool:
    """True in a process that torchrun (or ``run_workers``) started."""
    return "WORLD_SIZE" in os.environ


def workers_wanted(args: argparse.Namespace) -> int:
    """How many processes should run the command of ``args``: 1 for a command without
    ``--workers`` and inside processes torchrun started (which are the workers)."""
    if not hasattr(args, "workers"):
        return 1
    if under_torchrun():
        if args.workers not in (None, 1) and LAUNCHED not in os.environ:
            log.warning(
                "--workers %d ignored: this is one of the %s processes "
                "torchrun started",
                args.workers,
                os.environ["WORLD_SIZE"],
            )
        return 1
    return default_workers() if args.workers is None else args.workers


@contextlib.contextmanager
def _worker_environment(n: int) -> Iterator[None]:
    """This process's environment, which the workers inherit, while they run: one
    thread each unless the user set ``OMP_NUM_THREADS``, and the ``LAUNCHED`` mark."""
    saved = dict(os.environ)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ[LAUNCHED] = str(n)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_workers(n: int, python_args: Sequence[str]) -> int:
    """Run ``python <python_args>`` as ``n`` processes of one process group (torchrun
    standalone: a rendezvous on a free local port, no restarts); returns the exit code.

    A worker's failure ends the run with what ``failure_report`` makes of it.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("torch.distributed.elastic", "torch.distributed.run")):
            # the agent's own account of a failure: failure_report replaces it
            logging.getLogger(name).setLevel(logging.CRITICAL)
    argv = ["--standalone", f"--nproc-per-node={n}", "--max-restarts=0", *python_args]
    log.info("%d workers of one thread each (--workers)", n)
    try:
        with _worker_environment(n):
            run(parse_args(argv))
    except ChildFailedError as failed:
        code, report = failure_report(failed, n)
        print(report, file=sys.stderr)
        return code
    except SignalException as stopped:  # Ctrl-C or a kill of this process
        print(
            f"error: stopped by {stopped.sigval.name}; what the workers wrote is kept: "
            f"run the same command again to resume",
            file=sys.stderr,
        )
        return 128 + int(stopped.sigval)
    return 0


RESUME = "what they wrote is kept: run the same command again to resume"


def failure_report(failed, n: int) -> tuple[int, str]:
    """The exit code and what ends a run whose worker failed, the cause first:

    * a worker killed by a signal (``kill -9``, the kernel out of memory): one line
      naming it, exit code 2 (the others then fail to reach it, and the agent stops
      them with SIGTERM: consequences);
    * an error a worker explained (``record_worker_error``, e.g. bad input, which every
      worker meets): that line, once, exit code 2;
    * else a bug: the traceback each failed worker recorded
      (``record_worker_failure``), then one line, exit code 1.
    """
    failures = sorted(failed.failures.items())
    stopped = [(r, f) for r, f in failures if f.exitcode == -signal.SIGTERM]
    failures = [(r, f) for r, f in failures if f.exitcode != -signal.SIGTERM]
    for rank, f in failures or stopped:
        if f.exitcode < 0:
            name = (
                signal.Signals(-f.exitcode).name
                if -f.exitcode in signal.valid_signals()
                else f"signal {-f.exitcode}"
            )
            return USER_ERROR, (
                f"error: worker {rank} of {n} was killed by {name}, so the others were "
                f"stopped; {RESUME}"
            )
    for _, f in failures:
        if f.exitcode == USER_ERROR and f.error_file_data.get("message"):
            return USER_ERROR, f"error: {_recorded(f)['message'].partition(': ')[2]}"
    tracebacks = [
        f"worker {rank}: {_recorded(f)['extraInfo']['py_callstack']}"
        for rank, f in failures
        if f.error_file_data.get("message")
    ]
    rank, first = failures[0]
    return 1, "\n".join(
        [
            *tracebacks,
            (
                f"error: worker {rank} of {n} ended with exit code {first.exitcode}, "
                f"so the others were stopped; {RESUME}"
            ),
        ]
    )


def _recorded(failure) -> dict:
    """What a worker recorded with ``ErrorHandler.record_exception``: its message and
    ``extraInfo`` (the traceback, the time)."""
    return failure.error_file_data["message"]


def _in_worker() -> bool:
    return LAUNCHED in os.environ and "TORCHELASTIC_ERROR_FILE" in os.environ


def record_worker_error(line: str) -> bool:
    """In a worker ``run_workers`` started: keep the one-line error ``line`` for the
    launcher (torch elastic's error file) instead of printing it in every worker;
    returns False elsewhere (the caller prints it)."""
    if not _in_worker():
        return False
    from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

    class WorkerError(Exception):
        pass

    ErrorHandler().record_exception(WorkerError(line))
    return True


def record_worker_failure(err: BaseException) -> bool:
    """In a worker ``run_workers`` started, inside ``except``: keep ``err`` and its
    traceback for the launcher, which shows it unless another worker's death caused
    it (a peer that stops answering fails every collective); False elsewhere (the
    caller prints it)."""
    if not _in_worker():
        return False
    from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

    ErrorHandler().record_exception(err)
    return True
