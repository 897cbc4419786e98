"""The model-changing baselines (CAA, LM-Steer, LoRA + DARE) on the tiny random model.

Each must change the model only inside its context (logits bit-identical afterwards),
steer the way its paper says, train on the tokens' distillation objective, cache, and
save/load with a model check.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import replace

import peft
import pytest
import torch

from steerlib.baselines import (
    CAA,
    CAAConfig,
    LMSteer,
    LMSteerConfig,
    LoRAConfig,
    LoRADare,
    sweep,
    train_baselines,
    train_caa,
    train_lm_steer,
    train_lora,
)
from steerlib.baselines import caa as caa_module
from steerlib.baselines.common import distill_examples
from steerlib.baselines.lm_steer import steer_final_hidden
from steerlib.baselines.lora_dare import MLP, attach, student_pass
from steerlib.config import TargetConfig, TrainConfig
from steerlib.evaluation.evaluate import evaluate
from steerlib.model.backbone import load_backbone
from steerlib.model.generate import SteeredModel
from steerlib.model.template import render
from steerlib.train.loss import step_loss

QUESTIONS = [
    "Why is the sky blue?",
    "What is a prime number?",
    "How do bees make honey?",
    "Name a large city.",
    "What causes rain?",
    "Explain gravity briefly.",
]
TRAIN = TrainConfig(
    steps=4,
    batch_size=4,
    lr=1e-2,
    checkpoint_every=2,
    targets=TargetConfig(max_new_tokens=6, min_kept=1),
)


@pytest.fixture(scope="module")
def bb():
    return load_backbone("tiny")


@pytest.fixture(autouse=True)
def artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("STEERLIB_ARTIFACTS", str(tmp_path / "artifacts"))
    return tmp_path / "artifacts"


def ids(bb) -> torch.Tensor:
    return torch.tensor(
        [bb.tokenizer("Why is the sky blue? Tell me.")["input_ids"]], device=bb.device
    )


@torch.inference_mode()
def logits(bb) -> torch.Tensor:
    return bb.model(ids(bb)).logits


def hooks(bb) -> dict[str, tuple]:
    return {
        n: (tuple(m._forward_hooks), tuple(m._forward_pre_hooks))
        for n, m in bb.model.named_modules()
    }


def snapshot(bb) -> dict:
    """What must be exactly as before once a context exits: logits, weights, modules,
    hooks."""
    return {
        "logits": logits(bb),
        "params": {k: v.clone() for k, v in bb.model.state_dict().items()},
        "hooks": hooks(bb),
    }


def assert_model_restored(bb, before: dict) -> None:
    assert torch.equal(logits(bb), before["logits"])
    after = bb.model.state_dict()
    assert after.keys() == before["params"].keys()
    assert all(torch.equal(after[k], v) for k, v in before["params"].items())
    assert not any(
        isinstance(m, peft.tuners.lora.LoraLayer) for m in bb.model.modules()
    )
    assert not hasattr(bb.model, "peft_config")
    assert hooks(bb) == before["hooks"]


def random_caa(bb, **kw) -> CAA:
    n_layers = len(bb.model.base_model.layers)
    gen = torch.Generator().manual_seed(0)
    vectors = {
        n: {"vector": torch.randn(n_layers, bb.hidden_size, generator=gen)}
        for n in ("french", "upper_case")
    }
    return CAA(params=vectors, model_id=bb.model_id, fingerprint=bb.fingerprint, **kw)


# -- CAA
# -----------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [0, None])
def test_caa_adds_alpha_times_summed_vectors_to_layer_output(bb, layer):
    caa = random_caa(bb, layer=layer, alpha=2.5)
    target = caa.layer_for(bb)
    seen = []
    block = bb.model.base_model.layers[target]
    before = snapshot(bb)
    handle = block.register_forward_hook(lambda _m, _i, out: seen.append(out.clone()))
    try:
        logits(bb)
        with caa.context(SteeredModel(bb), ["french", "upper_case"]):
            # hooks run in registration order: this one sees the steered output
            inner = block.register_forward_hook(
                lambda _m, _i, out: seen.append(out.clone())
            )
            logits(bb)
            inner.remove()
    finally:
        handle.remove()
    plain, unsteered_inside, steered = seen
    assert torch.equal(plain, unsteered_inside)
    expected = 2.5 * (
        caa.params["french"]["vector"][target]
        + caa.params["upper_case"]["vector"][target]
    )
    expected = expected.to(plain.device).expand_as(plain)
    diff = steered.float() - plain.float()
    # exact up to rounding of h + delta in the model's dtype
    tol = (
        4
        * torch.finfo(bb.dtype).eps
        * (plain.abs().max() + expected.abs().max()).item()
    )
    assert torch.allclose(diff, expected, atol=tol, rtol=0)
    assert_model_restored(bb, before)


def test_last_token_states_is_the_unbatched_mean(bb):
    rows = [
        render(bb, q, (), instr)
        for q, instr in [
            ("Hi?", ""),
            ("Why is the sky blue?", "Answer in French."),
            ("What causes rain on a cold day?", ""),
        ]
    ]
    batched = caa_module.last_token_states(
        bb, rows, batch_size=2
    )  # left padding inside a batch
    with torch.inference_mode():
        singles = [
            bb.model(
                torch.tensor([r.ids], device=bb.device), output_hidden_states=True
            ).hidden_states[1][0, -1]
            for r in rows
        ]
    assert torch.allclose(
        batched[0], torch.stack(singles).float().mean(0).cpu(), atol=1e-4
    )


def test_train_caa_caches_vectors(bb, monkeypatch):
    cfg = CAAConfig(n_prompts=4, batch_size=3)
    caa = train_caa(bb, ["french"], cfg, alpha=1.5, questions=QUESTIONS, progress=False)
    vec = caa.params["french"]["vector"]
    assert vec.shape == (len(bb.model.base_model.layers), bb.hidden_size)
    assert caa.alpha == 1.5 and caa.layer is None and not caa.tokens
    assert vec.abs().sum() > 0

    def fail(*_a, **_k):
        raise AssertionError("cached vectors must not be recomputed")

    monkeypatch.setattr(caa_module, "last_token_states", fail)
    again = train_caa(bb, ["french"], cfg, layer=1, questions=QUESTIONS, progress=False)
    assert (
        torch.equal(again.params["french"]["vector"], vec)
        and again.layer == 1
        and again.alpha == 3.0
    )


def test_caa_save_load_and_model_check(bb, tmp_path):
    caa = random_caa(bb, layer=1, alpha=4.0)
    loaded = CAA.load(caa.save(tmp_path / "caa.safetensors"), bb)
    assert (loaded.layer, loaded.alpha, loaded.names) == (
        1,
        4.0,
        ["french", "upper_case"],
    )
    assert all(
        torch.equal(loaded.params[n]["vector"], caa.params[n]["vector"])
        for n in caa.names
    )
    other = replace(caa, model_id="other-model", fingerprint="0123456789abcdef")
    with pytest.raises(ValueError, match="other-model.*0123456789abcdef.*tiny-llama"):
        CAA.load(other.save(tmp_path / "other.safetensors"), bb)
    with pytest.raises(ValueError, match="caa baseline, not lm_steer"):
        LMSteer.load(tmp_path / "caa.safetensors", bb)


def test_caa_sweep_table(bb):
    caa = random_caa(bb)
    table = sweep(
        bb,
        caa,
        ["upper_case"],
        QUESTIONS[:2],
        alphas=[0.0, 3.0],
        layers=[0, 1],
        max_new_tokens=3,
    )
    assert len(table) == 4
    assert set(zip(table.layer, table.alpha)) == {
        (0, 0.0),
        (0, 3.0),
        (1, 0.0),
        (1, 3.0),
    }
    assert {"mean", "upper_case"} <= set(table.columns)
    assert table["mean"].is_monotonic_decreasing


def test_order_free_methods_generate_once_per_combination(bb, monkeypatch):
    """CAA's steering is one sum taken in a fixed order, the same bits for every
    ordering, so ``evaluate`` enters its context once per combination and every
    ordering gets the text generated there; a method that is not order-free gets one
    context per ordering."""
    gen = torch.Generator().manual_seed(1)
    names = ("french", "upper_case", "german")
    caa = CAA(
        params={
            n: {
                "vector": torch.randn(
                    len(bb.model.base_model.layers), bb.hidden_size, generator=gen
                )
            }
            for n in names
        },
        model_id=bb.model_id,
        fingerprint=bb.fingerprint,
    )
    assert all(
        torch.equal(caa.delta(bb, order), caa.delta(bb, names))
        for order in itertools.permutations(names)
    )
    entered = []
    original = CAA.context
    monkeypatch.setattr(
        CAA,
        "context",
        lambda self, sm, order: (
            entered.append(tuple(order)),
            original(self, sm, order),
        )[1],
    )
    recs = evaluate(
        SteeredModel(bb),
        [caa],
        [names[:2], names],
        QUESTIONS[:2],
        max_new_tokens=4,
        progress=False,
    )
    assert (
        len(entered) == 2 and len(recs) == (2 + 6) * 2
    )  # two combinations; every ordering has its records
    for pid in (0, 1):
        texts = set(recs[(recs.prompt_id == pid) & (recs.k == 3)].text)
        with original(caa, SteeredModel(bb), names[::-1]) as sm:
            assert texts == {sm.generate(QUESTIONS[pid], max_new_tokens=4)}

    class Ordered(
        CAA
    ):  # as LoRA + DARE, whose drop masks follow the order of the adapters
        order_free = False

    entered.clear()
    evaluate(
        SteeredModel(bb),
        [Ordered(**{f.name: getattr(caa, f.name) for f in dataclasses.fields(caa)})],
        [names[:2]],
        QUESTIONS[:2],
        max_new_tokens=4,
        progress=False,
    )
    assert sorted(entered) == sorted(itertools.permutations(names[:2]))


# -- LM-Steer
# ------------------------------------------------------------------------------
def test_lm_steer_zero_factors_leave_logits_unchanged(bb):
    d = bb.hidden_size
    zero = LMSteer(
        params={"french": {"P1": torch.zeros(d, 64), "P2": torch.zeros(64, d)}},
        model_id=bb.model_id,
        fingerprint=bb.fingerprint,
    )
    before = snapshot(bb)
    with zero.context(SteeredModel(bb), ["french"]):
        assert torch.equal(logits(bb), before["logits"])
    assert_model_restored(bb, before)


def random_lm_steer(bb) -> LMSteer:
    gen = torch.Generator().manual_seed(1)
    d = bb.hidden_size
    return LMSteer(
        params={
            n: {
                "P1": torch.randn(d, 8, generator=gen),
                "P2": torch.randn(8, d, generator=gen),
            }
            for n in ("french", "upper_case")
        },
        eps=0.1,
        model_id=bb.model_id,
        fingerprint=bb.fingerprint,
    )


def test_lm_steer_composition_sums_factors(bb):
    lm = random_lm_steer(bb)
    p1, p2 = lm.factors(["french", "upper_case"])
    assert torch.equal(p1, lm.params["french"]["P1"] + lm.params["upper_case"]["P1"])
    assert torch.equal(p2, lm.params["french"]["P2"] + lm.params["upper_case"]["P2"])
    before = logits(bb)
    with lm.context(SteeredModel(bb), ["upper_case", "french"]):
        assert not torch.allclose(logits(bb), before)


def test_lm_steer_training_lowers_loss_and_keeps_model(bb):
    cfg = LMSteerConfig(rank=8, eps=0.5, train=replace(TRAIN, steps=6, lr=3e-2))
    before = snapshot(bb)
    lm = train_lm_steer(bb, ["french"], cfg, questions=QUESTIONS, progress=False)
    assert_model_restored(bb, before)
    assert lm.params["french"]["P1"].shape == (bb.hidden_size, 8) and lm.eps == 0.5
    assert len(lm.info["french"]["losses"]) == 6
    examples = distill_examples(
        bb, "french", cfg.train, QUESTIONS, False
    )  # the cached targets

    def loss(p1, p2) -> float:
        p1, p2 = p1.to(bb.device), p2.to(bb.device)
        with torch.no_grad():
            return step_loss(
                bb,
                examples,
                {},
                None,
                cfg.train,
                student_context=lambda: steer_final_hidden(bb, p1, p2, cfg.eps),
            ).item()

    d = bb.hidden_size
    assert loss(lm.params["french"]["P1"], lm.params["french"]["P2"]) < loss(
        torch.zeros(d, 8), torch.zeros(8, d)
    )


# -- LoRA + DARE
# ---------------------------------------------------------------------------
def random_lora(bb) -> LoRADare:
    """Adapters with random A and B (PEFT's init_lora_weights=False), as if trained."""
    config = peft.LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.1,
        target_modules=list(MLP),
        init_lora_weights=False,
    )
    states, configs = {}, {}
    for i, name in enumerate(("french", "upper_case")):
        with attach(bb, {name: config}, seed=i) as model:
            states[name] = {
                k: v.detach().cpu().clone()
                for k, v in peft.get_peft_model_state_dict(
                    model, adapter_name=name, save_embedding_layers=False
                ).items()
            }
        configs[name] = config
    return LoRADare(
        params=states, configs=configs, model_id=bb.model_id, fingerprint=bb.fingerprint
    )


