"""The stage-2 study's plan as code: its candidates, pair jobs, winner rule and the
detectable effect it reports (results/cpu/stage2/PLAN.md)."""

from collections import Counter

import pandas as pd
import pytest

from steerlib.config import config_hash
from steerlib.errors import ConfigError
from steerlib.presets import presets
from steerlib.study.stage2 import report
from steerlib.study.stage2.candidates import CANDIDATES, by_name
from steerlib.train.compose import pair_jobs

PAIRS = [
    ("french", "words_10_50"),
    ("spanish", "sentences_1"),
    ("italian", "words_10_50"),
]


def test_eight_candidates_of_three_families_each_its_own_cache_key():
    assert len(CANDIDATES) >= 8
    assert set(c.family for c in CANDIDATES) == {"E", "F", "G"}
    cfgs = [c.config(presets.cpu()) for c in CANDIDATES]
    assert len({config_hash(c) for c in cfgs}) == len(cfgs)
    f2 = by_name("F2").config(presets.cpu())
    assert (f2.vectors, f2.temperature, f2.orth_weight, f2.ce_weight) == (
        16,
        10,
        0.5,
        0,
    )
    assert f2.steps == 64 and f2.validation.patience_steps == 32
    with pytest.raises(ConfigError, match="candidates: E1"):
        by_name("X9")


def test_pair_jobs_give_each_pair_the_same_questions_count_in_both_orders():
    questions = [f"q{i}" for i in range(30)]
    jobs = pair_jobs(PAIRS, questions, 2, seed=0)
    assert len(jobs) == 60
    per_pair = Counter(frozenset(names) for _, names in jobs)
    assert set(per_pair.values()) == {20}
    assert {names for _, names in jobs} >= {p for p in PAIRS} | {p[::-1] for p in PAIRS}
    per_question = Counter(q for q, _ in jobs)
    assert set(per_question.values()) == {2}
    assert all(len(set(n for q2, n in jobs if q2 == q)) == 2 for q in questions)
    assert jobs == pair_jobs(PAIRS, questions, 2, seed=0)
    with pytest.raises(ConfigError, match="between 1 and the 3 pairs"):
        pair_jobs(PAIRS, questions, 4, seed=0)


def _search(rows):
    cols = ["candidate", "family", "joint", "gap", "train_s", "n"]
    return pd.DataFrame(rows, columns=cols)


def test_winner_is_the_best_candidate_ties_to_the_smaller_gap():
    search = _search(
        [
            ["E1", "E", 50.0, 4.0, 100, 192],
            ["G1", "G", 57.0, -6.0, 100, 192],
            ["G2", "G", 57.0, 2.0, 300, 192],
            ["F1", "F", None, None, None, None],
            [report.TODAY, "ref", 60.0, 0.0, None, 192],
        ]
    )
    assert report.winner(search) == "G2"  # today's pack is a reference, not a candidate
    assert report.winner(search[search["family"] == "ref"]) is None


@pytest.mark.parametrize("passed, beats", [(108, True), (107, False), (100, False)])
def test_the_winner_ships_only_one_generation_above_today(passed, beats):
    """Today's pack passed 107 of 192 (55.73%, as search.csv rounds it)."""
    search = _search(
        [
            ["G2", "G", round(100 * passed / 192, 2), 0.0, 1, 192],
            [report.TODAY, "ref", 55.73, 0.5, None, 192],
        ]
    )
    assert report.beats_today(search, "G2") is beats


def test_detectable_difference_worked_by_hand():
    # n = 480 pairs, 53 discordant: (1.95996 + 0.84162) * sqrt(53 / 480 / 480)
    assert report.detectable_difference(480, 53) == pytest.approx(4.249, abs=1e-3)
    assert report.detectable_difference(120, 21) > report.detectable_difference(480, 84)
