"""The position study's tables from hand-made records, and its selection set."""

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

import steerlib as st
from steerlib.model import layout as L
from steerlib.study import slots
from steerlib.study.position import candidates, report, runs, selection
from steerlib.tasks import prompts as P


def _rec(method, order, verdicts, pid=0, split="seen-2"):
    names = order.split("+")
    return {
        "method": method,
        "combo": "+".join(sorted(names, key=order.split("+").index)),
        "order": order,
        "k": len(names),
        "split": split,
        "prompt_id": pid,
        "prompt": f"q{pid}",
        "text": "",
        "verdicts": verdicts,
        "ok": all(verdicts.values()),
        "prompt_sha": f"s{pid}",
        "model": "m",
        "max_new_tokens": 8,
        "seed": 0,
    }


RECORDS = pd.DataFrame(
    [
        # french first passes twice, second once of two; words_10_50 the other way round
        _rec("and", "french+words_10_50", {"french": True, "words_10_50": False}, 0),
        _rec("and", "french+words_10_50", {"french": True, "words_10_50": True}, 1),
        _rec("and", "words_10_50+french", {"french": False, "words_10_50": True}, 0),
        _rec("and", "words_10_50+french", {"french": True, "words_10_50": True}, 1),
        _rec("and", "german+words_10_50", {"german": False, "words_10_50": False}, 0),
        _rec("and", "words_10_50+german", {"german": False, "words_10_50": False}, 0),
        # a triple: not a pair, left out of the place table
        _rec(
            "and",
            "german+words_10_50+sentences_1",
            {"german": True, "words_10_50": True, "sentences_1": True},
            0,
            "seen-3",
        ),
        _rec(
            "instruction",
            "french+words_10_50",
            {"french": True, "words_10_50": True},
            0,
        ),
        _rec(
            "instruction",
            "words_10_50+french",
            {"french": True, "words_10_50": True},
            0,
        ),
    ]
)


def test_slot_rates_by_hand():
    t = slots.slot_rates(RECORDS).set_index(["method", "behavior"])
    assert t.loc[
        ("and", "french"), ["first", "second", "first_n", "second_n"]
    ].tolist() == [100, 50, 2, 2]
    # words_10_50: first 2 of 3 (two with french, one with german), second 1 of 3
    words = t.loc[("and", "words_10_50")]
    assert (words["first"], words["second"]) == pytest.approx((200 / 3, 100 / 3))
    assert words["gap"] == pytest.approx(100 / 3) and words["ratio"] == pytest.approx(
        0.5
    )
    # the languages pooled: first french 2/2 + german 0/1, second french 1/2 + german
    # 0/1
    lang = t.loc[("and", "language (all)")]
    assert (lang["first"], lang["second"], lang["first_n"]) == pytest.approx(
        (200 / 3, 100 / 3, 3)
    )
    assert 0 <= lang["first_lo"] <= lang["first"] <= lang["first_hi"] <= 100
    assert t.loc[("instruction", "french"), ["first", "second"]].tolist() == [100, 100]
    assert (
        "instruction",
        "length (all)",
    ) not in t.index  # one length behavior only: nothing to pool


def test_slot_pivot_reads_first_over_second():
    wide = slots.slot_pivot(
        slots.slot_rates(RECORDS), ["and", "instruction"]
    ).set_index("behavior")
    assert wide.loc["french", "and"] == "100 / 50"
    assert wide.loc["french", "instruction"] == "100 / 100"


def test_order_variance_sits_beside_the_papers():
    ov = slots.order_variance(RECORDS[RECORDS["k"] == 2]).set_index(["method", "split"])
    # and: french+words_10_50 orderings 0.5 and 0.5 -> 0; german pair 0 and 0 -> 0
    assert ov.loc[("and", "seen-2"), "order_var"] == 0
    assert ov.loc[("and", "seen-2"), "paper"] == slots.PAPER_ORDER_VARIANCE["and"]


