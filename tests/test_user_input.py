"""No stale verdict, no code in a card, every user error in one line (issue 34, cases
7-21).

Each test names its case; each failed on the main branch before the fix (checked once
against main's code). Fast: the tiny random model, a few generations of a few tokens.
"""

from __future__ import annotations

import ast
import json
import pickle
import re
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError
from token_files import token_file

import steerlib as st
from steerlib.cli import main
from steerlib.cli.overrides import override
from steerlib.errors import (
    ConfigError,
    ForeignFileError,
    SteerlibError,
    StorageError,
    TokenFileError,
    VerifierError,
)
from steerlib.model.tokens import SteeringTokens
from steerlib.presets import presets
from steerlib.tasks import prompts as P

ROOT = Path(__file__).resolve().parents[1]


def _cli(capsys, *argv) -> tuple[int, list[str]]:
    code = main(list(argv))
    return code, capsys.readouterr().err.strip().splitlines()


def _tokens(d: int = 8, model_id: str = "test-model") -> SteeringTokens:
    tokens = SteeringTokens(d, model_id, "f" * 16)
    tokens.set("french", torch.ones(d))
    return tokens


# -- 7. the shipped questions, edited in place -----------------------------------------
def test_edited_shipped_train_questions_get_a_cache_key_of_their_own(monkeypatch):
    """Case 7: 300 of the 472 train questions replaced in the shipped file; main reused
    the cached token (the cache tag was empty whenever the questions equalled the file's
    split)."""
    from steerlib.train.distill import stage1_key

    cfg = presets.get("cpu").stage1_config("french")
    shipped = stage1_key("french", cfg)
    rows = list(P._shipped())
    train = [i for i, row in enumerate(rows) if row[2] == "train"][:300]
    for i in train:
        rows[i] = (f"My own question {i}?", rows[i][1], "train")
    monkeypatch.setattr(P, "_shipped", lambda: tuple(rows))
    assert len(P.load("train")) == 472
    edited = stage1_key("french", cfg)
    assert edited != shipped and re.search(r"-q[0-9a-f]{12}$", edited)
    monkeypatch.undo()
    assert stage1_key("french", cfg) == shipped  # the shipped split keeps its key


# -- 8. a checker that is a closure ----------------------------------------------------
def _behavior(checker, name: str = "short_enough"):
    return st.behaviors.Behavior(
        name=name,
        category="format",
        paraphrases=("Answer briefly.",),
        rule="at most N characters",
        checker=checker,
    )


def make_checker(n: int):
    return lambda text: len(text) <= n


def test_a_closure_checker_with_another_value_gets_new_verdicts(tiny, tmp_path):
    """Case 8: evaluate with make_checker(100000), then make_checker(1): main reused the
    first run's verdicts (only the source text was digested)."""
    records = tmp_path / "records.jsonl"
    runs = []
    for n in (100000, 1):
        with st.behaviors.registered(_behavior(make_checker(n))):
            runs.append(
                st.evaluate(
                    st.SteeredModel(tiny),
                    ["instruction"],
                    [("short_enough",)],
                    ["Name a fruit."],
                    max_new_tokens=4,
                    records=records,
                    progress=False,
                )
            )
    text = runs[0]["text"].iloc[0]
    assert len(text) > 1  # so the two checkers disagree on it
    assert runs[0]["ok"].tolist() == [True] and runs[1]["ok"].tolist() == [False]


def test_default_arguments_are_digested_and_undigestable_closures_refused():
    def checker(text, limit=10):
        return len(text) <= limit

    def other(text, limit=20):
        return len(text) <= limit

    stamps = []
    for fn in (checker, other):
        with st.behaviors.registered(_behavior(fn)):
            stamps.append(st.behaviors.definitions_stamp(["short_enough"]))
    assert stamps[0] != stamps[1]

    class Limits:
        n = 5

    limits = Limits()
    with pytest.raises(ConfigError, match="cannot digest") as err:
        st.behaviors.register(_behavior(lambda text: len(text) <= limits.n))
    assert "limits" in str(err.value) and "short_enough" not in st.behaviors.names()


# -- 9. mappings of a preset -----------------------------------------------------------
@pytest.mark.parametrize(
    "item, words",
    [
        ('steps={"frnch":50}', "unknown behavior(s) ['frnch']"),
        ('target_policies={"frnch":"filtered"}', "unknown behavior(s) ['frnch']"),
        ('baseline_lr={"lora":1e-3}', "'lora'"),
        ('steps={"french":0}', "integer >= 1"),
    ],
)
def test_set_of_a_mapping_with_an_unknown_name_is_refused(item, words):
    """Case 9: accepted and ignored on main."""
    with pytest.raises(ConfigError) as err:
        override(presets.get("smoke"), item)
    assert words in str(err.value)


