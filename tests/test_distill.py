"""Stage 1 and 2 training: the loss, frozen model, resume, orthogonality."""

import pytest
import torch

import steerlib as st
from steerlib.config import TargetConfig, TrainConfig
from steerlib.model.template import render
from steerlib.train.compose import orthogonality, train_composition_token
from steerlib.train.distill import train_behavior_token
from steerlib.train.loss import (
    Example,
    answer_hidden,
    distill_loss,
    step_loss,
    train_vectors,
)
from steerlib.train.targets import make_targets

QUESTIONS = [
    "Why is the sky blue?",
    "How do bees make honey?",
    "What causes tides?",
    "Why do we sleep?",
]
TARGETS = TargetConfig(max_new_tokens=8, min_kept=1)


def _cfg(**kw):
    base = dict(steps=4, batch_size=2, lr=1e-2, checkpoint_every=2, targets=TARGETS)
    return TrainConfig(**{**base, **kw})


def test_kl_zero_when_student_reads_teacher_input(tiny):
    """With the student prompt equal to the teacher prompt, the loss is exactly zero."""
    targets = make_targets(
        tiny, [(q, ("french",)) for q in QUESTIONS[:2]], TARGETS, key="t"
    )
    examples = [
        Example(
            render(tiny, t.question, (), t.instructions),
            render(tiny, t.question, (), t.instructions),
            t.answer,
        )
        for t in targets
    ]
    loss = step_loss(tiny, examples, {}, None, _cfg())
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_distill_loss_scaling():
    t = torch.tensor([[2.0, 0.0, -1.0]])
    s = torch.tensor([[0.0, 1.0, 0.0]])
    p = torch.softmax(t / 10, -1)
    expected = (
        p * (torch.log_softmax(t / 10, -1) - torch.log_softmax(s / 10, -1))
    ).sum() * 100
    assert distill_loss(t, s, 10.0).item() == pytest.approx(expected.item(), rel=1e-5)


def test_answer_positions_predict_answer_tokens(tiny):
    """Hidden states picked for the loss are those whose logits predict each answer
    token."""
    row = render(tiny, "Why is the sky blue?")
    answer = tiny.tokenizer(" Because of scattering.", add_special_tokens=False)[
        "input_ids"
    ]
    picked = answer_hidden(tiny, [row], [answer])
    full = tiny.model(
        input_ids=torch.tensor([row.ids + answer]), output_hidden_states=True
    ).hidden_states[-1][0]
    n = len(row.ids)
    assert torch.allclose(picked, full[n - 1 : n - 1 + len(answer)], atol=1e-5)


def test_training_halves_loss_and_freezes_model(tiny):
    """The teacher reads one word; the best token is that word's embedding, so the loss
    can fall to zero, and training from the zero vector must at least halve it."""
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    answers = make_targets(tiny, [(q, ()) for q in QUESTIONS[:2]], TARGETS, key="plain")
    examples = [
        Example(
            render(tiny, t.question, (), "French"),
            render(tiny, t.question, ("french",)),
            t.answer,
        )
        for t in answers
    ]
    param = torch.zeros(tiny.hidden_size)
    cfg = _cfg(steps=100, batch_size=2, lr=1e-2, warmup=0.1)
    losses = train_vectors(
        tiny, {"french": param}, examples, cfg, progress=False
    ).losses
    assert losses[-1] < 0.5 * losses[0]
    assert all(torch.equal(before[k], v) for k, v in tiny.model.state_dict().items())
    assert not any(p.requires_grad for p in tiny.model.parameters())


def test_resume_equals_uninterrupted(tiny, tmp_path):
    cfg = _cfg(steps=6, checkpoint_every=2)
    full = train_behavior_token(
        tiny, "french", cfg, questions=QUESTIONS, progress=False
    )["french"]
    # an interrupted run: stops after 3 steps (checkpoint at step 2), then resumes
    partial = train_behavior_token(
        tiny,
        "french",
        cfg,
        questions=QUESTIONS,
        progress=False,
        retrain=True,
        stop_after=3,
    )
    assert len(partial.losses["french"]) == 3
    resumed = train_behavior_token(
        tiny, "french", cfg, questions=QUESTIONS, progress=False, retrain=False
    )
    assert torch.allclose(resumed["french"], full, atol=1e-6)
    assert len(resumed.losses["french"]) == 6


def test_cached_token_is_reused(tiny):
    cfg = _cfg()
    a = train_behavior_token(tiny, "french", cfg, questions=QUESTIONS, progress=False)
    b = train_behavior_token(tiny, "french", cfg, questions=QUESTIONS, progress=False)
    assert (
        torch.equal(a["french"], b["french"])
        and a.info["french"]["seconds"] == b.info["french"]["seconds"]
    )


def test_orthogonality_term():
    a = torch.tensor([1.0, 0.0])
    bs = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    assert orthogonality(a, bs).item() == pytest.approx(1.0 + 0.0 + 0.5)


def test_stage2_freezes_behavior_tokens(tiny, monkeypatch):
    toks = st.SteeringTokens.for_backbone(tiny)
    g = torch.Generator().manual_seed(0)
    for name in st.behaviors.names():
        toks.set(name, torch.randn(tiny.hidden_size, generator=g) * 0.2)
    before = {n: toks[n].clone() for n in toks.names}
    out = train_composition_token(
        tiny, toks, _cfg(init="zero"), questions=QUESTIONS, progress=False
    )
    assert "and" in out.names and out["and"].abs().sum() > 0
    # what <and> trained on, under the key cards read (not the pre-issue-35 "variant")
    assert out.info["and"]["combos"] == "2" and "variant" not in out.info["and"]
    assert all(torch.equal(before[n], out[n]) for n in before)
    assert all(torch.equal(before[n], toks[n]) for n in before)


def test_stage2_needs_behavior_tokens(tiny):
    with pytest.raises(ValueError, match="missing"):
        train_composition_token(
            tiny, st.SteeringTokens.for_backbone(tiny), _cfg(init="zero")
        )


def test_stage2_in_a_layout_trains_another_and_that_reads_in_it(tiny):
    """``<and>`` trained with its behavior tokens read in a layout: its own cache entry,
    another vector than the paper layout's, and the layout kept with the result."""
    from steerlib.model import layout as L

    toks = st.SteeringTokens.for_backbone(tiny)
    g = torch.Generator().manual_seed(0)
    for name in st.behaviors.names():
        toks.set(name, torch.randn(tiny.hidden_size, generator=g) * 0.2)
    isolated = L.Layout(L.SlotPositions.SHARED, isolate=True)
    plain = train_composition_token(
        tiny, toks, _cfg(init="zero"), questions=QUESTIONS, progress=False
    )
    moved = train_composition_token(
        tiny,
        toks.with_layout(isolated),
        _cfg(init="zero"),
        questions=QUESTIONS,
        progress=False,
    )
    assert moved.layout == isolated and plain.layout == L.DEFAULT
    assert moved.info["and"]["key"] != plain.info["and"]["key"]
    assert not torch.equal(moved["and"], plain["and"])
