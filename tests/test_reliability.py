"""The reliability contract (issue 17): nothing silently wrong, nothing lost.

Each test is named after the case it guards; read top to bottom, the names are the
guarantees listed in the README's "Guarantees" section. Every test failed before the fix
it guards. Fast: the tiny random model, small files, real processes only where the case
is about two processes.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from token_files import token_file

import steerlib.storage as sio
from steerlib.errors import ConfigError, RecordsError, SteerlibError, StorageError
from steerlib.model.tokens import SteeringTokens

ROOT = Path(__file__).resolve().parents[1]


def _tokens(value: float = 1.0, d: int = 8) -> SteeringTokens:
    tokens = SteeringTokens(d, "test-model", "f" * 16)
    tokens.set("french", torch.full((d,), value))
    return tokens


def _run_together(
    script: str, n: int = 2, timeout: float = 240
) -> list[subprocess.CompletedProcess]:
    """Start ``n`` real Python processes on ``script`` at once (argv[1] = the process
    index); they import steerlib from this checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script), str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


# -- 1. records are reused only for the same model, settings, prompt and vectors
# --------------------
PROMPTS = ["Why is the sky blue?", "Name a fruit."]


def _eval(bb, path, prompts=PROMPTS, **kw):
    from steerlib import SteeredModel, evaluate

    return evaluate(
        SteeredModel(bb),
        ["instruction"],
        [("french",)],
        prompts,
        records=path,
        progress=False,
        **{"max_new_tokens": 3, **kw},
    )


def _count_generations(monkeypatch) -> list[int]:
    """Patch SteeredModel.generate to count the prompts it is asked to answer."""
    from steerlib.model.generate import SteeredModel

    calls: list[int] = []
    real = SteeredModel.generate

    def counting(self, prompts, *args, **kwargs):
        calls.append(len(prompts))
        return real(self, prompts, *args, **kwargs)

    monkeypatch.setattr(SteeredModel, "generate", counting)
    return calls


def test_records_of_another_model_are_regenerated(tiny, tmp_path, monkeypatch):
    from steerlib.model.backbone import tiny_backbone

    path = tmp_path / "records.jsonl"
    _eval(tiny, path)
    other = tiny_backbone(
        seed=1
    )  # same shapes and tokenizer, other weights: another fingerprint
    calls = _count_generations(monkeypatch)
    again = _eval(other, path)
    assert calls == [2]
    assert set(again["model"]) == {other.fingerprint}
    assert (
        len(sio.read_jsonl(path)) == 2
    )  # the other model's records replaced, not added to


def test_records_of_other_generation_settings_are_regenerated(
    tiny, tmp_path, monkeypatch
):
    path = tmp_path / "records.jsonl"
    _eval(tiny, path, max_new_tokens=3)
    calls = _count_generations(monkeypatch)
    longer = _eval(tiny, path, max_new_tokens=8)
    assert calls == [2] and set(longer["max_new_tokens"]) == {8}
    _eval(
        tiny, path, max_new_tokens=8, seed=1
    )  # another seed: other instruction paraphrases
    assert calls == [2, 2]
    _eval(tiny, path, max_new_tokens=8, seed=1)  # the same again: reused
    assert calls == [2, 2]


def test_records_of_another_prompt_at_the_same_index_are_regenerated(
    tiny, tmp_path, monkeypatch
):
    path = tmp_path / "records.jsonl"
    _eval(tiny, path)
    calls = _count_generations(monkeypatch)
    again = _eval(tiny, path, prompts=[PROMPTS[0], "Name a colour."])
    assert calls == [1]
    assert list(again["prompt"]) == [PROMPTS[0], "Name a colour."]


def test_committed_records_carry_the_full_key_and_are_reused():
    """The migrated cpu records: every key field present, model and settings of the cpu
    preset."""
    import steerlib as st
    from steerlib.evaluation.records import KEY_FIELDS, prompt_digest

    ev = st.presets.cpu().eval
    paths = sorted((ROOT / "results" / "cpu").rglob("*records.jsonl"))
    # the study's records files are all there (a loop over none would check nothing)
    assert {
        "records.jsonl",
        "single_records.jsonl",
        "capable_records.jsonl",
        "capable_val_records.jsonl",
        "targets_records.jsonl",
    } <= {p.name for p in paths}
    for path in paths:
        rows = sio.read_jsonl(path)
        assert rows, path
        for r in rows:
            assert set(KEY_FIELDS) - {"tokens", "behaviors"} <= set(r), (
                path
            )  # stamps left out when empty
            assert r["prompt_sha"] == prompt_digest(r["prompt"])
            assert (r["max_new_tokens"], r["seed"]) == (ev.max_new_tokens, ev.seed)
        shipped = json.loads(
            __import__("safetensors")
            .safe_open(str(ROOT / "results" / "cpu" / "tokens.safetensors"), "pt")
            .metadata()["steerlib"]
        )["fingerprint"]
        assert {r["model"] for r in rows} == {shipped}, path


# -- 2. concurrent evaluations count each generation once
# -----------------------------------------
@pytest.mark.slow
def test_two_processes_evaluating_one_records_file_write_each_record_once(tmp_path):
    path = tmp_path / "records.jsonl"
    script = f"""
        import steerlib as st
        bb = st.load_backbone("tiny")
        st.evaluate(st.SteeredModel(bb), ["plain", "instruction"],
                    [("french",), ("german",)],
                    ["Why is the sky blue?", "Name a fruit.", "What is rain?"],
                    max_new_tokens=4, records={str(path)!r}, progress=False)
    """
    for result in _run_together(script):
        assert result.returncode == 0, result.stderr[-2000:]
    rows = sio.read_jsonl(path)
    assert len(rows) == 2 * 2 * 3
    assert (
        len(
            {
                tuple(sorted((k, str(v)) for k, v in r.items() if k != "verdicts"))
                for r in rows
            }
        )
        == 12
    )


