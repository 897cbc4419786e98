"""Several processes, one model each: data parallelism on ``torch.distributed``.

``torchrun --nproc_per_node N -m steerlib ...`` starts N copies of the same program;
each loads the frozen model on its own device. Three rules make N processes compute
what one process computes:

* **Training.** Each rank takes its share of every global batch (``shard``). Its loss is
  weighted by its share of the batch's answer tokens, and the gradients of the trainable
  tensors are summed over ranks (``all_reduce_grads``): every rank then holds the
  gradient of the whole batch's mean loss and takes the same optimiser step a single
  process would.
* **Generation.** Each rank answers its share of the jobs (``map_shards``); every rank
  gets all the answers back in job order, and rank 0 appends them to the cache or
  records file, which therefore equals a single process's. On CPUs, a few jobs are
  answered by rank 0 with every rank's threads instead (``solo``).
* **Files.** Rank 0 alone writes checkpoints, caches and results (``main_only``); the
  others wait for it, so nobody reads a file before it is complete.

The backend is NCCL on CUDA and gloo on CPUs. Outside torchrun (or with one process)
every function here is the identity, so single-process code paths are unchanged.
``--workers`` (``steerlib.launch``) starts the processes for the user.

Why torch.distributed and not accelerate (installed for transformers' GGUF loading):
its ``PartialState``, ``split_between_processes`` and ``gather_object`` would replace
``init``, ``shard`` and ``gather`` (20 lines), but ``PartialState()`` on a CPU-only
torch under torchrun reports one process (``DistributedType.NO``: every rank would do
all the work and write every file) unless told ``cpu=True``, which on a machine with a
GPU means CPU; in its multi-CPU mode it sets torch's threads itself (physical cores /
processes, against ``steerlib.cores``), may pick MPI over gloo and rewrites ``RANK``
and ``WORLD_SIZE``; and ``import accelerate.state`` takes seconds. The rest of this
module (one writer under a file lock, the flat gradient all-reduce with absent
gradients as zeros) has no counterpart there.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import torch
import torch.distributed as dist

from steerlib.cores import usable_cores

log = logging.getLogger("steerlib")
T = TypeVar("T")
R = TypeVar("R")


def init() -> None:
    """Join the process group that torchrun describes in the environment (once).

    Does nothing when not launched by torchrun with more than one process.
    """
    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(
            int(os.environ.get("LOCAL_RANK", "0"))
        )  # "cuda" now means this rank's GPU
    dist.init_process_group(backend)
    log.info("rank %d of %d (%s)", rank(), world_size(), backend)


def active() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    return rank() == 0


def shard(items: Sequence[T]) -> list[T]:
    """This rank's contiguous share of ``items`` (sizes differ by at most one; may be
    empty)."""
    n, r, w = len(items), rank(), world_size()
    return list(items[r * n // w : (r + 1) * n // w])


def gather(local: Sequence[T]) -> list[T]:
    """Every rank's ``shard`` result, concatenated in rank order: the inverse of
    ``shard``."""
    if not active():
        return list(local)
    parts: list[list[T] | None] = [None] * world_size()
    dist.all_gather_object(parts, list(local))
    return [x for part in parts for x in part]


FEW_ROWS = 16
"""Fewer items than this per rank are answered by one process (``map_shards``). On the
embedded model on 2 cores (``python -m benchmarks``, issue 37): a validation score of 24
questions, 12 a rank, took 9.75 s split over two one-thread workers and 6.13 s answered
by rank 0 with both threads; target generation, 32 rows a rank, ran 1.14-1.44x faster
split over the workers than in one process of two threads."""


def map_shards(fn: Callable[[list[T]], Sequence[R]], items: Sequence[T]) -> list[R]:
    """``fn(items)``, computed by all ranks together: each runs ``fn`` on its shard and
    every rank gets all the results in input order. ``fn`` must map a list to a list of
    the same length (a batch of prompts to their answers).

    On CPUs, fewer than ``FEW_ROWS`` items per rank are answered by rank 0 alone with
    every local rank's threads (``solo``): a decode step of a few rows is paced by
    reading the weights, and two processes each read all of them where two threads of
    one process share the reading (figures: ``FEW_ROWS``).
    """
    if active() and _on_cpu() and len(items) < world_size() * FEW_ROWS:
        return solo(lambda: list(fn(list(items))))
    return gather(fn(shard(items)))


def solo(fn: Callable[[], R]) -> R:
    """``fn()`` computed by rank 0 with the threads of every rank on its machine while
    the others wait, its result sent to all: for work too small to split well (see
    ``map_shards``). The waiting ranks block in the broadcast without spinning, so rank
    0 has their cores. Rank 0's thread count is restored afterwards."""
    if not active():
        return fn()
    result: list[R | None] = [None]
    if is_main():
        own = torch.get_num_threads()
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size()))
        torch.set_num_threads(min(own * local, usable_cores()))
        try:
            result[0] = fn()
        finally:
            torch.set_num_threads(own)
    dist.broadcast_object_list(result, src=0)
    return result[0]


