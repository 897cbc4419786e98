"""SteeredModel.prompt_embeds: what an inference engine needs to generate steered."""

import torch

import steerlib as st


def test_hf_generate_on_prompt_embeds_equals_steered_generation(tiny):
    toks = st.SteeringTokens.for_backbone(tiny)
    g = torch.Generator().manual_seed(0)
    for name in ("a", "and", "b"):
        toks.set(name, torch.randn(tiny.hidden_size, generator=g))
    sm = st.SteeredModel(tiny, toks)
    prompts = [
        "Why is the sky blue? <a><and><b>",
        "How do plants grow? <b>",
        "What is rain?",
    ]
    embeds = sm.prompt_embeds(prompts)
    steered = sm.generate_ids(prompts, max_new_tokens=16)
    for prompt, e, expected in zip(prompts, embeds, steered):
        assert e.shape == (len(sm.render(prompt).ids), tiny.hidden_size)
        out = tiny.model.generate(
            inputs_embeds=e[None],
            attention_mask=torch.ones(1, len(e), dtype=torch.long),
            max_new_tokens=16,
            do_sample=False,
            eos_token_id=tiny.eos_ids,
            pad_token_id=tiny.tokenizer.pad_token_id,
        )
        assert out[0].tolist() == expected
    # the slot rows hold the steering vectors; the rest are the words' embeddings
    row = sm.render(prompts[1])
    ((pos, name),) = row.slots
    assert torch.equal(embeds[1][pos], toks[name])
    others = [i for i in range(len(row.ids)) if i != pos]
    assert torch.equal(
        embeds[1][others], tiny.embeddings[torch.tensor(row.ids)[others]]
    )