def test_metrics_count_duplicate_records_once(tiny, tmp_path):
    import pandas as pd

    from steerlib.evaluation.stats import metrics

    recs = _eval(tiny, tmp_path / "records.jsonl")
    doubled = pd.concat(
        [recs, recs], ignore_index=True
    )  # what two unlocked appenders left behind
    assert metrics(doubled)["n"].tolist() == metrics(recs)["n"].tolist() == [2]


def test_metrics_refuse_conflicting_duplicate_records(tiny, tmp_path):
    import pandas as pd

    from steerlib.evaluation.stats import metrics

    recs = _eval(tiny, tmp_path / "records.jsonl")
    other = recs.iloc[:1].assign(text="something else", ok=not recs["ok"].iloc[0])
    with pytest.raises(RecordsError, match="disagree"):
        metrics(pd.concat([recs, other], ignore_index=True))


# -- 7. torn files
# ---------------------------------------------------------------------------
def test_torn_last_line_is_dropped_with_a_warning_naming_the_file(tmp_path, caplog):
    path = tmp_path / "records.jsonl"
    path.write_text(
        '{"a": 1}\n{"a": 2}\n{"a": 3, "te'
    )  # a full disk cut the last append
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
    from steerlib.train.targets import _cache_file, make_targets

    cfg = TargetConfig(max_new_tokens=4)
    jobs = [("Why is the sky blue?", ("french",)), ("Name a fruit.", ("french",))]
    first = make_targets(tiny, jobs, cfg, key="torn", progress=False)
    path = _cache_file(tiny, "torn", cfg, 0)
    path.write_text(path.read_text()[:-5])
    assert make_targets(tiny, jobs, cfg, key="torn", progress=False) == first


# -- 8. temp names, locks and full disks
# ---------------------------------------------------------
@pytest.mark.slow
def test_two_processes_saving_tokens_never_collide(tmp_path):
    script = f"""
        import sys, torch
        from steerlib.model.tokens import SteeringTokens
        i = int(sys.argv[1])
        for step in range(300):
            t = SteeringTokens(8, "m", "f" * 16)
            t.set("french", torch.full((8,), float(i)))
            # overwrite: the two processes replace each other's vector on purpose
            t.save_file({str(tmp_path / "tokens.safetensors")!r}, overwrite=True)
            loaded = SteeringTokens.load_file({str(tmp_path / "tokens.safetensors")!r})
            assert loaded["french"][0] in (0.0, 1.0)
    """
    for result in _run_together(script):
        assert result.returncode == 0, result.stderr[-2000:]
    assert [p.name for p in tmp_path.iterdir()] == [
        "tokens.safetensors"
    ]  # no temp file left behind


@pytest.mark.slow
def test_two_processes_build_a_cache_folder_once(tmp_path):
    """The GGUF conversion's mechanism: two first loads at once convert once; the
    second waits."""
    script = f"""
        import sys, time
        from pathlib import Path
        from steerlib.storage import build_once
        def build(folder):
            (folder / "weights").write_text("half")
            # a slow conversion: the other process must not see it half-done
            time.sleep(1.0)
            (folder / "weights").write_text("done")
            (folder / "builder").write_text(sys.argv[1])
        out = build_once(Path({str(tmp_path / "model")!r}), build)
        print((out / "weights").read_text())
    """
    results = _run_together(script)
    for result in results:
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip() == "done"
    assert (tmp_path / "model" / "builder").read_text() in ("0", "1")
    assert [p.name for p in tmp_path.iterdir()] == [
        "model"
    ]  # no temp folder, no lock file in the cache


def test_stale_temp_folder_of_a_killed_conversion_is_removed(tmp_path):
    stale = tmp_path / ".model.abc123.tmp"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(
        b"x" * 1000
    )  # a killed conversion's leftovers
    sio.build_once(
        tmp_path / "model",
        lambda folder: (folder / "model.safetensors").write_bytes(b"ok"),
    )
    assert not stale.exists()
    assert (tmp_path / "model" / "model.safetensors").read_bytes() == b"ok"


def _disk_full_after(n_bytes: int):
    """A ``save_file`` stand-in that writes ``n_bytes`` and then fails like a full
    disk."""

    def save_file(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * n_bytes)
        raise OSError(errno.ENOSPC, "No space left on device")

    return save_file


def test_disk_full_while_saving_tokens_names_the_path_and_keeps_the_old_file(
    tmp_path, monkeypatch
):
    path = tmp_path / "tokens.safetensors"
    _tokens(1.0).save(path)
    monkeypatch.setattr("safetensors.torch.save_file", _disk_full_after(100))
    with pytest.raises(StorageError, match="tokens.safetensors") as err:
        _tokens(2.0).save_file(path, overwrite=True)
    assert err.value.errno == errno.ENOSPC
    assert SteeringTokens.load_file(path)["french"][0] == 1.0  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == [
        "tokens.safetensors"
    ]  # the temp file is gone


class _FullDiskFile:
    """A text file whose ``write`` stores half of what it is given and then raises
    ENOSPC."""

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


