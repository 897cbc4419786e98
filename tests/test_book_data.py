"""The book's cpu-preset data path needs nothing that does not ship: no training, no
generation.

`make book` builds on a fresh clone with an empty artifacts folder under
STEERLIB_NO_TRAIN=1. This test makes the same calls the chapters make for their tables
and tokens (the live demo generations aside), under the same guard, from an empty
artifacts folder, on a copy of the committed results: each token must come from the
shipped file, each record the chapters read must be committed and stamped with the
digest of a shipped vector (else `evaluate` would regenerate it), and nothing committed
may change.
"""

import shutil
from pathlib import Path

import pandas as pd
import pytest

import steerlib as st
from steerlib.baselines import BASELINES
from steerlib.evaluation.evaluate import COMPOSITION_METHODS
from steerlib.guard import NO_TRAIN_ENV
from steerlib.study import capable
from steerlib.study.ablations import ABLATIONS, ablation_setup, run_ablations, settings
from steerlib.study.pipeline import composition_eval, load_tokens
from steerlib.study.singles import (
    single_behavior_records,
    single_table,
    teacher_compliance,
)
from steerlib.train.distill import train_behavior_token

COMMITTED = Path(__file__).resolve().parent.parent / "results" / "cpu"


@pytest.fixture
def results(tmp_path, monkeypatch):
    """A copy of results/cpu, the guard on, and an empty artifacts folder (conftest)."""
    shutil.copytree(COMMITTED, tmp_path / "results" / "cpu")
    monkeypatch.setenv("STEERLIB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv(NO_TRAIN_ENV, "1")
    return tmp_path / "results" / "cpu"


def _contents(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_book_chapters_read_only_shipped_artifacts(embedded, results):
    preset = st.presets.cpu()
    before = _contents(results)
    # chapter 1: the French token, the single-behavior table (filtered column from its
    # records)
    french = train_behavior_token(embedded, "french", preset.stage1_config("french"))
    tokens = load_tokens(embedded, preset)  # chapters 2-4
    assert tokens.names == [*st.behaviors.names(), "and"]
    assert pd.Series(french["french"]).equals(pd.Series(tokens["french"]))
    single = single_table(
        single_behavior_records(
            embedded,
            tokens,
            preset,
            results,
            policies=("filtered",),
            recorded_policies=True,
        ),
        policies=("filtered",),
    )
    compliance = teacher_compliance(embedded, preset, results)
    assert single.notna()[["plain", "instruction", "token", "hybrid"]].all().all()
    assert (compliance["n"] == preset.eval.n_single).all()
    # an empty filtered cell is one the committed comparison reports as "too few
    # targets"
    comparison = pd.read_csv(results / "targets_comparison.csv")
    too_few = set(
        comparison[(comparison["method"] == "filtered") & (comparison["n"] == 0)][
            "behavior"
        ]
    )
    assert set(single.index[single["filtered"].isna()]) == too_few
    filtered = comparison[comparison["method"] == "filtered"].set_index("behavior")[
        "pass_rate"
    ]
    pd.testing.assert_series_equal(
        single["filtered"].dropna(),
        filtered.dropna().reindex(single["filtered"].dropna().index).round(1),
        check_names=False,
    )
    # chapter 2: the capable-pairs study, then the composition table
    val_rates, selected, pairs, singles = capable.study_records(
        embedded, tokens, preset, results
    )
    assert len(val_rates) == len(st.behaviors.names())
    if selected:
        assert set(pairs["method"]) == set(COMPOSITION_METHODS)
        assert (
            len(pairs)
            == len(COMPOSITION_METHODS) * len(selected) * 2 * preset.eval.n_capable
        )
        # the baselines as recorded: each one complete, on the same pairs and prompts
        base_pairs, base_singles = capable.recorded(
            preset, results, selected, BASELINES, embedded.fingerprint
        )
        assert set(base_pairs["method"]) <= set(BASELINES)
        for _, part in base_pairs.groupby("method"):
            assert len(part) == len(selected) * 2 * preset.eval.n_capable
    table = composition_eval(embedded, tokens, preset, results)
    assert set(table["method"]) == {
        "instruction",
        "concat",
        "native_and",
        "and",
        "hybrid",
    }
    # chapter 3: the ablation settings whose records are committed
    protocol, where = ablation_setup(
        embedded, tokens, preset, capable_pairs=True, results=results
    )
    ablations = run_ablations(
        embedded,
        tokens,
        preset,
        where,
        which=ABLATIONS,
        cached_only=True,
        protocol=protocol,
    )
    assert len(ablations) and "no_and" in set(ablations["ablation"])
    assert set(ablations["setting"]) <= {v.setting for v in settings()}
    assert _contents(results) == before  # nothing rewritten, nothing appended


def test_headline_is_computed_from_the_committed_records():
    """The intro's and results page's headline (results/cpu/headline.md) is what
    ``steerlib.study.book`` computes from the committed records: regenerate it with
    ``python -m steerlib.study.book`` after the records change."""
    from steerlib.study import book

    assert (COMMITTED / "headline.md").read_text() == book.headline_markdown(COMMITTED)
    table = pd.read_csv(COMMITTED / "capable_pairs.csv").set_index(["method", "split"])
    records = pd.read_json(COMMITTED / "capable_records.jsonl", lines=True)
    shown = book.headline(records).set_index("method")
    for method in book.HEADLINE_METHODS:
        cell = shown.loc[book.METHOD_NAMES[method], "seen pairs (%)"]
        assert cell.startswith(f"{table.loc[(method, 'seen-2'), 'joint']:.1f} [")
