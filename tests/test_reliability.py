"""The reliability contract (issue 17): nothing silently wrong, nothing lost.

Each test is named after the case it guards; read top to bottom, the names are the
guarantees listed in the README's "Guarantees" section. Every test failed before the fix
it guards. Fast: the tiny random model, small files, real processes only where the case
is about two processes.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import steerlib.io as sio
from steerlib.errors import RecordsError, SteerlibError, StorageError
from steerlib.tokens import SteeringTokens

ROOT = Path(__file__).resolve().parents[1]


def _tokens(value: float = 1.0, d: int = 8) -> SteeringTokens:
    tokens = SteeringTokens(d, "test-model", "f" * 16)
    tokens.set("french", torch.full((d,), value))
    return tokens


def _run_together(script: str, n: int = 2, timeout: float = 240) -> list[subprocess.CompletedProcess]:
    """Start ``n`` real Python processes on ``script`` at once (argv[1] = the process index);
    they import steerlib from this checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), str(i)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


# -- 1. records are reused only for the same model, settings, prompt and vectors --------------------
PROMPTS = ["Why is the sky blue?", "Name a fruit."]


def _eval(bb, path, prompts=PROMPTS, **kw):
    from steerlib import SteeredModel, evaluate

    return evaluate(SteeredModel(bb), ["instruction"], [("french",)], prompts, records=path, progress=False,
                    **{"max_new_tokens": 3, **kw})


def _count_generations(monkeypatch) -> list[int]:
    """Patch SteeredModel.generate to count the prompts it is asked to answer."""
    from steerlib.generate import SteeredModel

    calls: list[int] = []
    real = SteeredModel.generate

    def counting(self, prompts, *args, **kwargs):
        calls.append(len(prompts))
        return real(self, prompts, *args, **kwargs)

    monkeypatch.setattr(SteeredModel, "generate", counting)
    return calls


def test_records_of_another_model_are_regenerated(tiny, tmp_path, monkeypatch):
    from steerlib.backbone import tiny_backbone

    path = tmp_path / "records.jsonl"
    _eval(tiny, path)
    other = tiny_backbone(seed=1)  # same shapes and tokenizer, other weights: another fingerprint
    calls = _count_generations(monkeypatch)
    again = _eval(other, path)
    assert calls == [2]
    assert set(again["model"]) == {other.fingerprint}
    assert len(sio.read_jsonl(path)) == 2  # the other model's records replaced, not added to


def test_records_of_other_generation_settings_are_regenerated(tiny, tmp_path, monkeypatch):
    path = tmp_path / "records.jsonl"
    _eval(tiny, path, max_new_tokens=3)
    calls = _count_generations(monkeypatch)
    longer = _eval(tiny, path, max_new_tokens=8)
    assert calls == [2] and set(longer["max_new_tokens"]) == {8}
    _eval(tiny, path, max_new_tokens=8, seed=1)  # another seed: other instruction paraphrases
    assert calls == [2, 2]
    _eval(tiny, path, max_new_tokens=8, seed=1)  # the same again: reused
    assert calls == [2, 2]


def test_records_of_another_prompt_at_the_same_index_are_regenerated(tiny, tmp_path, monkeypatch):
    path = tmp_path / "records.jsonl"
    _eval(tiny, path)
    calls = _count_generations(monkeypatch)
    again = _eval(tiny, path, prompts=[PROMPTS[0], "Name a colour."])
    assert calls == [1]
    assert list(again["prompt"]) == [PROMPTS[0], "Name a colour."]