def test_disk_full_during_an_append_names_the_file_and_the_next_run_resumes(
    tmp_path, monkeypatch
):
    path = tmp_path / "records.jsonl"
    sio.append_jsonl(path, [{"a": 1}])
    monkeypatch.setattr(
        sio, "open", lambda *a, **k: _FullDiskFile(open(*a, **k)), raising=False
    )
    with pytest.raises(StorageError, match="records.jsonl"):
        sio.append_jsonl(path, [{"a": 2}])
    monkeypatch.undo()
    assert sio.read_jsonl(path) == [{"a": 1}]  # the torn half line is dropped
    sio.append_jsonl(path, [{"a": 2}])
    assert sio.read_jsonl(path) == [{"a": 1}, {"a": 2}]


def test_read_only_folder_names_the_path(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(sio, "_make_temp", read_only)
    with pytest.raises(
        StorageError, match=r"cannot write .*tokens\.safetensors: Read-only"
    ):
        _tokens().save_file(tmp_path / "tokens.safetensors")


def test_storage_errors_are_steerlib_and_os_errors():
    assert issubclass(StorageError, SteerlibError) and issubclass(StorageError, OSError)


# -- 3. the stage-1 cache covers the training questions
# ---------------------------------------------
def test_stage1_cache_covers_the_training_questions(tiny):
    import steerlib as st
    from steerlib.train.distill import train_behavior_token

    cfg = st.presets.smoke().stage1
    first = train_behavior_token(
        tiny,
        "french",
        cfg,
        questions=["Why is the sky blue?", "Name a fruit."],
        progress=False,
    )
    again = train_behavior_token(
        tiny,
        "french",
        cfg,
        questions=["What is rain?", "How do magnets work?"],
        progress=False,
    )
    assert first.info["french"]["key"] != again.info["french"]["key"]
    assert not torch.equal(first["french"], again["french"])


def test_shipped_tokens_still_resolve_under_the_default_questions():
    """Keys made before questions were part of them are unchanged for the shipped train
    split."""
    from types import SimpleNamespace

    import steerlib as st
    from steerlib.model.packs import PRETRAINED_FILE
    from steerlib.model.tokens import shipped
    from steerlib.tasks import prompts as P
    from steerlib.train.distill import stage1_key

    path = ROOT / "steerlib" / "data" / PRETRAINED_FILE
    fingerprint = SteeringTokens.load_file(path).fingerprint
    bb = SimpleNamespace(
        fingerprint=fingerprint
    )  # shipped() reads only the fingerprint
    preset = st.presets.cpu()
    for name in st.behaviors.names():
        cfg = preset.stage1_config(name)
        for questions in (None, P.load("train")):
            assert shipped(bb, name, stage1_key(name, cfg, questions)) is not None, name
        assert shipped(bb, name, stage1_key(name, cfg, P.load("train")[:-1])) is None


# -- 4. configs that would train NaN or nothing are refused
# ---------------------------------------------
@pytest.mark.parametrize(
    "field, value",
    [
        ("temperature", 0),
        ("lr", float("inf")),
        ("lr", 0.0),
        ("grad_clip", float("nan")),
        ("max_answer_tokens", 0),
        ("checkpoint_every", 0),
        ("batch_size", 0),
        ("steps", 0),
        ("warmup", 1.5),
        ("weight_decay", -1.0),
        ("ce_weight", float("nan")),
        ("batch_size", 2.5),
        ("steps", True),
    ],
)
def test_train_config_refuses_values_that_train_nan_or_nothing(field, value):
    from steerlib.config import TrainConfig
    from steerlib.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"TrainConfig\.{field} must be"):
        TrainConfig(**{field: value})


@pytest.mark.parametrize(
    "cls, field, value",
    [
        ("TargetConfig", "max_new_tokens", 0),
        ("TargetConfig", "temperature", 0.0),
        ("TargetConfig", "oversample", float("inf")),
        ("EvalConfig", "max_new_tokens", 0),
        ("EvalConfig", "batch_size", 0),
        ("EvalConfig", "n_combos", 0),
        ("ValidationConfig", "every", 0),
    ],
)
def test_other_configs_refuse_values_that_do_nothing(cls, field, value):
    import steerlib.config as C
    from steerlib.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"{cls}\.{field} must be"):
        getattr(C, cls)(**{field: value})


def test_every_preset_passes_validation():
    """Each named preset, and each of its configs built again from its own values,
    passes the checks that refuse bad values (``__post_init__``): what a preset ships
    is a valid input."""
    import dataclasses

    import steerlib as st

    for name in ("paper", "colab", "cpu", "smoke"):
        preset = st.presets.get(name)
        assert preset.name == name
        for cfg in (preset.stage1, preset.stage2, preset.eval, preset):
            assert dataclasses.replace(cfg) == cfg, (name, type(cfg).__name__)


