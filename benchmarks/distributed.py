"""``python -m benchmarks.distributed [--model embedded|tiny] [--steps N] [--procs 2]``: one
process against several (torchrun, gloo) on this machine's CPUs, in the same run.

Each configuration is launched with torchrun and gets all the cores: one process with
``OMP_NUM_THREADS`` = cores, or P processes with cores/P threads each. Both do the same
work: ``--steps`` stage-1 steps on a global batch of 8 (after one warm-up step), and
greedy answers to 32 prompts (32 new tokens, batches of 16). Prints seconds per
configuration and the speed-up ratio (one process's time / P processes' time).
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
    """Run under torchrun: time training steps and generation; rank 0 returns the timings."""
    from steerlib import distributed
    from steerlib import prompts as P
    from steerlib.backbone import load_backbone
    from steerlib.config import TrainConfig
    from steerlib.distill import Example, train_vectors
    from steerlib.generate import SteeredModel
    from steerlib.template import render

    distributed.init()
    bb = load_backbone(model, device="cpu")
    questions = P.load("train")[:BATCH]
    answer = tuple(bb.tokenizer(" The answer depends on the light, the air and the time of day; most of the "
                                "year it stays the same, but in winter the sky looks paler.",
                                add_special_tokens=False)["input_ids"])
    examples = [Example(render(bb, q, (), "Answer in French."), render(bb, q, ("v",)), answer) for q in questions]
    vector = torch.zeros(bb.hidden_size)

    def timed(fn) -> float:
        distributed.barrier()
        start = time.perf_counter()
        fn()
        distributed.barrier()
        return time.perf_counter() - start

    train_vectors(bb, {"v": vector}, examples, TrainConfig(steps=1, batch_size=BATCH), progress=False)  # warm-up
    train_s = timed(lambda: train_vectors(bb, {"v": vector}, examples, TrainConfig(steps=steps, batch_size=BATCH),
                                          progress=False))
    sm = SteeredModel(bb)
    prompts = P.load("test")[:PROMPTS]
    gen_s = timed(lambda: distributed.map_shards(
        lambda part: sm.generate_ids(part, max_new_tokens=NEW_TOKENS, batch_size=16, progress=False), prompts))
    return {"processes": distributed.world_size(), "threads": torch.get_num_threads(), "train_s": train_s,
            "gen_s": gen_s}


def launch(procs: int, cores: int, model: str, steps: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // procs))}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
           "-m", "benchmarks.distributed", "--worker", "--model", model, "--steps", str(steps)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("{")))


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.distributed", description=__doc__.split("\n\n")[0])
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
    one = launch(1, cores, args.model, args.steps)
    many = launch(args.procs, cores, args.model, args.steps)
    print(f"{args.model} model, {cores} cores, {args.steps} stage-1 steps of {BATCH}, {PROMPTS} prompts x "
          f"{NEW_TOKENS} new tokens")
    for r in (one, many):
        print(f"  {r['processes']} process(es) x {r['threads']} thread(s): stage 1 {r['train_s']:.1f} s, "
              f"generation {r['gen_s']:.1f} s")
    print(f"  speed-up of {args.procs} processes over 1: stage 1 x{one['train_s'] / many['train_s']:.2f}, "
          f"generation x{one['gen_s'] / many['gen_s']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
