"""Position layouts: slot position ids and attention placed exactly, a single token
unchanged by any layout, and a pack's layout carried through its file."""

import pytest
import torch
from transformers import GenerationConfig

import steerlib as st
from steerlib.errors import ConfigError, TokenFileError
from steerlib.model import decoding
from steerlib.model import layout as L
from steerlib.model.generate import _completed, sample
from steerlib.model.template import embed, render
from steerlib.model.tokens import tensor_digest

SHARED = L.Layout(L.SlotPositions.SHARED)
AND_OWN = L.Layout(L.SlotPositions.AND_OWN)
ISOLATED = L.Layout(L.SlotPositions.SHARED, isolate=True)
ALL = [L.DEFAULT, SHARED, AND_OWN, ISOLATED, L.Layout(isolate=True)]


@pytest.fixture(scope="module")
def toks(tiny):
    g = torch.Generator().manual_seed(0)
    t = st.SteeringTokens.for_backbone(tiny)
    for name in ("a", "and", "b"):
        t.set(name, torch.randn(tiny.hidden_size, generator=g))
    return t


def test_positions_by_hand(tiny):
    row = render(tiny, "Why is the sky blue?", ["a", "and", "b"])
    (p, _), (p1, _), (p2, _) = row.slots
    assert (p1, p2) == (p + 1, p + 2)  # the run is consecutive
    n = len(row.ids)
    after = list(range(p + 3, n))  # the template tokens after the run
    assert L.positions(n, row.blocks, L.DEFAULT) == list(range(n))
    # shared: the three slots at p; the rest continue as if the run were one token long
    assert L.positions(n, row.blocks, SHARED) == list(range(p)) + [p, p, p] + [
        i - 2 for i in after
    ]
    # and_own: behaviors at p, <and> at p + 1 (where stage 2 trained it), the rest from
    # p + 2
    assert L.positions(n, row.blocks, AND_OWN) == list(range(p)) + [p, p + 1, p] + [
        i - 1 for i in after
    ]


def test_embed_pads_left_and_numbers_each_row_by_its_layout(tiny, toks):
    rows = [
        render(tiny, "Hi?", ["a", "and", "b"]),
        render(tiny, "Why is the sky blue, really?", ["a"]),
    ]
    batch = embed(tiny, rows, toks, layout=SHARED)
    width = batch.position_ids.shape[1]
    short = len(rows[0].ids)
    assert batch.position_ids[0, : width - short].tolist() == [0] * (width - short)
    assert batch.position_ids[0, width - short :].tolist() == L.positions(
        short, rows[0].blocks, SHARED
    )
    assert batch.position_ids[1].tolist() == list(
        range(width)
    )  # one slot: every layout is the paper's
    plain = embed(tiny, rows, toks)
    assert torch.equal(
        plain.position_ids, (plain.attention_mask.cumsum(-1) - 1).clamp(min=0)
    )
    assert plain.prefill_mask is None and batch.prefill_mask is None


def test_isolate_blocks_exactly_each_behavior_slots_view_of_earlier_slots(tiny, toks):
    rows = [
        render(tiny, "Hi?", ["a", "and", "b"]),
        render(tiny, "Why is the sky blue, really?", ["b"]),
    ]
    batch = embed(tiny, rows, toks, layout=ISOLATED)
    mask = batch.prefill_mask[:, 0]
    width = mask.shape[-1]
    offset = width - len(rows[0].ids)
    (pa, _), (pand, _), (pb, _) = [(offset + p, n) for p, n in rows[0].slots]
    expected = torch.ones(width, width, dtype=torch.bool).tril()
    expected[:, :offset] = False
    expected[range(offset), range(offset)] = True  # a padded query sees itself only
    expected[pb, pa] = expected[pb, pand] = (
        False  # <b> reads the question, not <a><and>
    )
    assert torch.equal(mask[0], expected)
    assert mask[0, pand, pa]  # <and> reads <a>, as in stage 2
    assert mask[0, -1, pa] and mask[0, -1, pb]  # the answer reads everything
    assert torch.equal(
        mask[1], torch.ones(width, width, dtype=torch.bool).tril()
    )  # one slot: plain causal


@pytest.mark.parametrize("layout", ALL, ids=lambda lay: lay.label)
def test_a_single_token_gives_the_same_logits_in_every_layout(tiny, toks, layout):
    rows = [
        render(tiny, "Why is the sky blue?", ["a"]),
        render(tiny, "Name a color.", ["b"]),
    ]
    with torch.inference_mode():
        ref = tiny.model(**embed(tiny, rows, toks).model_inputs()).logits
        got = tiny.model(**embed(tiny, rows, toks, layout=layout).model_inputs()).logits
    assert torch.equal(got, ref)