def test_lora_merge_of_one_adapter_at_density_one_is_that_adapter(bb):
    lora = replace(random_lora(bb), density=1.0, weight=1.0)
    before = snapshot(bb)
    with attach(
        bb, {"french": lora.configs["french"]}, {"french": lora.params["french"]}
    ):
        alone = logits(bb)
    with lora.context(SteeredModel(bb), ["french"]):
        merged = logits(bb)
    assert not torch.allclose(alone, before["logits"])
    assert torch.allclose(merged, alone, atol=1e-5, rtol=1e-4)
    assert_model_restored(bb, before)


def test_lora_dare_merge_is_seeded_and_recorded(bb):
    lora = random_lora(bb)
    sm = SteeredModel(bb)
    runs = []
    for _ in range(2):
        with lora.context(sm, ["french", "upper_case"]):
            runs.append(logits(bb))
    assert torch.equal(runs[0], runs[1])
    with replace(lora, seed=1).context(sm, ["french", "upper_case"]):
        assert not torch.equal(logits(bb), runs[0])
    meta = lora.metadata()["merge"]
    assert meta == {
        "combination_type": "dare_linear",
        "density": 0.5,
        "drop_rate": 0.5,
        "weight": 1.0,
        "seed": 0,
    }


def test_lora_save_load_round_trip_is_peft_format(bb, tmp_path):
    lora = random_lora(bb)
    path = lora.save(tmp_path / "lora")
    loaded = LoRADare.load(path, bb)
    assert loaded.names == lora.names and (loaded.density, loaded.weight) == (
        lora.density,
        lora.weight,
    )
    for name in lora.names:
        assert loaded.params[name].keys() == lora.params[name].keys()
        assert all(
            torch.equal(loaded.params[name][k], t) for k, t in lora.params[name].items()
        )
        assert (loaded.configs[name].r, loaded.configs[name].lora_alpha) == (4, 8)
    sm = SteeredModel(bb)
    with lora.context(sm, ["upper_case", "french"]):
        expected = logits(bb)
    with loaded.context(sm, ["upper_case", "french"]):
        assert torch.equal(logits(bb), expected)
    # PEFT itself reads the adapter folder
    with attach(
        bb, {"french": lora.configs["french"]}, {"french": lora.params["french"]}
    ):
        ours = logits(bb)
    model = peft.PeftModel.from_pretrained(bb.model, str(path / "french"))
    try:
        assert torch.equal(logits(bb), ours)
    finally:
        model.unload()
    with pytest.raises(ValueError, match="fingerprint"):
        LoRADare.load(
            replace(lora, fingerprint="0123456789abcdef").save(tmp_path / "bad"), bb
        )


