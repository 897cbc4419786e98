"""The shipped question set and its loader."""

from __future__ import annotations

import itertools
import json
import re
import sys
import types
from importlib.resources import files

import pytest

from steerlib.errors import DependencyError
from steerlib.tasks import prompts

CONSTRAINTS = [
    r"\bin (one|two|three|a few|\d+) (sentence|word|paragraph|line|bullet)s?\b",
    r"\b(at most|at least|no more than|fewer than|under) \d+\b",
    r"\b\d+ (words|sentences|paragraphs)\b",
    r"\b(in|into) (French|Spanish|German|Italian|Portuguese|Chinese|Japanese|"
    r"Russian)\b",
    r"\bbrief(ly)?\b",
    r"\bconcise(ly)?\b",
    r"\bsummar(y|ise|ize)\b",
    r"\blist\b",
    r"\b(bullet|bulleted|numbered) points?\b",
    r"\bstep[- ]by[- ]step\b",
    r"\bexplain like\b",
    r"\blike I'?m (five|5)\b",
    r"\bin (simple|plain) (terms|English|language)\b",
    r"\b(JSON|markdown|uppercase|lowercase|capital letters|emojis?)\b",
    r"\b(respond|answer|reply) (only|with|in)\b",
    r"\bwrite (a|an|me)\b",
]
YES_NO_OPENERS = set("is are can could do does did should will would has have".split())
STOPWORDS = set(
    "a an the of in on to and or is are do does how why what which when where who whom "
    "i my "
    "me we our it its for with at by from be can so some as that this there their they "
    "you your".split()
)


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    with (files("steerlib") / "data" / "prompts.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


# --- the shipped set ------------------------------------------------------------


def test_counts_and_splits():
    train, val, test, everything = (
        prompts.load("train"),
        prompts.load("val"),
        prompts.load("test"),
        prompts.load(None),
    )
    assert len(everything) >= 650
    assert len(test) == 200 and len(val) == prompts.N_VAL
    assert len(train) + len(val) + len(test) == len(everything)
    assert not set(train) & set(test) and not set(val) & (set(train) | set(test))
    assert set(train) | set(val) | set(test) == set(everything)


def test_rows_are_well_formed(rows):
    assert [row["id"] for row in rows] == list(range(len(rows)))
    for row in rows:
        assert set(row) == {"id", "text", "domain", "split"}
        assert row["split"] in ("train", "test")  # "val" is carved from train on load
        text = row["text"]
        assert text == text.strip() and text.endswith("?") and text.isascii(), text
        assert 4 <= len(text.split()) <= 25, text
        assert text.split()[0].lower() not in YES_NO_OPENERS, text


def test_no_duplicates_or_near_duplicates(rows):
    texts = [row["text"] for row in rows]
    normalized = [" ".join(_words(t)) for t in texts]
    assert len(set(normalized)) == len(texts)
    openings = [tuple(_words(t)[:6]) for t in texts]
    repeated = [t for t, o in zip(texts, openings) if openings.count(o) > 1]
    assert not repeated, repeated
    content = [set(_words(t)) - STOPWORDS for t in texts]
    similar = [
        (texts[i], texts[j])
        for i, j in itertools.combinations(range(len(texts)), 2)
        if len(content[i] & content[j]) / len(content[i] | content[j]) >= 0.6
    ]
    assert not similar, similar


@pytest.mark.parametrize("pattern", CONSTRAINTS)
def test_no_constraints_in_questions(pattern):
    hits = [t for t in prompts.load(None) if re.search(pattern, t, re.IGNORECASE)]
    assert not hits, hits


def test_domains():
    counts = prompts.domains()
    assert len(counts) >= 15
    assert all(n >= 25 for n in counts.values()), counts
    assert sum(counts.values()) == len(prompts.load(None))
    test_counts = prompts.domains("test")
    assert sum(test_counts.values()) == 200
    assert set(test_counts) == set(counts)
    assert all(n >= 5 for n in test_counts.values()), test_counts
    train_counts, val_counts = prompts.domains("train"), prompts.domains("val")
    assert all(
        train_counts[d] + val_counts.get(d, 0) + test_counts[d] == counts[d]
        for d in counts
    )


def test_bad_split_names_allowed_values():
    for call in (lambda: prompts.load("dev"), lambda: prompts.domains("validation")):
        with pytest.raises(ValueError, match="train") as err:
            call()
        assert "test" in str(err.value) and "None" in str(err.value)


# --- limit and seed ---------------------------------------------------------------


def test_limit_keeps_file_order_without_seed():
    assert prompts.load("test", limit=10) == prompts.load("test")[:10]
    assert prompts.load("test", limit=0) == []
    assert len(prompts.load("test", limit=10_000)) == 200


def test_seeded_shuffle_is_deterministic():
    first = prompts.load("train", limit=20, seed=1)
    assert first == prompts.load("train", limit=20, seed=1)
    assert first != prompts.load("train", limit=20, seed=2)
    assert first != prompts.load("train", limit=20)
    assert set(first) <= set(prompts.load("train"))
    assert sorted(prompts.load("test", seed=3)) == sorted(prompts.load("test"))


def test_negative_limit():
    with pytest.raises(ValueError, match="limit"):
        prompts.load(limit=-1)


def test_results_are_fresh_lists():
    prompts.load("test").clear()
    assert len(prompts.load("test")) == 200


# --- other sources ----------------------------------------------------------------


def test_list_source_returned_as_is():
    questions = ["Why is the sea salty?", "How do clouds form?", "What is a comet?"]
    assert prompts.load(source=questions) == questions
    assert prompts.load(split=None, source=tuple(questions)) == questions
    shuffled = prompts.load(source=questions, limit=2, seed=0)
    assert shuffled == prompts.load(source=questions, limit=2, seed=0)
    assert len(shuffled) == 2 and set(shuffled) <= set(questions)


@pytest.mark.parametrize(
    ("items", "error"),
    [
        (["How do clouds form?", 3], TypeError),
        (["How do clouds form?", "  "], ValueError),
    ],
)
def test_list_source_bad_items(items, error):
    with pytest.raises(error, match=r"source\[1\]"):
        prompts.load(source=items)


def test_jsonl_source(tmp_path):
    path = tmp_path / "q.jsonl"
    lines = [
        {"text": "How do clouds form?", "split": "train"},
        {"text": "Why is the sea salty?", "split": "test"},
        {"text": "What is a comet?"},
    ]
    path.write_text(
        "\n".join(json.dumps(line) for line in lines) + "\n\n", encoding="utf-8"
    )
    assert prompts.load("test", source=path) == [
        "Why is the sea salty?",
        "What is a comet?",
    ]
    assert prompts.load("train", source=str(path)) == [
        "How do clouds form?",
        "What is a comet?",
    ]
    assert prompts.load(None, source=path) == [line["text"] for line in lines]


def test_jsonl_without_splits_is_not_filtered(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"text": "How do clouds form?"}\n{"text": "What is a comet?"}\n')
    assert prompts.load("test", source=path) == [
        "How do clouds form?",
        "What is a comet?",
    ]


def test_jsonl_row_without_text(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"text": "How do clouds form?"}\n{"question": "What is a comet?"}\n'
    )
    with pytest.raises(ValueError, match="line 2"):
        prompts.load(source=path)


