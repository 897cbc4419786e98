"""Target sources: self, filtered (fails loudly), constructed (passes verifiers),
model."""

import json

import pytest

import steerlib as st
from steerlib.config import TargetConfig
from steerlib.errors import TooFewTargetsError
from steerlib.model.backbone import tiny_backbone
from steerlib.train.targets import make_targets

QUESTIONS = ["Why is the sky blue?", "How do bees make honey?", "What causes tides?"]


def test_self_targets_are_the_models_answers(tiny):
    cfg = TargetConfig(max_new_tokens=6, min_kept=1)
    targets = make_targets(tiny, [(q, ("french",)) for q in QUESTIONS], cfg, key="fr")
    sm = st.SteeredModel(tiny)
    for t in targets:
        assert t.instructions in st.behaviors.get("french").paraphrases
        assert (
            list(t.answer)
            == sm.generate_ids(
                [st.Request(t.question, (), t.instructions)], max_new_tokens=6
            )[0]
        )


def test_targets_are_cached_and_reused(tiny, tmp_path):
    cfg = TargetConfig(max_new_tokens=6, min_kept=1)
    a = make_targets(tiny, [(q, ("french",)) for q in QUESTIONS], cfg, key="fr")
    files = list((tmp_path / "artifacts").rglob("*.jsonl"))
    assert len(files) == 1
    before = files[0].read_text()
    b = make_targets(tiny, [(q, ("french",)) for q in QUESTIONS], cfg, key="fr")
    assert a == b and files[0].read_text() == before


def test_filtered_with_no_survivors_fails_loudly(tiny):
    # a random model never writes a JSON object: nothing survives the verifier
    cfg = TargetConfig(source="filtered", max_new_tokens=6, min_kept=1)
    with pytest.raises(TooFewTargetsError, match=r"only 0 of 3 filtered targets.*json"):
        make_targets(tiny, [(q, ("json",)) for q in QUESTIONS], cfg, key="json")


def test_filtered_targets_are_the_passing_self_targets_without_new_generation(
    tiny, monkeypatch
):
    cfg = TargetConfig(max_new_tokens=6, min_kept=1)
    jobs = [(q, ("french",)) for q in QUESTIONS]
    answers = make_targets(tiny, jobs, cfg, key="fr")
    # a verifier that passes exactly the answers of even length: which ones survive is
    # known
    monkeypatch.setattr(
        st.behaviors,
        "verify_all",
        lambda text, names: {n: len(text) % 2 == 0 for n in names},
    )
    monkeypatch.setattr(
        st.SteeredModel,
        "generate_ids",
        lambda *a, **k: pytest.fail("filtered generated anew"),
    )
    kept = make_targets(
        tiny,
        jobs,
        TargetConfig(source="filtered", max_new_tokens=6, min_kept=1),
        key="fr",
    )
    assert kept == [t for t in answers if len(t.text) % 2 == 0]


def test_constructed_targets_are_the_plain_answers_rewritten(tiny):
    """Constructed targets are the model's own plain answers (no instruction asked),
    rewritten: every question yields one (case and JSON can be made of any answer) and
    its text is that answer upper-cased, wrapped in {"answer": ...}, or both, ending in
    end-of-sequence."""
    cfg = TargetConfig(
        source="constructed", max_new_tokens=6, plain_max_new_tokens=40, min_kept=1
    )
    plain = st.SteeredModel(tiny).generate(
        [st.Request(q) for q in QUESTIONS], max_new_tokens=40
    )
    expected = {
        ("upper_case",): [p.upper() for p in plain],
        ("json",): [json.dumps({"answer": p}, ensure_ascii=False) for p in plain],
        ("lower_case", "json"): [
            json.dumps({"answer": p.lower()}, ensure_ascii=False) for p in plain
        ],
    }
    for names, texts in expected.items():
        targets = make_targets(
            tiny, [(q, names) for q in QUESTIONS], cfg, key="+".join(names)
        )
        assert [t.text for t in targets] == texts, names
        for t in targets:
            assert t.answer[-1] == tiny.eos_ids[0]
            assert tiny.tokenizer.decode(t.answer[:-1]) == t.text


def test_model_targets_come_from_the_given_model(tiny):
    other = tiny_backbone(seed=1)
    cfg = TargetConfig(
        source="model", model="unused-when-teacher-given", max_new_tokens=6, min_kept=1
    )
    targets = make_targets(
        tiny, [(q, ("french",)) for q in QUESTIONS], cfg, key="fr-model", teacher=other
    )
    expected = st.SteeredModel(other).generate(
        [st.Request(t.question, (), t.instructions) for t in targets], max_new_tokens=6
    )
    assert [t.text for t in targets] == expected


def test_bad_source_is_a_clear_error():
    with pytest.raises(ValueError, match="choose one of"):
        TargetConfig(source="teacher")
    with pytest.raises(ValueError, match="needs TargetConfig"):
        TargetConfig(source="model")


def test_constructed_pair_with_a_language_transforms_the_rest_of_its_answer(
    tiny,
):
    from steerlib.train.targets import _construct

    french = (
        "Les chats ronronnent surtout quand ils sont détendus et heureux. Ce son vient "
        "de leur "
        "larynx, qui vibre très vite. Ils ronronnent aussi pour se calmer quand ils "
        "ont mal."
    )
    target = _construct(
        tiny,
        "Why do cats purr?",
        ("french", "sentences_1"),
        "Answer in French.",
        french,
    )
    assert (
        target.text
        == "Les chats ronronnent surtout quand ils sont détendus et heureux."
    )  # the first sentence
    # an answer not in the language is not kept: no transform can make it French
    english = "Cats purr when they are relaxed. The sound comes from the larynx."
    assert (
        _construct(
            tiny,
            "Why do cats purr?",
            ("french", "sentences_1"),
            "Answer in French.",
            english,
        )
        is None
    )
