"""Tokens of several vectors (issue 33): k consecutive slots per token, placed,
embedded, laid out and saved exactly; k = 1 and every committed token file unchanged."""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import steerlib as st
from steerlib.config import TrainConfig
from steerlib.errors import TokenFileError
from steerlib.model import layout as L
from steerlib.model.generate import Request, SteeredModel
from steerlib.model.template import embed, render
from steerlib.model.tokens import tensor_digest
from steerlib.presets import presets
from steerlib.train.compose import orthogonality

ROOT = Path(__file__).resolve().parent.parent
WIDTHS = {"a": 2, "and": 3, "b": 1}


@pytest.fixture(scope="module")
def toks(tiny):
    g = torch.Generator().manual_seed(1)
    t = st.SteeringTokens.for_backbone(tiny)
    for name, k in WIDTHS.items():
        shape = (k, tiny.hidden_size) if k > 1 else (tiny.hidden_size,)
        t.set(name, torch.randn(*shape, generator=g))
    return t


def test_widths_and_rows(toks, tiny):
    assert toks.widths() == WIDTHS
    assert toks.rows("a").shape == (2, tiny.hidden_size)
    assert toks.rows("b").shape == (1, tiny.hidden_size)
    one = st.SteeringTokens.for_backbone(tiny)
    one.set("x", torch.ones(1, tiny.hidden_size))  # a block of one is a plain vector
    assert one["x"].shape == (tiny.hidden_size,)
    with pytest.raises(ValueError, match="block of k vectors"):
        one.set("y", torch.ones(2, tiny.hidden_size + 1))


def test_slots_placed_as_six_single_slots(toks, tiny):
    """<a><and><b> with widths 2, 3, 1 renders exactly as six one-vector slots."""
    q = "Why is the sky blue?"
    row = render(tiny, q, ["a", "and", "b"], widths=toks.widths())
    flat = render(tiny, q, [f"s{i}" for i in range(6)])
    assert row.ids == flat.ids
    assert [p for p, _ in row.slots] == [p for p, _ in flat.slots]
    p = flat.slots[0][0]
    assert row.blocks == [(p, "a", 2), (p + 2, "and", 3), (p + 5, "b", 1)]
    assert [n for _, n in row.slots] == ["a", "a", "and", "and", "and", "b"]


def test_embedded_rows_are_the_vectors_in_order(toks, tiny):
    row = render(tiny, "Hi?", ["a", "and", "b"], widths=toks.widths())
    batch = embed(tiny, [row], toks)
    got = batch.inputs_embeds[0, [p for p, _ in row.slots]]
    want = torch.cat([toks.rows("a"), toks.rows("and"), toks.rows("b")])
    assert torch.equal(got, want)


def test_positions_move_whole_blocks(toks, tiny):
    row = render(tiny, "Hi?", ["a", "and", "b"], widths=toks.widths())
    n, p = len(row.ids), row.blocks[0][0]
    shared = L.Layout(L.SlotPositions.SHARED)
    own = L.Layout(L.SlotPositions.AND_OWN)
    assert L.positions(n, row.blocks, L.DEFAULT) == list(range(n))
    tail = n - p - 6
    assert L.positions(n, row.blocks, shared) == [
        *range(p),
        *(p, p + 1),
        *(p, p + 1, p + 2),
        p,
        *range(p + 3, p + 3 + tail),
    ]
    assert L.positions(n, row.blocks, own) == [
        *range(p),
        *(p, p + 1),
        *(p + 2, p + 3, p + 4),
        p,
        *range(p + 5, p + 5 + tail),
    ]


def test_isolation_blocks_earlier_tokens_not_own_slots(toks, tiny):
    row = render(tiny, "Hi?", ["a", "and", "b"], widths=toks.widths())
    a0, a1, n0, n1, n2, b0 = (p for p, _ in row.slots)
    forbid = set(L.blocked(row.blocks, L.Layout(L.SlotPositions.SHARED, isolate=True)))
    assert forbid == {(b0, k) for k in (a0, a1, n0, n1, n2)}  # a1 still reads a0