# -- 4. non-finite and malformed token files are never loaded
# ------------------------------------------
@pytest.mark.parametrize(
    "case, tensors, meta, message",
    [
        ("nan", {"token/french": torch.full((8,), float("nan"))}, None, "NaN or inf"),
        ("inf", {"token/french": torch.tensor([float("inf")] * 8)}, None, "NaN or inf"),
        (
            "int",
            {"token/french": torch.ones(8, dtype=torch.int64)},
            None,
            "floating point",
        ),
        (
            "bool",
            {"token/french": torch.ones(8, dtype=torch.bool)},
            None,
            "floating point",
        ),
        ("rank 2", {"token/french": torch.ones(2, 4)}, None, "expected a vector of 8"),
        ("wrong size", {"token/french": torch.ones(7)}, None, "expected a vector of 8"),
        ("unknown format", None, {"format": "steerlib.tokens/99"}, "unknown format"),
        ("no names", None, {"names": None}, "no 'names'"),
        ("bad json", None, "{not json", "not valid JSON"),
        (
            "missing tensor",
            {"token/french": torch.ones(8)},
            {"names": ["french", "german"]},
            "no tensor 'token/german'",
        ),
    ],
)
def test_token_files_that_are_not_finite_float_vectors_are_refused(
    tmp_path, case, tensors, meta, message
):
    from steerlib.errors import TokenFileError

    path = token_file(tmp_path / "tokens.safetensors", meta, tensors)
    with pytest.raises(TokenFileError, match=message) as err:
        SteeringTokens.load(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "content", [b"", b"not a safetensors file at all", "truncated"]
)
def test_empty_truncated_or_foreign_token_files_are_refused_naming_the_file(
    tmp_path, content
):
    from steerlib.errors import TokenFileError

    path = tmp_path / "tokens.safetensors"
    if content == "truncated":
        _tokens().save(path)
        content = path.read_bytes()[:-10]
    path.write_bytes(content)
    with pytest.raises(
        TokenFileError, match=r"tokens\.safetensors is not a whole safetensors file"
    ):
        SteeringTokens.load(path)


def test_non_finite_vectors_are_never_stored():
    from steerlib.errors import NonFiniteVectorError

    with pytest.raises(NonFiniteVectorError):
        _tokens(float("nan"))


def test_non_finite_loss_stops_training_and_caches_nothing(tiny):
    import steerlib as st
    from steerlib.errors import NonFiniteLossError
    from steerlib.paths import artifacts_root
    from steerlib.train.distill import stage1_key, train_behavior_token

    cfg = st.presets.smoke().stage1
    huge = dataclasses.replace(
        cfg, lr=1e30
    )  # finite, valid settings whose first step blows the vector up
    with pytest.raises(NonFiniteLossError, match=r"loss is (nan|inf) at step \d"):
        train_behavior_token(tiny, "french", huge, questions=PROMPTS, progress=False)
    stage1 = artifacts_root() / tiny.fingerprint / "stage1"
    assert not (stage1 / f"{stage1_key('french', huge, PROMPTS)}.safetensors").exists()


# -- 5. prompts longer than the context are refused
# ------------------------------------------------------
def test_prompt_longer_than_the_context_is_refused_naming_the_limit(tiny, monkeypatch):
    from steerlib import SteeredModel
    from steerlib.errors import PromptError
    from steerlib.model.generate import greedy

    calls = []
    monkeypatch.setattr(
        "steerlib.model.generate.greedy",
        lambda *a, **k: calls.append(1) or greedy(*a, **k),
    )
    long = "word " * 2000  # the tiny model's context is 1024 positions
    with pytest.raises(PromptError, match=r"context of 1024 tokens"):
        SteeredModel(tiny).generate(["Hi.", long], max_new_tokens=4)
    assert calls == []  # refused before any generation
    with pytest.raises(PromptError, match=r"max_new_tokens=1000 it needs"):
        SteeredModel(tiny).generate("word " * 30, max_new_tokens=1000)


# -- 6. tags: near-misses warn, rule-breaking runs are refused, escapes are text
# ---------------------------
KNOWN = ["french", "spanish", "upper_case", "json", "and"]


@pytest.mark.parametrize(
    "text", ["Why? <french", "Why? < french >", "Why? <French> please", "<french> Why?"]
)
def test_tag_near_misses_warn(text):
    from steerlib.model.template import TagWarning, parse

    with pytest.warns(TagWarning, match="<french>"):
        assert parse(text, KNOWN)[1] == []


@pytest.mark.parametrize(
    "text, rule",
    [
        ("Why? <french><and><spanish>", "two language behaviors never compose"),
        ("Why? <and>", "<and> must stand between"),
        ("Why? <and><and>", "<and> must stand between"),
        ("Why? <french><and><and><upper_case>", "<and><and> joins nothing"),
        ("Why? <french><french>", "given twice"),
    ],
)
def test_rule_breaking_tag_runs_are_refused_unless_the_caller_opts_out(
    tiny, text, rule
):
    from steerlib import Request, SteeredModel
    from steerlib.errors import PromptError
    from steerlib.model.template import parse

    with pytest.raises(PromptError, match=rule):
        parse(text, KNOWN)
    assert parse(text, KNOWN, strict=False)[1]
    tokens = SteeringTokens.for_backbone(tiny)
    for name in ("french", "spanish", "upper_case", "and"):
        tokens.set(name, torch.randn(tiny.hidden_size))
    with pytest.raises(PromptError, match=rule):
        SteeredModel(tiny, tokens).generate(text, max_new_tokens=2)
    # opted out, the run is read as steering slots (not as literal text) and generated
    loose = SteeredModel(tiny, tokens, strict=False)
    question, names = parse(text, KNOWN, strict=False)
    assert (
        loose.generate(text, max_new_tokens=6)
        == loose.generate([Request(question, tuple(names))], max_new_tokens=6)[0]
    )


