"""End to end: `reproduce --preset smoke`, resumability, and the CLI."""

import json

import pandas as pd
import torch

import steerlib as st
from steerlib.cli import main
from steerlib.study.pipeline import reproduce


def test_reproduce_smoke_end_to_end(tmp_path):
    out = tmp_path / "results"
    tables = reproduce(st.presets.smoke(), out)
    for name in [
        "teacher_compliance.md",
        "single_behavior.md",
        "composition.md",
        "composition.csv",
        "pair_heatmap.png",
        "records.jsonl",
        "single_records.jsonl",
        "tokens.safetensors",
        "timings.json",
    ]:
        assert (out / name).is_file(), name
    assert list(tables["single"].index) == st.behaviors.names()
    assert list(tables["single"].columns) == [
        "plain",
        "instruction",
        "token",
        "hybrid",
        "filtered",
    ]
    assert (
        out / "targets_records.jsonl"
    ).is_file()  # token columns share the targets comparison's records
    comp = tables["composition"]
    assert set(comp["method"]) == {
        "instruction",
        "concat",
        "native_and",
        "and",
        "hybrid",
    }
    assert {"seen-2", "unseen-2", "seen-3", "unseen-3"} <= set(comp["split"])
    timings = json.loads((out / "timings.json").read_text())
    assert {
        "stage1",
        "single_eval",
        "stage2",
        "composition_eval",
        "total",
        "peak_rss_gb",
    } <= set(timings)
    tokens = st.SteeringTokens.from_pretrained(out)
    assert tokens.names == [*st.behaviors.names(), "and"]
    # a second run regenerates nothing: the records are reused as they are
    lines = (out / "records.jsonl").read_text()
    reproduce(st.presets.smoke(), out)
    assert (out / "records.jsonl").read_text() == lines
    assert len(pd.read_json(out / "records.jsonl", lines=True)) == comp["n"].sum()


def test_cli_behaviors(capsys):
    assert main(["behaviors"]) == 0
    text = capsys.readouterr().out
    assert "<french>" in text and "<json>" in text and "unseen" in text


def test_cli_generate_on_tiny(tiny, capsys):
    """The command prints the library's answer to the prompt, with the demo decoding
    settings."""
    from steerlib.model.generate import DEMO_REPETITION_PENALTY

    assert (
        main(
            [
                "generate",
                "--model",
                "tiny",
                "--tokens",
                "none",
                "--prompt",
                "Why?",
                "--max-new-tokens",
                "4",
            ]
        )
        == 0
    )
    expected = st.SteeredModel(tiny).generate(
        "Why?", max_new_tokens=4, repetition_penalty=DEMO_REPETITION_PENALTY
    )
    assert capsys.readouterr().out == expected + "\n"


def test_cli_unknown_token_is_a_clear_error(capsys):
    code = main(
        [
            "generate",
            "--model",
            "tiny",
            "--tokens",
            "none",
            "--prompt",
            "Why? <frnch>",
            "--max-new-tokens",
            "2",
        ]
    )
    assert code == 2
    assert "unknown steering token" in capsys.readouterr().err


def test_targets_comparison_reports_every_source(tmp_path):
    from steerlib.study.singles import targets_comparison

    preset = st.presets.smoke()
    table = targets_comparison(
        st.load_backbone("tiny"), preset, ["upper_case"], tmp_path
    )
    assert list(table["method"]) == [
        "instruction",
        "self",
        "filtered",
        "constructed",
        "constructed+ce",
    ]
    # the tiny random model never writes upper case: filtered targets are reported, not
    # faked
    filtered = table[table["method"] == "filtered"].iloc[0]
    assert filtered["note"] == "too few targets" and filtered["n"] == 0
    assert (table[table["method"] != "filtered"]["n"] == preset.eval.n_single).all()
    assert (tmp_path / "targets_comparison.md").is_file()


