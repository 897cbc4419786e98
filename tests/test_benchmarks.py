"""The benchmark suite's report: every ratio present, and ``goals met: K/N`` counted
from them.

Timings of the tiny model mean nothing, so the report's structure is checked, and what
the end-to-end workload does: it trains both tokens every run, in a new scratch folder,
and its projection is the formula of its figures.
"""

import io
import json
import re

import pytest
import torch

import benchmarks.__main__ as cli
import benchmarks.end_to_end as e2e
from benchmarks import Sizes, render_markdown, render_text, run_suite
from benchmarks.core import SUMMARY, Goal
from benchmarks.load import bench_load
from benchmarks.phases import PHASES, steps_s, timed_phases
from steerlib.config import ValidationConfig
from steerlib.evaluation.evaluate import COMPOSITION_METHODS
from steerlib.model.inits import random_init
from steerlib.model.tokens import SteeringTokens
from steerlib.paths import artifacts_root
from steerlib.presets import presets
from steerlib.study.folders import results_dir
from steerlib.tasks import behaviors as B
from steerlib.train import cache, compose, distill
from steerlib.train.cache import fit_token
from steerlib.train.validation import behavior_validator

TINY = Sizes(
    batch=2,
    answer_tokens=4,
    gen_prompts=2,
    new_tokens=4,
    repeats=1,
    warmup=0,
    load_repeats=1,
    val_questions=4,
    val_new_tokens=4,
    e2e_training="smoke",
)
SPEED_GOALS = [
    "steerlib / ceiling",
    "steerlib CE step / PEFT",
    "steerlib / GEMM ceiling",
    "steerlib / today's path (tok/s)",
    "steerlib / today's path (wall time)",
    "identical answers",
]
TIME_GOAL, RSS_GOAL = "projected reproduce / 7200 s", "peak RSS / 6 GB"
RATIO_LINE = re.compile(
    r"^  ratio (.+?)\s+(\d+\.\d+|not measured)  \(goal (>=|<=) ([\d.]+)\)  "
    r"(met|MISSED|not measured)$"
)


def _ratio_lines(text: str) -> dict[str, tuple[str, str, str, str]]:
    return {
        m.group(1): m.groups()[1:]
        for m in map(RATIO_LINE.match, text.splitlines())
        if m
    }


def test_suite_reports_every_ratio_and_counts_goals(tiny):
    sections = run_suite(tiny, TINY, model="tiny", log=io.StringIO())
    text = render_text(sections)
    lines = _ratio_lines(text)
    for name in SPEED_GOALS + [RSS_GOAL]:
        assert re.fullmatch(r"\d+\.\d+", lines[name][0]), name
    assert (
        lines["second / first load"][0] == "not measured"
    )  # tiny: load runs only for the embedded model
    assert (
        lines[TIME_GOAL][0] == "not measured"
    )  # TINY trains with the smoke preset's settings

    last = text.splitlines()[-1]
    k, n = map(int, SUMMARY.match(last).groups())
    measured = {name: v for name, v in lines.items() if v[0] != "not measured"}
    assert n == len(measured) == len(SPEED_GOALS) + 1
    # the summary counts the lines marked met (each line's verdict: test_goal_verdicts)
    assert k == sum(v[3] == "met" for v in measured.values())
    assert render_markdown(sections).strip().splitlines()[-1] == last


@pytest.fixture
def fits(monkeypatch):
    """Every training run of stage 1 or 2 (``fit_token`` calls): the token's name and
    the artifacts folder it trained in."""
    calls = []

    def spy(run, *args, **kwargs):
        calls.append((run.name, artifacts_root()))
        return fit_token(run, *args, **kwargs)

    monkeypatch.setattr(distill, "fit_token", spy)
    monkeypatch.setattr(compose, "fit_token", spy)
    return calls


def _run(tiny) -> e2e.Workload:
    return e2e.run_workload(tiny, presets.smoke(), 2, 4, e2e.partner_tokens(tiny))


