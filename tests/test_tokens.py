"""SteeringTokens: inits, safetensors round trip, fingerprint checks."""
import pytest
import torch

import steerlib as st
from steerlib.tokens import random_init, text_init


def test_round_trip(tiny, tmp_path):
    toks = st.SteeringTokens.for_backbone(tiny)
    toks.set("french", torch.arange(tiny.hidden_size, dtype=torch.float32), {"init": "semantic"}, [3.0, 2.0])
    toks.set("and", torch.zeros(tiny.hidden_size))
    path = toks.save(tmp_path / "t.safetensors")
    back = st.SteeringTokens.load(path, backbone=tiny)
    assert back.names == ["french", "and"]
    assert torch.equal(back["french"], toks["french"])
    assert back.info["french"] == {"init": "semantic"}
    assert back.losses["french"] == [3.0, 2.0]
    assert back.fingerprint == tiny.fingerprint


def test_wrong_model_is_a_clear_error(tiny, tmp_path):
    other = st.backbone.tiny_backbone(seed=1)
    toks = st.SteeringTokens.for_backbone(other)
    toks.set("x", torch.zeros(other.hidden_size))
    path = toks.save(tmp_path / "t.safetensors")
    with pytest.raises(ValueError, match="trained for 'tiny-llama-2x64-seed1'.*backbone is 'tiny-llama-2x64-seed0'"):
        st.SteeringTokens.load(path, backbone=tiny)


def test_wrong_width_rejected(tiny):
    toks = st.SteeringTokens.for_backbone(tiny)
    with pytest.raises(ValueError, match="dims"):
        toks.set("x", torch.zeros(tiny.hidden_size + 1))


def test_unknown_name_lists_known(tiny):
    toks = st.SteeringTokens.for_backbone(tiny)
    toks.set("french", torch.zeros(tiny.hidden_size))
    with pytest.raises(KeyError, match="<french>"):
        toks["german"]


def test_text_init_is_mean_embedding(tiny):
    ids = tiny.tokenizer("Answer in French.", add_special_tokens=False)["input_ids"]
    assert torch.allclose(text_init(tiny, "Answer in French."), tiny.embeddings[ids].mean(0))


def test_random_init_has_vocabulary_norm(tiny):
    v = random_init(tiny, seed=3)
    assert torch.isclose(v.norm(), tiny.embeddings.norm(dim=1).mean(), rtol=1e-4)
    assert torch.equal(v, random_init(tiny, seed=3))


def test_not_a_token_file(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="not a steerlib token file"):
        st.SteeringTokens.load(tmp_path / "x.safetensors")


def test_shipped_tokens_load_on_the_embedded_model(embedded):
    from steerlib.config import config_hash
    from steerlib.pipeline import stage1_config

    tokens = st.SteeringTokens.pretrained(embedded)
    assert tokens.names == [*st.behaviors.names(), "and"]
    preset = st.presets.cpu()
    for name in st.behaviors.names():
        cfg, info = stage1_config(preset, name), tokens.info[name]
        # the metadata says what trained each token: the preset's current config for it
        assert info["key"] == f"{name}-{config_hash(cfg)}", name
        assert (info["target_source"], info["config"]["ce_weight"]) == (cfg.targets.source, cfg.ce_weight)
        assert len(tokens.losses[name]) == cfg.steps


def test_shipped_french_token_answers_why_cats_purr_in_french(embedded):
    sm = st.SteeredModel(embedded, st.SteeringTokens.pretrained(embedded))
    text = sm.generate("Why do cats purr? <french>", max_new_tokens=96)
    assert st.behaviors.get("french").verify(text), text