def test_ablations_cached_only_reads_records_and_trains_nothing(tmp_path):
    from steerlib.study.ablations import run_ablations

    preset = st.presets.smoke()
    bb = st.load_backbone("tiny")
    tokens = st.train_composition_token(
        bb, st.study.train_all_behaviors(bb, preset), preset.stage2
    )
    first = run_ablations(bb, tokens, preset, tmp_path, which=("no_and",))
    lines = (tmp_path / "records.jsonl").read_text()
    # the setting's <and> is saved next to the records (the recipe: the <and> trained
    # above)
    saved = st.SteeringTokens.load_file(
        tmp_path / "ablation_tokens" / "paper-and_2_zero_0.5.safetensors", bb
    )
    assert saved.names == ["and"] and torch.equal(saved["and"], tokens["and"])
    # cached_only: the no_and settings are complete and reported; everything else is
    # skipped, including "<and> trained on 2" whose pair records exist but whose
    # triples do not
    again = run_ablations(
        bb,
        tokens.subset([n for n in tokens.names if n != "and"]),
        preset,
        tmp_path,
        cached_only=True,
    )
    assert (tmp_path / "records.jsonl").read_text() == lines
    assert set(again["ablation"]) == {
        "no_and",
        "init",
        "lambda",
    }  # init/lambda share the <and> records
    assert "combos" not in set(again["ablation"])
    # the same metrics, and the training seconds read back from the cached <and> (none
    # for concatenation)
    assert first.set_index("setting")["train_s"].notna().to_dict() == {
        "concatenation": False,
        "<and>": True,
    }
    pd.testing.assert_frame_equal(
        first.reset_index(drop=True),
        again[again["ablation"] == "no_and"].reset_index(drop=True),
    )


