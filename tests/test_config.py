"""Presets and target policies: what each label trains on, and clear errors."""

import dataclasses
import json
from pathlib import Path

import pytest

import steerlib as st
from steerlib.config import (
    TARGET_POLICIES,
    Init,
    TargetConfig,
    TargetPolicy,
    TargetSource,
    TrainConfig,
    config_hash,
    policy_config,
)
from steerlib.model.packs import PRETRAINED_FILE
from steerlib.preset import Preset


@pytest.mark.parametrize(
    "label, source, ce",
    [
        ("self", "self", 0.0),
        ("filtered", "filtered", 0.0),
        ("constructed", "constructed", 0.0),
        ("constructed+ce", "constructed", 1.0),
    ],
)
def test_policies_set_source_and_ce_weight(label, source, ce):
    """Each label trains on what its name says (the chapter-1 table's columns), the
    rest of the stage-1 config untouched; the policy the base config already has
    returns it as it is."""
    base = st.presets.cpu().stage1
    cfg = policy_config(base, label)
    assert (cfg.targets.source, cfg.ce_weight) == (source, ce)
    assert (
        dataclasses.replace(cfg, ce_weight=base.ce_weight, targets=base.targets) == base
    )
    assert set(TARGET_POLICIES) == {"self", "filtered", "constructed", "constructed+ce"}
    if (source, ce) == (base.targets.source, base.ce_weight):
        assert cfg is base


def test_constructed_without_a_transform_is_filtered():
    base = st.presets.cpu().stage1
    assert policy_config(base, "constructed", constructible=False) == policy_config(
        base, "filtered"
    )
    ce = policy_config(base, "constructed+ce", constructible=False)
    assert (ce.targets.source, ce.ce_weight) == ("filtered", 1.0)


def test_cpu_preset_configs_hash_as_when_the_shipped_tokens_were_trained():
    """Enum-valued fields serialise as the strings they replaced: the cache key of every
    shipped token, recorded when it was trained, is still the key of the preset's
    config."""
    tokens = st.SteeringTokens.load_file(
        Path(st.__file__).parent / "data" / PRETRAINED_FILE
    )
    preset = st.presets.cpu()
    for name in st.behaviors.names():
        assert (
            tokens.info[name]["key"]
            == f"{name}-{config_hash(preset.stage1_config(name))}"
        ), name
    assert tokens.info["and"]["key"].split("-")[2] == config_hash(preset.stage2)
    # and the recorded config is the preset's, field for field (fields added since are
    # left out of both the record and the hash at their defaults), enums as their values
    recorded = tokens.info["and"]["config"]
    now = json.loads(json.dumps(dataclasses.asdict(preset.stage2)))
    assert _recorded_part(now, recorded) == recorded


def _recorded_part(now: dict, recorded: dict) -> dict:
    """``now`` cut to the keys ``recorded`` has, at every depth (a nested config gains
    fields too, e.g. ``validation.patience_steps``)."""
    return {
        k: _recorded_part(now[k], v) if isinstance(v, dict) else now[k]
        for k, v in recorded.items()
    }


def test_string_choices_become_enums_and_unknown_ones_are_clear_errors():
    cfg = TrainConfig(init="zero", targets=TargetConfig(source="filtered"))
    assert cfg.init is Init.ZERO and cfg.targets.source is TargetSource.FILTERED
    base = st.presets.cpu()
    assert base.target_policies["french"] is TargetPolicy.FILTERED
    with pytest.raises(
        ValueError,
        match=r"target policy 'constructed\+sft' unknown; choose one of \['self'",
    ):
        policy_config(base.stage1, "constructed+sft")
    with pytest.raises(ValueError, match="target policy of french 'teacher' unknown"):
        Preset(
            "x",
            base.stage1,
            base.stage2,
            base.eval,
            target_policies={"french": "teacher"},
        )
    with pytest.raises(ValueError, match="init 'ones' unknown; choose one of"):
        TrainConfig(init="ones")
    with pytest.raises(ValueError, match="target source 'teacher' unknown"):
        TargetConfig(source="teacher")
    with pytest.raises(
        ValueError, match="stage-2 combos '3' unknown; choose one of \\['2', '2\\+3'\\]"
    ):
        st.train_composition_token(None, st.SteeringTokens(4, "m", "f"), combos="3")


def test_best_policies_takes_the_highest_rate_and_the_simpler_on_ties():
    import pandas as pd

    from steerlib.study.singles import best_policies

    table = pd.DataFrame(
        [
            ("french", "instruction", 90.0),
            ("french", "self", 10.0),
            ("french", "filtered", 70.0),
            ("french", "constructed", 70.0),
            ("french", "constructed+ce", 50.0),
            ("upper_case", "instruction", 0.0),
            ("upper_case", "self", 3.3),
            ("upper_case", "filtered", float("nan")),
            ("upper_case", "constructed", 3.3),
            ("upper_case", "constructed+ce", 0.0),
        ],
        columns=["behavior", "method", "pass_rate"],
    )
    assert best_policies(table) == {"french": "filtered", "upper_case": "self"}


def test_cpu_preset_trains_each_behavior_on_the_committed_comparisons_best_policy():
    import pandas as pd

    from steerlib.paths import project_root
    from steerlib.study.singles import best_policies

    table = pd.read_csv(project_root() / "results" / "cpu" / "targets_comparison.csv")
    assert set(table["behavior"]) == set(st.behaviors.names())
    preset = st.presets.cpu()
    assert {n: preset.target_source(n) for n in st.behaviors.names()} == best_policies(
        table
    )


def test_per_behavior_steps_override_only_that_behavior_and_label_its_records():
    from dataclasses import replace

    from steerlib.config import ValidationConfig
    from steerlib.study.singles import token_label

    cpu = st.presets.cpu()
    base = replace(cpu, stage1=replace(cpu.stage1, validation=None), steps={})
    preset = replace(base, steps={"spanish": 40})
    assert preset.stage1_config("spanish").steps == 40
    assert (
        preset.stage1_config("spanish").targets == base.stage1_config("spanish").targets
    )
    assert preset.stage1_config("italian") == base.stage1_config("italian")
    assert token_label(preset, "spanish") == f"{base.target_source('spanish')}@40steps"
    assert token_label(preset, "italian") == base.target_source("italian")
    # a validation-guided token's records never share a label with a fixed-step token's
    guided = replace(preset, stage1=replace(base.stage1, validation=ValidationConfig()))
    assert token_label(guided, "italian") == f"{base.target_source('italian')}+val"
    assert (
        token_label(guided, "spanish") == f"{base.target_source('spanish')}@40steps+val"
    )
