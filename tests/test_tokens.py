"""SteeringTokens: inits, files and folders (Hub-style), fingerprint checks, the
shipped tokens."""

import json
import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pandas as pd
import pytest
import torch

import steerlib as st
from steerlib.model.backbone import tiny_backbone
from steerlib.model.inits import random_init, text_init
from steerlib.model.methods import METHODS
from steerlib.model.packs import PACK_FILES, PRETRAINED_FILE

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results" / "cpu"


def _tokens(bb) -> st.SteeringTokens:
    toks = st.SteeringTokens.for_backbone(bb)
    info = {
        "stage": 1,
        "init": "semantic",
        "target_source": "filtered",
        "n_targets": 12,
        "steps": 2,
        "final_loss": 2.0,
        "config": {"batch_size": 4, "lr": 0.05, "ce_weight": 1.0},
    }
    toks.set(
        "french",
        torch.arange(bb.hidden_size, dtype=torch.float32) / 7,
        info,
        [3.0, 2.0],
    )
    toks.set(
        "and", torch.randn(bb.hidden_size, generator=torch.Generator().manual_seed(0))
    )
    return toks


def _assert_same(a: st.SteeringTokens, b: st.SteeringTokens) -> None:
    assert (
        a.names == b.names
        and a.fingerprint == b.fingerprint
        and a.model_id == b.model_id
    )
    assert all(torch.equal(a[n], b[n]) for n in a.names)
    assert a.info == b.info and a.losses == b.losses


def test_file_round_trip(tiny, tmp_path):
    toks = _tokens(tiny)
    back = st.SteeringTokens.load_file(
        toks.save_file(tmp_path / "t.safetensors"), backbone=tiny
    )
    _assert_same(back, toks)
    assert back.losses["french"] == [3.0, 2.0]


def test_save_pretrained_folder_loads_back_bit_equal(tiny, tmp_path):
    toks = _tokens(tiny)
    folder = toks.save_pretrained(tmp_path / "my-tokens")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "tokens.safetensors",
    ]
    back = st.SteeringTokens.from_pretrained(folder, backbone=tiny)
    _assert_same(back, toks)
    # saving what was loaded writes the very same bytes
    again = back.save_pretrained(tmp_path / "again")
    assert (again / "tokens.safetensors").read_bytes() == (
        folder / "tokens.safetensors"
    ).read_bytes()


def test_model_card_says_what_the_tokens_are_and_how_they_were_trained(tiny, tmp_path):
    folder = _tokens(tiny).save_pretrained(
        tmp_path / "card", pass_rates={"french": (83.3, 30)}, repo_id="me/tok"
    )
    card = (folder / "README.md").read_text()
    assert (
        huggingface_hub.ModelCard(card).data.library_name == "steerlib"
    )  # the Hub reads the metadata
    assert tiny.model_id in card and tiny.fingerprint in card
    french = next(line for line in card.splitlines() if line.startswith("| `<french>`"))
    cells = [c.strip() for c in french.strip("|").split("|")]
    # stage, init, targets (count), steps x batch, lr, CE weight, final loss, pass rate
    assert cells[1:] == [
        "1",
        "semantic",
        "filtered (12)",
        "2 x 4",
        "0.05",
        "1.0",
        "2.000",
        "83.3% of 30",
    ]
    assert "| `<and>` | - | - | - | - | - | - | - | not measured |" in card
    assert 'st.SteeringTokens.from_pretrained("me/tok", backbone=bb)' in card
    assert "<french><and>" not in card  # one behavior token: the example uses it alone
    assert 'sm.generate("Why is the sky blue? <french>"' in card


def test_model_card_example_is_a_composition_the_conflict_rule_accepts(tiny):
    """Two languages may not be composed: the snippet joins the first compatible
    pair."""
    from steerlib.model.card import model_card
    from steerlib.model.template import parse

    toks = st.SteeringTokens.for_backbone(tiny)
    for name in ("french", "spanish", "sentences_1", "and"):
        toks.set(name, torch.ones(tiny.hidden_size))
    card = model_card(toks.metadata(), "me/tok")
    assert 'sm.generate("Why is the sky blue? <french><and><sentences_1>"' in card
    parse(
        "Why is the sky blue? <french><and><sentences_1>", toks.names
    )  # accepted (raises if refused)


@pytest.mark.parametrize("pack", list(PACK_FILES))
def test_model_card_says_what_and_trained_on_under_the_old_key_and_the_new(pack):
    """A stage-2 record names what ``<and>`` trained on "combos"; the shipped files,
    written before issue 35 and kept byte for byte, name it "variant". The card reads
    both, and says nothing where a record has neither."""
    from safetensors import safe_open

    from steerlib.model.card import model_card

    with safe_open(str(ROOT / "steerlib" / "data" / PACK_FILES[pack]), "pt") as f:
        meta = json.loads(f.metadata()["steerlib"])
    old = meta["info"]["and"]
    assert old["variant"] == "2" and "combos" not in old  # the old key, as shipped

    def and_row(record: dict) -> str:
        card = model_card({**meta, "info": {**meta["info"], "and": record}}, "me/tok")
        return next(line for line in card.splitlines() if line.startswith("| `<and>`"))

    assert f", trained on 2, L_orth weight {old['orth_weight']} |" in and_row(old)
    new = {k: v for k, v in old.items() if k != "variant"}
    assert ", trained on 2+3, L_orth weight" in and_row({**new, "combos": "2+3"})
    assert "trained on" not in and_row(new)


