"""Devices and presets beyond the CPU: which dtype loading picks, half-precision
training steps and CUDA generation against float32 on the CPU (tiny random model), and
the path a hub model takes (the colab and paper presets name one). The CUDA cases are
the GPU check of issue 15: they run where a GPU is present and are skipped elsewhere."""

import pytest
import torch
import torch.nn.functional as F

import steerlib as st
from steerlib.model.backbone import _default_device_dtype, tiny_backbone
from steerlib.model.template import render
from steerlib.presets import presets
from steerlib.train.loss import Example, step_loss

CUDA = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine"
)
QUESTIONS = ["Why is the sky blue?", "How do plants grow?", "What is rain?"]


@pytest.mark.parametrize(
    "native_bf16, expected", [(True, torch.bfloat16), (False, torch.float16)]
)
def test_cuda_loads_bf16_where_native_else_fp16(monkeypatch, native_bf16, expected):
    """A T4 reports bfloat16 as supported when emulation counts (torch's default) but
    computes it slowly: it must get float16. The fake answers as such a GPU does for
    both questions."""
    monkeypatch.setattr(
        torch.cuda,
        "is_bf16_supported",
        lambda including_emulation=True: True if including_emulation else native_bf16,
    )
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    assert _default_device_dtype("cuda", None) == (torch.device("cuda"), expected)


def test_cpu_loads_fp32_and_an_explicit_dtype_wins():
    assert _default_device_dtype("cpu", None) == (torch.device("cpu"), torch.float32)
    assert _default_device_dtype("cpu", torch.bfloat16)[1] == torch.bfloat16


def _loss_and_grad(bb, device, dtype):
    bb.model.to(device=device, dtype=dtype)
    answer = tuple(
        bb.tokenizer(" Because of the light and the air.", add_special_tokens=False)[
            "input_ids"
        ]
    )
    examples = [
        Example(render(bb, q, (), "Answer in French."), render(bb, q, ("fr",)), answer)
        for q in QUESTIONS
    ]
    vector = torch.full(
        (bb.hidden_size,), 0.1, device=device, requires_grad=True
    )  # float32, as in training
    loss = step_loss(
        bb, examples, {"fr": vector}, None, st.TrainConfig(steps=1, batch_size=3)
    )
    loss.backward()
    return loss.item(), vector.grad.float().cpu()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_training_step_agrees_with_fp32(device, dtype):
    bb = tiny_backbone()
    loss32, grad32 = _loss_and_grad(bb, "cpu", torch.float32)
    loss, grad = _loss_and_grad(bb, device, dtype)
    assert loss == pytest.approx(loss32, rel=2e-2)
    assert F.cosine_similarity(grad, grad32, dim=0) > 0.99


@CUDA
def test_cuda_greedy_generation_equals_cpu():
    bb = tiny_backbone()
    toks = st.SteeringTokens.for_backbone(bb)
    toks.set(
        "a", torch.randn(bb.hidden_size, generator=torch.Generator().manual_seed(0))
    )
    prompts = [q + " <a>" for q in QUESTIONS]
    cpu = st.SteeredModel(bb, toks).generate_ids(prompts, max_new_tokens=32)
    bb.model.to("cuda")
    assert st.SteeredModel(bb, toks).generate_ids(prompts, max_new_tokens=32) == cpu


def test_colab_preset_by_environment(monkeypatch):
    monkeypatch.setenv("STEERLIB_PRESET", "colab")
    preset = st.book.setup()
    assert (
        preset.name == "colab" and preset.model == "HuggingFaceTB/SmolLM2-1.7B-Instruct"
    )
    assert presets.get("paper").model == "Qwen/Qwen3-8B"


def test_hub_format_folder_loads_like_a_hub_id(tmp_path):
    """Preset models are hub ids: ``load_backbone`` reads them with
    ``from_pretrained``, as it reads this folder (offline), then frames prompts with
    the folder's chat template."""
    from chat_models import chat_backbone

    source = chat_backbone("bytelevel", "qwen3", "qwen3")
    source.model.save_pretrained(tmp_path)
    source.tokenizer.save_pretrained(tmp_path)
    bb = st.load_backbone(str(tmp_path), device="cpu")
    assert bb.dtype == torch.float32 and bb.chat_kwargs == {"enable_thinking": False}
    assert bb.fingerprint == source.fingerprint
    assert render(bb, QUESTIONS[0]).ids == render(source, QUESTIONS[0]).ids
    prompts = [q + " <a>" for q in QUESTIONS]
    toks = st.SteeringTokens.for_backbone(bb)
    toks.set(
        "a", torch.randn(bb.hidden_size, generator=torch.Generator().manual_seed(0))
    )
    assert st.SteeredModel(bb, toks).generate_ids(
        prompts, max_new_tokens=8
    ) == st.SteeredModel(source, toks).generate_ids(prompts, max_new_tokens=8)