def test_selection_questions_are_neither_targets_nor_test():
    preset = st.presets.cpu()
    train = P.load("train")
    chosen = selection.selection_questions(preset)
    assert len(chosen) == selection.SELECTION_QUESTIONS == 96
    assert not set(chosen) & set(train[: selection.target_questions(preset)])
    assert not set(chosen) & set(P.load("test"))
    assert (
        selection.target_questions(preset) == 64 * 8 // 2
    )  # stage 2: 64 steps x 8 examples, half as jobs
    big = dataclasses.replace(
        preset, stage2=dataclasses.replace(preset.stage2, steps=200)
    )
    with pytest.raises(ValueError, match="free of targets"):
        selection.selection_questions(big)


def test_selection_assignment_gives_each_question_one_pair_in_turn():
    pairs = [
        ("french", "words_10_50"),
        ("spanish", "sentences_1"),
        ("italian", "words_10_50"),
    ]
    qs = [f"q{i}" for i in range(7)]
    got = selection.selection_assignment(pairs, qs)
    assert (
        got[pairs[0]] == ["q0", "q3", "q6"]
        and got[pairs[1]] == ["q1", "q4"]
        and got[pairs[2]] == ["q2", "q5"]
    )


def test_layout_methods_are_named_keyed_and_read_in_their_layout(tiny):
    toks = st.SteeringTokens.for_backbone(tiny)
    for name in ("french", "and", "words_10_50"):
        toks.set(name, tiny.embeddings[len(name)])
    sm = st.SteeredModel(tiny, toks)
    methods = candidates.screen_methods()
    assert [m.name for m in methods][:2] == ["and@sequential", "and@shared"]
    assert methods[-1].name == "concat@shared+isolate" and methods[-1].joiner is None
    names = ("french", "words_10_50")
    assert methods[0].digest(sm, names) == st.METHODS["and"].digest(
        sm, names
    )  # the paper's layout: today's key
    assert (
        len({m.digest(sm, names) for m in methods[:-1]})
        == len(candidates.LAYOUTS)
        == len(methods) - 1
    )
    assert methods[3].prepare(sm).tokens.layout == L.Layout(
        L.SlotPositions.SHARED, isolate=True
    )
    assert (
        sm.tokens.layout == L.DEFAULT
    )  # the method reads a copy; the model's tokens are untouched


def test_winner_must_beat_todays_layout_by_one_generation():
    def table(rows):
        return pd.DataFrame(rows, columns=["candidate", "joint", "gap", "n"])

    today = ("and@sequential", 30.0, 20.0, 200)
    assert (
        selection.winner(table([today, ("and@shared", 30.4, 5.0, 200)]))
        == "and@sequential"
    )  # < one of 200
    assert (
        selection.winner(table([today, ("and@shared", 30.5, 5.0, 200)])) == "and@shared"
    )
    # ties on the joint rate go to the smaller order gap
    assert (
        selection.winner(
            table(
                [today, ("and@shared", 40.0, 9.0, 200), ("and@and_own", 40.0, 3.0, 200)]
            )
        )
        == "and@and_own"
    )


def test_family_b_cannot_change_the_plans_winner():
    """PLAN.md's amendment 1: family B ran after the test, so it is reported, not
    chosen."""
    rows = [
        ("A", "and@sequential", 30.0, 20.0, 200),
        ("A", "and@shared", 40.0, 9.0, 200),
        ("B", "and@sequential|disp2|T10|ce0", 60.0, 1.0, 200),
    ]
    search = pd.DataFrame(rows, columns=["family", "candidate", "joint", "gap", "n"])
    assert selection.winner(search) == "and@shared"
    assert (
        selection.winner(search, families=("A", "B")) == "and@sequential|disp2|T10|ce0"
    )


@pytest.mark.parametrize("layout", candidates.LAYOUTS, ids=lambda lay: lay.label)
def test_candidate_names_parse_back(layout):
    assert candidates.parse_candidate(candidates.layout_method(layout).name) == (
        "and",
        layout,
        None,
    )
    name = candidates.retrained_name(layout, 2.0, 1.0)
    assert candidates.parse_candidate(name) == (
        "and",
        layout,
        {"temperature": 2.0, "ce_weight": 1.0},
    )
    assert "|" not in runs.selection_file(Path("f"), name).name


