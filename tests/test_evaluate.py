"""Metrics on hand-made records, splits, and the evaluate loop on the tiny model."""

import json

import pandas as pd
import pytest

import steerlib as st
from steerlib.evaluation.evaluate import evaluate
from steerlib.evaluation.stats import metrics, wilson
from steerlib.tasks.combos import orderings, sample_combos, split_of


def _records(spec):
    """spec: {(method, combo, order): [ok, ok, ...]} -> records DataFrame."""
    rows = []
    for (method, combo, order), oks in spec.items():
        for pid, ok in enumerate(oks):
            rows.append(
                {
                    "method": method,
                    "combo": combo,
                    "order": order,
                    "split": "seen-2",
                    "prompt_id": pid,
                    "ok": ok,
                }
            )
    return pd.DataFrame(rows)


def test_metrics_known_values():
    recs = _records(
        {
            ("and", "a+b", "a+b"): [1, 1, 1, 0],  # 75%
            ("and", "a+b", "b+a"): [1, 0, 0, 0],  # 25%
            ("and", "c+d", "c+d"): [1, 1, 0, 0],  # 50%
            ("and", "c+d", "d+c"): [1, 1, 0, 0],  # 50%
        }
    )
    row = metrics(recs).iloc[0]
    assert row["mean_acc"] == pytest.approx(50.0)
    assert row["best_acc"] == pytest.approx((75 + 50) / 2)
    assert row["order_var"] == pytest.approx((50 + 0) / 2)
    assert row["n"] == 16 and row["combos"] == 2
    lo, hi = wilson(8, 16)
    assert row["mean_lo"] == pytest.approx(100 * lo) and row[
        "mean_hi"
    ] == pytest.approx(100 * hi)


@pytest.mark.parametrize(
    ("k", "n"), [(0, 10), (10, 10), (1, 30), (25, 30), (500, 1000), (3, 7)]
)
def test_wilson_matches_scipy(k, n):
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    # ours uses z = 1.96, scipy the exact 97.5% normal quantile (1.959964...)
    assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-4)


def test_orderings_and_splits():
    assert len(orderings(("french", "upper_case", "sentences_2"))) == 6
    assert split_of(("french", "upper_case")) == "seen-2"
    assert split_of(("german", "upper_case")) == "unseen-2"
    assert split_of(("french", "upper_case", "sentences_2", "json")) == "seen-3+json"


def test_sample_combos_deterministic_and_in_split():
    a = sample_combos(2, "unseen", 5, seed=1)
    assert a == sample_combos(2, "unseen", 5, seed=1) and len(a) == 5
    assert all(split_of(c) == "unseen-2" for c in a)
    assert all("json" in c for c in sample_combos(4, "all", 3, include_json=True))


def test_evaluate_records_and_resume(tiny, tmp_path):
    toks = st.SteeringTokens.for_backbone(tiny)
    import torch

    for n in ["french", "upper_case", "and"]:
        toks.set(n, torch.randn(tiny.hidden_size) * 0.1)
    sm = st.SteeredModel(tiny, toks)
    path = tmp_path / "records.jsonl"
    kw = dict(max_new_tokens=6, records=path, progress=False)
    recs = evaluate(
        sm, ["instruction", "and"], [("french", "upper_case")], ["Why?", "How?"], **kw
    )
    assert len(recs) == 2 * 2 * 2  # methods x orderings x prompts
    assert set(recs["order"]) == {"french+upper_case", "upper_case+french"}
    assert all(set(v) == {"french", "upper_case"} for v in recs["verdicts"])
    lines = path.read_text().splitlines()
    again = evaluate(
        sm, ["instruction", "and"], [("french", "upper_case")], ["Why?", "How?"], **kw
    )
    assert path.read_text().splitlines() == lines  # nothing regenerated
    pd.testing.assert_frame_equal(recs, again)


def test_records_of_other_vectors_are_stale_and_regenerated(tiny, tmp_path):
    import torch

    toks = st.SteeringTokens.for_backbone(tiny)
    toks.set("french", torch.randn(tiny.hidden_size) * 0.1)
    path = tmp_path / "records.jsonl"
    kw = dict(max_new_tokens=6, records=path, progress=False)
    first = evaluate(
        st.SteeredModel(tiny, toks),
        ["instruction", "concat"],
        [("french",)],
        ["Why?", "How?"],
        **kw,
    )
    retrained = toks.copy()
    retrained.set("french", torch.randn(tiny.hidden_size) * 0.1)
    second = evaluate(
        st.SteeredModel(tiny, retrained),
        ["instruction", "concat"],
        [("french",)],
        ["Why?", "How?"],
        **kw,
    )
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert (
        len(lines) == 4
    )  # the stale token records were replaced, not kept beside the new ones
    # instruction records read no vector: reused as they were
    pd.testing.assert_frame_equal(
        first[first["method"] == "instruction"].reset_index(drop=True),
        second[second["method"] == "instruction"].reset_index(drop=True),
    )
    new = second[second["method"] == "concat"]
    assert (
        set(new["tokens"])
        == {retrained.digest(["french"])}
        != {toks.digest(["french"])}
    )
    expected = st.SteeredModel(tiny, retrained).generate(
        ["Why? <french>", "How? <french>"], max_new_tokens=6
    )
    assert list(new.sort_values("prompt_id")["text"]) == expected


def test_paired_test_counts_discordant_pairs_and_gives_the_exact_p():
    from steerlib.evaluation.stats import paired_test

    # 10 prompts: a passes on 0-7, b on 6-9 -> pairs (a only) 0-5 = 6, (b only) 8-9 =
    # 2, both 6-7
    rows = [
        {"method": m, "split": "seen-2", "order": "x+y", "prompt_id": i, "ok": ok}
        for i in range(10)
        for m, ok in (("a", i < 8), ("b", i >= 6))
    ]
    out = paired_test(pd.DataFrame(rows), "a", "b").iloc[0]
    assert (out["n"], out["a_only"], out["b_only"]) == (10, 6, 2)
    assert out["a %"] == 80 and out["b %"] == 40
    # two-sided exact binomial: P(X <= 2 or X >= 6), X ~ Bin(8, 1/2) = 2 * (1 + 8 + 28)
    # / 256
    assert abs(out["p"] - 2 * 37 / 256) < 1e-12
