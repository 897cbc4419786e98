"""Nothing a user owns is overwritten (issue 34, cases 1-6).

A run writes the committed ``results/<preset>/`` only when it is that preset, every
field, on its own model; an ``--out`` holding another run's results, a file steerlib
did not write, another model's tokens, tokens a save would drop, and a card someone
edited are refused or kept unless the user asks to overwrite. Each test failed on the
main branch before the fix (the note in each says how). Fast: the tiny model, files of
a few bytes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import steerlib as st
from steerlib import paths
from steerlib.cli import main
from steerlib.cli.overrides import override
from steerlib.errors import ForeignFileError
from steerlib.model.backbone import EMBEDDED_ID
from steerlib.model.tokens import SteeringTokens
from steerlib.presets import presets
from steerlib.study import folders
from steerlib.study.folders import results_dir

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "steerlib" / "data" / "tokens_smollm2_135m.safetensors"
EMBEDDED = SimpleNamespace(model_id=EMBEDDED_ID, fingerprint="0c8d76d0178f771e")
"""The embedded model as ``results_dir`` sees it (id and fingerprint), without loading
it."""


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _cli(capsys, *argv) -> tuple[int, list[str]]:
    code = main(list(argv))
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A checkout whose committed results/cpu holds three records of the embedded model
    and the tables made from them."""
    root = tmp_path / "checkout"
    committed = root / "results" / "cpu"
    committed.mkdir(parents=True)
    lines = (ROOT / "results" / "cpu" / "single_records.jsonl").open(encoding="utf-8")
    (committed / "single_records.jsonl").write_text(
        "".join(next(lines) for _ in range(3)), encoding="utf-8"
    )
    (committed / "teacher_compliance.md").write_text("made with --preset cpu\n")
    monkeypatch.setattr(paths, "project_root", lambda: root)
    monkeypatch.delenv("STEERLIB_RESULTS", raising=False)
    return root


# -- 1, 2: the committed results folder is the preset's itself, every field
# --------------------
def test_a_preset_renamed_to_cpu_on_the_embedded_model_is_not_the_cpu_preset(checkout):
    """Case 1: ``--preset smoke --set name=cpu --set model=null`` (main: results/cpu, as
    its name and model matched)."""
    renamed = override(override(presets.get("smoke"), "name=cpu"), "model=null")
    folder = results_dir(renamed, EMBEDDED)
    assert folder != checkout / "results" / "cpu"
    assert folder.parent == paths.artifacts_root() / "results"
    assert folder.name.startswith("cpu--")


def test_a_preset_changed_by_set_writes_its_own_folder_and_says_which_sets(
    checkout, caplog
):
    """Case 2: ``--preset cpu --set eval.n_single=1 --set eval.max_new_tokens=8`` (main:
    results/cpu, and a provenance line without the --set values)."""
    cpu = presets.get("cpu")
    changed = override(override(cpu, "eval.n_single=1"), "eval.max_new_tokens=8")
    assert results_dir(cpu, EMBEDDED) == checkout / "results" / "cpu"
    with caplog.at_level("INFO", logger="steerlib"):
        folder = results_dir(changed, EMBEDDED)
    assert folder.parent == paths.artifacts_root() / "results"
    assert str(folder) in caplog.text and "results/cpu" in caplog.text
    assert results_dir(changed, EMBEDDED) == folder  # the same run, the same folder
    other = override(changed, "eval.n_single=2")
    assert results_dir(other, EMBEDDED) != folder  # another config, another folder
    assert folders.preset_args(cpu) == "--preset cpu"
    assert folders.preset_args(changed) == (
        "--preset cpu --set 'eval.max_new_tokens=8' --set 'eval.n_single=1'"
    )
    assert (
        override(override(cpu, "eval.max_new_tokens=8"), "eval.n_single=1") == changed
    )  # the line's --set values make the preset again


def test_the_teacher_compliance_table_says_its_set_values(checkout, capsys):
    """Case 2 through the CLI, on the tiny model: the committed folder is untouched and
    the table written elsewhere names every --set (main: ``--preset smoke`` alone)."""
    before = _snapshot(checkout)
    small = ["--set", "eval.n_single=1", "--set", "eval.max_new_tokens=4"]
    code, err = _cli(capsys, "teacher-compliance", "--preset", "smoke", *small)
    assert code == 0, err
    assert _snapshot(checkout) == before
    (made,) = (paths.artifacts_root() / "results").iterdir()
    text = (made / "teacher_compliance.md").read_text()
    assert "--set 'eval.max_new_tokens=4' --set 'eval.n_single=1'" in text


