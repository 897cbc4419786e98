"""Decoding: the greedy loop gives transformers' generate's tokens (batched ==
unbatched == generate == the old loop, on the tiny and the embedded model, also when
prompts join a running batch as others end), and GenerationConfig goes through
generate."""

import pytest
import torch
from transformers import GenerationConfig

import steerlib as st
from steerlib.model import decoding, kv_cache
from steerlib.model.generate import _completed
from steerlib.model.methods import METHODS
from steerlib.model.template import Rendered, embed

PROMPTS = [
    "Why is the sky blue? <a>",
    "Name three fruits.",
    "How do magnets work? <a><and><b>",
    "Hi",
]


@pytest.fixture(scope="module")
def sm(tiny):
    toks = st.SteeringTokens.for_backbone(tiny)
    gen = torch.Generator().manual_seed(0)
    for name in ("a", "b", "and"):
        toks.set(name, torch.randn(tiny.hidden_size, generator=gen))
    return st.SteeredModel(tiny, toks)


def hf_generate(sm, prompt, **kwargs) -> list[int]:
    """``model.generate(inputs_embeds=...)`` on one prompt alone (no padding), cut
    after its end."""
    bb = sm.backbone
    batch = embed(bb, [sm.render(prompt)], sm.tokens)
    with torch.inference_mode():
        kwargs = {
            "eos_token_id": bb.eos_ids,
            "pad_token_id": bb.tokenizer.pad_token_id,
            **kwargs,
        }
        row = bb.model.generate(
            inputs_embeds=batch.inputs_embeds,
            attention_mask=batch.attention_mask,
            **kwargs,
        )[0]
    row = row.tolist()
    ends = [i for i, t in enumerate(row) if t in kwargs["eos_token_id"]]
    return row[: ends[0] + 1] if ends else row


def test_greedy_batched_equals_unbatched_equals_the_old_loop(sm):
    from benchmarks.decode import row_dropping_decode

    batched = sm.generate_ids(PROMPTS, max_new_tokens=12, batch_size=4)
    assert batched == [sm.generate_ids([p], max_new_tokens=12)[0] for p in PROMPTS]
    assert batched == [
        hf_generate(sm, p, max_new_tokens=12, do_sample=False) for p in PROMPTS
    ]
    # the row-dropping loop steerlib decoded with before (kept in the benchmark) gives
    # the same answers
    bb = sm.backbone
    old = row_dropping_decode(
        bb, embed(bb, [sm.render(p) for p in PROMPTS], sm.tokens), 12, set(bb.eos_ids)
    )
    assert batched == old


REFILL_PROMPTS = [
    "Hi",
    "Why is the sky blue? <a>",
    "Name three fruits, please, and say which is sweetest.",
    "How do magnets work? <a><and><b>",
    "Ok?",
    "Tell me a long story about a cat. <b>",
]


def early_ends(sm, k: int) -> list[int]:
    """End tokens that make the tiny random model's answers end at different steps:
    tokens its answers hold (taken from answers decoded alone, without them)."""
    alone = [
        hf_generate(sm, p, max_new_tokens=k, do_sample=False) for p in REFILL_PROMPTS
    ]
    return sorted({alone[0][2], alone[3][5]} | set(sm.backbone.eos_ids))


def hf_generate_rendered(sm, row, **kwargs) -> list[int]:
    """``hf_generate`` on a rendered prompt (token ids and slots), alone."""
    batch = embed(sm.backbone, [row], sm.tokens)
    with torch.inference_mode():
        out = sm.backbone.model.generate(
            inputs_embeds=batch.inputs_embeds,
            attention_mask=batch.attention_mask,
            pad_token_id=sm.backbone.tokenizer.pad_token_id,
            **kwargs,
        )[0].tolist()
    ends = [i for i, t in enumerate(out) if t in kwargs["eos_token_id"]]
    return out[: ends[0] + 1] if ends else out


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_rows_join_as_others_end_and_answers_equal_each_prompt_alone(
    sm, monkeypatch, slots
):
    """Continuous batching: 7 prompts through 1-3 slots; each answer equals
    transformers' generate on that prompt alone, with the same end tokens, though
    prompts join rows that are running (their cache written into a free slot, their
    prompt read after the shared chat-template start) and the cache window moves within
    its buffers. The last prompt is raw text without the chat template: it does not
    start with the shared prefix and is read whole."""
    shared, moves = [], []
    read_after_prefix = kv_cache.Prefix.read

    def read_spy(
        self, *a
    ):  # whether each prefill read its prompts after the shared prefix
        read = read_after_prefix(self, *a)
        shared.append(read is not None)
        return read

    monkeypatch.setattr(kv_cache.Prefix, "read", read_spy)
    room = kv_cache.Rows._room

    def spy(
        self, before, after
    ):  # the cache window moved within (or out of) its buffers
        was = (self.start, self.end, self.mask.shape[1])
        room(self, before, after)
        moves.extend([was] if was != (self.start, self.end, self.mask.shape[1]) else [])

    monkeypatch.setattr(kv_cache.Rows, "_room", spy)
    bb, k = sm.backbone, 16
    ends = early_ends(sm, k)
    rows = [sm.render(p) for p in REFILL_PROMPTS] + [
        Rendered(bb.tokenizer("Once upon a time")["input_ids"])
    ]
    reference = [
        hf_generate_rendered(
            sm, r, max_new_tokens=k, do_sample=False, eos_token_id=ends
        )
        for r in rows
    ]
    assert len({len(r) for r in reference}) > 2  # answers end at different steps
    prefills: list[list[int]] = []

    def prefill(idx):
        prefills.append(idx)
        return embed(bb, [rows[i] for i in idx], sm.tokens)

    finished = []
    answers = decoding.greedy(
        bb.model, prefill, len(rows), slots, k, ends, done=finished.append
    )
    assert answers == reference
    assert sum(finished) == len(rows)
    assert sorted(i for idx in prefills for i in idx) == list(
        range(len(rows))
    )  # each prompt read once
    assert max(len(idx) for idx in prefills) <= slots
    assert any(
        len(idx) == 1 for idx in prefills[1:]
    )  # a prompt joined rows that were running
    if slots > 1:  # the shared start is found among the first prompts read together
        assert (
            shared[:-1] == [True] * (len(prefills) - 1) and shared[-1] is False
        )  # the raw prompt: read whole
    else:  # one answer after another: the window reached the buffers' end and moved
        assert shared == [] and moves


