"""Your own behavior: registration, its errors, and the whole path on the tiny model.

The behavior here, "ends_with_question", is defined in this file on purpose (the book's
chapter 5 defines its own): the tests check the library's contract, independently of
the chapter.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest
import torch

import steerlib as st
from steerlib.config import TargetConfig, TrainConfig, config_hash
from steerlib.evaluation.evaluate import evaluate
from steerlib.model.generate import SteeredModel
from steerlib.model.packs import PRETRAINED_FILE
from steerlib.model.tokens import SteeringTokens
from steerlib.presets import presets
from steerlib.tasks import behaviors as B
from steerlib.train.compose import train_composition_token
from steerlib.train.distill import behavior_targets, train_behavior_token

QUESTIONS = [
    "Why is the sky blue?",
    "How do bees make honey?",
    "What causes tides?",
    "Why do we sleep?",
]
TARGETS = TargetConfig(max_new_tokens=8, plain_max_new_tokens=12, min_kept=1)


def ends_with_question(text: str) -> bool:
    return text.rstrip().endswith("?")


def ask_back(text: str) -> str:
    return text.rstrip() + " Does that help?"


def question_behavior(**changes) -> B.Behavior:
    fields = dict(
        name="ends_with_question",
        category="ending",
        rule="the last non-blank character is '?'",
        paraphrases=(
            "End your answer with a question.",
            "Finish by asking me a question.",
        ),
        checker=ends_with_question,
        transform=ask_back,
    )
    return B.Behavior(**{**fields, **changes})


def _cfg(**kw) -> TrainConfig:
    base = dict(steps=3, batch_size=2, lr=1e-2, checkpoint_every=2, targets=TARGETS)
    return TrainConfig(**{**base, **kw})


# ---------------------------------------------------------------- registry


def test_registered_adds_then_removes():
    before = B.names()
    with B.registered(question_behavior(), new_category=True) as (b,):
        assert B.names() == before + ["ends_with_question"]
        assert B.get("ends_with_question") is b and not b.seen  # unseen by default
        assert B.categories()["ending"] == ["ends_with_question"]
        assert not B.is_builtin("ends_with_question") and B.is_builtin("french")
    assert B.names() == before
    with pytest.raises(KeyError, match="unknown behavior 'ends_with_question'"):
        B.get("ends_with_question")


def test_registered_removes_even_after_an_error():
    with pytest.raises(RuntimeError):
        with B.registered(question_behavior(), new_category=True):
            raise RuntimeError("boom")
    assert "ends_with_question" not in B.names()


def test_register_and_unregister():
    stored = B.register(
        question_behavior(paraphrases=["Ask me something at the end."]),
        new_category=True,
    )
    try:
        assert stored.paraphrases == (
            "Ask me something at the end.",
        )  # a list is stored as a tuple
        with pytest.raises(ValueError, match="already registered.*unregister"):
            B.register(question_behavior(), new_category=True)
    finally:
        B.unregister("ends_with_question")
    with pytest.raises(KeyError, match="no registered behavior"):
        B.unregister("ends_with_question")


@pytest.mark.parametrize(
    "changes, error, match",
    [
        (dict(name="french", category="language"), ValueError, "built-in"),
        (dict(name="and"), ValueError, "not allowed"),
        (dict(name="Ends"), ValueError, "lower-case"),
        (dict(name="ends question"), ValueError, "not allowed"),
        (dict(paraphrases=()), ValueError, "at least one paraphrase"),
        (dict(paraphrases=("ok", " ")), ValueError, "non-empty"),
        (dict(rule=""), ValueError, "one-line rule"),
        (dict(rule="two\nlines"), ValueError, "one-line rule"),
        (dict(checker="endswith ?"), TypeError, "must be a function"),
        (
            dict(checker=lambda t: re.search(r"\?\s*$", t)),
            TypeError,
            "must return True or False",
        ),
        (
            dict(checker=lambda t: t[-1] == "?"),
            ValueError,
            "raised IndexError.*on the text ''",
        ),
        (
            dict(transform=lambda t: len(t)),
            TypeError,
            "transform returned int.*a string or None",
        ),
        (dict(conflicts=("nonexistent",)), ValueError, "conflicts with unknown"),
        (dict(conflicts=("ends_with_question",)), ValueError, "itself"),
    ],
)
def test_bad_behaviors_are_refused_clearly(changes, error, match):
    with pytest.raises(error, match=match):
        B.register(question_behavior(**changes), new_category=True)
    assert B.names()[-1] == "json"  # nothing was added


def test_unknown_category_needs_new_category():
    with pytest.raises(
        ValueError,
        match=r"unknown category 'ending'; known: language, length.*new_category=True",
    ):
        B.register(question_behavior())
    with pytest.raises(ValueError, match="unknown category 'lenght'"):  # the typo guard
        B.register(question_behavior(category="lenght"))


def test_builtins_cannot_be_unregistered():
    with pytest.raises(ValueError, match="built-in"):
        B.unregister("french")


# ---------------------------------------------------------------- splits and conflicts


def test_own_category_composes_with_everything_unseen():
    with B.registered(question_behavior(), new_category=True):
        assert all(
            B.compatible("ends_with_question", n)
            for n in B.names()
            if n != "ends_with_question"
        )
        assert B.training_pairs() == [
            p for p in B.training_pairs() if "ends_with_question" not in p
        ]
        mine = [c for c in B.combinations(2) if "ends_with_question" in c]
        # one pair with each of the 17 non-json built-ins, all unseen, none seen
        assert len(mine) == 17
        assert set(mine) <= set(B.combinations(2, "unseen"))
        assert not [c for c in B.combinations(2, "seen") if "ends_with_question" in c]


def test_training_pairs_unchanged_by_an_unseen_behavior():
    before = B.training_pairs()
    with B.registered(question_behavior(), new_category=True):
        assert B.training_pairs() == before


def test_seen_behavior_joins_the_training_pairs():
    with B.registered(question_behavior(seen=True), new_category=True):
        assert ("french", "ends_with_question") in B.training_pairs()


def test_same_category_and_declared_conflicts_do_not_compose():
    dutch = question_behavior(name="ends_in_dutch", category="language", transform=None)
    with B.registered(
        dutch, question_behavior(conflicts=("sentences_1",)), new_category=True
    ):
        assert not B.compatible(
            "ends_in_dutch", "french"
        )  # same category as the languages
        assert not B.compatible(
            "ends_with_question", "sentences_1"
        )  # declared, both directions
        assert not B.compatible("sentences_1", "ends_with_question")
        assert B.compatible("ends_with_question", "sentences_2")
        pairs = B.combinations(2)
        assert ("sentences_1", "ends_with_question") not in pairs
        assert ("french", "ends_in_dutch") not in pairs


def test_verify_all_uses_the_checker_and_json_rule():
    with B.registered(question_behavior(), new_category=True):
        assert B.verify_all("Est-ce clair ?", ["french", "ends_with_question"]) == {
            "french": B.get("french").verify("Est-ce clair ?"),
            "ends_with_question": True,
        }
        # with json, the other behaviors are checked on the answer's value (built-in
        # rule)
        assert B.verify_all('{"answer": "Is it?"}', ["json", "ends_with_question"]) == {
            "json": True,
            "ends_with_question": True,
        }


# ---------------------------------------------------------------- caches


def test_builtin_cache_names_and_shipped_keys_unchanged():
    """The shipped tokens are still found by the keys the cpu preset asks for, with or
    without a behavior of one's own registered."""
    shipped = SteeringTokens.load_file(
        Path(str(resources.files("steerlib") / "data" / PRETRAINED_FILE))
    )
    cpu = presets.cpu()
    with B.registered(question_behavior(), new_category=True):
        for name in shipped.names:
            if name == "and":
                continue
            assert B.cache_name(name) == name
            assert (
                shipped.info[name]["key"]
                == f"{name}-{config_hash(cpu.stage1_config(name))}"
            )