def test_lora_training_distills_and_keeps_model(bb):
    # a CE term keeps the loss far from 0 whatever the random init (distillation alone
    # can start near 0 on a random model, where any first Adam step overshoots)
    cfg = LoRAConfig(train=replace(TRAIN, steps=6, lr=3e-3, ce_weight=1.0))
    before = snapshot(bb)
    lora = train_lora(
        bb, ["french"], cfg, density=0.9, questions=QUESTIONS, progress=False
    )
    assert_model_restored(bb, before)
    assert lora.density == 0.9 and lora.configs["french"].r == 8
    examples = distill_examples(bb, "french", cfg.train, QUESTIONS, False)
    with torch.no_grad():
        plain = step_loss(bb, examples, {}, None, cfg.train).item()
        with attach(bb, lora.configs, lora.params) as model:
            # as in training: the teacher is the plain model
            model.base_model.disable_adapter_layers()
            trained = step_loss(
                bb,
                examples,
                {},
                None,
                cfg.train,
                student_context=lambda: student_pass(model, {}),
            ).item()
    assert trained < plain


# -- all three
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("make", [random_caa, random_lm_steer, random_lora])
def test_context_restores_model_on_error_and_checks_names(bb, make):
    method = make(bb)
    before = snapshot(bb)
    with pytest.raises(RuntimeError, match="generation failed"):
        with method.context(SteeredModel(bb), ["french"]):
            assert not torch.equal(logits(bb), before["logits"])
            raise RuntimeError("generation failed")
    assert_model_restored(bb, before)
    with pytest.raises(KeyError, match="spanish"):
        with method.context(SteeredModel(bb), ["french", "spanish"]):
            pass
    assert_model_restored(bb, before)