def test_a_model_whose_cache_cannot_be_spliced_decodes_with_generate(sm, monkeypatch):
    expected = sm.generate_ids(REFILL_PROMPTS, max_new_tokens=10, batch_size=2)
    monkeypatch.setattr("steerlib.model.generate.spliceable", lambda model: False)
    monkeypatch.setattr(
        "steerlib.model.generate.greedy",
        lambda *a, **k: pytest.fail("greedy was called"),
    )
    assert sm.generate_ids(REFILL_PROMPTS, max_new_tokens=10, batch_size=2) == expected


def test_generate_ids_with_fewer_slots_than_prompts_equals_one_batch(sm):
    one_batch = sm.generate_ids(
        REFILL_PROMPTS, max_new_tokens=10, batch_size=len(REFILL_PROMPTS)
    )
    assert sm.generate_ids(REFILL_PROMPTS, max_new_tokens=10, batch_size=2) == one_batch


def test_greedy_with_a_repetition_penalty_gives_generates_tokens(sm, monkeypatch):
    """The loop applies the penalty as generate does: batched, with rows joining as
    others end, every answer equals generate's on its prompt alone."""
    calls = []
    real = decoding.greedy
    monkeypatch.setattr(
        "steerlib.model.generate.greedy",
        lambda *a, **k: calls.append(k["penalty"]) or real(*a, **k),
    )
    ours = sm.generate_ids(
        REFILL_PROMPTS, max_new_tokens=30, batch_size=2, repetition_penalty=1.5
    )
    assert calls == [1.5]  # the loop decoded, not generate
    plain = sm.generate_ids(REFILL_PROMPTS, max_new_tokens=30, batch_size=2)
    assert ours != plain  # the penalty changed some answer
    assert ours == [
        hf_generate(sm, p, max_new_tokens=30, do_sample=False, repetition_penalty=1.5)
        for p in REFILL_PROMPTS
    ]


def test_penalize_matches_transformers_repetition_processor():
    from transformers import RepetitionPenaltyLogitsProcessor

    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    answers = [[1, 2, 2, 5], [], [7, 49]]
    expected = logits.clone()
    processor = RepetitionPenaltyLogitsProcessor(1.3)
    for row, answer in enumerate(answers):
        if answer:
            expected[row : row + 1] = processor(
                torch.tensor([answer]), expected[row : row + 1].clone()
            )
    decoding.penalize(logits, answers, 1.3)
    assert torch.equal(logits, expected)


def test_an_isolated_layout_decodes_with_a_repetition_penalty(sm):
    from steerlib.model.layout import Layout, SlotPositions

    iso = st.SteeredModel(
        sm.backbone, sm.tokens.with_layout(Layout(SlotPositions.SHARED, isolate=True))
    )
    texts = iso.generate(PROMPTS, max_new_tokens=6, repetition_penalty=1.3)
    assert texts == [
        iso.generate(p, max_new_tokens=6, repetition_penalty=1.3) for p in PROMPTS
    ]


def test_configs_beyond_plain_greedy_go_through_generate():
    assert decoding.is_plain_greedy(
        GenerationConfig(max_new_tokens=4, do_sample=False, temperature=0.7)
    )
    assert decoding.is_plain_greedy(
        GenerationConfig(max_new_tokens=4, repetition_penalty=1.3)
    )
    for extra in (
        {"do_sample": True},
        {"stop_strings": ["x"]},
        {"min_new_tokens": 2},
    ):
        assert not decoding.is_plain_greedy(GenerationConfig(max_new_tokens=4, **extra))


