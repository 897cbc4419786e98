"""The capable-pairs study's statistics on hand-made records with known answers."""

import itertools
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from steerlib.config import ValidationConfig
from steerlib.evaluation.evaluate import COMPOSITION_METHODS
from steerlib.study import capable
from steerlib.tasks import behaviors as B
from steerlib.tasks import prompts as P


def _rec(method, order, pid, verdicts):
    combo = "+".join(sorted(order, key=B.names().index))
    return {
        "method": method,
        "combo": combo,
        "order": "+".join(order),
        "k": len(order),
        "split": "seen" if all(B.get(n).seen for n in order) else "unseen",
        "prompt_id": pid,
        "verdicts": dict(zip(order, verdicts)),
        "ok": all(verdicts),
    }


def test_paired_tests_run_each_comparison_per_split():
    """Each comparison, per split, on the prompt-orderings both methods share: `<and>`
    vs concat finds a passed / b failed 9 times and the reverse once (p = exact
    binomial)."""
    recs = []
    a_ok = [1] * 9 + [0] * 1 + [1] * 5 + [0] * 15  # 30 prompts
    b_ok = [0] * 9 + [1] * 1 + [1] * 5 + [0] * 15  # a only: 9, b only: 1, both: 5
    for pid, (x, y) in enumerate(zip(a_ok, b_ok)):
        recs.append(_rec("and", ("french", "sentences_1"), pid, [bool(x), True]))
        recs.append(_rec("concat", ("french", "sentences_1"), pid, [bool(y), True]))
        recs.append(
            _rec("concat", ("sentences_1", "french"), pid, [True, True])
        )  # no "and" partner: unpaired
    tests = capable.paired_tests(pd.DataFrame(recs))
    assert len(tests) == 1  # only <and> vs concat has both methods
    row = tests.iloc[0]
    assert (row["a"], row["b"], row["a_only"], row["b_only"], row["n"]) == (
        "and",
        "concat",
        9,
        1,
        30,
    )
    assert row["p"] == pytest.approx(binomtest(9, 10, 0.5).pvalue)
    assert row["a_rate"] == pytest.approx(100 * 14 / 30) and row[
        "b_rate"
    ] == pytest.approx(100 * 6 / 30)


def test_efficiency_and_retention_known_answer():
    """Singles: french 80%, sentences_1 50% (5 prompts x 2 = 10 single generations
    each). Pairs: joint 40% -> efficiency 0.4 / (0.8 x 0.5) = 1.0; french kept in 60%
    -> retention 0.75."""
    recs, singles = [], []
    fr = [1, 1, 1, 1, 0, 1, 1, 1, 1, 0]
    s1 = [1, 0, 1, 0, 1, 0, 1, 0, 1, 0]
    for pid in range(10):
        singles.append(_rec("and", ("french",), pid, [bool(fr[pid])]))
        singles.append(_rec("and", ("sentences_1",), pid, [bool(s1[pid])]))
    pair_fr = [1, 1, 1, 0, 0, 1, 1, 0, 0, 1]
    pair_s1 = [
        1,
        1,
        0,
        1,
        1,
        0,
        1,
        0,
        1,
        0,
    ]  # joint: pids 0, 1, 6 -> plus one more below
    pair_s1[9] = 1  # joint: 0, 1, 6, 9 = 4 of 10
    for pid in range(10):
        recs.append(
            _rec(
                "and",
                ("french", "sentences_1"),
                pid,
                [bool(pair_fr[pid]), bool(pair_s1[pid])],
            )
        )
        recs.append(
            _rec("concat", ("french", "sentences_1"), pid, [bool(pair_fr[pid]), False])
        )
    pairs, singles = pd.DataFrame(recs), pd.DataFrame(singles)
    eff = capable.efficiency(pairs, singles, n_boot=200).set_index("method")
    assert eff.loc["and", "efficiency"] == pytest.approx(0.4 / (0.8 * 0.5))
    assert eff.loc["and", "eff_lo"] <= 1.0 <= eff.loc["and", "eff_hi"]
    assert (
        eff.loc["concat", "efficiency"] == 0.0
    )  # concat is compared with the same singles ("and" alone)
    ret = capable.retention(pairs, singles).set_index(["method", "behavior"])
    assert ret.loc[("and", "french"), "in_pair"] == pytest.approx(60.0)
    assert ret.loc[("and", "french"), "alone"] == pytest.approx(80.0)
    assert ret.loc[("and", "french"), "retention"] == pytest.approx(0.75)
    j = capable.joint(pairs).set_index("method")
    assert j.loc["and", "joint"] == pytest.approx(40.0) and j.loc["and", "n"] == 10