def test_isolated_slot_reads_what_it_reads_alone(tiny, toks):
    """<b> in ``<a><and><b>`` under isolation has the hidden state of <b> alone at its
    position."""
    alone = render(tiny, "Why is the sky blue?", ["b"])
    run = render(tiny, "Why is the sky blue?", ["a", "and", "b"])
    with torch.inference_mode():
        h_alone = tiny.model.base_model(
            **embed(tiny, [alone], toks).model_inputs()
        ).last_hidden_state
        h_run = tiny.model.base_model(
            **embed(tiny, [run], toks, layout=ISOLATED).model_inputs()
        ).last_hidden_state
        h_seq = tiny.model.base_model(
            **embed(tiny, [run], toks).model_inputs()
        ).last_hidden_state
    b_alone, b_run = alone.slots[0][0], run.slots[2][0]
    assert torch.allclose(h_run[0, b_run], h_alone[0, b_alone], atol=1e-5)
    assert not torch.allclose(h_seq[0, b_run], h_alone[0, b_alone], atol=1e-3)


@pytest.mark.parametrize("layout", [SHARED, ISOLATED], ids=lambda lay: lay.label)
def test_layout_generation_batched_equals_unbatched(tiny, toks, layout):
    sm = st.SteeredModel(tiny, toks.with_layout(layout), strict=False)
    prompts = [
        "Hi? <a><and><b>",
        "Why is the sky blue, really? <b><and><a>",
        "Name one color. <a>",
    ]
    batched = sm.generate_ids(prompts, max_new_tokens=8, batch_size=3)
    assert batched == [sm.generate_ids([p], max_new_tokens=8)[0] for p in prompts]


def test_greedy_loop_matches_transformers_generate(tiny, toks):
    """The loop that carries an isolation mask decodes as ``generate`` does when the
    mask is plain."""
    rows = [
        render(tiny, "Hi?", ["a", "and", "b"]),
        render(tiny, "Why is the sky blue, really?", ["b"]),
    ]
    batch = embed(tiny, rows, toks)
    cfg = _completed(tiny, GenerationConfig(max_new_tokens=12, do_sample=False))
    reference = sample(tiny, batch, cfg)  # transformers' generate, greedy
    width = batch.attention_mask.shape[1]
    plain = torch.ones(width, width, dtype=torch.bool).tril().repeat(2, 1, 1)
    for b, row in enumerate(rows):
        offset = width - len(row.ids)
        plain[b, :, :offset] = False
        plain[b, range(offset), range(offset)] = True
    batch.prefill_mask = plain.unsqueeze(1)
    assert (
        decoding.greedy(tiny.model, lambda idx: batch, 2, 2, 12, tiny.eos_ids)
        == reference
    )


def test_isolated_layout_refuses_sampling(tiny, toks):
    sm = st.SteeredModel(tiny, toks.with_layout(ISOLATED), strict=False)
    with pytest.raises(ConfigError, match="greedily only"):
        sm.generate_ids(["Hi? <a><and><b>"], max_new_tokens=4, do_sample=True)


def test_layout_round_trips_through_the_token_file_and_keys_records(
    tiny, toks, tmp_path
):
    assert toks.digest(["a", "b"]) == tensor_digest(
        (n, toks[n]) for n in ["a", "b"]
    )  # old records match
    packed = toks.with_layout(ISOLATED)
    assert packed.digest(["a", "b"]) != toks.digest(["a", "b"])
    loaded = st.SteeringTokens.from_pretrained(
        packed.save_pretrained(tmp_path / "pack"), backbone=tiny
    )
    assert loaded.layout == ISOLATED
    assert (
        st.SteeringTokens.load_file(
            toks.save_file(tmp_path / "plain.safetensors")
        ).layout
        == L.DEFAULT
    )
    sm = st.SteeredModel(
        tiny, loaded, strict=False
    )  # the pack's layout, with no extra argument
    batch = embed(tiny, [sm.render("Hi? <a><and><b>")], sm.tokens)
    assert batch.prefill_mask is not None


def test_bad_layouts_are_refused(tiny, toks, tmp_path):
    with pytest.raises(ConfigError, match="one of sequential, shared, and_own"):
        L.Layout("diagonal")
    with pytest.raises(ConfigError, match="'isolate'"):
        L.Layout.from_dict({"positions": "shared", "mask": True})
    import json

    from safetensors.torch import save_file

    path = tmp_path / "bad.safetensors"
    meta = {
        "format": "steerlib.tokens/1",
        "model_id": "m",
        "fingerprint": "f",
        "hidden_size": 4,
        "names": ["a"],
        "info": {},
        "layout": {"positions": "sideways"},
    }
    save_file(
        {"token/a": torch.zeros(4)}, str(path), metadata={"steerlib": json.dumps(meta)}
    )
    with pytest.raises(TokenFileError, match="'layout' is not a layout"):
        st.SteeringTokens.load_file(path)