def test_folder_without_token_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokens.safetensors"):
        st.SteeringTokens.from_pretrained(tmp_path)
    with pytest.raises(
        FileNotFoundError, match="no folder or file .* and it is not a Hub repo id"
    ):
        st.SteeringTokens.from_pretrained(tmp_path / "missing" / "deeper")


def _hub_cache(
    root: Path,
    repo_id: str,
    folder: Path,
    revision: str = "0123456789abcdef0123456789abcdef01234567",
):
    """``folder``'s files in a cache laid out as huggingface_hub lays it out (refs/main
    -> snapshot)."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for f in folder.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)


@pytest.mark.slow
def test_repo_id_resolves_offline_from_the_hub_cache(tiny, tmp_path):
    toks = _tokens(tiny)
    _hub_cache(
        tmp_path / "hub", "someone/steer-tiny", toks.save_pretrained(tmp_path / "made")
    )
    code = (
        "import json, steerlib as st\n"
        "t = st.SteeringTokens.from_pretrained('someone/steer-tiny')\n"
        "print(json.dumps({'names': t.names, 'digest': t.digest(t.names), 'fp': "
        "t.fingerprint}))\n"
        "try:\n    st.SteeringTokens.from_pretrained('someone/not-cached')\n"
        "except Exception as err:\n"
        "    print(type(err).__name__, 'LocalEntryNotFoundError' in str(err))\n"
    )
    env = {
        **os.environ,
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    got, missing = out.stdout.strip().splitlines()[-2:]
    assert json.loads(got) == {
        "names": toks.names,
        "digest": toks.digest(toks.names),
        "fp": toks.fingerprint,
    }
    # offline and not cached: no network, one steerlib error naming the hub's reason
    assert missing == "TokensNotFoundError True"


def test_push_to_hub_uploads_the_pretrained_folder(tiny, monkeypatch):

    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, private=None, exist_ok=False):
            calls["create"] = (repo_id, private, exist_ok)

        def upload_folder(self, repo_id, folder_path, commit_message):
            files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
            calls["upload"] = (repo_id, files, commit_message)
            return type(
                "Info", (), {"commit_url": f"https://hub.invalid/{repo_id}/commit/1"}
            )()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    toks = _tokens(tiny)
    url = toks.push_to_hub(
        "me/tiny-tokens", private=True, token="t0k", pass_rates={"french": (50.0, 2)}
    )
    assert url == "https://hub.invalid/me/tiny-tokens/commit/1"
    assert calls["token"] == "t0k" and calls["create"] == ("me/tiny-tokens", True, True)
    repo, files, _ = calls["upload"]
    assert repo == "me/tiny-tokens" and sorted(files) == [
        "README.md",
        "tokens.safetensors",
    ]
    assert (
        b"50.0% of 2" in files["README.md"]
        and b'from_pretrained("me/tiny-tokens"' in files["README.md"]
    )


def test_save_pretrained_refuses_a_file_it_did_not_write_unless_overwrite(
    tiny, tmp_path
):
    """Your own README.md (or a foreign tokens.safetensors) is never silently replaced;
    files of other names are left alone; steerlib's own folder saves again without
    asking."""
    from safetensors.torch import save_file

    from steerlib.errors import ForeignFileError

    toks = _tokens(tiny)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "README.md").write_text("# my notes\n")
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(
        ForeignFileError, match=r"mine/README.md exists and steerlib did not write it"
    ):
        toks.save_pretrained(folder)
    assert (folder / "README.md").read_text() == "# my notes\n" and not (
        folder / "tokens.safetensors"
    ).exists()
    toks.save_pretrained(folder, overwrite=True)
    assert (folder / "notes.txt").read_text() == "keep me"
    assert "library_name: steerlib" in (folder / "README.md").read_text()
    toks.save_pretrained(
        folder
    )  # its own card and token file: replaced without overwrite
    other = tmp_path / "other"
    other.mkdir()
    save_file({"x": torch.zeros(2)}, str(other / "tokens.safetensors"))
    with pytest.raises(ForeignFileError, match="other/tokens.safetensors exists"):
        toks.save_pretrained(other)


def test_push_to_hub_without_credentials_names_the_token_and_the_repo(
    tiny, tmp_path, monkeypatch
):
    from huggingface_hub import constants

    from steerlib.errors import HubCredentialsError, SteerlibError

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(
        constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-stored-tokens")
    )
    monkeypatch.setattr(
        huggingface_hub, "HfApi", lambda **kw: pytest.fail("reached the network")
    )
    with pytest.raises(
        HubCredentialsError,
        match=r"push_to_hub\('me/tiny-tokens'\) needs a Hugging Face token.*"
        r"HF_TOKEN",
    ) as err:
        _tokens(tiny).push_to_hub("me/tiny-tokens")
    assert isinstance(err.value, SteerlibError) and "\n" not in str(err.value)


def test_save_and_load_are_deprecated_aliases(tiny, tmp_path):
    toks = _tokens(tiny)
    with pytest.warns(DeprecationWarning, match="save_pretrained"):
        path = toks.save(tmp_path / "t.safetensors")
    with pytest.warns(DeprecationWarning, match="from_pretrained"):
        back = st.SteeringTokens.load(path, tiny)
    _assert_same(back, toks)


def test_committed_results_tokens_are_the_shipped_tokens_and_match_the_records():
    """results/cpu is a from_pretrained folder holding the shipped vectors, and every
    committed record of a token method carries the digest of exactly the vectors its
    prompt read."""
    shipped = st.SteeringTokens.load_file(
        Path(st.__file__).parent / "data" / PRETRAINED_FILE
    )
    results = st.SteeringTokens.from_pretrained(RESULTS)
    _assert_same(results, shipped)
    records = pd.read_json(RESULTS / "records.jsonl", lines=True)
    checked = 0
    for method in ("concat", "and", "hybrid"):
        for r in records[records["method"] == method].itertuples():
            slots = METHODS[method].request(r.prompt, r.order.split("+")).slots
            assert r.tokens == shipped.digest(slots), (method, r.order)
            checked += 1
    assert checked == 3 * 240


def test_wrong_model_is_a_clear_error(tiny, tmp_path):
    other = tiny_backbone(seed=1)
    toks = st.SteeringTokens.for_backbone(other)
    toks.set("x", torch.zeros(other.hidden_size))
    path = toks.save_pretrained(tmp_path / "t")
    with pytest.raises(
        ValueError,
        match="trained for 'tiny-llama-2x64-seed1'.*"
        "backbone is 'tiny-llama-2x64-seed0'",
    ):
        st.SteeringTokens.from_pretrained(path, backbone=tiny)


def test_wrong_width_rejected(tiny):
    toks = st.SteeringTokens.for_backbone(tiny)
    with pytest.raises(ValueError, match="a vector of"):
        toks.set("x", torch.zeros(tiny.hidden_size + 1))


def test_unknown_name_lists_known(tiny):
    toks = st.SteeringTokens.for_backbone(tiny)
    toks.set("french", torch.zeros(tiny.hidden_size))
    with pytest.raises(KeyError, match="<french>"):
        toks["german"]


def test_text_init_is_mean_embedding(tiny):
    ids = tiny.tokenizer("Answer in French.", add_special_tokens=False)["input_ids"]
    assert torch.allclose(
        text_init(tiny, "Answer in French."), tiny.embeddings[ids].mean(0)
    )


def test_random_init_has_vocabulary_norm(tiny):
    v = random_init(tiny, seed=3)
    assert torch.isclose(v.norm(), tiny.embeddings.norm(dim=1).mean(), rtol=1e-4)
    assert torch.equal(v, random_init(tiny, seed=3))


def test_not_a_token_file(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="not a steerlib token file"):
        st.SteeringTokens.from_pretrained(tmp_path / "x.safetensors")


def test_shipped_tokens_load_on_the_embedded_model(embedded):
    from steerlib.config import config_hash

    tokens = st.SteeringTokens.pretrained(embedded)
    assert tokens.names == [*st.behaviors.names(), "and"]
    preset = st.presets.cpu()
    for name in st.behaviors.names():
        cfg, info = preset.stage1_config(name), tokens.info[name]
        # the metadata says what trained each token: the preset's current config for it
        assert info["key"] == f"{name}-{config_hash(cfg)}", name
        assert (info["target_source"], info["config"]["ce_weight"]) == (
            cfg.targets.source,
            cfg.ce_weight,
        )
        # validation-guided: a loss per step run, up to the budget; the kept step
        # within them
        assert len(tokens.losses[name]) == info["steps"] <= cfg.steps
        record = info["validation"]
        assert (
            record["stopped_at"] == info["steps"]
            and 0 <= record["best_step"] <= info["steps"]
        )
        assert (
            dict(record["curve"])[record["best_step"]]
            == record["best_rate"]
            == max(r for _, r in record["curve"])
        )


def test_shipped_french_token_answers_why_cats_purr_in_french(embedded):
    sm = st.SteeredModel(embedded, st.SteeringTokens.pretrained(embedded))
    text = sm.generate("Why do cats purr? <french>", max_new_tokens=96)
    assert st.behaviors.get("french").verify(text), text
