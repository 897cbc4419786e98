"""``python -m benchmarks [--quick] [--model tiny|embedded] [--out RESULTS.md]``.

Prints every figure and ratio, and ends with exactly one ``goals met: K/N`` line.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from steerlib.cores import threads_chosen_by_user, torch_default_threads
from steerlib.launch import default_workers
from steerlib.model.backbone import load_backbone

from .core import FULL, QUICK, render_markdown, render_text
from .generation import threads
from .suite import STEPS, header, run_suite


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks", description="steerlib speed and memory benchmarks."
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="shorter answers, fewer new tokens and repeats; the end-to-end workload "
        "trains with "
        "the smoke preset's settings",
    )
    p.add_argument(
        "--model",
        choices=["tiny", "embedded"],
        default="embedded",
        help="embedded SmolLM2-135M (default) or the tiny random test model (seconds)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="also write the report as markdown here"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes of one thread that generation, the few-rows score and "
        "the end-to-end workload also run in (default: --workers' default, one per "
        "usable core on a CPU; 1: this process only)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        choices=STEPS,
        default=STEPS,
        metavar="STEP",
        help=f"run only these benchmarks (of: {', '.join(STEPS)}; default: all)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="this process's torch threads, the single-process side of every ratio "
        "(default: $OMP_NUM_THREADS, else torch's own default, one per physical core: "
        "the figures before steerlib chose one thread)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.getLogger("transformers").setLevel(
        logging.ERROR
    )  # generation-flag chatter from HF generate
    sizes = QUICK if args.quick else FULL
    here = torch.get_num_threads()
    if args.threads is not None or not threads_chosen_by_user(False):
        here = args.threads or torch_default_threads()
    workers = default_workers() if args.workers is None else args.workers
    bb = load_backbone(args.model)
    with threads(here):
        sections = run_suite(
            bb, sizes, model=args.model, workers=workers, only=tuple(args.only)
        )
        head = header(bb, sizes, args.quick, workers)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(render_markdown(sections, head))
    print(render_text(sections, head))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