def test_cache_name_follows_the_definition():
    with B.registered(question_behavior(), new_category=True):
        first = B.cache_name("ends_with_question")
    with B.registered(question_behavior(), new_category=True):
        assert B.cache_name("ends_with_question") == first  # same definition, same key
    with B.registered(
        question_behavior(paraphrases=("Close with a question.",)), new_category=True
    ):
        assert B.cache_name("ends_with_question") != first
    with B.registered(
        question_behavior(transform=lambda t: t.rstrip() + " Right?"), new_category=True
    ):
        assert B.cache_name("ends_with_question") != first
    assert re.fullmatch(r"ends_with_question-[0-9a-f]{8}", first)


def test_a_checker_keyed_by_its_code_not_its_docstring(tmp_path):
    """Rewording a checker's docstring keeps the key (its tokens and verdicts stay
    valid); changing a line of its code, a comment included, gives a new one."""
    import importlib.util

    body = '    return text.rstrip().endswith("?")\n'
    versions = {
        "plain": "def check(text):\n" + body,
        "doc": 'def check(text):\n    """Ends with a question\n    mark."""\n' + body,
        "reworded": 'def check(text):\n    """Asks back."""\n' + body,
        "comment": "def check(text):\n    # the last character\n" + body,
        "code": 'def check(text):\n    return text.endswith("?")\n',
    }
    keys = {}
    for name, source in versions.items():
        path = tmp_path / f"check_{name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(f"check_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        with B.registered(question_behavior(checker=module.check), new_category=True):
            keys[name] = B.cache_name("ends_with_question")
    assert keys["plain"] == keys["doc"] == keys["reworded"]
    assert len({keys["plain"], keys["comment"], keys["code"]}) == 3