def test_committed_records_carry_the_full_key_and_are_reused():
    """The migrated cpu records: every key field present, model and settings of the cpu preset."""
    import steerlib as st
    from steerlib.evaluate import KEY_FIELDS, prompt_digest

    ev = st.presets.cpu().eval
    for path in sorted((ROOT / "results" / "cpu").rglob("*records.jsonl")):
        rows = sio.read_jsonl(path)
        assert rows, path
        for r in rows:
            assert set(KEY_FIELDS) - {"tokens"} <= set(r), path
            assert r["prompt_sha"] == prompt_digest(r["prompt"])
            assert (r["max_new_tokens"], r["seed"]) == (ev.max_new_tokens, ev.seed)
        shipped = json.loads(__import__("safetensors").safe_open(
            str(ROOT / "results" / "cpu" / "tokens.safetensors"), "pt").metadata()["steerlib"])["fingerprint"]
        assert {r["model"] for r in rows} == {shipped}, path


# -- 2. concurrent evaluations count each generation once -----------------------------------------
def test_two_processes_evaluating_one_records_file_write_each_record_once(tmp_path):
    path = tmp_path / "records.jsonl"
    script = f"""
        import steerlib as st
        bb = st.load_backbone("tiny")
        st.evaluate(st.SteeredModel(bb), ["plain", "instruction"], [("french",), ("german",)],
                    ["Why is the sky blue?", "Name a fruit.", "What is rain?"], max_new_tokens=4,
                    records={str(path)!r}, progress=False)
    """
    for result in _run_together(script):
        assert result.returncode == 0, result.stderr[-2000:]
    rows = sio.read_jsonl(path)
    assert len(rows) == 2 * 2 * 3
    assert len({tuple(sorted((k, str(v)) for k, v in r.items() if k != "verdicts")) for r in rows}) == 12


def test_metrics_count_duplicate_records_once(tiny, tmp_path):
    import pandas as pd
    from steerlib.evaluate import metrics

    recs = _eval(tiny, tmp_path / "records.jsonl")
    doubled = pd.concat([recs, recs], ignore_index=True)  # what two unlocked appenders left behind
    assert metrics(doubled)["n"].tolist() == metrics(recs)["n"].tolist() == [2]


def test_metrics_refuse_conflicting_duplicate_records(tiny, tmp_path):
    import pandas as pd
    from steerlib.evaluate import metrics

    recs = _eval(tiny, tmp_path / "records.jsonl")
    other = recs.iloc[:1].assign(text="something else", ok=not recs["ok"].iloc[0])
    with pytest.raises(RecordsError, match="disagree"):
        metrics(pd.concat([recs, other], ignore_index=True))


# -- 7. torn files ---------------------------------------------------------------------------
def test_torn_last_line_is_dropped_with_a_warning_naming_the_file(tmp_path, caplog):
    path = tmp_path / "records.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "te')  # a full disk cut the last append
    with caplog.at_level(logging.WARNING, logger="steerlib"):
        assert sio.read_jsonl(path) == [{"a": 1}, {"a": 2}]
    assert str(path) in caplog.text and "torn" in caplog.text