def test_end_to_end_splits_each_training_part_into_its_phases(tiny):
    """Stage 1 and stage 2 each spend time generating targets; the smoke preset does
    not validate, so that phase is 0; what is left for the steps is positive."""
    w = _run(tiny)
    for part_s, phases in ((w.token_s, w.token_phases), (w.and_s, w.and_phases)):
        assert set(phases) == set(PHASES)
        assert phases["targets"] > 0 and phases["validation"] == 0, phases
        assert 0 < steps_s(part_s, phases) < part_s


def test_a_validation_score_counts_as_validation(tiny):
    """The scorer training calls (``behavior_validator``) is timed as validation."""
    score = behavior_validator(
        tiny, "french", ValidationConfig(n_questions=2, max_new_tokens=2, batch_size=2)
    )
    with timed_phases() as seconds:
        score({"french": torch.zeros(tiny.hidden_size)})
    assert seconds["validation"] > 0 and seconds["targets"] == 0


def test_end_to_end_trains_in_an_empty_scratch_folder(
    tiny, fits, tmp_path, monkeypatch
):
    """Both tokens train in a folder that is empty when the workload starts and gone
    after it; the artifacts folder the user set (conftest: tmp_path/artifacts) is never
    touched."""
    real = artifacts_root()
    assert real == tmp_path / "artifacts" and not real.exists()
    at_start = []

    def stage1(*args, **kwargs):
        root = artifacts_root()
        at_start.append((root, list(root.rglob("*")) if root.exists() else []))
        return distill.train_behavior_token(*args, **kwargs)

    monkeypatch.setattr(e2e, "train_behavior_token", stage1)
    w = _run(tiny)
    ((scratch, files),) = at_start
    assert files == [] and scratch != real
    assert fits == [(e2e.BEHAVIOR, scratch), ("and", scratch)]
    assert not scratch.exists() and not real.exists()
    assert artifacts_root() == real  # the environment is restored
    assert (
        w.generations == 2 and w.generated_tokens > 0 and w.token_s > 0 and w.and_s > 0
    )


def test_end_to_end_trains_again_on_a_second_run(tiny, fits):
    """A second run is not a cache hit: it trains both tokens again, in another new
    folder."""
    first, second = _run(tiny), _run(tiny)
    assert [name for name, _ in fits] == [e2e.BEHAVIOR, "and"] * 2
    assert fits[0][1] != fits[2][1]
    assert (
        second.token_steps == first.token_steps > 0
        and second.and_steps == first.and_steps > 0
    )


def test_end_to_end_never_loads_the_shipped_tokens(tiny, fits, monkeypatch):
    """Where the package ships exactly the run asked for (the cpu preset's tokens on the
    embedded model), the workload still trains it."""

    def shipped(bb, name, key, path=None):
        tokens = SteeringTokens.for_backbone(bb)
        tokens.set(name, random_init(bb, seed=0), {"key": key, "steps": 1})
        return tokens

    monkeypatch.setattr(cache, "shipped", shipped)
    _run(tiny)
    assert [name for name, _ in fits] == [e2e.BEHAVIOR, "and"]


def _figure(section, start: str) -> str:
    (value,) = [v for label, v in section.figures if label.startswith(start)]
    return value


def _seconds(section, start: str) -> float:
    return float(re.match(r"([\d.]+) s", _figure(section, start)).group(1))


@pytest.mark.parametrize(
    "token_s, and_s, generation_s, verdict",
    [(312.5, 130.5, 407.5, "MISSED"), (200.0, 100.0, 200.0, "met")],
)
def test_end_to_end_projection_is_the_formula(token_s, and_s, generation_s, verdict):
    """Projected reproduce = 18 tokens x the token's time + <and>'s + reproduce's
    generations / 512 x the generation time, against 7200 s; computed here from the
    section's figures."""
    w = e2e.Workload(
        "cpu", token_s, 32, and_s, 24, 512, 128, 64, generation_s, 40_000, 1.5
    )
    section = e2e.end_to_end_section(w)
    token, and_, gen = (
        _seconds(section, p) for p in ("stage 1", "stage 2", "generation: 512 x 128")
    )
    expected = 18 * token + and_ + e2e.REPRODUCE_GENERATIONS / 512 * gen
    time_goal, rss_goal = section.goals
    assert (
        time_goal.ratio == pytest.approx(expected / 7200, rel=1e-12)
        and time_goal.verdict == verdict
    )
    assert _figure(section, "projected cpu reproduce").startswith(f"{expected:,.0f} s")
    assert rss_goal.ratio == pytest.approx(1.5 / 6)
    assert "extrapolation" in " ".join(section.notes)


