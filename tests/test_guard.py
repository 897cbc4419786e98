"""STEERLIB_NO_TRAIN=1: every place that trains or generates for a cache refuses, by
name; what is cached is still read."""

import pytest
import torch

import steerlib as st
from steerlib.baselines import train_lm_steer
from steerlib.config import TargetConfig, TrainConfig
from steerlib.evaluation.evaluate import evaluate
from steerlib.guard import NO_TRAIN_ENV, TrainingDisabled
from steerlib.train.compose import train_composition_token
from steerlib.train.distill import train_behavior_token
from steerlib.train.targets import make_targets

QUESTIONS = ["Why is the sky blue?", "How do bees make honey?"]
CFG = TrainConfig(
    steps=2, batch_size=2, lr=1e-2, targets=TargetConfig(max_new_tokens=4, min_kept=1)
)


@pytest.fixture
def guarded(monkeypatch):
    monkeypatch.setenv(NO_TRAIN_ENV, "1")


def test_targets_refused_by_name(tiny, guarded):
    with pytest.raises(
        TrainingDisabled, match=r"self targets for french.*STEERLIB_NO_TRAIN=1"
    ):
        make_targets(tiny, [(QUESTIONS[0], ("french",))], CFG.targets, key="french")


def test_token_training_refused_even_with_cached_targets(tiny, monkeypatch):
    make_targets(
        tiny, [(q, ("french",)) for q in QUESTIONS], CFG.targets, key="french"
    )  # cached, unguarded
    monkeypatch.setenv(NO_TRAIN_ENV, "1")
    with pytest.raises(
        TrainingDisabled,
        match=r"token <french> \(french-[0-9a-f]{12}[-\w]*\.safetensors\)",
    ):
        train_behavior_token(tiny, "french", CFG, questions=QUESTIONS)


def test_cached_token_loads_under_the_guard(tiny, monkeypatch):
    trained = train_behavior_token(tiny, "french", CFG, questions=QUESTIONS)
    monkeypatch.setenv(NO_TRAIN_ENV, "1")
    again = train_behavior_token(tiny, "french", CFG, questions=QUESTIONS)
    assert torch.equal(again["french"], trained["french"])


def test_stage2_and_baselines_refused(tiny, guarded):
    toks = st.SteeringTokens.for_backbone(tiny)
    for name in st.behaviors.names():
        toks.set(name, torch.randn(tiny.hidden_size) * 0.1)
    with pytest.raises(TrainingDisabled, match="targets for compose"):
        train_composition_token(tiny, toks, CFG, questions=QUESTIONS)
    with pytest.raises(TrainingDisabled, match="lm_steer baseline for <french>"):
        train_lm_steer(tiny, ["french"], questions=QUESTIONS)


def test_evaluate_refuses_missing_and_stale_records_but_reads_complete_ones(
    tiny, tmp_path, monkeypatch
):
    toks = st.SteeringTokens.for_backbone(tiny)
    toks.set("french", torch.randn(tiny.hidden_size) * 0.1)
    path = tmp_path / "records.jsonl"
    kw = dict(max_new_tokens=4, records=path, progress=False)
    with monkeypatch.context() as m:
        m.setenv(NO_TRAIN_ENV, "1")
        with pytest.raises(
            TrainingDisabled, match=r"2 'concat' generations for .*records\.jsonl"
        ):
            evaluate(
                st.SteeredModel(tiny, toks), ["concat"], [("french",)], QUESTIONS, **kw
            )
    first = evaluate(
        st.SteeredModel(tiny, toks), ["concat"], [("french",)], QUESTIONS, **kw
    )
    lines = path.read_text()
    monkeypatch.setenv(NO_TRAIN_ENV, "1")
    again = evaluate(
        st.SteeredModel(tiny, toks), ["concat"], [("french",)], QUESTIONS, **kw
    )
    assert again["text"].tolist() == first["text"].tolist()
    other = toks.copy()
    other.set("french", torch.randn(tiny.hidden_size) * 0.1)
    with pytest.raises(TrainingDisabled, match="2 'concat' records of .* anew"):
        evaluate(
            st.SteeredModel(tiny, other), ["concat"], [("french",)], QUESTIONS, **kw
        )
    assert path.read_text() == lines  # the stale records were not dropped from the file


def test_guard_is_off_unless_set(tiny, monkeypatch):
    monkeypatch.setenv(NO_TRAIN_ENV, "0")
    assert make_targets(tiny, [(QUESTIONS[0], ("french",))], CFG.targets, key="french")