# ---------------------------------------------------------------- the path on the tiny
# model


def test_constructed_targets_use_the_transform(tiny):
    cfg = _cfg(
        targets=TargetConfig(
            source="constructed", max_new_tokens=8, plain_max_new_tokens=12, min_kept=1
        )
    )
    with B.registered(question_behavior(), new_category=True):
        assert B.constructible("ends_with_question")
        targets = behavior_targets(
            tiny, "ends_with_question", cfg, QUESTIONS, progress=False
        )
    assert targets
    for t in targets:
        assert t.text.endswith(" Does that help?")
        assert t.names == ("ends_with_question",)
        assert t.instructions in question_behavior().paraphrases
        # the answer ids are the transformed text, closed by the end-of-turn token
        assert tiny.tokenizer.decode(list(t.answer[:-1])) == t.text
    with B.registered(question_behavior(transform=None), new_category=True):
        assert not B.constructible("ends_with_question")


def test_train_compose_evaluate_on_tiny(tiny, tmp_path):
    cfg = _cfg(
        targets=TargetConfig(
            source="constructed", max_new_tokens=8, plain_max_new_tokens=12, min_kept=1
        )
    )
    toks = SteeringTokens.for_backbone(tiny)
    g = torch.Generator().manual_seed(0)
    for name in B.names():
        toks.set(name, torch.randn(tiny.hidden_size, generator=g) * 0.2)
    with_and = train_composition_token(
        tiny, toks, _cfg(init="zero"), questions=QUESTIONS, progress=False
    )
    with B.registered(question_behavior(), new_category=True):
        mine = train_behavior_token(
            tiny,
            "ends_with_question",
            cfg,
            tokens=with_and,
            questions=QUESTIONS,
            progress=False,
        )
        info = mine.info["ends_with_question"]
        assert info["steps"] == 3 and info["key"].startswith(
            B.cache_name("ends_with_question") + "-"
        )
        assert not torch.equal(
            mine["ends_with_question"], torch.zeros(tiny.hidden_size)
        )
        # the custom behavior is unseen: <and>'s key, and so the trained <and>, are
        # unchanged
        again = train_composition_token(
            tiny, mine, _cfg(init="zero"), questions=QUESTIONS, progress=False
        )
        assert torch.equal(again["and"], with_and["and"])
        # a token file holding this run (e.g. a committed result) is found, not
        # retrained
        saved = mine.subset(["ends_with_question"]).save_file(
            tmp_path / "mine.safetensors"
        )
        fresh = tmp_path / "empty-artifacts"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("STEERLIB_ARTIFACTS", str(fresh))
            loaded = train_behavior_token(
                tiny,
                "ends_with_question",
                cfg,
                questions=QUESTIONS,
                progress=False,
                from_file=saved,
            )
        assert (
            torch.equal(loaded["ends_with_question"], mine["ends_with_question"])
            and not fresh.exists()
        )

        combos = [("french", "ends_with_question")]
        recs = evaluate(
            SteeredModel(tiny, mine),
            ["and", "instruction"],
            combos,
            QUESTIONS[:2],
            max_new_tokens=6,
            batch_size=8,
            records=tmp_path / "records.jsonl",
        )
    assert len(recs) == 2 * 2 * 2  # methods x orderings x prompts
    assert set(recs["split"]) == {"unseen-2"} and set(recs["combo"]) == {
        "french+ends_with_question"
    }
    for _, r in recs.iterrows():
        assert r["verdicts"]["ends_with_question"] == r["text"].rstrip().endswith("?")
        assert r["ok"] == all(r["verdicts"].values())
    assert st.metrics(recs)["combos"].tolist() == [1, 1]