def test_escaped_tags_are_literal_text():
    from steerlib.model.template import parse

    assert parse(r"Show me an example of \<json>", KNOWN) == (
        "Show me an example of <json>",
        [],
    )
    assert parse(r"What does \<br> do in HTML? \<br>", []) == (
        "What does <br> do in HTML? <br>",
        [],
    )
    assert parse(r"Show me \<json> <french>", KNOWN) == ("Show me <json>", ["french"])


# -- 10. one bad prompt in a batch: nothing is generated
# ------------------------------------------------
def test_one_bad_prompt_in_a_batch_raises_before_any_generation(tiny, monkeypatch):
    from steerlib import SteeredModel
    from steerlib.errors import PromptError

    calls = []
    monkeypatch.setattr(
        "steerlib.model.generate.greedy", lambda *a, **k: calls.append(1)
    )
    with pytest.raises(
        PromptError, match=r"prompt 2: unknown steering token\(s\) <frnch>"
    ):
        SteeredModel(tiny).generate(
            ["Hi.", "Name a fruit.", "Why? <frnch>"], max_new_tokens=4, batch_size=1
        )
    assert calls == []


# -- 9. the CLI: one line, exit code 2, a traceback only with --debug
# --------------------------------------
def _cli(capsys, *argv) -> tuple[int, str]:
    from steerlib.cli import main

    code = main(list(argv))
    err = capsys.readouterr().err
    lines = [
        line
        for line in err.splitlines()
        if line.startswith("error:") or "Traceback" in line
    ]
    return code, "\n".join(lines)


def _generate(tokens: Path | str, *extra: str) -> list[str]:
    return [
        "generate",
        "--model",
        "tiny",
        "--tokens",
        str(tokens),
        "--prompt",
        "Hi.",
        *extra,
    ]


@pytest.mark.parametrize(
    "case",
    [
        "empty",
        "truncated",
        "not safetensors",
        "no names",
        "bad json",
        "missing tensor",
        "nan",
    ],
)
def test_cli_bad_token_file_is_one_line_naming_the_file(tiny, tmp_path, capsys, case):
    path = tmp_path / "tokens.safetensors"
    if case in ("empty", "truncated", "not safetensors"):
        _tokens(d=tiny.hidden_size).save(path)
        path.write_bytes(
            {
                "empty": b"",
                "truncated": path.read_bytes()[:-9],
                "not safetensors": b"hello",
            }[case]
        )
    else:
        meta = {
            "no names": {"names": None},
            "bad json": "{",
            "missing tensor": {"names": ["french", "german"]},
            "nan": {},
        }[case]
        vector = torch.full((tiny.hidden_size,), float("nan") if case == "nan" else 1.0)
        token_file(
            path,
            meta
            if isinstance(meta, str)
            else {
                "hidden_size": tiny.hidden_size,
                "fingerprint": tiny.fingerprint,
                **meta,
            },
            {"token/french": vector},
        )
    code, err = _cli(capsys, *_generate(path))
    assert (
        code == 2
        and err.count("\n") == 0
        and err.startswith("error: ")
        and str(path) in err
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["generate", "--model", "/nonexistent/folder", "--prompt", "Hi."],
            "model folder not found: /nonexistent/folder",
        ),
        (
            ["train", "--preset", "smoke", "--set", "stage1.checkpoint_every=0"],
            "checkpoint_every must be an integer >= 1",
        ),
        (
            ["train", "--preset", "smoke", "--set", "stage1.batch_size=0"],
            "batch_size must be an integer >= 1",
        ),
        (
            [
                "generate",
                "--model",
                "tiny",
                "--tokens",
                "none",
                "--prompt",
                "Hi.",
                "--max-new-tokens",
                "0",
            ],
            "max_new_tokens must be an integer >= 1",
        ),
        (
            [
                "generate",
                "--model",
                "tiny",
                "--tokens",
                "none",
                "--prompt",
                "Hi. <french>",
            ],
            "unknown steering token",
        ),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_code_2(capsys, argv, message):
    code, err = _cli(capsys, *argv)
    assert (
        code == 2
        and err.count("\n") == 0
        and err.startswith("error: ")
        and message in err
    )