def test_a_resumed_baselines_seconds_count_every_leg(bb, monkeypatch, artifacts):
    """Issue 34, case 10, for the baselines: main's training record counted the last
    leg alone. The first leg (cut short after its last checkpoint) runs on a clock that
    moves 100 s per reading, the second on one that moves 1 ms."""
    import time

    clock = {"now": 0.0, "step": 100.0}

    def tick() -> float:
        clock["now"] += clock["step"]
        return clock["now"]

    monkeypatch.setattr(time, "perf_counter", tick)
    cfg = LMSteerConfig(train=TRAIN)
    kw = dict(questions=QUESTIONS, progress=False)
    first = train_lm_steer(bb, ["french"], cfg, stop_after=2, **kw)
    assert len(first.info["french"]["losses"]) == 2
    clock["step"] = 0.001
    resumed = train_lm_steer(bb, ["french"], cfg, **kw).info["french"]
    assert len(resumed["losses"]) == TRAIN.steps  # resumed, not started over
    assert resumed["seconds"] >= 100


def test_train_baselines_caches_and_resumes(bb, monkeypatch, artifacts):
    names = ["french", "upper_case"]
    first = train_lm_steer(
        bb,
        names,
        LMSteerConfig(train=TRAIN),
        questions=QUESTIONS,
        progress=False,
        stop_after=2,
    )
    assert (
        len(first.info["french"]["losses"]) == 2
    )  # interrupted: checkpoint kept, nothing cached
    out = train_baselines(bb, names, TRAIN, questions=QUESTIONS, progress=False)
    assert set(out) == {"caa", "lm_steer", "lora_dare"}
    assert all(m.names == names and not m.tokens for m in out.values())
    before = snapshot(bb)
    recs = evaluate(
        SteeredModel(bb),
        list(out.values()),
        [tuple(names)],
        QUESTIONS[:2],
        max_new_tokens=3,
        progress=False,
    )
    assert len(recs) == 3 * 2 * 2 and set(recs.method) == set(
        out
    )  # 3 methods x 2 orderings x 2 prompts
    assert_model_restored(bb, before)
    resumed = out["lm_steer"].info["french"]["losses"]
    full = train_lm_steer(
        bb,
        names,
        LMSteerConfig(train=TRAIN),
        questions=QUESTIONS,
        progress=False,
        retrain=True,
    ).info["french"]["losses"]
    assert resumed == pytest.approx(
        full, abs=1e-6
    )  # resuming reproduces the uninterrupted run

    def fail(*_a, **_k):
        raise AssertionError("cached baselines must not be retrained")

    monkeypatch.setattr("steerlib.baselines.common.train_vectors", fail)
    monkeypatch.setattr(caa_module, "last_token_states", fail)
    again = train_baselines(bb, names, TRAIN, questions=QUESTIONS, progress=False)
    assert all(
        torch.equal(again["lm_steer"].params[n]["P1"], out["lm_steer"].params[n]["P1"])
        for n in names
    )
    assert (artifacts / bb.fingerprint / "baselines" / "lora_dare").is_dir()


