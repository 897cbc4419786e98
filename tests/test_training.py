"""The shared training loop: validation-guided stopping, checkpoints, non-finite
losses."""

import dataclasses
import json

import pytest
import torch

import steerlib as st
from steerlib.config import TrainConfig, ValidationConfig, config_hash
from steerlib.tasks import prompts
from steerlib.train.compose import passing_pairs, validation_pairs
from steerlib.train.loop import NonFiniteLossError, fit

TARGET = torch.tensor([1.0, -2.0, 0.5])


def _cfg(**kw):
    base = dict(
        steps=12,
        batch_size=2,
        lr=0.1,
        warmup=0.0,
        checkpoint_every=2,
        validation=ValidationConfig(every=2, patience=2),
    )
    return TrainConfig(**{**base, **kw})


def _loss(params):
    """A quadratic pulling the vector to TARGET: examples are ignored."""
    return lambda batch: ((params["v"] - TARGET) ** 2).sum()


class Scripted:
    """A validator returning scripted pass rates, and keeping a copy of the params it
    saw."""

    def __init__(self, rates):
        self.rates, self.seen = list(rates), []

    def __call__(self, params):
        self.seen.append(params["v"].detach().clone())
        return self.rates[len(self.seen) - 1]


def test_early_stopping_keeps_best_validation_step():
    # scores at steps 0, 2, 4, 6, 8: best (0.6) at step 4, then two scores without
    # improvement
    val = Scripted([0.1, 0.3, 0.6, 0.4, 0.5, 0.9, 0.9])
    params = {"v": torch.zeros(3)}
    result = fit(
        params, list(range(8)), _cfg(), _loss(params), validate=val, progress=False
    )
    assert result.finished and result.steps == 8  # stopped at step 8 of 12
    assert result.validation.curve == [(0, 0.1), (2, 0.3), (4, 0.6), (6, 0.4), (8, 0.5)]
    assert result.validation.best_step == 4 and result.validation.best_rate == 0.6
    assert torch.equal(
        params["v"], val.seen[2]
    )  # the vector scored at step 4, not the last one
    assert not torch.equal(params["v"], val.seen[-1])


def test_equal_score_moves_to_later_step_without_resetting_patience():
    val = Scripted([0.0, 0.0, 0.0, 0.5])
    params = {"v": torch.zeros(3)}
    result = fit(
        params, list(range(8)), _cfg(), _loss(params), validate=val, progress=False
    )
    assert [s for s, _ in result.validation.curve] == [
        0,
        2,
        4,
    ]  # a flat curve stops after `patience` scores
    assert result.validation.best_step == 4 and torch.equal(params["v"], val.seen[-1])


def test_patience_in_steps_counts_from_the_first_step_at_the_best_rate():
    """patience_steps=4, scores every 2 steps: the best rate is first reached at step 2,
    equalled at step 4 (the kept step moves, the clock does not), so training stops at
    step 6, 4 steps after step 2; scored rates after it are never asked for."""
    val = Scripted([0.0, 0.5, 0.5, 0.25, 0.9, 0.9])
    params = {"v": torch.zeros(3)}
    cfg = _cfg(validation=ValidationConfig(every=2, patience=1, patience_steps=4))
    result = fit(
        params, list(range(8)), cfg, _loss(params), validate=val, progress=False
    )
    assert [s for s, _ in result.validation.curve] == [0, 2, 4, 6]
    assert result.validation.best_step == 4 and len(result.losses) == 6


def test_without_validation_all_steps_run():
    params = {"v": torch.zeros(3)}
    result = fit(
        params, list(range(8)), _cfg(validation=None), _loss(params), progress=False
    )
    assert result.steps == 12 and result.validation is None
    # validation set but no validator: the config alone does not turn it on
    params = {"v": torch.zeros(3)}
    assert (
        fit(params, list(range(8)), _cfg(), _loss(params), progress=False).steps == 12
    )


def test_resume_preserves_best_and_curve(tmp_path):
    rates = [0.1, 0.3, 0.6, 0.4, 0.5, 0.9, 0.9]
    full_params = {"v": torch.zeros(3)}
    full = fit(
        full_params,
        list(range(8)),
        _cfg(),
        _loss(full_params),
        validate=Scripted(rates),
        progress=False,
    )

    ckpt = tmp_path / "run.ckpt.safetensors"
    params = {"v": torch.zeros(3)}
    first = Scripted(rates)
    cut = fit(
        params,
        list(range(8)),
        _cfg(),
        _loss(params),
        validate=first,
        checkpoint=ckpt,
        progress=False,
        stop_after=6,
    )  # the best step (4) is behind it, the stop is not yet due
    assert not cut.finished and cut.steps == 6
    # a new process: fresh params, a validator that must continue the script where it
    # was
    params = {"v": torch.zeros(3)}
    rest = Scripted(rates[len(first.seen) :])
    resumed = fit(
        params,
        list(range(8)),
        _cfg(),
        _loss(params),
        validate=rest,
        checkpoint=ckpt,
        progress=False,
    )
    assert len(rest.seen) == 1  # only the step-8 score was left to do
    assert resumed.validation.curve == full.validation.curve
    assert resumed.validation.best_step == full.validation.best_step == 4
    assert resumed.losses == pytest.approx(full.losses)
    assert torch.allclose(params["v"], full_params["v"], atol=1e-7)