def test_selection_reads_validation_rates_only():
    rates = pd.Series(
        {
            "french": 0.9,
            "spanish": 0.7,
            "sentences_1": 0.5,
            "words_10_50": 0.49,
            "upper_case": 0.0,
            "german": 0.6,
        }
    )
    pairs = capable.select_pairs(rates)
    assert ("french", "sentences_1") in pairs and ("german", "sentences_1") in pairs
    assert all(B.compatible(a, b) for a, b in pairs)
    assert not any("words_10_50" in p or "upper_case" in p for p in pairs)
    assert ("french", "spanish") not in pairs  # same category
    assert len(pairs) == 3  # french, spanish, german each with sentences_1


def test_selection_questions_are_validation_not_seen_by_step_choice():
    qs = capable.selection_questions(ValidationConfig(n_questions=24))
    val = P.load("val")
    assert qs == val[24:]
    assert (
        capable.selection_questions(ValidationConfig(n_questions=24), limit=5)
        == val[24:29]
    )
    assert not set(qs) & set(P.load("test")) and not set(qs) & set(P.load("train"))
    with pytest.raises(ValueError, match="no validation questions left"):
        capable.selection_questions(ValidationConfig(n_questions=len(val)))


def test_efficiency_interval_narrows_with_more_prompts():
    rng = np.random.default_rng(1)

    def data(n):
        recs, singles = [], []
        for pid in range(n):
            a, b = rng.random() < 0.8, rng.random() < 0.6
            singles += [
                _rec("and", ("french",), pid, [a]),
                _rec("and", ("sentences_1",), pid, [b]),
            ]
            recs.append(
                _rec(
                    "and",
                    ("french", "sentences_1"),
                    pid,
                    [rng.random() < 0.8, rng.random() < 0.6],
                )
            )
        e = capable.efficiency(
            pd.DataFrame(recs), pd.DataFrame(singles), n_boot=300
        ).iloc[0]
        return e["eff_hi"] - e["eff_lo"]

    assert data(400) < data(25)