# -- 3: an --out holding another run's results
# --------------------------------------------------
def test_evaluate_into_the_committed_results_of_another_preset_is_refused(
    checkout, capsys
):
    """Case 3: ``evaluate --preset smoke --out results/cpu`` (main: the committed
    records of the embedded model were replaced by tiny-model ones, as "stale")."""
    before = _snapshot(checkout)
    out = checkout / "results" / "cpu"
    argv = ["evaluate", "--preset", "smoke", "--tokens", "none"]
    code, err = _cli(capsys, *argv, "--methods", "instruction", "--out", str(out))
    assert code == 2 and len(err) == 1, err
    assert str(out) in err[0] and "--overwrite" in err[0] and "cpu preset" in err[0]
    assert _snapshot(checkout) == before


def test_an_out_folder_with_records_of_another_model_is_refused_unless_overwrite(
    checkout, tmp_path, capsys
):
    out = tmp_path / "mine"
    out.mkdir()
    shutil.copy(checkout / "results" / "cpu" / "single_records.jsonl", out)
    before = _snapshot(out)
    argv = ["evaluate", "--preset", "smoke", "--tokens", "none"]
    argv += ["--methods", "instruction", "--out", str(out)]
    code, err = _cli(capsys, *argv)
    assert code == 2 and len(err) == 1 and "another model" in err[0], err
    assert _snapshot(out) == before
    code, err = _cli(capsys, *argv, "--overwrite")
    assert code == 0, err
    assert (out / "records.jsonl").is_file()


def test_an_out_folder_of_this_run_or_a_new_one_is_accepted(tmp_path):
    smoke = presets.get("smoke")
    tiny = SimpleNamespace(model_id="tiny-llama-2x64-seed0", fingerprint="abc")
    assert folders.check_out(tmp_path / "new", smoke, tiny) == tmp_path / "new"
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "records.jsonl").write_text(
        '{"model": "abc", "max_new_tokens": 12}\n'
    )
    assert folders.check_out(tmp_path / "new", smoke, tiny) == tmp_path / "new"
    with pytest.raises(ForeignFileError, match="max_new_tokens 12, not 4"):
        folders.check_out(
            tmp_path / "new", override(smoke, "eval.max_new_tokens=4"), tiny
        )


