"""The shipped default pack is the stage-2 study's choice, read in its layout; the
paper's pack stays one argument away (issue 33)."""

from pathlib import Path

import pandas as pd
import pytest
import torch

import steerlib as st
from steerlib.errors import ConfigError
from steerlib.model import layout as L
from steerlib.model.packs import PACK_FILES, Pack
from steerlib.model.template import embed

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "steerlib" / "data"
STUDY = ROOT / "results" / "cpu" / "stage2"
PACK_LAYOUT = L.Layout(L.SlotPositions.SHARED, isolate=True)


def _load(pack: Pack) -> st.SteeringTokens:
    return st.SteeringTokens.load_file(DATA / PACK_FILES[pack])


def test_default_pack_is_the_papers_behavior_tokens_read_in_the_pack_layout():
    default, paper = _load(Pack.DEFAULT), _load(Pack.PAPER)
    assert default.layout == PACK_LAYOUT and paper.layout == L.DEFAULT
    assert default.names == paper.names
    for name in paper.names:
        if name != "and":
            assert torch.equal(default[name], paper[name]), name


def test_default_and_is_the_one_the_plans_rule_chose():
    """Read the search table and apply PLAN.md's rule by hand: the winner's <and> ships
    only when it passed at least one more selection generation than today's pack."""
    search = pd.read_csv(STUDY / "search.csv")
    ran = search[(search["family"] != "ref") & search["joint"].notna()]
    best = ran.sort_values("joint", ascending=False).iloc[0]
    today = search[search["candidate"] == "and@shared+isolate"].iloc[0]
    passed = round(best["joint"] * best["n"] / 100)
    shipped_and = _load(Pack.DEFAULT)["and"]
    if passed >= round(today["joint"] * today["n"] / 100) + 1:
        chosen = st.SteeringTokens.load_file(
            STUDY / "candidates" / f"{best['candidate']}.safetensors"
        )
        assert torch.equal(shipped_and, chosen["and"])
    else:
        assert torch.equal(shipped_and, _load(Pack.PAPER)["and"])
    pack = st.SteeringTokens.load_file(STUDY / "pack" / "tokens.safetensors")
    assert torch.equal(pack["and"], shipped_and) and pack.layout == PACK_LAYOUT


def test_unknown_pack_is_refused_with_the_packs():
    with pytest.raises(ConfigError, match="packs: 'default', 'paper'"):
        st.SteeringTokens.pretrained(None, "best")


def test_pretrained_reads_the_default_in_its_layout(embedded):
    default = st.SteeringTokens.pretrained(embedded)
    paper = st.SteeringTokens.pretrained(embedded, "paper")
    assert default.layout == PACK_LAYOUT and paper.layout == L.DEFAULT
    prompt = "Why is the sky blue? <french><and><sentences_1>"
    by_hand = paper.with_layout(PACK_LAYOUT)
    by_hand.set("and", default["and"])
    ours = st.SteeredModel(embedded, default).generate(prompt, max_new_tokens=16)
    assert ours == st.SteeredModel(embedded, by_hand).generate(
        prompt, max_new_tokens=16
    )
    # read in its layout: the three slots share one position id (the paper's count up)
    for tokens, ids in ((default, {0}), (paper, {0, 1, 2})):
        sm = st.SteeredModel(embedded, tokens)
        row = sm.render(prompt)
        batch = embed(embedded, [row], tokens)
        first = row.slots[0][0]
        slot_ids = {int(batch.position_ids[0, p]) - first for p, _ in row.slots}
        assert slot_ids == ids


def _usage(readme: Path) -> str:
    text = readme.read_text()
    return text.split("```python\n", 1)[1].split("```", 1)[0]


def test_card_of_a_shipped_pack_loads_it_by_name(tiny, tmp_path):
    tokens = st.SteeringTokens.for_backbone(tiny)
    tokens.set("french", torch.ones(tiny.hidden_size))
    tokens.set("and", torch.ones(3, tiny.hidden_size))
    tokens = tokens.with_layout(PACK_LAYOUT)
    folder = tokens.save_pretrained(tmp_path / "pack", pack="default")
    card = (folder / "README.md").read_text()
    assert 'st.SteeringTokens.pretrained(bb, "default")' in _usage(folder / "README.md")
    assert "`<and>`: 3" in card and "`shared+isolate` layout" in card
    plain = st.SteeringTokens.for_backbone(tiny)
    plain.set("french", torch.ones(tiny.hidden_size))
    other = (plain.save_pretrained(tmp_path / "plain") / "README.md").read_text()
    assert 'from_pretrained("plain"' in other and "layout" not in other


def test_the_default_packs_card_runs_from_any_directory(
    embedded, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    code = _usage(STUDY / "pack" / "README.md").replace("128", "8")
    scope = {}
    exec(code, scope)  # the card's own lines: load, steer, print
    assert scope["tokens"].layout == PACK_LAYOUT