def test_end_to_end_quick_workload_does_not_project():
    """Smoke training settings, or answers shorter than the evaluation's: figures, no
    time goal."""
    for w in (
        e2e.Workload("smoke", 3.0, 3, 2.0, 3, 128, 48, 64, 20.0, 5000, 1.0),
        e2e.Workload("cpu", 300.0, 32, 130.0, 24, 128, 48, 64, 20.0, 5000, 1.0),
    ):
        section = e2e.end_to_end_section(w)
        assert not section.goals[0].measured and section.goals[1].measured
        assert "not measured" in " ".join(section.notes)
        assert not any(label.startswith("projected") for label, _ in section.figures)


def test_reproduce_generation_count_follows_the_cpu_preset():
    """REPRODUCE_GENERATIONS, counted again from the cpu preset and the committed
    capable pairs."""
    from steerlib.study.capable import selection_questions
    from steerlib.tasks.combos import orderings

    cpu = presets.cpu()
    ev, n = cpu.eval, len(B.names())
    jobs = [
        (b, p) for b in range(n) for p in range(ev.n_single)
    ]  # evaluate's order, chunks of 256
    plain = sum(
        len({p for _, p in jobs[i : i + 256]}) for i in range(0, len(jobs), 256)
    )
    singles = (
        n * ev.n_single * 3 + plain
    )  # teacher compliance (instruction), hybrid, token
    composition = len(COMPOSITION_METHODS) * sum(
        len(orderings(c)) * (ev.n_prompts if len(c) == 2 else ev.n_prompts_3)
        for c in cpu.composition_combos()
    )
    records = map(
        json.loads,
        (results_dir("cpu") / "capable_records.jsonl").read_text().splitlines(),
    )
    orders = {r["order"] for r in records if r["method"] == "instruction"}
    pairs = {frozenset(o.split("+")) for o in orders}
    behaviors = set().union(*pairs)
    capable = (
        n * len(selection_questions(cpu.validation, ev.n_single))
        + len(behaviors) * ev.n_capable
        + len(pairs) * 2 * ev.n_capable * len(COMPOSITION_METHODS)
    )
    assert e2e.REPRODUCE_GENERATIONS == singles + composition + capable


def test_load_reports_first_and_second(monkeypatch, tmp_path):
    """The tiny model's first load converts the tokenizer into the (temporary) cache."""
    monkeypatch.setenv("STEERLIB_CACHE", str(tmp_path / "kept"))
    section = bench_load("tiny", repeats=1)
    (goal,) = section.goals
    assert goal.measured and goal.ratio > 0
    assert len(section.figures) == 2
    assert not (
        tmp_path / "kept"
    ).exists()  # the benchmark used its own folder, and restored the env


def test_goal_verdicts():
    assert Goal("a", 0.9, ">=", 0.85).met and not Goal("a", 0.5, ">=", 0.85).met
    assert Goal("b", 0.3, "<=", 1 / 3).met and not Goal("b", None, "<=", 1).measured


def test_cli_prints_summary_last_and_writes_markdown(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli, "QUICK", TINY)
    out = tmp_path / "results.md"
    assert cli.main(["--quick", "--model", "tiny", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert SUMMARY.match(printed[-1])
    assert out.read_text().strip().splitlines()[-1] == printed[-1]


def test_generation_workload_obeys_the_composition_rules(tiny):
    """Every request of the generation benchmark renders under the default (strict)
    rules."""
    from benchmarks.generation import COMBOS, METHOD_NAMES, steered_model, workload

    sm = steered_model(tiny)
    assert all(sm.render(r).ids for r in workload(len(COMBOS) * len(METHOD_NAMES)))