# -- 10. seconds of a resumed run ------------------------------------------------------
def test_a_resumed_token_is_the_uninterrupted_one_and_its_seconds_count_every_leg(
    tiny, monkeypatch
):
    """Case 10: main counted only the last leg (8.1 vs 18.4 s), and no killed leg's
    target generation. A fake clock moves 1 ms per reading; making the targets, the
    first time only (then they are cached), costs 1000 s on it. The first leg stops
    after its last checkpoint, as a kill -9 there would."""
    import time

    from safetensors import safe_open

    from steerlib.train import distill

    cfg = presets.get("smoke").stage1_config("french")
    clock = {"now": 0.0}

    def tick() -> float:
        clock["now"] += 0.001
        return clock["now"]

    make_targets, made = distill.behavior_targets, []

    def slow_targets(*args, **kwargs):
        if not made:
            clock["now"] += 1000.0
        made.append(1)
        return make_targets(*args, **kwargs)

    monkeypatch.setattr(time, "perf_counter", tick)
    monkeypatch.setattr(distill, "behavior_targets", slow_targets)
    final = distill.stage1_path(tiny, "french", cfg)
    ckpt = final.with_suffix(".ckpt.safetensors")
    train = distill.train_behavior_token
    train(tiny, "french", cfg, stop_after=cfg.steps - 1, progress=False)
    assert ckpt.is_file() and not final.is_file()  # cut short, not finished
    with safe_open(str(ckpt), framework="pt") as f:
        first_leg = json.loads(f.metadata()["checkpoint"])["seconds"]
    resumed = train(tiny, "french", cfg, progress=False)
    whole = train(tiny, "french", cfg, retrain=True, progress=False)
    assert len(made) == 3  # each run asked for its targets; only the first made them
    assert first_leg >= 1000  # the checkpoint carries its leg's targets
    # (the token keeps seconds to 0.1: rounding keeps the order)
    assert resumed.info["french"]["seconds"] >= round(first_leg, 1)
    assert whole.info["french"]["seconds"] < 1000  # its targets were cached

    def rest(info: dict) -> dict:
        return {k: v for k, v in info.items() if k not in ("seconds", "final_loss")}

    assert rest(resumed.info["french"]) == rest(whole.info["french"])
    assert resumed.info["french"]["final_loss"] == pytest.approx(
        whole.info["french"]["final_loss"], rel=1e-5
    )
    assert resumed.losses["french"] == pytest.approx(whole.losses["french"], rel=1e-5)
    assert torch.allclose(resumed["french"], whole["french"], atol=1e-6)


# -- 11. a hostile token file, and a card that quotes what it renders ------------------
HOSTILE_ID = 'x"if(__import__("os").system("touch pwned"))else"tiny'


@pytest.mark.parametrize(
    "meta, words",
    [
        ({"model_id": HOSTILE_ID}, "model_id"),
        ({"names": ["fr\nench"]}, "token name"),
        ({"names": ["<script>"]}, "token name"),
        ({"fingerprint": "f\n<b>"}, "fingerprint"),
    ],
)
def test_a_token_file_with_a_hostile_model_id_or_name_is_refused_on_load(
    tmp_path, meta, words
):
    """Case 11: main loaded them (only fingerprint and width were checked)."""
    path = token_file(tmp_path / "t.safetensors", meta)
    with pytest.raises(TokenFileError, match=words) as err:
        SteeringTokens.load_file(path)
    assert str(path) in str(err.value)


def test_the_card_quotes_a_hostile_model_id_and_escapes_names(tmp_path):
    """Case 11: main wrote the model id verbatim into the card's Python usage line."""
    tokens = _tokens(model_id=HOSTILE_ID)
    tokens.set("<script>alert(1)</script>\n# injected", torch.ones(8))
    folder = tokens.save_pretrained(tmp_path / "card", repo_id='me/x")\nimport os#')
    card = (folder / "README.md").read_text()
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    tree = ast.parse(code)
    calls = {
        ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)
    }
    assert calls == {
        "st.load_backbone",
        "st.SteeringTokens.from_pretrained",
        "st.SteeredModel",
        "print",
        "sm.generate",
    }
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import)][1:]
    outside_code = re.sub(r"`[^`\n]*`", "", card.split("```python")[0])
    assert "<script>" not in outside_code  # only in code spans, which show it as text
    assert "\n# injected" not in card  # a name cannot start a heading


