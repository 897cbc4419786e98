"""Any chat model: the foundation properties of test_template.py, on every tokenizer
family x chat template shape, and training + generation on tiny models of each
architecture (all built in-process: tests/chat_models.py)."""

import pytest
import torch
from chat_models import ARCHITECTURES, FORMATS, TOKENIZERS, chat_backbone

import steerlib as st
from steerlib.model.template import embed, render, render_text
from steerlib.train.loss import Example, train_vectors
from steerlib.train.targets import make_targets

QUESTIONS = ["Why is the sky blue?", "How do plants grow?", "What is rain?"]
WORDS = [" French", " and", " water"]
"""One vocabulary token each in every test tokenizer (checked): the slot stand-ins."""

# The foundation test's architecture for the matrix; the architectures get their own
# test.
MATRIX = [(kind, fmt) for kind in TOKENIZERS for fmt in FORMATS]


@pytest.fixture(scope="module", params=MATRIX, ids=[f"{k}-{f}" for k, f in MATRIX])
def bb(request):
    return chat_backbone(*request.param)


def _word_ids(bb):
    ids = [bb.tokenizer(w, add_special_tokens=False)["input_ids"] for w in WORDS]
    assert all(len(i) == 1 for i in ids), f"test words must be one token each: {ids}"
    return [i[0] for i in ids]


def _as_words(bb, names_to_words):
    toks = st.SteeringTokens.for_backbone(bb)
    for name, wid in names_to_words.items():
        toks.set(name, bb.embeddings[wid])
    return toks


def test_render_equals_chat_template(bb):
    for q in QUESTIONS:
        expected = bb.tokenizer.apply_chat_template(
            [{"role": "user", "content": q}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            **bb.chat_kwargs,
        )["input_ids"]
        assert render(bb, q).ids == list(expected)


def test_ids_around_slots_equal_the_written_prompt(bb):
    """Slots filled with word ids give the ids of the whole prompt written as text."""
    wids = _word_ids(bb)
    for q in QUESTIONS:
        for n in (1, 3):
            steered = render(bb, q, [f"s{i}" for i in range(n)])
            ids = list(steered.ids)
            for (pos, _), wid in zip(steered.slots, wids[:n]):
                ids[pos] = wid
            assert ids == render(bb, q + "".join(WORDS[:n])).ids


def test_hybrid_ids_around_slots(bb):
    """Instructions then a slot (the hybrid method) cut the same way."""
    wid = _word_ids(bb)[0]
    steered = render(bb, QUESTIONS[0], ["s"], instructions="Answer in French.")
    ids = list(steered.ids)
    ids[steered.slots[0][0]] = wid
    assert ids == render(bb, QUESTIONS[0] + " Answer in French." + WORDS[0]).ids


def test_slot_holding_a_word_reproduces_it(bb):
    wids = _word_ids(bb)
    toks = _as_words(bb, {"b1": wids[0], "and": wids[1], "b2": wids[2]})
    sm = st.SteeredModel(bb, toks)
    written = sm.generate([q + "".join(WORDS) for q in QUESTIONS], max_new_tokens=8)
    steered = sm.generate([q + " <b1><and><b2>" for q in QUESTIONS], max_new_tokens=8)
    assert written == steered
    e_written = embed(bb, [render(bb, QUESTIONS[0] + "".join(WORDS))]).inputs_embeds
    e_steered = embed(
        bb, [render_text(bb, QUESTIONS[0] + " <b1><and><b2>", toks)], toks
    ).inputs_embeds
    assert torch.equal(e_written, e_steered)


# -- architectures
# ------------------------------------------------------------------------
ARCH_FORMATS = {
    "llama": ("bytelevel", "llama3"),
    "qwen2": ("bytelevel", "qwen2"),
    "qwen3": ("bytelevel", "qwen3"),
    "gemma": ("sentencepiece-gemma", "gemma"),
    "mistral": ("sentencepiece", "mistral"),
}
"""Each architecture on the tokenizer family and chat format its real models use."""


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_architecture_trains_a_token_and_generates(arch):
    kind, fmt = ARCH_FORMATS[arch]
    bb = chat_backbone(kind, fmt, arch)
    wid = _word_ids(bb)[0]
    # a slot holding a word's embedding acts as that word on this architecture too
    toks = _as_words(bb, {"fr": wid})
    e_written = embed(bb, [render(bb, QUESTIONS[0] + WORDS[0])]).inputs_embeds
    e_steered = embed(
        bb, [render_text(bb, QUESTIONS[0] + " <fr>", toks)], toks
    ).inputs_embeds
    assert torch.equal(e_written, e_steered)
    sm = st.SteeredModel(bb, toks)
    assert sm.generate(
        [q + " <fr>" for q in QUESTIONS], max_new_tokens=8
    ) == sm.generate([q + WORDS[0] for q in QUESTIONS], max_new_tokens=8)
    # stage 1 where the teacher reads that word: the loss can fall to zero, and from the
    # zero vector it must fall well below its start
    cfg = st.TrainConfig(
        steps=60,
        batch_size=3,
        lr=1e-2,
        targets=st.TargetConfig(max_new_tokens=8, min_kept=1),
    )
    answers = make_targets(bb, [(q, ()) for q in QUESTIONS], cfg.targets, key="plain")
    examples = [
        Example(
            render(bb, t.question, (), WORDS[0].strip()),
            render(bb, t.question, ("fr",)),
            t.answer,
        )
        for t in answers
    ]
    vector = torch.zeros(bb.hidden_size)
    losses = train_vectors(bb, {"fr": vector}, examples, cfg, progress=False).losses
    assert losses[-1] < 0.7 * losses[0]
    # generation with the trained token: batched equals one by one
    trained = st.SteeringTokens.for_backbone(bb)
    trained.set("fr", vector.detach())
    sm = st.SteeredModel(bb, trained)
    prompts = [q + " <fr>" for q in QUESTIONS]
    assert sm.generate(prompts, max_new_tokens=8, batch_size=3) == [
        sm.generate(p, max_new_tokens=8) for p in prompts
    ]