def test_run_selects_on_validation_and_tests_on_test(tiny, tmp_path, monkeypatch):
    """End to end on the tiny model: the selection step generates for validation
    questions only, the pairs and singles for test prompts only; the report is
    written."""
    import torch

    import steerlib as st
    from steerlib.presets import presets

    asked: dict[str, set] = {}
    real = capable.evaluate

    def spy(sm, methods, combos, prompts, **kw):
        asked.setdefault(kw["records"].name, set()).update(prompts)
        return real(sm, methods, combos, prompts, **kw)

    monkeypatch.setattr(capable, "evaluate", spy)
    real_select = capable.select_pairs

    def few(
        rates, threshold
    ):  # the real selection, cut to one seen and one unseen pair (time)
        pairs = real_select(rates, threshold)
        return [
            next(p for p in pairs if B.get(p[0]).seen and B.get(p[1]).seen),
            next(p for p in pairs if not (B.get(p[0]).seen and B.get(p[1]).seen)),
        ]

    monkeypatch.setattr(capable, "select_pairs", few)
    toks = st.SteeringTokens.for_backbone(tiny)
    g = torch.Generator().manual_seed(0)
    for name in st.behaviors.names() + ["and"]:
        toks.set(name, torch.randn(tiny.hidden_size, generator=g) * 0.2)
    preset = presets.smoke()
    report = capable.run(
        tiny, toks, preset, tmp_path, threshold=0.0
    )  # every pair qualifies at 0
    val, test = set(P.load("val")), set(P.load("test"))
    assert asked["capable_val_records.jsonl"] <= val
    assert (
        asked["capable_records.jsonl"] <= test and asked["single_records.jsonl"] <= test
    )
    assert (tmp_path / "capable_pairs.md").is_file() and (
        tmp_path / "capable_retention.png"
    ).is_file()
    assert set(report["summary"]["method"]) == set(COMPOSITION_METHODS)
    assert len(report["tests"]) == 2 * len(capable.TESTS)  # seen and unseen pairs
    # a run without one method keeps its recorded rows (as reproduce keeps the
    # baselines'), generating nothing
    before = (tmp_path / "capable_records.jsonl").read_text()
    again = capable.run(
        tiny,
        toks,
        preset,
        tmp_path,
        methods=[m for m in COMPOSITION_METHODS if m != "hybrid"],
        threshold=0.0,
        keep_recorded=("hybrid", "lora_dare"),
    )
    assert (tmp_path / "capable_records.jsonl").read_text() == before
    pd.testing.assert_frame_equal(
        again["summary"].sort_values(["method", "split"]).reset_index(drop=True),
        report["summary"].sort_values(["method", "split"]).reset_index(drop=True),
    )


def test_ablations_on_capable_pairs_reuse_the_study_records_and_test_against_the_recipe(
    tiny, tmp_path
):
    """The capable protocol tests each <and> setting on the chosen pairs with n_capable
    prompts per ordering; the recipe and concatenation are the composition study's own
    records ("and", "concat"), so a study run first leaves nothing to make for them;
    McNemar against the recipe counts the discordant prompt-orderings found
    independently here."""

    import steerlib as st
    from steerlib.evaluation.records import read_records
    from steerlib.study.ablation_tests import paired_vs_recipe
    from steerlib.study.ablations import RECIPE, capable_protocol, run_ablations

    preset = st.presets.smoke()
    behaviors = st.study.train_all_behaviors(tiny, preset)
    tokens = st.train_composition_token(tiny, behaviors, preset.stage2)
    pairs = [("french", "sentences_1"), ("german", "words_10_50")]
    protocol = capable_protocol(preset, pairs)
    assert protocol.pairs == tuple(pairs) and protocol.n_pairs == preset.eval.n_capable
    assert all(
        {frozenset(p) for p in itertools.combinations(t, 2)}
        <= {frozenset(p) for p in pairs}
        for t in protocol.triples
    )
    # the study's records first (same file, same vectors), then the ablations
    study = capable.evaluate(
        st.SteeredModel(tiny, tokens),
        ["concat", "and"],
        pairs,
        P.load("test", limit=preset.eval.n_capable),
        max_new_tokens=preset.eval.max_new_tokens,
        batch_size=preset.eval.batch_size,
        seed=preset.eval.seed,
        records=tmp_path / "capable_records.jsonl",
    )
    before = (tmp_path / "capable_records.jsonl").read_text()
    table = run_ablations(
        tiny, tokens, preset, tmp_path, which=("no_and",), protocol=protocol
    )
    assert (
        tmp_path / "capable_records.jsonl"
    ).read_text() == before  # nothing new to make
    assert set(table["label"]) == {"concat", "and"}
    assert (
        table.groupby("setting")["n"].sum().tolist()
        == [len(pairs) * 2 * preset.eval.n_capable] * 2
    )
    # eval.n_ablation: the study's first prompts, still nothing new to make
    fewer = replace(preset, eval=replace(preset.eval, n_ablation=1))
    assert capable_protocol(fewer, pairs).n_pairs == 1
    short = run_ablations(
        tiny,
        tokens,
        fewer,
        tmp_path,
        which=("no_and",),
        protocol=capable_protocol(fewer, pairs),
    )
    assert (tmp_path / "capable_records.jsonl").read_text() == before
    assert short.groupby("setting")["n"].sum().tolist() == [len(pairs) * 2] * 2
    table = pd.concat(
        [
            table,
            run_ablations(
                tiny, tokens, preset, tmp_path, which=("lambda",), protocol=protocol
            ),
        ]
    )
    records = read_records(tmp_path / "capable_records.jsonl")
    tests = paired_vs_recipe(table, records).set_index(["ablation", "setting", "split"])
    # every non-recipe setting is paired with its recipe on all of its prompt-orderings
    assert {("no_and", "concatenation"), ("lambda", "lambda=0.0")} <= {
        k[:2] for k in tests.index
    }
    assert all(setting != RECIPE[ablation] for ablation, setting, _ in tests.index)
    assert (
        tests.groupby(level=[0, 1])["n"]
        .sum()
        .eq(len(pairs) * 2 * preset.eval.n_capable)
        .all()
    )
    assert len(study) == 2 * len(pairs) * 2 * preset.eval.n_capable