# -- 12. a truncated checkpoint --------------------------------------------------------
def test_a_truncated_checkpoint_is_set_aside_and_training_starts_over(tiny, caplog):
    """Case 12: main raised SafetensorError (no path) on every rerun."""
    from steerlib.train.distill import stage1_path, train_behavior_token

    cfg = presets.get("smoke").stage1_config("french")
    ckpt = stage1_path(tiny, "french", cfg).with_suffix(".ckpt.safetensors")
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"x')
    with caplog.at_level("WARNING", logger="steerlib"):
        tokens = train_behavior_token(tiny, "french", cfg, progress=False)
    assert tokens.info["french"]["steps"] == cfg.steps
    assert str(ckpt) in caplog.text and "set aside" in caplog.text
    assert ckpt.with_name(ckpt.name + ".corrupt").is_file()


# -- 13. a full disk while saving tokens -----------------------------------------------
def _disk_full(*args, **kwargs):
    raise SafetensorError(
        "Error while serializing: I/O error: No space left on device (os error 28)"
    )


def test_a_full_disk_while_saving_tokens_is_a_storage_error_naming_the_path(
    tmp_path, monkeypatch
):
    """Case 13: main let safetensors' own error through (a traceback, no path)."""
    monkeypatch.setattr("safetensors.torch.save_file", _disk_full)
    for save, path in (
        (_tokens().save_file, tmp_path / "f.safetensors"),
        (_tokens().save_pretrained, tmp_path / "folder"),
    ):
        with pytest.raises(StorageError, match="No space left") as err:
            save(path)
        assert str(path) in str(err.value)
    assert not (tmp_path / "f.safetensors").exists()


