"""``python -m benchmarks.threads [--quick] [--repeats N] [--out FILE]``: the candidates
for torch's thread count, each in a fresh process, alone and beside one busy process.

The choice is ``steerlib.cores.default_threads`` (one thread per process); this is the
measurement that checks it against the alternatives, as a user meets them:

* **one thread**: steerlib's default, nothing set (``import steerlib`` chooses);
* **physical cores**: torch's own default (``OMP_NUM_THREADS`` = physical cores),
  what every process ran before steerlib chose;
* **physical cores, passive wait**: the same with ``OMP_WAIT_POLICY=PASSIVE``, so a
  thread that waits for the others sleeps instead of spinning on a core.

Workloads: the README's quick start (``quickstart.py``: load, one demo answer, an
evaluation of 20 answers) and ``python -m steerlib generate`` (one answer of 64 new
tokens), each timed from process start to exit (imports and model load included).
Scenarios: alone, and beside one busy process (a loop that never sleeps: one core
taken, like one training job). ``--quick`` runs the tiny model's ``generate`` instead
(seconds: a check of the script, not a measurement).

Goals (the issue's): the quick start beside a busy process takes at most twice its
time alone with nothing set, and the default is never much worse (at most 2x) than the
best candidate in any cell.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from steerlib.cores import THREAD_VARIABLES, torch_default_threads

from .core import Goal, Section, render_markdown, render_text

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = "one thread (steerlib's default, nothing set)"
SCENARIOS = ("alone", "beside a busy process")


def candidates() -> dict[str, dict[str, str]]:
    """Each candidate's environment variables (on top of none of the thread ones)."""
    cores = str(torch_default_threads())
    return {
        DEFAULT: {},
        f"physical cores ({cores}, torch's default)": {"OMP_NUM_THREADS": cores},
        f"physical cores ({cores}), passive wait": {
            "OMP_NUM_THREADS": cores,
            "OMP_WAIT_POLICY": "PASSIVE",
        },
    }


QUICK_START = [sys.executable, "quickstart.py"]
GENERATE = [
    sys.executable,
    "-m",
    "steerlib",
    "generate",
    "--prompt",
    "Why is the sky blue? <french>",
    "--max-new-tokens",
    "64",
]
TINY_GENERATE = [
    *GENERATE[:4],
    "--model",
    "tiny",
    "--tokens",
    "none",
    "--prompt",
    "Why is the sky blue?",
    "--max-new-tokens",
    "8",
]


def workloads(quick: bool) -> dict[str, list[str]]:
    if quick:
        return {"generate (tiny model)": TINY_GENERATE}
    return {"quick start": QUICK_START, "generate": GENERATE}


def environment(variables: dict[str, str]) -> dict[str, str]:
    """This process's environment without any thread setting, plus ``variables``."""
    unset = (*THREAD_VARIABLES, "OMP_WAIT_POLICY")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return {**env, "PYTHONPATH": str(ROOT), **variables}


def seconds(cmd: list[str], variables: dict[str, str]) -> float:
    """Wall time of ``cmd`` run from the repository root in a fresh process."""
    start = time.perf_counter()
    subprocess.run(
        cmd,
        cwd=ROOT,
        env=environment(variables),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


@contextlib.contextmanager
def busy_process() -> Iterator[subprocess.Popen]:
    """One process that keeps a core busy for as long as the block runs."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield busy
    finally:
        busy.kill()
        busy.wait()


@dataclass(frozen=True)
class Cell:
    workload: str
    scenario: str
    candidate: str
    seconds: float


def measure_all(quick: bool, repeats: int, log=sys.stderr) -> list[Cell]:
    """Every workload x scenario x candidate, the median of ``repeats`` runs; the
    candidates take turns within a repeat."""
    cells = []
    for scenario in SCENARIOS:
        with busy_process() if scenario != "alone" else contextlib.nullcontext():
            for name, cmd in workloads(quick).items():
                times: dict[str, list[float]] = {c: [] for c in candidates()}
                for _ in range(repeats):
                    for candidate, variables in candidates().items():
                        times[candidate].append(seconds(cmd, variables))
                        print(
                            f"[threads] {name}, {scenario}, {candidate}: "
                            f"{times[candidate][-1]:.1f} s",
                            file=log,
                            flush=True,
                        )
                cells += [
                    Cell(name, scenario, c, statistics.median(t))
                    for c, t in times.items()
                ]
    return cells


def report(cells: list[Cell]) -> Section:
    """Each cell's time and its ratio to the best candidate of its workload and
    scenario; the goals."""
    best = {}
    for c in cells:
        key = (c.workload, c.scenario)
        best[key] = min(best.get(key, c.seconds), c.seconds)
    figures = [
        (
            f"{c.workload}, {c.scenario}: {c.candidate}",
            f"{c.seconds:.1f} s "
            f"({c.seconds / best[c.workload, c.scenario]:.2f} x the best)",
        )
        for c in cells
    ]
    default = {
        (c.workload, c.scenario): c.seconds for c in cells if c.candidate == DEFAULT
    }
    worst = max(default[key] / best[key] for key in default)
    first = next(iter(dict.fromkeys(c.workload for c in cells)))
    busy_over_alone = default[first, SCENARIOS[1]] / default[first, SCENARIOS[0]]
    return Section(
        "Thread default: fresh processes, alone and beside one busy process",
        figures=figures,
        goals=[
            Goal(f"{first}, busy / alone, nothing set", busy_over_alone, "<=", 2.0),
            Goal("default / best candidate, worst cell", worst, "<=", 2.0),
        ],
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.threads", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--quick", action="store_true", help="the tiny model (seconds)")
    p.add_argument("--repeats", type=int, default=1, help="runs per cell (median)")
    p.add_argument("--out", type=Path, default=None, help="also write markdown here")
    args = p.parse_args(argv)
    section = report(measure_all(args.quick, args.repeats))
    head = [f"{torch_default_threads()} physical cores, {os.cpu_count()} logical CPUs"]
    if args.out is not None:
        args.out.write_text(render_markdown([section], head))
    print(render_text([section], head))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