def test_paired_vs_recipe_pairs_each_setting_with_its_recipe_on_the_same_prompts():
    """Hand-made records: lambda=0.0 passes where the recipe (lambda=0.5) fails on 6
    prompts and the reverse on 2; a setting of another ablation, and prompts only one
    side has, stay out."""
    from steerlib.study.ablation_tests import paired_vs_recipe

    table = pd.DataFrame(
        [
            {"ablation": "lambda", "setting": "lambda=0.5", "label": "and"},
            {"ablation": "lambda", "setting": "lambda=0.0", "label": "and-l0"},
            {"ablation": "init", "setting": "word, with L_orth", "label": "and-word"},
        ]
    )
    setting = (
        [1] * 6 + [0] * 2 + [1] * 4 + [0] * 8
    )  # 20 prompts: setting only 6, recipe only 2, both 4
    recipe = [0] * 6 + [1] * 2 + [1] * 4 + [0] * 8
    recs = [
        _rec(m, ("french", "sentences_1"), pid, [bool(ok), True])
        for pid, (x, y) in enumerate(zip(setting, recipe))
        for m, ok in (("and-l0", x), ("and", y))
    ]
    recs += [
        _rec(
            "and-l0", ("french", "sentences_1"), 99, [True, True]
        ),  # no recipe partner
        _rec("and-word", ("french", "sentences_1"), 0, [True, True]),
    ]  # its recipe has no records
    tests = paired_vs_recipe(table, pd.DataFrame(recs))
    assert len(tests) == 1
    row = tests.iloc[0]
    assert (row["setting"], row["recipe"], row["n"], row["a_only"], row["b_only"]) == (
        "lambda=0.0",
        "lambda=0.5",
        20,
        6,
        2,
    )
    assert row["setting %"] == pytest.approx(50.0) and row["recipe %"] == pytest.approx(
        30.0
    )
    assert row["p"] == pytest.approx(binomtest(6, 8).pvalue)