def all_reduce_sum(value: float) -> float:
    """The sum of ``value`` over ranks."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_device())
    dist.all_reduce(t)
    return t.item()


def all_reduce_grads(params: Sequence[torch.Tensor]) -> None:
    """Replace each tensor's gradient by its sum over ranks (a rank without a gradient
    adds 0).

    One flat all-reduce for all tensors: a token is one vector, a LoRA adapter a few
    dozen small matrices, and many small messages would cost more than the data.
    """
    if not active():
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads):
        p.grad = flat[offset : offset + g.numel()].view_as(p).to(p.dtype)
        offset += g.numel()


def barrier() -> None:
    if active():
        dist.barrier()


@contextlib.contextmanager
def main_lock(path: str | os.PathLike) -> Iterator[None]:
    """Rank 0 holds ``path``'s file lock (another run on the same cache waits for it);
    the other ranks enter once it holds it, so every rank then reads the same file,
    which only rank 0 writes (``main_only``) until the block ends."""
    from steerlib.storage import lock

    with lock(path) if is_main() else contextlib.nullcontext():
        barrier()
        yield


@contextlib.contextmanager
def sole_writer(path: str | os.PathLike | None) -> Iterator[None]:
    """Rank 0 holds ``path``'s lock for the whole block, without waiting for it; when
    another live process holds it, every rank raises ``ConcurrentRunError`` naming the
    file.

    A checkpoint has one writer: torchrun starts each worker in a session of its own,
    so a ``kill -9`` of the launcher leaves them running (stop a run with Ctrl-C or a
    plain ``kill`` of the launcher, which passes it on), and a second run started
    meanwhile would write the same checkpoint in turns with them. Nothing when ``path``
    is None.
    """
    from filelock import Timeout

    from steerlib.errors import ConcurrentRunError
    from steerlib.storage import lock

    if path is None:
        yield
        return
    held = lock(path, timeout=0) if is_main() else None
    busy = 0.0
    if held is not None:
        try:
            held.acquire()
        except Timeout:
            busy = 1.0
    if all_reduce_sum(busy):
        holder = held.lock_file if held is not None else "rank 0's lock"
        raise ConcurrentRunError(
            f"another live process is writing {path} (it holds {holder}): a run still "
            "going, e.g. the workers of a torchrun whose launcher was killed with -9, "
            "which run "
            "on (find them: ps -eo pid,args | grep steerlib). Stop it or wait for it, "
            "then "
            f"run again"
        )
    try:
        yield
    finally:
        if held is not None:
            held.release()


def main_only(write: Callable[..., R], *args, **kwargs) -> R | None:
    """Run ``write`` on rank 0 only, then let every rank continue once it is done.

    Every rank must call this at the same point (as all ranks run the same program);
    the others get None.
    """
    result = write(*args, **kwargs) if is_main() else None
    barrier()
    return result


def _on_cpu() -> bool:
    """True when the ranks compute on CPUs (gloo), where they share one machine's cores;
    under NCCL each rank has a GPU of its own."""
    return dist.get_backend() != "nccl"


def _device() -> torch.device:
    return (
        torch.device("cpu")
        if _on_cpu()
        else torch.device("cuda", torch.cuda.current_device())
    )