def test_train_baselines_trains_only_the_chosen_ones_and_rejects_unknown(bb, artifacts):
    out = train_baselines(
        bb, ["french"], TRAIN, which=["caa"], questions=QUESTIONS, progress=False
    )
    assert list(out) == ["caa"]
    with pytest.raises(ValueError, match="unknown baseline.*choose from"):
        train_baselines(bb, ["french"], TRAIN, which=["repeng"], questions=QUESTIONS)


def test_train_for_gives_each_behavior_its_own_training_run(bb, artifacts):
    """LM-Steer and LoRA learn each behavior with that behavior token's own config."""
    longer = replace(TRAIN, steps=6)
    out = train_baselines(
        bb,
        ["french", "upper_case"],
        TRAIN,
        which=["lm_steer", "lora_dare"],
        train_for={"upper_case": longer},
        lr={"lora_dare": 3e-3},
        questions=QUESTIONS,
        progress=False,
    )
    for method in out.values():
        assert method.info["french"]["steps"] == TRAIN.steps
        assert method.info["upper_case"]["steps"] == longer.steps
        assert method.info["upper_case"]["config"]["train"]["steps"] == longer.steps
    # a method's own lr replaces the tokens' in each of its runs, and only in its own
    assert {
        out["lora_dare"].info[n]["config"]["train"]["lr"]
        for n in ("french", "upper_case")
    } == {3e-3}
    assert {
        out["lm_steer"].info[n]["config"]["train"]["lr"]
        for n in ("french", "upper_case")
    } == {TRAIN.lr}
    with pytest.raises(ValueError, match="unknown baseline.*lora"):
        train_baselines(bb, ["french"], TRAIN, lr={"lora": 1e-3}, questions=QUESTIONS)
    # each config has its own cache entry: the plain run of upper_case is not the
    # longer one
    plain = train_lm_steer(
        bb,
        ["upper_case"],
        LMSteerConfig(train=TRAIN),
        questions=QUESTIONS,
        progress=False,
    )
    assert plain.info["upper_case"]["steps"] == TRAIN.steps
    files = (artifacts / bb.fingerprint / "baselines" / "lm_steer").glob(
        "upper_case-*.safetensors"
    )
    assert len([f for f in files if not f.name.endswith(".ckpt.safetensors")]) == 2