def test_seen_behavior_needs_its_token_for_stage_2(tiny):
    toks = SteeringTokens.for_backbone(tiny)
    for name in B.names():
        toks.set(name, torch.ones(tiny.hidden_size))
    with B.registered(question_behavior(seen=True), new_category=True):
        with pytest.raises(ValueError, match="missing: \\['ends_with_question'\\]"):
            train_composition_token(
                tiny, toks, _cfg(init="zero"), questions=QUESTIONS, progress=False
            )


# ---------------------------------------------------------------- chapter 5's
# committed artifacts

CHAPTER5 = Path(__file__).resolve().parent.parent / "results" / "cpu"


def test_chapter5_committed_token_and_records_resolve():
    """The book builds chapter 5 without training: its token is committed under the cpu
    preset's key, and every token record is stamped with the digest of the committed and
    shipped vectors it read (else ``evaluate`` would generate it again)."""
    mine = SteeringTokens.load(CHAPTER5 / "ends_with_question.safetensors")
    shipped = SteeringTokens.load(
        Path(str(resources.files("steerlib") / "data" / PRETRAINED_FILE))
    )
    assert (
        mine.names == ["ends_with_question"] and mine.fingerprint == shipped.fingerprint
    )
    cfg = st.config.policy_config(presets.cpu().stage1, "constructed+ce")
    assert re.fullmatch(
        rf"ends_with_question-[0-9a-f]{{8}}-{config_hash(cfg)}",
        mine.info["ends_with_question"]["key"],
    )
    both = shipped.copy()
    both.set("ends_with_question", mine["ends_with_question"])
    records = [
        json.loads(line)
        for line in (CHAPTER5 / "own_behavior_records.jsonl").read_text().splitlines()
    ]
    methods = {"token": st.Method("token", joiner=None), **st.METHODS}
    stamped = [r for r in records if r.get("tokens")]
    assert {r["method"] for r in stamped} == {"token", "and"}
    for r in stamped:
        slots = methods[r["method"]].request("", r["order"].split("+")).slots
        assert r["tokens"] == both.digest(slots)