def test_resume_restores_optimiser_state(tmp_path):
    """AdamW's moments travel through state_dict(): the resumed run equals the
    uninterrupted."""
    cfg = _cfg(validation=None, lr=0.05)
    full = {"v": torch.zeros(3)}
    fit(full, list(range(8)), cfg, _loss(full), progress=False)
    ckpt = tmp_path / "c.safetensors"
    part = {"v": torch.zeros(3)}
    fit(
        part,
        list(range(8)),
        cfg,
        _loss(part),
        checkpoint=ckpt,
        progress=False,
        stop_after=5,
    )
    part = {"v": torch.zeros(3)}
    fit(part, list(range(8)), cfg, _loss(part), checkpoint=ckpt, progress=False)
    assert torch.allclose(part["v"], full["v"], atol=1e-7)


def test_non_finite_loss_stops_and_caches_nothing(tmp_path):
    ckpt = tmp_path / "c.safetensors"
    params = {"v": torch.zeros(3)}
    with pytest.raises(NonFiniteLossError, match="step 1"):
        fit(
            params,
            [0, 1],
            _cfg(validation=None),
            lambda b: params["v"].sum() * float("nan"),
            checkpoint=ckpt,
            progress=False,
        )
    assert not ckpt.exists()


def test_added_fields_keep_old_hashes_until_set():
    cfg = TrainConfig(steps=16, batch_size=8, lr=5e-2)
    added_later = {"validation", "displace", "vectors"}
    legacy = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in added_later}
    import hashlib

    old = hashlib.sha256(json.dumps(legacy, sort_keys=True).encode()).hexdigest()[:12]
    assert config_hash(cfg) == old
    assert config_hash(dataclasses.replace(cfg, validation=ValidationConfig())) != old
    assert config_hash(dataclasses.replace(cfg, displace=2)) != old
    assert config_hash(dataclasses.replace(cfg, vectors=2)) != old
    patience = ValidationConfig(patience_steps=32)
    assert config_hash(ValidationConfig()) != config_hash(patience)


def test_validation_config_refuses_nonpositive():
    with pytest.raises(ValueError, match="patience"):
        ValidationConfig(patience=0)


def test_val_split_is_disjoint_and_keeps_train_order():
    train, val, test = prompts.load("train"), prompts.load("val"), prompts.load("test")
    assert (
        len(val) == prompts.N_VAL
        and not set(val) & set(train)
        and not set(val) & set(test)
    )
    everything = prompts.load(None)
    assert len(train) + len(val) + len(test) == len(everything)
    # the val questions are the last train rows of the file: the train list is a prefix
    # of the old one
    old_train = [q for q in everything if q not in set(test)]
    assert old_train[: len(train)] == train and old_train[len(train) :] == val


def test_capable_uses_only_the_given_rates():
    rates = {"french": 0.8, "sentences_1": 0.5, "upper_case": 0.0, "words_10_50": None}
    pairs = [
        ("french", "sentences_1"),
        ("french", "upper_case"),
        ("french", "words_10_50"),
    ]
    assert passing_pairs(pairs, rates.get) == [("french", "sentences_1")]
    assert passing_pairs(pairs, rates.get, threshold=0.9) == []


def test_validation_pairs_from_token_metadata():
    toks = st.SteeringTokens(4, "m", "f")
    for name in st.behaviors.names():
        rate = (
            0.9 if name in ("french", "spanish", "sentences_1", "sentences_2") else 0.1
        )
        toks.set(name, torch.ones(4), {"validation": {"best_rate": rate}})
    pairs = validation_pairs(toks)
    assert sorted(pairs) == sorted(
        [
            ("spanish", "sentences_1"),
            ("spanish", "sentences_2"),
            ("french", "sentences_1"),
            ("french", "sentences_2"),
        ]
    )
    for name in toks.names:  # nothing capable: every training pair
        toks.info[name] = {}
    assert validation_pairs(toks) == st.behaviors.training_pairs()


def test_stage1_and_stage2_keep_their_validation_curves(tiny):
    """End to end on the tiny model: the curve and chosen step land in the token
    metadata, and the cached token loads back with them."""
    from steerlib.config import TargetConfig
    from steerlib.train.compose import train_composition_token
    from steerlib.train.distill import train_behavior_token

    vcfg = ValidationConfig(every=2, patience=1, n_questions=4, max_new_tokens=4)
    cfg = TrainConfig(
        steps=4,
        batch_size=2,
        lr=1e-2,
        checkpoint_every=2,
        targets=TargetConfig(max_new_tokens=6, min_kept=1),
        validation=vcfg,
    )
    questions = ["Why is the sky blue?", "What causes tides?"]
    toks = train_behavior_token(
        tiny, "french", cfg, questions=questions, progress=False
    )
    record = toks.info["french"]["validation"]
    assert record["curve"][0][0] == 0 and all(
        0.0 <= r <= 1.0 for _, r in record["curve"]
    )
    assert record["best_step"] in [s for s, _ in record["curve"]]
    again = train_behavior_token(
        tiny, "french", cfg, questions=questions, progress=False
    )  # from the cache
    assert again.info["french"]["validation"] == record and torch.equal(
        again["french"], toks["french"]
    )

    g = torch.Generator().manual_seed(0)
    for name in st.behaviors.names():
        toks.set(name, torch.randn(tiny.hidden_size, generator=g) * 0.2)
    out = train_composition_token(
        tiny,
        toks,
        dataclasses.replace(cfg, init="zero"),
        questions=questions,
        progress=False,
    )
    assert out.info["and"]["validation"]["curve"][0][0] == 0
    assert out.info["and"]["validation_pairs"] == [
        list(p) for p in st.behaviors.training_pairs()
    ]