def test_train_out_on_a_full_disk_is_one_line_naming_the_file(
    tiny, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(
        "steerlib.study.singles.train_all_behaviors",
        lambda bb, *a, **k: _tokens(bb.hidden_size),
    )
    monkeypatch.setattr("safetensors.torch.save_file", _disk_full)
    out = tmp_path / "f.safetensors"
    code, err = _cli(capsys, "train", "--preset", "smoke", "--out", str(out))
    assert code == 2 and len(err) == 1, err
    assert str(out) in err[0] and "No space left" in err[0]


# -- 14. a token source that is no folder, no file and no repo -------------------------
def test_a_malformed_repo_id_or_a_mistyped_folder_says_so(monkeypatch, tmp_path):
    """Case 14: main showed HFValidationError, or a ConnectError never saying that no
    such folder exists."""
    from steerlib.errors import TokensNotFoundError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(TokensNotFoundError, match="not a Hub repo id") as err:
        SteeringTokens.from_pretrained("org/na me")
    assert "'org/na me'" in str(err.value)

    def no_network(*args, **kwargs):
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr("huggingface_hub.snapshot_download", no_network)
    with pytest.raises(TokensNotFoundError) as err:
        SteeringTokens.from_pretrained("mytokens/v2")
    assert "no folder or file 'mytokens/v2'" in str(err.value)
    assert "Name or service not known" in str(err.value)


# -- 15. metadata a card cannot render -------------------------------------------------
@pytest.mark.parametrize(
    "info, words",
    [
        ({"french": "x"}, "not a JSON object"),
        ({"french": {"final_loss": "abc"}}, "final_loss='abc'"),
        ({"french": {"steps": 1.5}}, "steps=1.5"),
    ],
)
def test_training_records_that_are_not_records_are_refused_on_load(
    tmp_path, info, words
):
    """Case 15: main loaded them, then save_pretrained crashed after writing the
    tokens."""
    path = token_file(tmp_path / "t.safetensors", {"info": info})
    with pytest.raises(TokenFileError) as err:
        SteeringTokens.load_file(path)
    assert words in str(err.value) and str(path) in str(err.value)


# -- 16. a README that is not steerlib's -----------------------------------------------
@pytest.mark.parametrize(
    "readme",
    [
        "---\nlibrary_name: [steerlib\n---\n# mine\n",
        "---\nlibrary_name: !!python/object/apply:os.system ['touch {marker}']\n---\n",
    ],
)
def test_a_readme_with_bad_yaml_or_a_python_tag_is_a_foreign_file(tmp_path, readme):
    """Case 16: main raised yaml's ParserError / ConstructorError (a traceback)."""
    marker = tmp_path / "ran"
    folder = tmp_path / "tokens"
    folder.mkdir()
    (folder / "README.md").write_text(readme.format(marker=marker))
    with pytest.raises(ForeignFileError, match="README.md exists and steerlib did not"):
        _tokens().save_pretrained(folder)
    assert not marker.exists() and not (folder / "tokens.safetensors").exists()


# -- 17. a behavior name too long for a file name --------------------------------------
def test_a_behavior_name_longer_than_64_is_refused_at_registration():
    """Case 17: main accepted it; training failed later with OSError: File name too
    long."""
    with pytest.raises(ConfigError, match="at most 64"):
        st.behaviors.register(_behavior(lambda text: True, name="a" * 250))
    assert "a" * 250 not in st.behaviors.names()


# -- 18. a checker that raises mid-evaluation ------------------------------------------
_CALLS = {"n": 0}


def _fails_on_the_second_answer(text: str) -> bool:
    """True for the registration probes, then raises on the second answer it checks."""
    if text in ("", "Paris is the capital of France.") or text.startswith("Why is"):
        return True
    _CALLS["n"] += 1
    if _CALLS["n"] == 2:
        raise RuntimeError("boom")
    return True


def test_a_checker_raising_mid_evaluation_names_the_behavior_and_keeps_what_was_made(
    tiny, tmp_path
):
    """Case 18: main raised a bare RuntimeError and saved 0 records."""
    records = tmp_path / "records.jsonl"
    _CALLS["n"] = 0
    with st.behaviors.registered(_behavior(_fails_on_the_second_answer, "flaky")):
        with pytest.raises(VerifierError) as err:
            st.evaluate(
                st.SteeredModel(tiny),
                ["instruction"],
                [("flaky",)],
                ["Name a fruit.", "Name a color.", "Name a tree."],
                max_new_tokens=3,
                records=records,
                progress=False,
            )
    message = str(err.value)
    assert "<flaky>'s checker raised RuntimeError (boom)" in message
    assert "on the text" in message and str(records) in message
    assert len(records.read_text().splitlines()) == 1  # the answer verified before it


# -- 19. a model folder whose weights are a pickle -------------------------------------
class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_model_folder_with_pickled_weights_is_refused_without_the_unsafe_switch(
    tiny, tmp_path, capsys
):
    """Case 19: main's traceback advised re-running torch.load with
    weights_only=False."""
    folder = tmp_path / "model"
    tiny.model.config.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    marker = tmp_path / "ran"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    code, err = _cli(capsys, "generate", "--model", str(folder), "--prompt", "Hi.")
    assert code == 2 and len(err) == 1, err
    assert "pytorch_model.bin" in err[0] and "safetensors" in err[0]
    assert "weights_only" not in err[0] and not marker.exists()


# -- 20. arguments checked before any work ---------------------------------------------
def test_reproduce_refuses_an_unknown_baseline_before_any_work(monkeypatch, capsys):
    """Case 20: main refused it only after stage 1, teacher compliance and the single-
    behavior evaluation had run and written 6 files."""
    loaded = []
    monkeypatch.setattr(
        "steerlib.study.pipeline.load_backbone", lambda *a: loaded.append(a)
    )
    code, err = _cli(capsys, "reproduce", "--preset", "smoke", "--baselines", "bogus")
    assert code == 2 and len(err) == 1 and "'bogus'" in err[0], err
    assert loaded == []


# -- 21. every error on user input is a SteerlibError ----------------------------------
def test_steerlib_raises_no_bare_value_type_or_key_error():
    """Case 21: main raised 38 ValueError, 6 TypeError and 2 KeyError on user input
    outside the SteerlibError family, which the CLI shows as bugs (a traceback)."""
    bare = []
    for path in sorted((ROOT / "steerlib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                name = getattr(node.exc.func, "id", None)
                if name in ("ValueError", "TypeError", "KeyError"):
                    bare.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert bare == []


def test_a_prompt_with_the_reserved_slot_character_is_one_line(capsys):
    """Case 21: ``generate --prompt $'Why\\ue000?'`` showed a full traceback on main."""
    code, err = _cli(
        capsys,
        "generate",
        "--model",
        "tiny",
        "--tokens",
        "none",
        "--prompt",
        "Why\ue000?",
    )
    assert code == 2 and len(err) == 1 and "U+E000" in err[0], err
    assert issubclass(st.errors.PromptError, SteerlibError)


def test_every_test_the_guarantees_page_names_exists():
    """book/guarantees.md names a test for each promise; each must exist, so the page
    cannot go on citing a test that was renamed or removed."""
    page = (ROOT / "book" / "guarantees.md").read_text(encoding="utf-8")
    files = list((ROOT / "tests").glob("test_*.py"))
    named = set(re.findall(r"\b(test_\w+)\b", page)) - {p.stem for p in files}
    sources = "".join(p.read_text() for p in files)
    defined = set(re.findall(r"^def (test_\w+)", sources, re.M))
    assert len(named) > 40 and sorted(named - defined) == []