def test_txt_source(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text("How do clouds form?\n\n  What is a comet?  \n", encoding="utf-8")
    assert prompts.load("test", source=path) == [
        "How do clouds form?",
        "What is a comet?",
    ]
    assert prompts.load(source=str(path), limit=1) == ["How do clouds form?"]


def test_file_source_checks(tmp_path):
    with pytest.raises(ValueError, match="split"):
        prompts.load("dev", source=tmp_path / "q.txt")
    with pytest.raises(ValueError, match=".jsonl"):
        prompts.load(source=tmp_path / "q.csv")
    with pytest.raises(FileNotFoundError):
        prompts.load(source=tmp_path / "missing.jsonl")
    with pytest.raises(TypeError):
        prompts.load(source=42)


# --- Hugging Face datasets (faked: tests never touch the network) ------------------


def test_dataset_name_without_datasets_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(DependencyError, match=r"pip install 'steerlib\[datasets\]'"):
        prompts.load(source="some-org/some-dataset")


class _FakeDataset(dict):
    @property
    def column_names(self) -> list[str]:
        return list(self)


def test_dataset_name_picks_text_column(monkeypatch):
    calls = []

    def load_dataset(name, split):
        calls.append((name, split))
        questions = ["How do clouds form?", "", None, "What is a comet?"]
        return _FakeDataset(text=["unused"], question=questions)

    monkeypatch.setitem(
        sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset)
    )
    assert prompts.load(None, source="org/qa") == [
        "How do clouds form?",
        "What is a comet?",
    ]
    assert prompts.load("test", source="org/qa", text_field="text") == ["unused"]
    assert calls == [("org/qa", "train"), ("org/qa", "test")]
    with pytest.raises(ValueError, match="text_field"):
        prompts.load(source="org/qa", text_field="answer")
