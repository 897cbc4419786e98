"""How much of the CPU steerlib uses: one torch thread per process, a process per core.

``import steerlib`` calls ``apply_thread_default`` once: unless the user chose torch's
intra-op threads (``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` in the environment, or
``torch.set_num_threads`` before the import), it sets them to ``default_threads()``,
which is 1. Any later ``torch.set_num_threads(n)`` overrides it; the commands that do
many generations or training steps use the other cores through processes instead
(``--workers``, ``steerlib.launch``, a worker per ``usable_cores()``).

Why one thread and not torch's default (one per physical core), from the figures of a
2-core machine (issue 37, embedded model, 128 prompts x 64 new tokens):

* Threads of one process wait for each other at every operation, so a thread the
  scheduler takes off its core stalls all of them. Beside one busy process, two
  threads collapse: the quick start took 180-195 s with two threads and 35 s with one,
  ``python -m steerlib generate`` 221 s against 10 s. One thread has no partner to
  wait for, so whatever else runs costs it at most its share of the machine.
* Processes of one thread each reach the per-core rate times the cores, threads do
  not: one process of two threads 44.0 s, one of one thread 77.6 s, two processes of
  one thread 36.0 s (2.15x one thread, 1.22x two threads).

So a thread count above one buys at most 1.76x on an idle machine (what ``--workers``
gets back, and more, with processes) and costs 5-20x on a busy one: one thread is never
much worse than the best choice, torch's default sometimes is. The candidates are
timed side by side by ``python -m benchmarks.threads``.
"""

from __future__ import annotations

import os
import sys

TORCH_IMPORTED_FIRST = "torch" in sys.modules
"""Whether torch was imported before steerlib (this module is the first steerlib
imports), so that a ``torch.set_num_threads`` call can have come before."""
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables torch reads for its intra-op thread count (at its import)."""


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (``taskset``, a container's
    cpuset), which ``os.cpu_count()`` ignores; ``os.cpu_count()`` where there is
    none."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def torch_default_threads() -> int:
    """The intra-op thread count torch starts with when no variable sets it: one per
    physical core (what torch reads through cpuinfo), else one per logical CPU."""
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def default_threads() -> int:
    """steerlib's intra-op thread count for a process: 1 (the module docstring says
    why)."""
    return 1


def threads_chosen_by_user(torch_was_imported: bool) -> bool:
    """Whether the user chose torch's thread count: a variable torch reads is set, or
    torch, imported before steerlib, runs a count other than its default (a
    ``torch.set_num_threads`` call; one equal to the default cannot be told apart)."""
    if any(os.environ.get(name) for name in THREAD_VARIABLES):
        return True
    if not torch_was_imported:
        return False
    import torch

    return torch.get_num_threads() != torch_default_threads()


def apply_thread_default(torch_was_imported: bool = TORCH_IMPORTED_FIRST) -> int | None:
    """Set torch's intra-op threads to ``default_threads()`` unless the user chose them;
    returns the count set, or None when the user's stands (``import steerlib`` calls
    it)."""
    if threads_chosen_by_user(torch_was_imported):
        return None
    import torch

    torch.set_num_threads(default_threads())
    return default_threads()
