"""The benchmarks' work done by ``--workers`` processes, as a study command does it.

``run(kind, workers, ...)`` starts ``python -m benchmarks.workers KIND ...`` through
``steerlib.launch.run_workers`` (torch's launcher, gloo, one thread each), the path
``python -m steerlib evaluate`` and the other study commands take. Each worker loads the
model; rank 0 writes what it measured as JSON, which ``run`` returns with the wall time
of the whole launch (starting the processes and loading the model included).

* ``generation``: the generation benchmark's requests (``generation.workload``), each
  worker answering its share (``distributed.map_shards``, as ``evaluate`` does), timed
  between barriers after a warm-up batch;
* ``end-to-end``: the end-to-end workload (``end_to_end.timed_parts``): targets and both
  trainings shared as under torchrun, then its generations shared;
* ``few-rows``: one validation score split over the workers and as steerlib runs it
  (``few_rows.split_and_steerlib``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch

RESULT = "result.json"


def run(
    kind: str, workers: int, model: str, *, env: dict | None = None, **params
) -> tuple[dict, float]:
    """Rank 0's result of ``kind`` run by ``workers`` processes, and the launch's wall
    seconds. ``params`` become ``--name value`` options; ``env``: variables the workers
    get (set in this process while they run)."""
    from unittest import mock

    from steerlib.launch import run_workers

    with tempfile.TemporaryDirectory(prefix="steerlib-workers-") as folder:
        out = Path(folder) / RESULT
        args = ["-m", "benchmarks.workers", kind, "--model", model, "--out", str(out)]
        for name, value in params.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        start = time.perf_counter()
        with mock.patch.dict("os.environ", env or {}):
            code = run_workers(workers, args)
        wall = time.perf_counter() - start
        if code != 0:
            raise RuntimeError(
                f"the {workers} workers of the {kind} benchmark failed "
                f"(exit code {code})"
            )
        return json.loads(out.read_text()), wall


def _generation(args) -> dict:
    from steerlib import distributed
    from steerlib.model.backbone import load_backbone

    from .generation import steered_model, workload

    sm = steered_model(load_backbone(args.model))
    reqs = workload(args.prompts)
    sm.generate_ids(  # warm-up, as in this process
        reqs[: args.batch], max_new_tokens=8, batch_size=args.batch, progress=False
    )
    distributed.barrier()
    start = time.perf_counter()
    answers = distributed.map_shards(
        lambda part: sm.generate_ids(
            part, max_new_tokens=args.new_tokens, batch_size=args.batch, progress=False
        ),
        reqs,
    )
    distributed.barrier()
    return {
        "seconds": time.perf_counter() - start,
        "answers": answers,
        "threads": torch.get_num_threads(),
    }


def _end_to_end(args) -> dict:
    from steerlib.model.backbone import load_backbone
    from steerlib.presets import presets

    from .end_to_end import partner_tokens, timed_parts

    bb = load_backbone(args.model)
    w = timed_parts(
        bb,
        presets.get(args.training),
        args.prompts,
        args.new_tokens,
        partner_tokens(bb),
    )
    return dataclasses.asdict(w)


def _few_rows(args) -> dict:
    from steerlib.model.backbone import load_backbone

    from .few_rows import split_and_steerlib

    return split_and_steerlib(
        load_backbone(args.model),
        args.prompts,
        args.new_tokens,
        args.repeats,
        args.warmup,
    )


KINDS = {
    "generation": _generation,
    "end-to-end": _end_to_end,
    "few-rows": _few_rows,
}


def main(argv: list[str] | None = None) -> int:
    from steerlib import distributed
    from steerlib.storage import write_text

    p = argparse.ArgumentParser(prog="python -m benchmarks.workers")
    p.add_argument("kind", choices=list(KINDS))
    p.add_argument("--model", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--prompts", type=int, required=True)
    p.add_argument("--new-tokens", type=int, required=True)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--training", default="smoke")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--warmup", type=int, default=1)
    args = p.parse_args(argv)
    distributed.init()
    result = KINDS[args.kind](args)
    distributed.main_only(write_text, args.out, json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