def test_the_layout_is_a_preset_option_set_from_the_command_line():
    from steerlib.cli.overrides import preset_of
    from steerlib.cli.parser import build_parser
    from steerlib.errors import ConfigError

    def preset(*sets):
        args = ["position", "--preset", "cpu", "--stage", "search"] + [
            a for s in sets for a in ("--set", s)
        ]
        return preset_of(build_parser().parse_args(args))

    assert preset().layout == L.DEFAULT
    assert (
        preset("layout.positions=shared", "layout.isolate=true").layout
        == candidates.LAYOUTS[3]
    )
    with pytest.raises(ConfigError, match="one of sequential, shared, and_own"):
        preset("layout.positions=diagonal")


def test_position_command_takes_candidates_and_reads_the_old_flag_unlisted(capsys):
    """``--candidates`` (as the stage2 command's); ``--variants``, its name before issue
    35, still works for one release but is not in the help."""
    from steerlib.cli.parser import build_parser

    def chosen(*flag):
        return build_parser().parse_args(["position", "--stage", "screen", *flag])

    assert chosen("--candidates", "0", "2").candidates == [0, 2]
    assert chosen("--variants", "0", "2").candidates == [0, 2]
    assert chosen().candidates is None  # all of them
    with pytest.raises(SystemExit):
        build_parser().parse_args(["position", "--help"])
    shown = capsys.readouterr().out
    assert "--candidates" in shown and "--variants" not in shown


# -- family B: displaced stage-1 training
# ---------------------------------------------------
def test_displaced_candidate_names_parse_back():
    name = candidates.retrained_name(L.DEFAULT, 10.0, 0.0, displace=2)
    assert name == "and@sequential|disp2|T10|ce0"
    assert candidates.parse_candidate(name) == (
        "and",
        L.DEFAULT,
        {"displace": 2, "temperature": 10.0, "ce_weight": 0.0},
    )
    assert candidates.parse_candidate("concat@sequential|disp2") == (
        "concat",
        L.DEFAULT,
        {"displace": 2},
    )
    with pytest.raises(ValueError, match="unknown part 'x3'"):
        candidates.parse_candidate("and@sequential|x3")


def test_displaced_behaviors_put_the_selection_pairs_first():
    kept = [
        ("french", "words_10_50"),
        ("german", "sentences_1"),
        ("spanish", "sentences_1"),
    ]
    assert runs.displaced_behaviors(kept) == [
        "french",
        "sentences_1",
        "spanish",
        "words_10_50",
        "german",
    ]
    jobs = runs.displace_jobs(kept)
    assert jobs[:5] == [
        "<french>",
        "<sentences_1>",
        "<spanish>",
        "<words_10_50>",
        "<german>",
    ]
    assert [candidates.parse_candidate(j)[0] for j in jobs[5:]] == ["and", "concat"]


def test_search_table_counts_stage1_time_into_family_b(tmp_path):
    rows = [
        _rec(v, "french+words_10_50", {"french": True, "words_10_50": True}, pid)
        for v in (
            "and@sequential",
            "and@sequential|disp2|T10|ce0",
            "concat@sequential|disp2",
        )
        for pid in (0, 1)
    ]
    runs.note_cost(tmp_path, "stage1|disp2", "french", 100.0)
    runs.note_cost(tmp_path, "stage1|disp2", "words_10_50", 50.0)
    runs.note_cost(tmp_path, "and@sequential|disp2|T10|ce0", "train_s", 20.0)
    table = report.search_table(pd.DataFrame(rows), tmp_path).set_index("candidate")
    assert table.loc[
        "and@sequential|disp2|T10|ce0", ["family", "stage1", "stage2", "train_s"]
    ].tolist() == ["B", "displaced 0-2", "T10 ce0", 170.0]
    assert table.loc[
        "concat@sequential|disp2", ["family", "stage2", "train_s"]
    ].tolist() == ["B", "none", 150.0]
    assert table.loc["and@sequential", "family"] == "A" and pd.isna(
        table.loc["and@sequential", "train_s"]
    )
