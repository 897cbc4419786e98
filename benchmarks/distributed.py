"""``python -m benchmarks.distributed [--model embedded|tiny] [--steps N] [--procs
2]``: one process against several (torchrun, gloo) on this machine's CPUs, in the same
run.

Each configuration is launched with torchrun: one process with ``OMP_NUM_THREADS`` =
cores, P processes with cores/P threads each, and one process with cores/P threads (what
each of the P processes has). All do the same work: ``--steps`` stage-1 steps on a
global batch of 8 (after one warm-up step), and greedy answers to 32 prompts (32 new
tokens, batches of 16). Prints seconds per configuration and the speed-up ratios. On a
machine shared with other work, threads that wait for each other cost more than
processes do.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

BATCH, PROMPTS, NEW_TOKENS = 8, 32, 32


def worker(model: str, steps: int) -> dict:
    """Run under torchrun: time training steps and generation; rank 0 returns the
    timings."""
    from steerlib import distributed
    from steerlib.config import TrainConfig
    from steerlib.model.backbone import load_backbone
    from steerlib.model.generate import SteeredModel
    from steerlib.model.template import render
    from steerlib.tasks import prompts as P
    from steerlib.train.loss import Example, train_vectors

    distributed.init()
    bb = load_backbone(model, device="cpu")
    questions = P.load("train")[:BATCH]
    answer = tuple(
        bb.tokenizer(
            " The answer depends on the light, the air and the time of day; most of "
            "the "
            "year it stays the same, but in winter the sky looks paler.",
            add_special_tokens=False,
        )["input_ids"]
    )
    examples = [
        Example(render(bb, q, (), "Answer in French."), render(bb, q, ("v",)), answer)
        for q in questions
    ]
    vector = torch.zeros(bb.hidden_size)

    def timed(fn) -> float:
        distributed.barrier()
        start = time.perf_counter()
        fn()
        distributed.barrier()
        return time.perf_counter() - start

    train_vectors(
        bb,
        {"v": vector},
        examples,
        TrainConfig(steps=1, batch_size=BATCH),
        progress=False,
    )  # warm-up
    train_s = timed(
        lambda: train_vectors(
            bb,
            {"v": vector},
            examples,
            TrainConfig(steps=steps, batch_size=BATCH),
            progress=False,
        )
    )
    sm = SteeredModel(bb)
    prompts = P.load("test")[:PROMPTS]
    gen_s = timed(
        lambda: distributed.map_shards(
            lambda part: sm.generate_ids(
                part, max_new_tokens=NEW_TOKENS, batch_size=16, progress=False
            ),
            prompts,
        )
    )
    return {
        "processes": distributed.world_size(),
        "threads": torch.get_num_threads(),
        "train_s": train_s,
        "gen_s": gen_s,
    }


def launch(procs: int, threads: int, model: str, steps: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={procs}",
        "-m",
        "benchmarks.distributed",
        "--worker",
        "--model",
        model,
        "--steps",
        str(steps),
    ]
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("{")))


def main() -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.distributed", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--model", default="embedded", help="embedded (default) or tiny")
    p.add_argument("--steps", type=int, default=4, help="timed stage-1 steps")
    p.add_argument("--procs", type=int, default=2, help="processes to compare with one")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        result = worker(args.model, args.steps)
        if int(os.environ.get("RANK", "0")) == 0:
            print(json.dumps(result))
        return 0
    cores = os.cpu_count() or 1
    share = max(1, cores // args.procs)
    one = launch(1, cores, args.model, args.steps)
    many = launch(args.procs, share, args.model, args.steps)
    thin = launch(1, share, args.model, args.steps)
    print(
        f"{args.model} model, {cores} cores, {args.steps} stage-1 steps of {BATCH}, "
        f"{PROMPTS} prompts x "
        f"{NEW_TOKENS} new tokens"
    )
    for r in (one, many, thin):
        print(
            f"  {r['processes']} process(es) x {r['threads']} thread(s): stage 1 "
            f"{r['train_s']:.1f} s, "
            f"generation {r['gen_s']:.1f} s"
        )
    for base in (one, thin):
        print(
            f"  {args.procs} processes over 1 x {base['threads']} thread(s): stage 1 "
            f"x{base['train_s'] / many['train_s']:.2f}, generation "
            f"x{base['gen_s'] / many['gen_s']:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
