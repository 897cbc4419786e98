"""Token syntax, chat rendering and exact placement of steering vectors."""

import pytest
import torch

import steerlib as st
from steerlib.model.template import embed, parse, render, render_text


def test_parse_trailing_tags():
    assert parse(
        "Why is the sky blue? <french><and><words_10_50>",
        ["french", "and", "words_10_50"],
    ) == ("Why is the sky blue?", ["french", "and", "words_10_50"])
    assert parse("Why? <a> <b>  ", ["a", "b"]) == ("Why?", ["a", "b"])


def test_parse_keeps_other_angle_brackets_as_text():
    assert parse("Is a < b when a = 1 and b = 2?", ["french"]) == (
        "Is a < b when a = 1 and b = 2?",
        [],
    )
    assert parse("What does the <div> tag do in HTML?", ["french"]) == (
        "What does the <div> tag do in HTML?",
        [],
    )


def test_parse_unknown_token_lists_known():
    with pytest.raises(ValueError, match=r"<frnch>.*known tokens: <french>, <and>"):
        parse("Why? <frnch>", ["french", "and"])


def test_render_matches_chat_template(tiny):
    tok = tiny.tokenizer
    question = "Why is the sky blue?"
    expected = tok.apply_chat_template(
        [{"role": "user", "content": question}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
    )["input_ids"]
    assert render(tiny, question).ids == list(expected)


def test_no_double_bos(tiny):
    ids = render(tiny, "Hello?", ["x"]).ids
    bos = tiny.tokenizer.bos_token_id
    assert ids.count(bos) == list(
        tiny.tokenizer.apply_chat_template(
            [{"role": "user", "content": "Hello?"}],
            tokenize=True,
            return_dict=True,
            add_generation_prompt=True,
        )["input_ids"]
    ).count(bos)


def _word_token(bb, word=" French"):
    ids = bb.tokenizer(word, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1, "the test word must be one vocabulary token"
    return ids[0]


def test_slot_sits_right_after_question(tiny):
    wid = _word_token(tiny)
    toks = st.SteeringTokens.for_backbone(tiny)
    toks.set("fr", tiny.embeddings[wid])
    steered = render_text(tiny, "Why is the sky blue? <fr>", toks)
    written = render(tiny, "Why is the sky blue? French")
    ((pos, name),) = steered.slots
    assert name == "fr"
    ids = list(steered.ids)
    ids[pos] = wid
    assert ids == written.ids


def test_embedding_equal_to_word_reproduces_its_generation(tiny):
    """The proof of placement: a token equal to a word's embedding acts as that word."""
    wid = _word_token(tiny)
    toks = st.SteeringTokens.for_backbone(tiny)
    toks.set("fr", tiny.embeddings[wid])
    sm = st.SteeredModel(tiny, toks)
    questions = ["Why is the sky blue?", "How do plants grow?", "What is rain?"]
    written = sm.generate([q + " French" for q in questions], max_new_tokens=12)
    steered = sm.generate([q + " <fr>" for q in questions], max_new_tokens=12)
    assert written == steered
    embeds_w = embed(tiny, [render(tiny, questions[0] + " French")]).inputs_embeds
    embeds_s = embed(
        tiny, [render_text(tiny, questions[0] + " <fr>", toks)], toks
    ).inputs_embeds
    assert torch.equal(embeds_w, embeds_s)


def test_composition_places_each_vector(tiny):
    """<b1><and><b2>: each slot holds its own vector, in order, right after the
    question."""
    words = [" French", " and", " short"]
    ids = [_word_token(tiny, w) for w in words]
    toks = st.SteeringTokens.for_backbone(tiny)
    for name, wid in zip(["b1", "and", "b2"], ids):
        toks.set(name, tiny.embeddings[wid])
    steered = embed(
        tiny, [render_text(tiny, "Why is the sky blue? <b1><and><b2>", toks)], toks
    ).inputs_embeds
    written = embed(
        tiny, [render(tiny, "Why is the sky blue? French and short")]
    ).inputs_embeds
    assert torch.equal(steered, written)


def test_batched_equals_one_by_one(tiny):
    toks = st.SteeringTokens.for_backbone(tiny)
    g = torch.Generator().manual_seed(0)
    toks.set("a", torch.randn(tiny.hidden_size, generator=g))
    toks.set("b", torch.randn(tiny.hidden_size, generator=g))
    prompts = [
        "Why is the sky blue? <a>",
        "What is a very long question about history and art? <a><b>",
        "Hi?",
        "How do magnets work? <b><a>",
        "Explain tides. Answer in French.",
    ]
    sm = st.SteeredModel(tiny, toks)
    batched = sm.generate(prompts, max_new_tokens=16, batch_size=5)
    assert batched == [sm.generate(p, max_new_tokens=16) for p in prompts]


def test_batched_equals_one_by_one_embedded(embedded):
    sm = st.SteeredModel(embedded)
    prompts = [
        "Why is the sky blue?",
        "What is the capital of France and why is it famous?",
        "Name a fruit. Answer in French.",
    ]
    batched = sm.generate(prompts, max_new_tokens=24, batch_size=3)
    assert batched == [sm.generate(p, max_new_tokens=24) for p in prompts]


def test_unknown_token_in_generate(tiny):
    sm = st.SteeredModel(tiny, st.SteeringTokens.for_backbone(tiny))
    with pytest.raises(ValueError, match="unknown steering token"):
        sm.generate("Why? <french>")


def test_repetition_penalty_matches_a_plain_reference_loop(tiny):
    """Batched decoding with the demo penalty equals a step-by-step loop that
    recomputes the whole sequence and divides (positive) or multiplies (negative) the
    logits of the tokens already generated; penalty 1.0 is plain greedy decoding."""
    import torch

    from steerlib.model.generate import SteeredModel

    sm = SteeredModel(tiny)
    prompts = ["Why is the sky blue?", "How do bees make honey? Tell me more."]
    for penalty in (1.0, 1.3):
        got = sm.generate_ids(prompts, max_new_tokens=8, repetition_penalty=penalty)
        for prompt, ids in zip(prompts, got):
            seq = sm.render(prompt).ids
            answer: list[int] = []
            with torch.no_grad():
                for _ in range(8):
                    logits = (
                        tiny.model(torch.tensor([seq + answer])).logits[0, -1].float()
                    )
                    for t in set(answer):
                        logits[t] = (
                            logits[t] / penalty
                            if logits[t] > 0
                            else logits[t] * penalty
                        )
                    answer.append(int(logits.argmax()))
                    if answer[-1] in tiny.eos_ids:
                        break
            assert ids == answer, (penalty, prompt)