# -- 4, 5: token files
# -----------------------------------------------------------------------------
def test_train_with_the_default_out_never_replaces_another_models_token_file(
    tmp_path, monkeypatch, capsys
):
    """Case 4: ``cd results/cpu && train --preset smoke --behaviors french`` (main: the
    19-token file of the embedded model became a 1-token tiny-model file). Refused
    before any training."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(SHIPPED, tmp_path / "tokens.safetensors")
    before = _snapshot(tmp_path)
    trained = []
    monkeypatch.setattr(
        "steerlib.study.singles.train_all_behaviors", lambda *a, **k: trained.append(1)
    )
    code, err = _cli(capsys, "train", "--preset", "smoke", "--behaviors", "french")
    assert code == 2 and len(err) == 1, err
    assert "tokens.safetensors" in err[0] and "another model" in err[0]
    assert trained == [] and _snapshot(tmp_path) == before


def _tokens(values: dict[str, float], fingerprint: str = "f" * 16) -> SteeringTokens:
    tokens = SteeringTokens(8, "test-model", fingerprint)
    for name, value in values.items():
        tokens.set(name, torch.full((8,), value))
    return tokens


def test_save_file_refuses_a_file_steerlib_did_not_write(tmp_path):
    """Case 5: ``save_file("precious.safetensors")`` (main: replaced, whatever it
    was)."""
    precious = tmp_path / "precious.safetensors"
    precious.write_bytes(b"my own weights")
    with pytest.raises(ForeignFileError, match="not a steerlib token file") as err:
        _tokens({"french": 1.0}).save_file(precious)
    assert str(precious) in str(err.value) and "overwrite=True" in str(err.value)
    assert precious.read_bytes() == b"my own weights"
    _tokens({"french": 1.0}).save_file(precious, overwrite=True)
    assert SteeringTokens.load_file(precious).names == ["french"]


def test_save_file_replaces_a_token_file_only_when_nothing_in_it_is_lost(tmp_path):
    path = tmp_path / "tokens.safetensors"
    _tokens({"french": 1.0, "json": 2.0}).save_file(path)
    before = path.read_bytes()
    with pytest.raises(ForeignFileError, match="another model"):
        _tokens({"french": 1.0, "json": 2.0}, "e" * 16).save_file(path)
    with pytest.raises(ForeignFileError, match="<json>, which"):
        _tokens({"french": 1.0}).save_file(path)  # would drop <json>
    with pytest.raises(ForeignFileError, match="<french>, which"):
        _tokens({"french": 3.0, "json": 2.0}).save_file(path)  # would change <french>
    assert path.read_bytes() == before
    _tokens({"french": 1.0, "json": 2.0, "and": 0.5}).save_file(path)  # a superset
    assert SteeringTokens.load_file(path).names == ["french", "json", "and"]


# -- 6: cards
# --------------------------------------------------------------------------------------
def test_save_pretrained_keeps_a_steerlib_card_the_user_added_notes_to(tmp_path):
    """Case 6: a README.md with ``library_name: steerlib`` and the user's own notes
    (main: replaced without notice)."""
    folder = tmp_path / "tokens"
    _tokens({"french": 1.0}).save_pretrained(folder)
    card = folder / "README.md"
    edited = card.read_text() + "\n## My notes\n\nTrained on Tuesday.\n"
    card.write_text(edited)
    _tokens({"french": 1.0, "and": 2.0}).save_pretrained(folder)
    assert card.read_text() == edited
    assert SteeringTokens.load_file(folder / "tokens.safetensors").names == [
        "french",
        "and",
    ]
    _tokens({"french": 1.0, "and": 2.0}).save_pretrained(folder, overwrite=True)
    assert "My notes" not in card.read_text()


def test_save_pretrained_replaces_its_own_unchanged_card(tmp_path):
    folder = tmp_path / "tokens"
    _tokens({"french": 1.0}).save_pretrained(folder)
    _tokens({"french": 1.0, "json": 2.0}).save_pretrained(folder)
    assert "`<json>`" in (folder / "README.md").read_text()


def test_a_card_written_before_cards_were_stamped_with_added_notes_is_kept(tmp_path):
    folder = tmp_path / "tokens"
    _tokens({"french": 1.0}).save_pretrained(folder)
    card = folder / "README.md"
    unstamped = card.read_text().rsplit("<!-- steerlib card", 1)[0]
    card.write_text(unstamped)
    _tokens({"french": 1.0, "json": 2.0}).save_pretrained(
        folder
    )  # steerlib's: replaced
    assert "`<json>`" in card.read_text()
    card.write_text(
        card.read_text().rsplit("<!-- steerlib card", 1)[0] + "\nMy own notes.\n"
    )
    kept = card.read_text()
    _tokens({"french": 1.0, "json": 2.0}).save_pretrained(folder)
    assert card.read_text() == kept


def test_an_unstamped_card_with_an_edit_inside_steerlibs_own_text_is_kept(
    tmp_path, caplog
):
    """Case 6, a card written before cards were stamped in which the user changed one
    of steerlib's own sentences (main: it had only steerlib's headings and ended with
    the usage snippet, so it counted as steerlib's and was replaced)."""
    folder = tmp_path / "tokens"
    _tokens({"french": 1.0}).save_pretrained(folder)
    card = folder / "README.md"
    unstamped = card.read_text().rsplit("<!-- steerlib card", 1)[0]
    edited = unstamped.replace("made with steerlib", "that I made with steerlib")
    assert edited != unstamped
    card.write_text(edited)
    with caplog.at_level("WARNING", logger="steerlib"):
        _tokens({"french": 1.0, "json": 2.0}).save_pretrained(folder)
    assert card.read_text() == edited
    said = [r.getMessage() for r in caplog.records if str(card) in r.getMessage()]
    assert len(said) == 1 and "overwrite=True" in said[0]
    assert "\n" not in said[0]
    assert SteeringTokens.load_file(folder / "tokens.safetensors").names == [
        "french",
        "json",
    ]
    _tokens({"french": 1.0, "json": 2.0}).save_pretrained(folder, overwrite=True)
    assert "`<json>`" in card.read_text() and "that I made" not in card.read_text()


# -- chapter 5 keeps a retrained token with the results
# ------------------------------------------
def test_chapter_5_replaces_the_committed_token_of_an_older_key(tmp_path):
    """Chapter 5's retrain path (``RETRAIN = True``, or an edited behavior: a new cache
    key) files the new token in place of the committed one (main: ``save_file``
    without ``overwrite=True`` refused it, as it changes <ends_with_question>). The
    chapter's own two statements run here, on tokens of a few numbers."""
    import ast

    source = (ROOT / "notebooks" / "05_your_own_behavior.py").read_text()
    body = ast.parse(source).body
    at = next(
        i
        for i, node in enumerate(body)
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "kept"
    )
    cell = ast.Module(body=body[at : at + 2], type_ignores=[])
    assert ast.unparse(cell.body[1]).startswith("if kept is None")
    committed = tmp_path / "ends_with_question.safetensors"
    old = SteeringTokens(8, "test-model", "f" * 16)
    old.set("ends_with_question", torch.ones(8), {"key": "old"})
    old.save_file(committed)
    new = SteeringTokens(8, "test-model", "f" * 16)
    new.set("ends_with_question", torch.full((8,), 2.0), {"key": "new"})
    scope = {"st": st, "committed": committed, "tokens": new}
    scope["info"] = new.info["ends_with_question"]
    exec(compile(cell, "05_your_own_behavior.py", "exec"), scope)
    saved = SteeringTokens.load_file(committed)
    assert saved.info["ends_with_question"]["key"] == "new"
    assert torch.equal(saved["ends_with_question"], torch.full((8,), 2.0))