def test_beside_paper_sets_paired_differences_against_the_papers_with_known_verdicts():
    """Hand-made McNemar rows: the paired difference, its Wald interval (worked out
    here by hand) and the verdict against the paper's unseen differences (METHOD.md)."""
    from steerlib.study.ablation_tests import beside_paper

    tests = pd.DataFrame(
        [
            # concat vs <and>: -20 points, interval -20 +- 1.96 * sqrt(26) = [-30.0,
            # -10.0]; paper 49.7 - 69.1 = -19.4
            {
                "ablation": "no_and",
                "setting": "concatenation",
                "recipe": "<and>",
                "split": "unseen",
                "n": 100,
                "a_only": 5,
                "b_only": 25,
                "p": binomtest(5, 30).pvalue,
            },
            # lambda 0.25: 0 +- 1.96 * sqrt(20) = +-8.77; paper 65.0 - 69.1 = -4.1,
            # inside, not significant
            {
                "ablation": "lambda",
                "setting": "lambda=0.25",
                "recipe": "lambda=0.5",
                "split": "unseen",
                "n": 100,
                "a_only": 10,
                "b_only": 10,
                "p": 1.0,
            },
            # " and" init without L_orth: 0 +- 1.96 * sqrt(20) / 4 = +-2.19; paper 55.2
            # - 69.1 = -13.9, outside
            {
                "ablation": "init",
                "setting": "word, without L_orth",
                "recipe": "zero, with L_orth",
                "split": "seen",
                "n": 400,
                "a_only": 10,
                "b_only": 10,
                "p": 1.0,
            },
            {
                "ablation": "combos",
                "setting": "trained on 2+3",
                "recipe": "trained on 2",
                "split": "seen",
                "n": 50,
                "a_only": 3,
                "b_only": 1,
                "p": 0.625,
            },
        ]
    )
    out = beside_paper(tests)
    assert out["verdict"].tolist() == [
        "agrees",
        "compatible",
        "differs",
        "no paper number",
    ]
    assert out["diff"].tolist() == pytest.approx([-20.0, 0.0, 0.0, 4.0])
    assert out["lo"].tolist()[:3] == pytest.approx(
        [-20 - 1.96 * 26**0.5, -1.96 * 20**0.5, -1.96 * 20**0.5 / 4]
    )
    assert out["paper diff"].tolist()[:3] == pytest.approx([-19.4, -4.1, -13.9])
    assert np.isnan(out["paper diff"].iloc[3])


def test_recorded_reads_the_chosen_methods_and_pairs_records_without_generating(
    tiny, tmp_path
):
    """What the book shows for the baselines: the study's own records of a method, for
    the selected pairs (both orders) and their behaviors alone, read back unchanged."""
    import steerlib as st

    preset = st.presets.smoke()
    tokens = st.study.train_all_behaviors(tiny, preset)
    kw = dict(
        max_new_tokens=preset.eval.max_new_tokens,
        batch_size=preset.eval.batch_size,
        seed=preset.eval.seed,
    )
    test = P.load("test", limit=preset.eval.n_capable)
    sm = st.SteeredModel(tiny, tokens)
    pairs = [("french", "sentences_1"), ("german", "words_10_50")]
    made = capable.evaluate(
        sm,
        ["concat", "instruction"],
        pairs,
        test,
        records=tmp_path / "capable_records.jsonl",
        **kw,
    )
    alone = capable.evaluate(
        sm,
        ["instruction"],
        [("french",), ("sentences_1",), ("german",)],
        test,
        records=tmp_path / "single_records.jsonl",
        **kw,
    )
    before = {
        f: (tmp_path / f).read_text()
        for f in ("capable_records.jsonl", "single_records.jsonl")
    }
    got_pairs, got_singles = capable.recorded(
        preset, tmp_path, pairs[:1], ["instruction"], tiny.fingerprint
    )
    assert {f: (tmp_path / f).read_text() for f in before} == before
    want = made[
        (made["method"] == "instruction") & made["combo"].eq("french+sentences_1")
    ]
    assert len(got_pairs) == 2 * preset.eval.n_capable
    assert sorted(
        zip(got_pairs["order"], got_pairs["prompt_id"], got_pairs["text"])
    ) == sorted(zip(want["order"], want["prompt_id"], want["text"]))
    assert set(got_singles["order"]) == {"french", "sentences_1"}
    assert sorted(got_singles["text"]) == sorted(
        alone[alone["order"] != "german"]["text"]
    )
    assert capable.recorded(preset, tmp_path, pairs, ["instruction"], "another model")[
        0
    ].empty
