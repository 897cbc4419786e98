"""The benchmarks of issue 37: worker processes against one process, and the thread
default's candidates. Timings of the tiny model mean nothing: the tests check what
is compared and how the ratios are made."""

import contextlib
import dataclasses
import io
import time

import psutil
import pytest
import test_benchmarks

import benchmarks.e2e_workers as e2e_workers
import benchmarks.end_to_end as e2e
from benchmarks import render_text, run_suite, threads

TINY = dataclasses.replace(test_benchmarks.TINY, gen_prompts=4)
"""The benchmarks' tiny sizes, with a generation to share among two workers each."""
WORKER_GOALS = [
    "workers / one process (tok/s)",
    "workers / machine ceiling (1 thread x workers)",
    "workers' identical answers",
    "end to end, 2 workers x 1 thread / this process (speed)",
    "end to end, identical answers with workers",
    "few rows, steerlib's workers / split workers (time)",
]


def _workload(total_s: float, answers, training="smoke") -> e2e.Workload:
    third = total_s / 3
    phases = {"targets": third / 4, "validation": third / 4}
    return e2e.Workload(
        training,
        third,
        3,
        third,
        3,
        len(answers),
        4,
        64,
        third,
        10,
        1.0,
        answers,
        phases,
        phases,
    )


def test_workers_comparison_ratios():
    """Speed: this process's total / the workers' total; answers compared one by one."""
    section = e2e.Section("x")
    one = _workload(30.0, [[1, 2], [3], [4]])
    many = _workload(20.0, [[1, 2], [3], [5]])
    e2e_workers.workers_comparison(section, one, many, 2, 25.0)
    goals = {g.name: g for g in section.goals}
    assert goals[
        "end to end, 2 workers x 1 thread / this process (speed)"
    ].ratio == pytest.approx(1.5)
    assert goals["end to end, identical answers with workers"].ratio == pytest.approx(
        2 / 3
    )
    assert not goals["projected reproduce with workers / 7200 s"].measured  # smoke
    assert ("2 workers x 1 thread: identical answers", "2 of 3") in section.figures
    assert (
        "2 workers x 1 thread: phases of stage 1",
        "targets 1.7 s, validation 1.7 s, steps 3.3 s",
    ) in section.figures


def test_workers_projection_is_the_formula():
    section = e2e.Section("x")
    one = _workload(900.0, [[1]] * 512, training="cpu")
    many = e2e.Workload(
        "cpu",
        200.0,
        24,
        100.0,
        24,
        512,
        128,
        64,
        150.0,
        9,
        1.0,
        [[1]] * 512,
        {"targets": 50.0, "validation": 60.0},
        {"targets": 40.0, "validation": 20.0},
    )
    e2e_workers.workers_comparison(section, one, many, 2, 500.0)
    goal = {g.name: g for g in section.goals}[
        "projected reproduce with workers / 7200 s"
    ]
    expected = 18 * 200.0 + 100.0 + e2e.REPRODUCE_GENERATIONS / 512 * 150.0
    assert goal.ratio == pytest.approx(expected / 7200)


def test_one_worker_measures_no_comparison():
    section = e2e.Section("x")
    e2e_workers.workers_comparison(section, _workload(3.0, [[1]]), None, 1, None)
    assert section.goals and not any(g.measured for g in section.goals)
    assert "not measured" in " ".join(section.notes)


def _cells(times):
    return [threads.Cell(w, s, c, t) for (w, s, c), t in times.items()]


def test_thread_report_ratios_and_goals():
    one, cores, passive = threads.candidates()
    times = {
        ("quick start", "alone", one): 30.0,
        ("quick start", "alone", cores): 20.0,
        ("quick start", "alone", passive): 22.0,
        ("quick start", "beside a busy process", one): 36.0,
        ("quick start", "beside a busy process", cores): 180.0,
        ("quick start", "beside a busy process", passive): 90.0,
    }
    section = threads.report(_cells(times))
    busy, worst = section.goals
    assert busy.ratio == pytest.approx(36 / 30) and busy.met
    assert worst.ratio == pytest.approx(30 / 20) and worst.met
    figures = dict(section.figures)
    assert figures[f"quick start, beside a busy process: {cores}"] == (
        "180.0 s (5.00 x the best)"
    )


def test_candidates_set_only_their_variables(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    envs = [threads.environment(v) for v in threads.candidates().values()]
    assert "OMP_NUM_THREADS" not in envs[0] and "OMP_WAIT_POLICY" not in envs[0]
    assert envs[1]["OMP_NUM_THREADS"] == str(threads.torch_default_threads())
    assert envs[2]["OMP_WAIT_POLICY"] == "PASSIVE"


@pytest.mark.slow  # starts a process
def test_the_busy_process_takes_a_core_while_the_block_runs():
    with threads.busy_process() as busy:
        time.sleep(1.0)
        used = sum(psutil.Process(busy.pid).cpu_times()[:2])
        assert used > 0.3, used
    assert busy.poll() is not None


def test_every_candidate_runs_in_every_cell(monkeypatch):
    """measure_all: each workload x scenario x candidate run once per repeat, the busy
    process alive exactly during the second scenario; the median kept."""
    runs = []
    busy = []

    @contextlib.contextmanager
    def fake_busy():
        busy.append(True)
        yield
        busy.append(False)

    def fake_seconds(cmd, variables):
        runs.append(
            (tuple(cmd), tuple(sorted(variables.items())), bool(busy and busy[-1]))
        )
        return float(len(runs))

    monkeypatch.setattr(threads, "seconds", fake_seconds)
    monkeypatch.setattr(threads, "busy_process", fake_busy)
    cells = threads.measure_all(quick=False, repeats=3, log=io.StringIO())
    candidates = threads.candidates()
    assert len(runs) == 2 * 2 * 3 * len(candidates) and len(cells) == 2 * 2 * 3
    assert [r[2] for r in runs] == [False] * 18 + [True] * 18
    assert busy == [True, False]
    first = cells[0]
    assert (first.workload, first.scenario, first.candidate) == (
        "quick start",
        "alone",
        threads.DEFAULT,
    )
    assert first.seconds == 4.0  # runs 1, 4, 7 of the default: the median


@pytest.mark.slow  # starts a process
def test_a_candidate_runs_the_tiny_generate():
    assert threads.seconds(threads.TINY_GENERATE, {"OMP_NUM_THREADS": "1"}) > 0


@pytest.mark.slow  # starts two workers twice
def test_suite_with_two_workers_compares_them(tiny, monkeypatch):
    """Generation, the few-rows score and the end-to-end workload in 2 worker
    processes: every worker goal measured, and the workers' answers equal one
    process's."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    sections = run_suite(tiny, TINY, model="tiny", workers=2, log=io.StringIO())
    goals = {g.name: g for s in sections for g in s.goals}
    for name in WORKER_GOALS:
        assert goals[name].measured, name
    assert goals["workers' identical answers"].ratio == 1.0
    assert goals["end to end, identical answers with workers"].ratio == 1.0
    assert "2 workers x 1 thread (--workers default)" in render_text(sections)


def test_the_suite_runs_only_the_steps_asked_for(tiny):
    sections = run_suite(tiny, TINY, model="tiny", only=("load",), log=io.StringIO())
    assert [s.title for s in sections] == [
        "Load: first vs second load",
        "This benchmark process",
    ]