def test_cli_ablations_runs_the_chosen_ablation_on_the_presets_model(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.setenv("STEERLIB_RESULTS", str(tmp_path))
    assert main(["ablations", "--preset", "smoke", "--which", "no_and"]) == 0
    out = capsys.readouterr().out
    assert "no_and" in out and "init" not in out
    report = (tmp_path / "smoke" / "ablations" / "ablations.md").read_text()
    assert report.strip() in out and "Beside the paper" in report
    table = pd.read_csv(tmp_path / "smoke" / "ablations" / "ablations.csv")
    assert set(table["setting"]) == {"concatenation", "<and>"}
    # --cached-only: the same report from the records (and the cached <and>), nothing
    # trained or generated
    records = (tmp_path / "smoke" / "ablations" / "records.jsonl").read_text()
    assert main(["ablations", "--preset", "smoke", "--cached-only"]) == 0
    assert (tmp_path / "smoke" / "ablations" / "records.jsonl").read_text() == records
    again = pd.read_csv(tmp_path / "smoke" / "ablations" / "ablations.csv")
    pd.testing.assert_frame_equal(
        again[again["ablation"] == "no_and"].reset_index(drop=True), table
    )


def test_cli_unknown_ablation_is_a_clear_error(capsys):
    assert main(["ablations", "--preset", "smoke", "--which", "orth"]) == 2
    assert "unknown ablation" in capsys.readouterr().err


def test_cli_ablation_combos_is_also_read_under_its_old_name():
    """``--which combos``; "variant", its name before issue 35, still reads as it for
    one release."""
    from steerlib.cli.parser import build_parser

    def which(*names):
        return build_parser().parse_args(["ablations", "--which", *names]).which

    assert which("combos") == which("variant") == ["combos"]
    assert which("no_and", "variant") == ["no_and", "combos"]


def test_reproduce_with_baselines_sweeps_caa_and_adds_their_rows(tmp_path, monkeypatch):
    from steerlib.study import capable

    # the tiny model's tokens pass nothing alone: one capable pair, as if it had
    # qualified
    monkeypatch.setattr(
        capable, "select_pairs", lambda rates, threshold: [("french", "words_10_50")]
    )
    out = tmp_path / "results"
    tables = reproduce(st.presets.smoke(), out, with_baselines=True)
    assert {"caa", "lm_steer", "lora_dare"} <= set(tables["composition"]["method"])
    header = (out / "caa_sweep.md").read_text().splitlines()[2].split("|")
    assert [c.strip() for c in header[1:4]] == ["layer", "alpha", "mean"]
    records = pd.read_json(out / "caa_sweep_records.jsonl", lines=True)
    assert records["method"].str.startswith("caa@").all()
    # baseline records carry the digest of the settings they were made with
    comp = pd.read_json(out / "records.jsonl", lines=True)
    assert comp[comp["method"] == "caa"]["tokens"].notna().all()
    # what each baseline cost per behavior, and the settings it steered with (DARE's
    # drop rate)
    costs = (out / "baselines.md").read_text()
    assert '"drop_rate": 0.5' in costs and '"alpha": ' in costs
    assert all(f"| {n} " in costs for n in [*st.behaviors.names(), "total"])
    # on the capable pairs, CAA is swept again over their behaviors alone, as `capable
    # --baselines` does
    swept = pd.read_json(out / "capable_caa_sweep_records.jsonl", lines=True)
    assert set(swept["order"]) == {"french", "words_10_50"}
    best = (out / "capable_caa_sweep.md").read_text().splitlines()[4].split("|")
    settings = json.loads(
        (out / "capable_baselines.md")
        .read_text()
        .split("Settings: caa ")[1]
        .split(";")[0]
    )
    assert (settings["layer"], settings["alpha"]) == (int(best[1]), float(best[2]))
    pairs = pd.read_json(out / "capable_records.jsonl", lines=True)
    assert {"caa", "lm_steer", "lora_dare"} <= set(pairs["method"])
    assert "timings" in tables and "baselines" in tables["timings"]


def test_cli_generate_labels_several_answers_and_prints_only_answers(capsys):
    assert (
        main(
            [
                "generate",
                "--model",
                "tiny",
                "--tokens",
                "none",
                "--prompt",
                "Why?",
                "--prompt",
                "How?",
                "--max-new-tokens",
                "3",
                "--repetition-penalty",
                "1.0",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[1] Why?" and "[2] How?" in out
    assert not any("%|" in line for line in out)  # no progress bar on stdout


def test_cli_capable_baselines_are_reported_and_kept_by_a_later_run_without_them(
    capsys, tmp_path, monkeypatch
):
    """``capable --baselines lm_steer`` trains LM-Steer for the capable pairs'
    behaviors, writes its costs and its rows; a later ``capable`` without --baselines
    keeps its rows (read from the records) instead of dropping them, and generates
    nothing new for it."""
    monkeypatch.setenv("STEERLIB_RESULTS", str(tmp_path))
    out = tmp_path / "smoke"
    assert main(["capable", "--preset", "smoke", "--baselines", "lm_steer"]) == 0
    first = pd.read_csv(out / "capable_pairs.csv")
    assert (
        "lm_steer" in set(first["method"])
        and "lm_steer" in (out / "capable_baselines.md").read_text()
    )
    tests = pd.read_csv(out / "capable_tests.csv")
    assert {("and", "lm_steer")} <= set(zip(tests["a"], tests["b"]))
    records = (out / "capable_records.jsonl").read_text()
    capsys.readouterr()
    assert main(["capable", "--preset", "smoke"]) == 0
    assert (out / "capable_records.jsonl").read_text() == records
    pd.testing.assert_frame_equal(pd.read_csv(out / "capable_pairs.csv"), first)


def test_caa_sweeps_of_two_behavior_sets_keep_their_own_records(tiny, tmp_path):
    from dataclasses import replace

    from steerlib.baselines import CAAConfig, train_caa
    from steerlib.study.baseline_runs import caa_sweep

    preset = st.presets.smoke()
    caa = train_caa(
        tiny, ["french", "words_10_50"], CAAConfig(n_prompts=4), progress=False
    )
    caa_sweep(tiny, caa, preset, tmp_path)
    first = (tmp_path / "caa_sweep_records.jsonl").read_text()
    # the same behavior, extracted again with its last bits changed (as another thread
    # count does)
    again = replace(
        caa, params={"french": {"vector": caa.params["french"]["vector"] + 1e-6}}
    )
    best = caa_sweep(tiny, again, preset, tmp_path, name="capable_caa_sweep")
    assert (tmp_path / "caa_sweep_records.jsonl").read_text() == first
    records = pd.read_json(tmp_path / "capable_caa_sweep_records.jsonl", lines=True)
    assert set(records["order"]) == {"french"}
    first_row = (
        (tmp_path / "capable_caa_sweep.md").read_text().splitlines()[4].split("|")
    )
    assert (best.layer, best.alpha) == (int(first_row[1]), float(first_row[2]))