def test_corruption_before_the_last_line_is_refused_with_file_and_line(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text('{"a": 1}\n{"a": 2, "bro\n{"a": 3}\n')
    with pytest.raises(RecordsError, match=r"records\.jsonl, line 2"):
        sio.read_jsonl(path)


def test_append_after_a_torn_line_does_not_glue_onto_it(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text('{"a": 1}\n{"a": 2, "te')
    sio.append_jsonl(path, [{"a": 3}])
    assert sio.read_jsonl(path) == [{"a": 1}, {"a": 3}]
    assert path.read_text() == '{"a": 1}\n{"a": 3}\n'


def test_torn_records_file_resumes_evaluation(tiny, tmp_path):
    from steerlib import SteeredModel, evaluate

    path = tmp_path / "records.jsonl"
    prompts = ["Why is the sky blue?", "Name a fruit."]
    kw = dict(max_new_tokens=4, records=path, progress=False)
    first = evaluate(SteeredModel(tiny), ["plain"], [("french",)], prompts, **kw)
    path.write_text(path.read_text()[:-10])  # tear the last record
    again = evaluate(SteeredModel(tiny), ["plain"], [("french",)], prompts, **kw)
    assert len(again) == 2 and list(again["text"]) == list(first["text"])
    assert len(sio.read_jsonl(path)) == 2


def test_torn_targets_cache_resumes(tiny):
    from steerlib.config import TargetConfig
    from steerlib.targets import _cache_file, make_targets

    cfg = TargetConfig(max_new_tokens=4)
    jobs = [("Why is the sky blue?", ("french",)), ("Name a fruit.", ("french",))]
    first = make_targets(tiny, jobs, cfg, key="torn", progress=False)
    path = _cache_file(tiny, "torn", cfg, 0)
    path.write_text(path.read_text()[:-5])
    assert make_targets(tiny, jobs, cfg, key="torn", progress=False) == first


# -- 8. temp names, locks and full disks ---------------------------------------------------------
def test_two_processes_saving_tokens_never_collide(tmp_path):
    script = f"""
        import sys, torch
        from steerlib.tokens import SteeringTokens
        i = int(sys.argv[1])
        for step in range(300):
            t = SteeringTokens(8, "m", "f" * 16)
            t.set("french", torch.full((8,), float(i)))
            t.save({str(tmp_path / 'tokens.safetensors')!r})
            assert SteeringTokens.load({str(tmp_path / 'tokens.safetensors')!r})["french"][0] in (0.0, 1.0)
    """
    for result in _run_together(script):
        assert result.returncode == 0, result.stderr[-2000:]
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.safetensors"]  # no temp file left behind


def test_two_processes_build_a_cache_folder_once(tmp_path):
    """The GGUF conversion's mechanism: two first loads at once convert once; the second waits."""
    script = f"""
        import sys, time
        from pathlib import Path
        from steerlib.io import build_once
        def build(folder):
            (folder / "weights").write_text("half")
            time.sleep(1.0)  # a slow conversion: the other process must not see it half-done
            (folder / "weights").write_text("done")
            (folder / "builder").write_text(sys.argv[1])
        out = build_once(Path({str(tmp_path / 'model')!r}), build)
        print((out / "weights").read_text())
    """
    results = _run_together(script)
    for result in results:
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip() == "done"
    assert (tmp_path / "model" / "builder").read_text() in ("0", "1")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temp folder, no lock file in the cache


def test_stale_temp_folder_of_a_killed_conversion_is_removed(tmp_path):
    stale = tmp_path / ".model.abc123.tmp"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"x" * 1000)  # a killed conversion's leftovers
    sio.build_once(tmp_path / "model", lambda folder: (folder / "model.safetensors").write_bytes(b"ok"))
    assert not stale.exists()
    assert (tmp_path / "model" / "model.safetensors").read_bytes() == b"ok"


def _disk_full_after(n_bytes: int):
    """A ``save_file`` stand-in that writes ``n_bytes`` and then fails like a full disk."""
    def save_file(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * n_bytes)
        raise OSError(errno.ENOSPC, "No space left on device")
    return save_file


def test_disk_full_while_saving_tokens_names_the_path_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "tokens.safetensors"
    _tokens(1.0).save(path)
    monkeypatch.setattr("safetensors.torch.save_file", _disk_full_after(100))
    with pytest.raises(StorageError, match="tokens.safetensors") as err:
        _tokens(2.0).save(path)
    assert err.value.errno == errno.ENOSPC
    assert SteeringTokens.load(path)["french"][0] == 1.0  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.safetensors"]  # the temp file is gone


class _FullDiskFile:
    """A text file whose ``write`` stores half of what it is given and then raises ENOSPC."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_disk_full_during_an_append_names_the_file_and_the_next_run_resumes(tmp_path, monkeypatch):
    path = tmp_path / "records.jsonl"
    sio.append_jsonl(path, [{"a": 1}])
    monkeypatch.setattr(sio, "open", lambda *a, **k: _FullDiskFile(open(*a, **k)), raising=False)
    with pytest.raises(StorageError, match="records.jsonl"):
        sio.append_jsonl(path, [{"a": 2}])
    monkeypatch.undo()
    assert sio.read_jsonl(path) == [{"a": 1}]  # the torn half line is dropped
    sio.append_jsonl(path, [{"a": 2}])
    assert sio.read_jsonl(path) == [{"a": 1}, {"a": 2}]


def test_read_only_folder_names_the_path(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("tempfile.NamedTemporaryFile", read_only)
    with pytest.raises(StorageError, match=r"cannot write .*tokens\.safetensors: Read-only"):
        _tokens().save(tmp_path / "tokens.safetensors")


def test_storage_errors_are_steerlib_and_os_errors():
    assert issubclass(StorageError, SteerlibError) and issubclass(StorageError, OSError)


# -- 3. the stage-1 cache covers the training questions ---------------------------------------------
def test_stage1_cache_covers_the_training_questions(tiny):
    import steerlib as st
    from steerlib.distill import train_behavior_token

    cfg = st.presets.smoke().stage1
    first = train_behavior_token(tiny, "french", cfg, questions=["Why is the sky blue?", "Name a fruit."],
                                 progress=False)
    again = train_behavior_token(tiny, "french", cfg, questions=["What is rain?", "How do magnets work?"],
                                 progress=False)
    assert first.info["french"]["key"] != again.info["french"]["key"]
    assert not torch.equal(first["french"], again["french"])


def test_shipped_tokens_still_resolve_under_the_default_questions():
    """Keys made before questions were part of them are unchanged for the shipped train split."""
    from types import SimpleNamespace

    import steerlib as st
    from steerlib import prompts as P
    from steerlib.distill import stage1_key
    from steerlib.pipeline import stage1_config
    from steerlib.tokens import PRETRAINED_FILE, shipped

    path = ROOT / "steerlib" / "data" / PRETRAINED_FILE
    fingerprint = SteeringTokens.load(path).fingerprint
    bb = SimpleNamespace(fingerprint=fingerprint)  # shipped() reads only the fingerprint
    preset = st.presets.cpu()
    for name in st.behaviors.names():
        cfg = stage1_config(preset, name)
        for questions in (None, P.load("train")):
            assert shipped(bb, name, stage1_key(name, cfg, questions)) is not None, name
        assert shipped(bb, name, stage1_key(name, cfg, P.load("train")[:-1])) is None


# -- 4. configs that would train NaN or nothing are refused ---------------------------------------------
@pytest.mark.parametrize("field, value", [
    ("temperature", 0), ("lr", float("inf")), ("lr", 0.0), ("grad_clip", float("nan")), ("max_answer_tokens", 0),
    ("checkpoint_every", 0), ("batch_size", 0), ("steps", 0), ("warmup", 1.5), ("weight_decay", -1.0),
    ("ce_weight", float("nan")), ("batch_size", 2.5), ("steps", True),
])
def test_train_config_refuses_values_that_train_nan_or_nothing(field, value):
    from steerlib.config import TrainConfig
    from steerlib.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"TrainConfig\.{field} must be"):
        TrainConfig(**{field: value})


@pytest.mark.parametrize("cls, field, value", [
    ("TargetConfig", "max_new_tokens", 0), ("TargetConfig", "temperature", 0.0),
    ("TargetConfig", "oversample", float("inf")), ("EvalConfig", "max_new_tokens", 0),
    ("EvalConfig", "batch_size", 0), ("EvalConfig", "n_combos", 0), ("ValidationConfig", "every", 0),
])
def test_other_configs_refuse_values_that_do_nothing(cls, field, value):
    import steerlib.config as C
    from steerlib.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"{cls}\.{field} must be"):
        getattr(C, cls)(**{field: value})


def test_every_preset_passes_validation():
    import steerlib as st

    for name in ("paper", "colab", "cpu", "smoke"):
        st.presets.get(name)