def test_embedded_greedy_loop_gives_generates_tokens(embedded):
    """The shipped tokens on the embedded model, prompt methods that read 0-3 steering
    vectors and instructions: the loop (batched, and one prompt at a time) ==
    transformers' generate. The paper-layout pack, which transformers can read (the
    default pack's isolated layout decodes in the loop only: test_default_pack), and
    whose answers end early enough for later prompts to join."""
    sm = st.SteeredModel(embedded, st.SteeringTokens.pretrained(embedded, "paper"))
    questions = st.prompts.load("test", limit=6)
    combos = [("french", "words_10_50"), ("json",), ("upper_case", "sentences_1")]
    reqs = [
        METHODS[m].request(q, combos[i % 3])
        for i, q in enumerate(questions)
        for m in ("plain", "instruction", "concat", "and", "hybrid")
    ][::2]
    ours = sm.generate_ids(reqs, max_new_tokens=24, batch_size=len(reqs))
    assert ours == [sm.generate_ids([r], max_new_tokens=24)[0] for r in reqs]
    assert any(
        len(a) < 24 for a in ours
    )  # some answers end early: with 4 slots, later prompts join
    assert sm.generate_ids(reqs, max_new_tokens=24, batch_size=4) == ours
    batch = embed(embedded, [sm.render(r) for r in reqs], sm.tokens)
    cfg = _completed(embedded, GenerationConfig(max_new_tokens=24, do_sample=False))
    with torch.inference_mode():
        out = embedded.model.generate(
            inputs_embeds=batch.inputs_embeds,
            attention_mask=batch.attention_mask,
            generation_config=cfg,
        ).tolist()
    eos = set(embedded.eos_ids)
    reference = [
        row[: next((i + 1 for i, t in enumerate(row) if t in eos), len(row))]
        for row in out
    ]
    assert ours == reference


def test_generation_config_repetition_penalty_matches_hf(sm):
    cfg = GenerationConfig(max_new_tokens=30, do_sample=False, repetition_penalty=1.8)
    ours = sm.generate_ids(PROMPTS, batch_size=4, generation_config=cfg)
    assert ours == [
        hf_generate(sm, p, max_new_tokens=30, do_sample=False, repetition_penalty=1.8)
        for p in PROMPTS
    ]
    plain = sm.generate_ids(PROMPTS, max_new_tokens=30, batch_size=4)
    assert any(
        len(set(a)) < len(a) for a in plain
    )  # some plain answer repeats a token ...
    assert (
        all(len(set(a)) == len(a) for a in ours) and ours != plain
    )  # ... the penalised ones do not


def test_generation_config_stop_strings_match_hf(sm):
    tok = sm.backbone.tokenizer
    plain = sm.generate_ids(PROMPTS, max_new_tokens=12, batch_size=4)
    stop = tok.decode(plain[0][3:5])  # text the first answer writes mid-way
    assert stop.strip()
    cfg = GenerationConfig(max_new_tokens=12, do_sample=False, stop_strings=[stop])
    ours = sm.generate_ids(PROMPTS, batch_size=4, generation_config=cfg)
    hf = [
        hf_generate(
            sm,
            p,
            max_new_tokens=12,
            do_sample=False,
            stop_strings=[stop],
            tokenizer=tok,
        )
        for p in PROMPTS
    ]
    assert ours == hf
    assert len(ours[0]) <= 5 and stop in tok.decode(
        ours[0]
    )  # stopped right after writing it


def test_top_p_that_keeps_one_token_samples_the_greedy_answer(sm):
    greedy = sm.generate_ids(PROMPTS, max_new_tokens=10, batch_size=4)
    cfg = GenerationConfig(
        max_new_tokens=10, do_sample=True, top_p=1e-6, top_k=0, temperature=0.7
    )
    assert (
        sm.generate_ids(PROMPTS, batch_size=4, generation_config=cfg, seed=3) == greedy
    )
    wide = GenerationConfig(max_new_tokens=10, do_sample=True, top_k=0, temperature=5.0)
    assert (
        sm.generate_ids(PROMPTS, batch_size=4, generation_config=wide, seed=3) != greedy
    )


def test_sampling_is_seeded(sm):
    """Same seed, same samples; another seed, other samples; and neither is the greedy
    answer (a sampler that silently decoded greedily would pass the first check
    alone)."""
    cfg = GenerationConfig(max_new_tokens=8, do_sample=True, top_k=50, top_p=0.9)
    first = sm.generate_ids(PROMPTS, generation_config=cfg, seed=1)
    assert first == sm.generate_ids(PROMPTS, generation_config=cfg, seed=1)
    assert first != sm.generate_ids(PROMPTS, generation_config=cfg, seed=2)
    assert first != sm.generate_ids(PROMPTS, max_new_tokens=8)


def test_beam_search_is_refused(sm):
    with pytest.raises(ValueError, match="num_beams"):
        sm.generate(
            "Hi", generation_config=GenerationConfig(max_new_tokens=4, num_beams=2)
        )