def test_cli_hub_id_while_offline_says_no_network_or_cache_copy(capsys, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = _cli(
        capsys, "generate", "--model", "no-such-org/no-such-model", "--prompt", "Hi."
    )
    assert code == 2 and err.count("\n") == 0
    assert "not in the local cache" in err and "HF_HUB_OFFLINE" in err


@pytest.mark.parametrize(
    "errno_, words", [(errno.ENOSPC, "No space left"), (errno.EROFS, "Read-only")]
)
def test_cli_full_or_read_only_disk_names_the_path(
    capsys, tmp_path, monkeypatch, errno_, words
):
    def failing_open(*args, **kwargs):
        raise OSError(errno_, words)

    monkeypatch.setattr(sio, "open", failing_open, raising=False)
    out = tmp_path / "eval"
    code, err = _cli(
        capsys,
        "evaluate",
        "--preset",
        "smoke",
        "--tokens",
        "none",
        "--methods",
        "instruction",
        "--out",
        str(out),
    )
    assert (
        code == 2
        and err.count("\n") == 0
        and f"cannot write {out / 'records.jsonl'}: {words}" in err
    )


@pytest.mark.slow
def test_cli_traceback_only_with_debug(tmp_path):
    argv = [
        sys.executable,
        "-m",
        "steerlib",
        "generate",
        "--model",
        str(tmp_path / "missing"),
        "--prompt",
        "Hi.",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    plain = subprocess.run(argv, capture_output=True, text=True, env=env)
    debug = subprocess.run([*argv, "--debug"], capture_output=True, text=True, env=env)
    assert plain.returncode == debug.returncode == 2
    assert (
        "Traceback" not in plain.stderr
        and "error: model folder not found" in plain.stderr
    )
    assert "Traceback" in debug.stderr and "ModelNotFoundError" in debug.stderr


# -- issue 28: nothing committed is overwritten by another run; the last silent cases
# ------------------
def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_results_of_another_model_or_preset_are_never_overwritten(
    tmp_path, monkeypatch, capsys
):
    """``--set name=cpu`` on the smoke preset and ``--model tiny`` on the cpu preset
    leave a checkout's committed results/cpu byte for byte: each run gets a folder of
    its own under the artifacts, named by its config hash (and the model's id and
    fingerprint where the model is not the preset's). A name that is a path is
    refused."""
    from steerlib import paths

    checkout = tmp_path / "checkout"
    committed = checkout / "results" / "cpu"
    committed.mkdir(parents=True)
    lines = (
        (ROOT / "results" / "cpu" / "single_records.jsonl")
        .read_text(encoding="utf-8")
        .splitlines(True)[:3]
    )
    (committed / "single_records.jsonl").write_text("".join(lines), encoding="utf-8")
    (committed / "teacher_compliance.md").write_text("made with --preset cpu\n")
    monkeypatch.setattr(paths, "project_root", lambda: checkout)
    monkeypatch.delenv("STEERLIB_RESULTS", raising=False)
    before = _snapshot(checkout)

    small = ["--set", "eval.n_single=1", "--set", "eval.max_new_tokens=4"]
    assert _cli(
        capsys, "teacher-compliance", "--preset", "smoke", "--set", "name=cpu"
    ) == (0, "")
    assert _cli(
        capsys, "teacher-compliance", "--preset", "cpu", "--model", "tiny", *small
    ) == (0, "")
    assert _snapshot(checkout) == before
    made = sorted(p.name for p in (tmp_path / "artifacts" / "results").iterdir())
    assert len(made) == 2 and all(m.startswith("cpu--") for m in made), made
    assert sum("--tiny-llama-2x64-seed0-" in m for m in made) == 1, made
    for name in ("../..", "/tmp/x", "a/b", ""):
        code, err = _cli(
            capsys, "teacher-compliance", "--preset", "smoke", "--set", f"name={name}"
        )
        assert code == 2 and "never a path" in err and repr(name) in err
    assert _snapshot(checkout) == before


def test_torn_line_cut_inside_a_multibyte_character_is_dropped_and_resumes(
    tiny, tmp_path, caplog
):
    """A full disk can cut a French answer inside "é" (b"\\xc3" + b"\\xa9"): that line
    alone is torn. It is dropped with the warning naming the file, and the evaluation
    resumes; the same cut before the last line is refused with the file and line."""
    path = tmp_path / "records.jsonl"
    complete = _eval(tiny, path)
    data = path.read_bytes()
    path.write_bytes(data + '{"method": "instruction", "text": "café'.encode()[:-1])
    with caplog.at_level(logging.WARNING, logger="steerlib"):
        assert len(sio.read_jsonl(path)) == len(complete)
        assert len(_eval(tiny, path)) == len(complete)
    assert str(path) in caplog.text and "torn" in caplog.text
    sio.append_jsonl(path, [{"a": "é"}])  # the next append cuts the torn line first
    assert path.read_bytes() == data + '{"a": "é"}\n'.encode()
    path.write_bytes(b'{"a": "caf\xc3"}\n' + data)
    with pytest.raises(RecordsError, match=r"records\.jsonl, line 1: not valid UTF-8"):
        sio.read_jsonl(path)


def test_every_spelling_of_a_file_takes_the_same_lock(tmp_path, monkeypatch):
    """``c2/r.jsonl``, ``c2/sub/../r.jsonl``, a symlink to ``c2``, and another cache
    root ($STEERLIB_CACHE) all lock the same file, so two of them never run at once."""
    (tmp_path / "c2" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "c2")
    target = tmp_path / "c2" / "r.jsonl"
    first = sio.lock(target).lock_file
    monkeypatch.setenv("STEERLIB_CACHE", str(tmp_path / "other-cache"))
    for spelling in (
        tmp_path / "c2" / "sub" / ".." / "r.jsonl",
        tmp_path / "link" / "r.jsonl",
        target,
    ):
        assert sio.lock(spelling).lock_file == first, spelling
    with sio.lock(
        tmp_path / "link" / "r.jsonl"
    ):  # held: another holder (a thread has its own) waits
        with pytest.raises(TimeoutError):  # filelock.Timeout
            with ThreadPoolExecutor(1) as pool:
                pool.submit(
                    sio.lock(
                        tmp_path / "c2" / "sub" / ".." / "r.jsonl", timeout=0
                    ).acquire
                ).result()


@pytest.fixture
def umask():
    """Set the process umask for one test, and restore it."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def test_file_modes_follow_the_umask_and_a_replace_keeps_the_mode(tmp_path, umask):
    """New files and folders are created as ``open()``/``mkdir`` would under the umask
    (not tempfile's 0600); replacing an existing file keeps its mode."""

    def mode(p: Path) -> int:
        return p.stat().st_mode & 0o777

    sio.write_text(tmp_path / "table.md", "x")
    sio.save_safetensors({"v": torch.zeros(2)}, tmp_path / "v.safetensors")
    with sio.atomic_folder(tmp_path / "tokens") as tmp:
        (tmp / "README.md").write_text("card")
    assert (
        mode(tmp_path / "table.md"),
        mode(tmp_path / "v.safetensors"),
        mode(tmp_path / "tokens"),
    ) == (0o644, 0o644, 0o755)
    umask(0o027)
    sio.write_jsonl(tmp_path / "records.jsonl", [{"a": 1}])
    assert mode(tmp_path / "records.jsonl") == 0o640
    os.chmod(tmp_path / "table.md", 0o664)
    sio.write_text(tmp_path / "table.md", "y")
    with sio.atomic_folder(tmp_path / "tokens") as tmp:
        (tmp / "README.md").write_text("card 2")
    assert (mode(tmp_path / "table.md"), mode(tmp_path / "tokens")) == (0o664, 0o755)


def test_request_runs_obey_strict(tiny):
    """A ``Request`` is held to the composition rules a prompt in token syntax is held
    to."""
    from steerlib import Request, SteeredModel
    from steerlib.errors import PromptError

    tokens = SteeringTokens.for_backbone(tiny)
    for name in ("french", "spanish", "and"):
        tokens.set(name, torch.randn(tiny.hidden_size))
    request = Request("Hi", ("french", "and", "spanish"))
    with pytest.raises(PromptError, match="two language behaviors never compose"):
        SteeredModel(tiny, tokens).generate([request], max_new_tokens=2)
    assert isinstance(
        SteeredModel(tiny, tokens, strict=False).generate([request], max_new_tokens=2)[
            0
        ],
        str,
    )


def test_a_verifier_answering_none_and_a_non_finite_repetition_penalty_are_errors(tiny):
    """A checker's None is not a fail: it is an error naming the behavior (numpy bools
    count as bools, at registration too). An infinite or NaN repetition penalty is
    refused."""
    import numpy as np

    from steerlib import SteeredModel
    from steerlib.errors import ConfigError, VerifierError
    from steerlib.tasks import behaviors as B
    from steerlib.tasks import registry

    def short(text: str):
        return np.bool_(len(text) < 40) if text else None  # None on the empty text only

    mine = B.Behavior(
        "short_answer", "length", ("Answer briefly.",), "under 40 characters", short
    )
    with pytest.raises(
        VerifierError, match=r"<short_answer>'s checker returned NoneType"
    ):
        B.register(mine)
    with B.registered(
        B.Behavior(
            "short_answer",
            "length",
            ("Answer briefly.",),
            "under 40 characters",
            lambda t: np.bool_(len(t) < 40),
        )
    ):
        assert B.verify_all("Paris.", ["short_answer"]) == {"short_answer": True}
        assert type(B.verify_all("Paris.", ["short_answer"])["short_answer"]) is bool
        registry._REGISTRY["short_answer"] = (
            mine  # a checker that changed its mind after registration
        )
        with pytest.raises(
            VerifierError,
            match=r"<short_answer>'s checker returned NoneType.*True or False",
        ):
            B.verify_all("", ["short_answer"])
    for penalty in (float("inf"), float("nan"), 0.0):
        with pytest.raises(
            ConfigError, match="repetition_penalty must be a finite number > 0"
        ):
            SteeredModel(tiny).generate(
                "Hi.", max_new_tokens=2, repetition_penalty=penalty
            )


@pytest.mark.parametrize(
    "item, message",
    [
        (
            "stage1=5",
            "stage1 is a TrainConfig, not a value; set one of its fields "
            "(stage1.steps,",
        ),
        (
            "steps.french=5",
            "steps is a mapping, not a config: set it whole as a JSON object",
        ),
        (
            "stage1.validation.every=0",
            "stage1.validation is off (None) in this preset, so it has no fields to "
            "set; "
            "turn it on with stage1.validation='{...}', a JSON object of "
            "ValidationConfig's "
            "fields: every, patience",
        ),
        ("stage1.steps.x=1", "stage1.steps is a value (3), it has no field 'x'"),
        ("eval=null", "eval is a EvalConfig and cannot be null"),
        (
            'stage1.validation={"evry": 2}',
            "ValidationConfig has no field 'evry'; its fields: every,",
        ),
    ],
)
def test_set_on_a_sub_config_a_mapping_or_a_disabled_sub_config_names_the_fields(
    capsys, item, message
):
    code, err = _cli(capsys, "train", "--preset", "smoke", "--set", item)
    assert code == 2 and err.count("\n") == 0 and message in err, err


def test_set_turns_a_disabled_sub_config_on_from_a_json_object():
    from steerlib.cli.overrides import override
    from steerlib.config import ValidationConfig
    from steerlib.presets import presets

    smoke = presets.smoke()
    assert override(
        smoke, 'stage1.validation={"every": 4}'
    ).stage1.validation == ValidationConfig(every=4)
    assert (
        override(
            smoke, 'stage1={"steps": 2, "targets": {"max_new_tokens": 4}}'
        ).stage1.targets.max_new_tokens
        == 4
    )


@pytest.mark.parametrize(
    "value, on",
    [
        ("1", True),
        ("true", True),
        ("Yes", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("OFF", False),
        ("", False),
    ],
)
def test_the_no_train_guard_reads_yes_and_no_words(monkeypatch, value, on):
    from steerlib.guard import (
        NO_TRAIN_ENV,
        TrainingDisabled,
        refuse_work,
        training_disabled,
    )

    monkeypatch.setenv(NO_TRAIN_ENV, value)
    assert training_disabled() is on
    if on:
        with pytest.raises(TrainingDisabled, match=f"{NO_TRAIN_ENV}={value} forbids"):
            refuse_work("a token")
    else:
        refuse_work("a token")


def test_the_no_train_guard_refuses_a_value_it_cannot_read(monkeypatch):
    from steerlib.guard import NO_TRAIN_ENV, training_disabled

    monkeypatch.setenv(NO_TRAIN_ENV, "maybe")
    with pytest.raises(
        ConfigError,
        match=r"STEERLIB_NO_TRAIN='maybe' is neither on \(1, true, yes, on\)",
    ):
        training_disabled()


def test_generate_on_a_model_without_shipped_tokens_says_so_at_once(capsys, caplog):
    with caplog.at_level(logging.WARNING, logger="steerlib"):
        code, err = _cli(
            capsys,
            "generate",
            "--model",
            "tiny",
            "--prompt",
            "Hi. <french>",
            "--max-new-tokens",
            "2",
        )
    assert (
        "has no shipped steering tokens" in caplog.text
        and "--tokens FILE" in caplog.text
    )
    assert code == 2 and "unknown steering token(s) <french>" in err
    code, err = _cli(
        capsys,
        "generate",
        "--model",
        "tiny",
        "--tokens",
        "pretrained",
        "--prompt",
        "Hi.",
    )
    assert code == 2 and err.startswith(
        "error: "
    )  # asked for the shipped tokens by name: refused


@pytest.mark.parametrize("line", ['{"foo": 1}', "42", '["instruction", "french"]'])
def test_a_records_line_that_is_json_but_not_a_record_is_one_line_naming_file_and_line(
    tmp_path, capsys, line
):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "records.jsonl").write_text(line + "\n")
    code, err = _cli(
        capsys,
        "evaluate",
        "--preset",
        "smoke",
        "--tokens",
        "none",
        "--methods",
        "instruction",
        "--out",
        str(out),
    )
    assert code == 2 and err.count("\n") == 0, err
    assert f"{out / 'records.jsonl'}, line 1: not a record" in err


def test_a_behavior_registered_again_differently_gets_new_records_and_verdicts(
    tiny, tmp_path
):
    """The records key carries each own behavior's definition (``definitions_stamp``):
    the same name with a checker that now says False, or another instruction, is
    generated and verified again, and the first definition's records are reused when it
    comes back."""
    from steerlib import SteeredModel, evaluate
    from steerlib.tasks import behaviors as B

    path = tmp_path / "records.jsonl"

    def run(behavior: B.Behavior):
        with B.registered(behavior, new_category=True):
            return evaluate(
                SteeredModel(tiny),
                ["instruction"],
                [("always",)],
                PROMPTS,
                records=path,
                max_new_tokens=3,
                progress=False,
            )

    yes = B.Behavior("always", "mine", ("Answer.",), "anything passes", lambda t: True)
    no = B.Behavior("always", "mine", ("Answer.",), "nothing passes", lambda t: False)
    reworded = B.Behavior(
        "always", "mine", ("Reply, please.",), "anything passes", lambda t: True
    )
    assert list(run(yes)["ok"]) == [True, True]
    assert list(run(no)["ok"]) == [False, False]
    assert (
        list(run(reworded)["prompt"]) == PROMPTS
        and run(reworded)["behaviors"].nunique() == 1
    )
    assert (
        len({r["behaviors"] for r in sio.read_jsonl(path)}) == 1
    )  # each slot holds the last definition's


def test_committed_records_of_your_own_behavior_carry_its_definition():
    """Chapter 5's records are stamped with the definition its committed token was
    trained under."""
    from safetensors import safe_open

    with safe_open(
        str(ROOT / "results" / "cpu" / "ends_with_question.safetensors"), "pt"
    ) as f:
        key = json.loads(f.metadata()["steerlib"])["info"]["ends_with_question"]["key"]
    rows = sio.read_jsonl(ROOT / "results" / "cpu" / "own_behavior_records.jsonl")
    assert rows and {r["behaviors"] for r in rows} == {key.rsplit("-", 1)[0]}


def test_a_second_live_writer_of_a_checkpoint_is_refused(tmp_path):
    """A run still writing a checkpoint (here a thread holding its lock, as the
    orphaned workers of a killed torchrun launcher would) makes a second run on it stop
    at once, naming the file and how to stop the first; once it is gone, the second run
    trains."""
    import threading

    from steerlib.config import TrainConfig
    from steerlib.errors import ConcurrentRunError
    from steerlib.train.loop import fit

    checkpoint = tmp_path / "token.ckpt.safetensors"
    params = {"v": torch.zeros(4)}

    def train():
        return fit(
            params,
            [1.0, 2.0],
            TrainConfig(steps=2, batch_size=1, checkpoint_every=1),
            lambda batch: (params["v"] - sum(batch)).pow(2).sum(),
            checkpoint=checkpoint,
            progress=False,
        )

    holding, done = threading.Event(), threading.Event()

    def other_run():
        with sio.lock(checkpoint):
            holding.set()
            done.wait(60)

    thread = threading.Thread(target=other_run)
    thread.start()
    holding.wait(60)
    try:
        with pytest.raises(
            ConcurrentRunError,
            match=rf"another live process is writing {checkpoint}.*torchrun.*ps -eo "
            r"pid,args",
        ):
            train()
        assert not checkpoint.exists()
    finally:
        done.set()
        thread.join()
    assert len(train().losses) == 2 and checkpoint.is_file()