def test_batched_equals_one_by_one(toks, tiny):
    sm = SteeredModel(tiny, toks.with_layout(L.Layout(L.SlotPositions.SHARED, True)))
    reqs = [
        Request("Why is the sky blue?", ("a", "and", "b"), ""),
        Request("Name a color.", ("b",), ""),
        Request("Hi?", ("b", "and", "a"), ""),
    ]
    together = sm.generate(reqs, max_new_tokens=6, batch_size=3, progress=False)
    alone = [sm.generate([r], max_new_tokens=6, progress=False)[0] for r in reqs]
    assert together == alone


def test_file_round_trip_and_metadata(toks, tmp_path):
    path = toks.save_file(tmp_path / "t.safetensors")
    back = st.SteeringTokens.load_file(path)
    assert back.widths() == WIDTHS
    for name in WIDTHS:
        assert torch.equal(back[name], toks[name])
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["steerlib"])
    assert meta["vectors"] == {"a": 2, "and": 3}


def test_file_with_a_wrong_block_shape_is_refused(toks, tmp_path):
    from steerlib.storage import save_safetensors

    meta = toks.metadata() | {"vectors": {"a": 3, "and": 3}}
    tensors = {f"token/{n}": toks[n].contiguous() for n in toks.names}
    path = save_safetensors(
        tensors, tmp_path / "bad.safetensors", {"steerlib": json.dumps(meta)}
    )
    with pytest.raises(TokenFileError, match=r"expected shape \(3, "):
        st.SteeringTokens.load_file(path)


COMMITTED = sorted(
    p
    for p in [
        *ROOT.glob("results/**/*.safetensors"),
        *ROOT.glob("steerlib/data/*.safetensors"),
    ]
)


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_token_files_load_unchanged(path):
    """Every committed token file loads with its tensors as stored, and one-vector files
    write back the metadata they were read with (no new field)."""
    tokens = st.SteeringTokens.load_file(path)
    with safe_open(str(path), framework="pt") as f:
        stored = json.loads(f.metadata()["steerlib"])
        for name in tokens.names:
            assert torch.equal(tokens[name], f.get_tensor(f"token/{name}"))
    if "vectors" not in stored:
        assert set(tokens.widths().values()) <= {1}
        assert tokens.metadata() | {"steerlib_version": None} == stored | {
            "steerlib_version": None
        }


def test_orthogonality_sums_over_every_vector():
    e_and = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    behaviors = torch.tensor([[2.0, 0.0]])
    # cos^2 of (1,0)/(2,0) is 1, of (1,1)/(2,0) is 1/2
    assert float(orthogonality(e_and, behaviors)) == pytest.approx(1.5)


def test_stage2_trains_an_and_of_several_vectors(tiny, toks):
    from steerlib.tasks import behaviors as B
    from steerlib.train.compose import train_composition_token

    base = st.SteeringTokens.for_backbone(tiny)
    g = torch.Generator().manual_seed(2)
    for name in B.names():
        if B.get(name).seen:
            base.set(name, torch.randn(tiny.hidden_size, generator=g))
    cfg = replace_vectors(presets.smoke().stage2, 4)
    out = train_composition_token(tiny, base, cfg, progress=False)
    assert out.width("and") == 4
    assert len(out.losses["and"]) == cfg.steps
    assert not torch.equal(out.rows("and")[0], out.rows("and")[1])  # slots learn apart


def test_stage1_trains_a_token_of_several_vectors(tiny):
    from steerlib.train.distill import train_behavior_token

    cfg = replace_vectors(presets.smoke().stage1, 2)
    out = train_behavior_token(tiny, "french", cfg, progress=False)
    assert out.width("french") == 2
    one = train_behavior_token(tiny, "french", presets.smoke().stage1, progress=False)
    assert one.width("french") == 1
    assert out.info["french"]["key"] != one.info["french"]["key"]


def replace_vectors(cfg: TrainConfig, k: int) -> TrainConfig:
    from dataclasses import replace

    return replace(cfg, vectors=k)


def test_digest_of_one_vector_tokens_is_unchanged(toks):
    """Records made before blocks existed keep matching: a one-vector token's digest is
    the digest of its 1-D vector, as before."""
    single = toks.subset(["b"])
    assert single.digest(["b"]) == tensor_digest([("b", toks["b"].reshape(-1))])
