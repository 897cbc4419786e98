"""Stage 1 for every behavior, and the single-behavior study: each token trained under
its target policy, its records on the test prompts, the teacher's own compliance, and
the comparison of target policies. Cached and resumable like every step of the study."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from steerlib.config import TARGET_POLICIES, TrainConfig, policy_config
from steerlib.errors import RecordsError, TooFewTargetsError
from steerlib.evaluation.evaluate import evaluate
from steerlib.evaluation.records import read_records
from steerlib.evaluation.stats import wilson
from steerlib.model.backbone import Backbone
from steerlib.model.generate import SteeredModel
from steerlib.model.methods import METHODS, Method
from steerlib.model.tokens import SteeringTokens
from steerlib.preset import Preset
from steerlib.study import reports
from steerlib.study.folders import results_dir
from steerlib.tasks import behaviors as B
from steerlib.tasks import prompts as P
from steerlib.train.distill import train_behavior_token

log = logging.getLogger("steerlib")


def singles() -> list[tuple[str]]:
    """Every behavior as a one-behavior combination."""
    return [(n,) for n in B.names()]


def train_all_behaviors(
    bb: Backbone,
    preset: Preset,
    names: Sequence[str] | None = None,
    retrain: bool = False,
) -> SteeringTokens:
    """Stage 1 for every behavior (each cached on its own)."""
    tokens = SteeringTokens.for_backbone(bb)
    for name in names or B.names():
        tokens = train_behavior_token(
            bb, name, preset.stage1_config(name), tokens=tokens, retrain=retrain
        )
    return tokens


def token_label(preset: Preset, name: str) -> str:
    """The records label of ``name``'s token: its target policy, its step count where
    that differs from the preset's, and "+val" when validation chose its step
    (``records_label``)."""
    cfg = preset.stage1_config(name)
    policy = preset.target_source(name)
    return records_label(
        policy if cfg.steps == preset.stage1.steps else f"{policy}@{cfg.steps}steps",
        cfg,
    )


def records_label(label: str, cfg: TrainConfig) -> str:
    """``label`` + "+val" for a validation-guided token. A token's held-out records are
    stored as ``token:<label>``, and ``evaluate`` replaces a record of the same label
    made with other vectors; the suffix keeps the records of fixed-step tokens (the
    target comparison of the shipped results) apart from those of validation-guided
    ones."""
    return f"{label}+val" if cfg.validation is not None else label


def teacher_compliance(
    bb: Backbone, preset: Preset, out: Path | None = None
) -> pd.DataFrame:
    """Share of answers that pass each behavior's verifier when asked by instruction.

    This is the ceiling a token distilled from the model's own answers starts from. The
    generations are the 'instruction' records of the single-behavior table (same
    prompts).
    """
    out = out or results_dir(preset, bb)
    ev = preset.eval
    recs = evaluate(
        SteeredModel(bb),
        [METHODS["instruction"]],
        singles(),
        P.load("test", limit=ev.n_single),
        max_new_tokens=ev.max_new_tokens,
        batch_size=ev.batch_size,
        records=out / "single_records.jsonl",
    )
    table = (
        recs.groupby("combo", sort=False)
        .agg(pass_rate=("ok", "mean"), n=("ok", "size"))
        .reindex(B.names())
        .reset_index()
        .rename(columns={"combo": "behavior"})
    )
    table["pass_rate"] = (100 * table["pass_rate"]).round(1)
    reports.teacher_compliance(out, table, bb.model_id, preset)
    return table


def single_table(records: pd.DataFrame, policies: Sequence[str] = ()) -> pd.DataFrame:
    """The single-behavior table (paper Table 9 shape): pass rate (%) per behavior
    (rows) and method (columns) of ``single_behavior_records`` made with the same
    ``policies``."""
    table = (
        records.assign(ok=100 * records["ok"])
        .pivot_table(index="combo", columns="method", values="ok")
        .reindex(B.names())
        .round(1)
    )
    table.index.name = "behavior"
    return table.reindex(columns=["plain", "instruction", "token", "hybrid", *policies])


def single_behavior_records(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    out: Path,
    policies: Sequence[str] = (),
    recorded_policies: bool = False,
) -> pd.DataFrame:
    """Every held-out generation behind the single-behavior table, one record per
    prompt.

    Methods: plain, instruction, token (each behavior's token in ``tokens``), hybrid,
    and one column per target policy in ``policies`` (e.g. "filtered": tokens trained
    on filtered targets; empty where too few targets survive). Token generations are
    recorded under ``token:<policy>`` in ``targets_records.jsonl``, shared with
    ``targets_comparison``, so a token is evaluated once for both tables.
    ``recorded_policies`` reads the policy columns from those records alone (see
    ``recorded_token_records``): the policy tokens need not be at hand, and nothing is
    trained.
    """
    questions = P.load("test", limit=preset.eval.n_single)
    kw = dict(
        max_new_tokens=preset.eval.max_new_tokens, batch_size=preset.eval.batch_size
    )
    methods = [METHODS["plain"], METHODS["instruction"], METHODS["hybrid"]]
    recs = [
        evaluate(
            SteeredModel(bb, tokens),
            methods,
            singles(),
            questions,
            records=out / "single_records.jsonl",
            **kw,
        )
    ]
    for name in B.names():
        recs.append(
            token_records(
                bb, tokens.subset([name]), token_label(preset, name), preset, out
            ).assign(method="token")
        )
        for label in policies:
            found = (
                recorded_token_records(preset, name, label, out)
                if recorded_policies
                else policy_records(bb, preset, name, label, out)
            )
            if (
                found is not None
            ):  # None: too few targets, an empty cell rather than a fake one
                recs.append(found.assign(method=label))
    return pd.concat(recs, ignore_index=True)


def policy_token(
    bb: Backbone, preset: Preset, name: str, policy: str
) -> SteeringTokens:
    """``<name>`` trained with the preset's stage-1 config under one target policy
    (cached).

    Raises TooFewTargetsError when the policy's source leaves too few targets.
    """
    return train_behavior_token(
        bb, name, policy_config(preset.stage1, policy, B.constructible(name))
    )


def policy_records(
    bb: Backbone, preset: Preset, name: str, policy: str, out: Path
) -> pd.DataFrame | None:
    """The held-out records of ``policy_token``, or None (with a warning) when its
    source leaves too few targets to train on."""
    try:
        tokens = policy_token(bb, preset, name, policy)
    except TooFewTargetsError as err:
        log.warning("%s / %s: %s", name, policy, err)
        return None
    return token_records(bb, tokens, records_label(policy, preset.stage1), preset, out)


def recorded_token_records(
    preset: Preset, name: str, label: str, out: Path
) -> pd.DataFrame | None:
    """The recorded held-out generations of ``<name>`` recorded as ``token:<label>``,
    read from ``targets_records.jsonl`` without the token's vector (so their stamps
    cannot be checked against it); None when no record of it exists ("too few targets":
    nothing was trained). A partial set, or records of other prompts, is an error.

    This is how the book and ``reproduce`` show the filtered column of the
    single-behavior table: those tokens are not shipped (only each behavior's chosen
    token is), their records are. ``label`` is the records label as written: the
    committed target comparison's tokens trained a fixed number of steps, so their
    label is the bare target policy (validation-guided ones carry "+val",
    ``records_label``).
    """
    questions = P.load("test", limit=preset.eval.n_single)
    path = out / "targets_records.jsonl"
    rows = read_records(path, max_new_tokens=preset.eval.max_new_tokens)
    mine = (
        rows[
            (rows["method"] == f"token:{label}")
            & (rows["order"] == name)
            & (rows["prompt_id"] < len(questions))
        ]
        .sort_values("prompt_id")
        .reset_index(drop=True)
    )
    if mine.empty:
        return None
    if (
        mine["prompt_id"].tolist() != list(range(len(questions)))
        or mine["prompt"].tolist() != questions
    ):
        raise RecordsError(
            f"{path} holds {len(mine)} 'token:{label}' records of <{name}>, not one "
            "for each of the "
            f"{len(questions)} test prompts of the {preset.name} preset: regenerate "
            "them with "
            f"`python -m steerlib targets-compare --preset {preset.name}`"
        )
    return mine


def token_records(
    bb: Backbone, tokens: SteeringTokens, label: str, preset: Preset, out: Path
) -> pd.DataFrame:
    """Held-out generations of the one behavior token in ``tokens``, recorded as
    ``token:<label>``."""
    (name,) = tokens.names
    return evaluate(
        SteeredModel(bb, tokens),
        [Method(f"token:{label}", joiner=None)],
        [(name,)],
        P.load("test", limit=preset.eval.n_single),
        max_new_tokens=preset.eval.max_new_tokens,
        batch_size=preset.eval.batch_size,
        records=out / "targets_records.jsonl",
    )


def targets_comparison(
    bb: Backbone,
    preset: Preset,
    names: Sequence[str],
    out: Path,
    policies: Sequence[str] = tuple(TARGET_POLICIES),
) -> pd.DataFrame:
    """Instruction compliance next to tokens trained on each target policy, per
    behavior.

    Each token is trained with the preset's stage-1 config and only the target source
    (and CE weight) changed; pass rates on the same held-out prompts with 95% Wilson
    intervals. A source that cannot give enough targets (filtered, for a behavior the
    model never follows) is reported as such instead of trained; a policy that reduces
    to an earlier one (constructed, for a language) shares its row.
    """
    ev = preset.eval
    rows = []
    for name in names:
        recs = evaluate(
            SteeredModel(bb),
            [METHODS["instruction"]],
            [(name,)],
            P.load("test", limit=ev.n_single),
            max_new_tokens=ev.max_new_tokens,
            batch_size=ev.batch_size,
            records=out / "single_records.jsonl",
        )
        rows.append(_rate_row(name, "instruction", recs))
        done: dict[TrainConfig, dict] = {}
        for label in policies:
            cfg = policy_config(preset.stage1, label, B.constructible(name))
            if cfg in done:
                rows.append(
                    {
                        **done[cfg],
                        "method": label,
                        "note": f"= {done[cfg]['method']} (no transform)",
                    }
                )
                continue
            found = policy_records(bb, preset, name, label, out)
            row = (
                _rate_row(name, label, found)
                if found is not None
                else {
                    "behavior": name,
                    "method": label,
                    "pass_rate": float("nan"),
                    "lo": float("nan"),
                    "hi": float("nan"),
                    "n": 0,
                    "note": "too few targets",
                }
            )
            if cfg.targets.source != TARGET_POLICIES[label][0]:
                row["note"] = (
                    row["note"] or f"no transform: {cfg.targets.source} targets"
                )
            done[cfg] = row
            rows.append(row)
    table = pd.DataFrame(rows)
    reports.targets_comparison(out, table, preset, names, policies)
    return table


def best_policies(table: pd.DataFrame) -> dict[str, str]:
    """Per behavior of a ``targets_comparison`` table, the target policy whose
    token has the highest pass rate; a tie goes to the earlier (simpler) policy in
    ``TARGET_POLICIES`` order."""
    tokens = table[table["method"].isin(list(TARGET_POLICIES))].dropna(
        subset=["pass_rate"]
    )
    best = {}
    for name, group in tokens.groupby("behavior", sort=False):
        rates = group.set_index("method")["pass_rate"]
        best[name] = rates.reindex(
            [p for p in TARGET_POLICIES if p in rates.index]
        ).idxmax()
    return best


def _rate_row(name: str, method: str, recs: pd.DataFrame) -> dict:
    k, n = int(recs["ok"].sum()), len(recs)
    lo, hi = wilson(k, n)
    return {
        "behavior": name,
        "method": method,
        "pass_rate": 100 * k / n,
        "lo": 100 * lo,
        "hi": 100 * hi,
        "n": n,
        "note": "",
    }
