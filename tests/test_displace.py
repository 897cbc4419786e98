"""Displaced stage-1 training (``TrainConfig.displace``, the position study's family B):
the student reads 0..k frozen blank slots between the question and the token, the
teacher is unchanged, only the token trains, and a config without it keeps its cache
key."""

import dataclasses
from collections import Counter

import pytest
import torch

import steerlib as st
from steerlib.config import TrainConfig, config_hash
from steerlib.errors import ConfigError
from steerlib.model.template import render
from steerlib.train import distill as D
from steerlib.train import validation as V


def test_displace_zero_keeps_every_existing_cache_key():
    cpu = st.presets.cpu()
    assert config_hash(dataclasses.replace(cpu.stage1, displace=0)) == config_hash(
        cpu.stage1
    )
    assert config_hash(dataclasses.replace(cpu.stage1, displace=2)) != config_hash(
        cpu.stage1
    )
    # the shipped <french> was trained with this key, before the field existed
    assert D.stage1_key("french", cpu.stage1_config("french")) == "french-4d6eeecdc87a"


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_displace_must_be_a_count(bad):
    with pytest.raises(ConfigError, match="displace must be an integer >= 0"):
        TrainConfig(displace=bad)


def test_blanks_are_fixed_vectors_of_the_vocabulary_norm(tiny):
    blanks = D.blank_tokens(tiny, 2, seed=0)
    assert blanks.names == ["blank_1", "blank_2"]
    norm = tiny.embeddings.detach().float().norm(dim=1).mean()
    for name in blanks.names:
        assert torch.allclose(blanks[name].norm(), norm, rtol=1e-4)
    assert not torch.allclose(blanks["blank_1"], blanks["blank_2"])
    assert torch.equal(D.blank_tokens(tiny, 2, seed=0)["blank_2"], blanks["blank_2"])


@pytest.fixture
def spied(tiny, monkeypatch, tmp_path):
    """Train <french> displaced on the tiny model; keep its targets, examples and
    frozen tokens."""
    monkeypatch.setenv("STEERLIB_ARTIFACTS", str(tmp_path))
    seen = {}
    real_examples, real_fit = D.examples_for, D.fit_token

    def examples_for(bb, targets, slots, **kw):
        seen["targets"] = targets
        seen["examples"] = real_examples(bb, targets, slots, **kw)
        return seen["examples"]

    def fit_token(*args, **kw):
        seen["frozen"] = kw.get("tokens")
        return real_fit(*args, **kw)

    monkeypatch.setattr(D, "examples_for", examples_for)
    monkeypatch.setattr(D, "fit_token", fit_token)
    cfg = dataclasses.replace(
        st.presets.smoke().stage1_config("french"), steps=4, batch_size=4, displace=2
    )
    tokens = D.train_behavior_token(tiny, "french", cfg, progress=False)
    return tiny, tokens, seen


def _without(rendered):
    slots = {p for p, _ in rendered.slots}
    return [t for i, t in enumerate(rendered.ids) if i not in slots]


def test_displaced_batches_put_blanks_between_question_and_token(spied):
    bb, tokens, seen = spied
    draws = Counter()
    for target, ex in zip(seen["targets"], seen["examples"], strict=True):
        names = [name for _, name in ex.student.slots]
        draws[len(names) - 1] += 1
        assert names in (
            ["french"],
            ["blank_1", "french"],
            ["blank_1", "blank_2", "french"],
        )
        # the prompt of the undisplaced token, with the blanks inserted right before it
        plain = render(bb, target.question, ("french",))
        start = plain.slots[0][0]
        assert [p for p, _ in ex.student.slots] == list(
            range(start, start + len(names))
        )
        assert _without(ex.student) == _without(plain)
        # the teacher reads the instruction and no slot, as in undisplaced training
        assert not ex.teacher.slots and ex.answer == target.answer
    assert len(draws) >= 2, draws  # displacement is drawn per example
    # only the token trains; the blanks are the frozen tokens handed to the loop
    assert tokens.names == ["french"] and tokens.info["french"]["displace"] == 2
    assert seen["frozen"].names == ["blank_1", "blank_2"]


def test_displaced_validation_asks_every_place(tiny, monkeypatch):
    asked = []
    monkeypatch.setattr(V, "pass_rate", lambda sm, jobs, cfg: asked.extend(jobs) or 0.0)
    cfg = st.presets.smoke().validation
    V.behavior_validator(tiny, "french", cfg, D.blank_tokens(tiny, 2))({})
    slots = [s for _, s, _ in asked]
    assert slots[:3] == [
        ("french",),
        ("blank_1", "french"),
        ("blank_1", "blank_2", "french"),
    ]
    assert all(names == ("french",) for _, _, names in asked)
