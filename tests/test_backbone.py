"""Bring your own model: Backbone.from_model, and load_backbone's from_pretrained
pass-through."""

import hashlib

import pytest
import torch
import transformers

import steerlib as st
from steerlib.model.backbone import tiny_backbone
from steerlib.model.gguf import embedded_tokenizer


def _raw_tiny(seed: int = 0):
    """The tiny test model's weights and tokenizer, as a user would hold them: right
    padding, no pad token, trainable weights."""
    bb = tiny_backbone(seed=seed)
    model = transformers.LlamaForCausalLM(bb.model.config)
    model.load_state_dict(bb.model.state_dict())
    model.train()
    tokenizer = embedded_tokenizer()
    tokenizer.padding_side = "right"
    tokenizer.pad_token = None
    return model, tokenizer


def test_from_model_freezes_pads_left_and_fingerprints():
    model, tokenizer = _raw_tiny()
    bb = st.Backbone.from_model(model, tokenizer, "my-tiny")
    assert bb.model is model and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert (
        tokenizer.padding_side == "left" and tokenizer.pad_token == tokenizer.eos_token
    )
    assert model.generation_config.pad_token_id == tokenizer.eos_token_id
    # the fingerprint is the bfloat16 embedding matrix's hash: the same weights give
    # the same one
    emb = (
        model.get_input_embeddings()
        .weight.detach()
        .to(torch.bfloat16)
        .view(torch.int16)
        .numpy()
        .tobytes()
    )
    assert (
        bb.fingerprint
        == hashlib.sha256(emb).hexdigest()[:16]
        == tiny_backbone(seed=0).fingerprint
    )
    # so tokens trained on the library's own load of the model steer this one
    toks = st.SteeringTokens.for_backbone(tiny_backbone(seed=0))
    toks.set("french", torch.zeros(bb.hidden_size))
    assert st.SteeredModel(bb, toks).generate("Why? <french>", max_new_tokens=3)


def test_from_model_refuses_a_tokenizer_without_chat_template():
    model, tokenizer = _raw_tiny()
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        st.Backbone.from_model(model, tokenizer, "plain-lm")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-model")
    model, tokenizer = _raw_tiny()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_load_backbone_passes_from_pretrained_kwargs(tiny_folder, monkeypatch):
    seen = {}
    real = transformers.AutoModelForCausalLM.from_pretrained

    def spy(name, **kwargs):
        seen.update(kwargs)
        kwargs.pop("quantization_config")  # the spy stands in for a quantising backend
        return real(name, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    import steerlib.model.backbone as backbone

    monkeypatch.setattr(backbone.AutoModelForCausalLM, "from_pretrained", spy)
    marker = object()
    bb = st.load_backbone(
        tiny_folder,
        device_map="cpu",
        torch_dtype=torch.bfloat16,
        quantization_config=marker,
        attn_implementation="eager",
    )
    assert seen["quantization_config"] is marker and seen["device_map"] == "cpu"
    assert seen["dtype"] is torch.bfloat16 and seen["attn_implementation"] == "eager"
    assert bb.dtype == torch.bfloat16 and bb.model_id == str(tiny_folder)


def test_load_backbone_with_device_map_and_dtype(tiny_folder):
    bb = st.load_backbone(tiny_folder, device_map="cpu", dtype=torch.bfloat16)
    assert bb.dtype == torch.bfloat16 and bb.device.type == "cpu"
    assert (
        bb.fingerprint == tiny_backbone(seed=0).fingerprint
    )  # bfloat16 rounding: same space


def test_from_pretrained_kwargs_are_refused_for_the_embedded_model():
    with pytest.raises(ValueError, match="apply to a hub id or a model folder"):
        st.load_backbone(None, device_map="auto")
