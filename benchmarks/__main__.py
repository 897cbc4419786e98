"""``python -m benchmarks [--quick] [--model tiny|embedded] [--out RESULTS.md]``.

Prints every figure and ratio, and ends with exactly one ``goals met: K/N`` line.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from steerlib.model.backbone import load_backbone

from .core import FULL, QUICK, render_markdown, render_text
from .suite import header, run_suite


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
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.getLogger("transformers").setLevel(
        logging.ERROR
    )  # generation-flag chatter from HF generate
    sizes = QUICK if args.quick else FULL
    bb = load_backbone(args.model)
    sections = run_suite(bb, sizes, model=args.model)
    head = header(bb, sizes, args.quick)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(render_markdown(sections, head))
    print(render_text(sections, head))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
