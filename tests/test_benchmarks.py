"""The benchmark suite's report: every ratio present, and ``goals met: K/N`` counted from them.

Timings of the tiny model mean nothing, so only the structure is checked.
"""
import io
import json
import re

import pytest

import benchmarks.__main__ as cli
from benchmarks import Sizes, render_markdown, render_text, run_suite
from benchmarks.core import SUMMARY, Goal
from benchmarks.end_to_end import bench_end_to_end
from benchmarks.load import bench_load

TINY = Sizes(batch=2, answer_tokens=4, gen_prompts=2, new_tokens=4, repeats=1, warmup=0, load_repeats=1)
SPEED_GOALS = ["steerlib / ceiling", "steerlib CE step / PEFT", "steerlib / GEMM ceiling",
               "steerlib / today's path (tok/s)", "steerlib / today's path (wall time)", "identical answers"]
E2E_GOALS = ["total / 7200 s", "peak RSS / 6 GB"]
RATIO_LINE = re.compile(r"^  ratio (.+?)\s+(\d+\.\d+|not measured)  \(goal (>=|<=) ([\d.]+)\)  (met|MISSED|not measured)$")


def _ratio_lines(text: str) -> dict[str, tuple[str, str, str, str]]:
    return {m.group(1): m.groups()[1:] for m in map(RATIO_LINE.match, text.splitlines()) if m}


@pytest.fixture
def timings(tmp_path):
    """A reproduce timings file: total within budget (met), memory over it (missed)."""
    path = tmp_path / "timings.json"
    path.write_text(json.dumps({"stage1": 1000.0, "stage2": 500.0, "total": 3600.0, "peak_rss_gb": 7.5}))
    return path


def test_suite_reports_every_ratio_and_counts_goals(tiny, timings):
    sections = run_suite(tiny, TINY, model="tiny", timings=timings, log=io.StringIO())
    text = render_text(sections)
    lines = _ratio_lines(text)
    for name in SPEED_GOALS + E2E_GOALS:
        assert re.fullmatch(r"\d+\.\d+", lines[name][0]), name
    assert lines["second / first load"][0] == "not measured"  # tiny: load runs only for the embedded model
    assert lines["total / 7200 s"][3] == "met" and lines["peak RSS / 6 GB"][3] == "MISSED"

    last = text.splitlines()[-1]
    k, n = map(int, SUMMARY.match(last).groups())
    measured = {name: v for name, v in lines.items() if v[0] != "not measured"}
    assert n == len(measured) == len(SPEED_GOALS + E2E_GOALS)
    # the summary counts the lines marked met (each line's verdict: test_goal_verdicts)
    assert k == sum(v[3] == "met" for v in measured.values())
    assert render_markdown(sections).strip().splitlines()[-1] == last


def test_end_to_end_without_timings_is_not_counted(tmp_path):
    section = bench_end_to_end(tmp_path / "missing.json")
    assert [g.measured for g in section.goals] == [False, False]
    text = render_text([section])
    assert "not measured" in text and text.splitlines()[-1] == "goals met: 0/0"


def test_end_to_end_of_a_cached_run_is_not_counted(tmp_path):
    """A run that found its tokens cached took seconds: its total cannot meet (or miss) the budget."""
    path = tmp_path / "timings.json"
    path.write_text(json.dumps({"stage1": 0.8, "stage1_token_seconds": 6296.9, "single_eval": 1.0, "total": 33.2}))
    section = bench_end_to_end(path)
    assert not section.goals[0].measured and "cached run" in " ".join(section.notes)
    path.write_text(json.dumps({"stage1": 6400.0, "stage1_token_seconds": 6296.9, "total": 8000.0}))
    assert bench_end_to_end(path).goals[0].verdict == "MISSED"


def test_load_reports_first_and_second(monkeypatch, tmp_path):
    """The tiny model's first load converts the tokenizer into the (temporary) cache."""
    monkeypatch.setenv("STEERLIB_CACHE", str(tmp_path / "kept"))
    section = bench_load("tiny", repeats=1)
    (goal,) = section.goals
    assert goal.measured and goal.ratio > 0
    assert len(section.figures) == 2
    assert not (tmp_path / "kept").exists()  # the benchmark used its own folder, and restored the env


def test_goal_verdicts():
    assert Goal("a", 0.9, ">=", 0.85).met and not Goal("a", 0.5, ">=", 0.85).met
    assert Goal("b", 0.3, "<=", 1 / 3).met and not Goal("b", None, "<=", 1).measured


def test_cli_prints_summary_last_and_writes_markdown(monkeypatch, capsys, tmp_path, timings):
    monkeypatch.setattr(cli, "QUICK", TINY)
    out = tmp_path / "results.md"
    assert cli.main(["--quick", "--model", "tiny", "--out", str(out), "--timings", str(timings)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert SUMMARY.match(printed[-1])
    assert out.read_text().strip().splitlines()[-1] == printed[-1]


def test_generation_workload_obeys_the_composition_rules(tiny):
    """Every request of the generation benchmark renders under the default (strict) rules."""
    from benchmarks.generation import COMBOS, METHOD_NAMES, steered_model, workload

    sm = steered_model(tiny)
    assert all(sm.render(r).ids for r in workload(len(COMBOS) * len(METHOD_NAMES)))
