"""The capable-pairs study (ours): composition measured where it can show.

A composition passes only where each of its behaviors can. On a 135M model some
behaviors (case, JSON) fail for every method, so the paper's protocol, sampling pairs
uniformly, mostly measures those failures. This study instead

1. **selects pairs on validation data only**: every cross-category pair (conflicts
   excluded) whose two behavior tokens each pass >= 50% alone on validation questions
   that the tokens' step selection did not see (``selection_questions``);
2. **evaluates** every method on those pairs, both orderings, on test prompts;
3. **reports**, per method and split (seen / unseen pairs): the joint pass rate with a
   Wilson interval; each behavior's retention (its pass rate inside the pair against
   its rate alone under the same method); composition efficiency, joint / (product of
   the two single rates of the same method), with a bootstrap interval over prompts;
   and exact McNemar tests on the paired outcomes of identical prompt-orderings
   (``stats.paired_test``).

Efficiency 1.0 means the two behaviors combine as if independent; below 1, they
interfere. McNemar uses the prompts both methods saw, so it can separate methods whose
intervals overlap.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from steerlib.config import ValidationConfig
from steerlib.errors import ConfigError
from steerlib.evaluation.evaluate import COMPOSITION_METHODS, evaluate
from steerlib.evaluation.records import read_records
from steerlib.evaluation.stats import (
    behavior_pass_rates,
    bootstrap_ci,
    paired_test,
    pass_rates,
)
from steerlib.model.backbone import Backbone
from steerlib.model.generate import SteeredModel
from steerlib.model.methods import Method
from steerlib.model.tokens import SteeringTokens
from steerlib.preset import Preset
from steerlib.study import capable_reports
from steerlib.study.slots import slot_lines
from steerlib.tasks import behaviors as B
from steerlib.tasks import prompts as P
from steerlib.tasks.combos import orderings
from steerlib.train.compose import CAPABLE_RATE, passing_pairs

log = logging.getLogger("steerlib")

TOKEN_ALONE = "and"
"""The method name of a token's single-behavior records in this study. With one
behavior the "and" method has no ``<and>`` to insert and renders the token alone; the
committed records carry this name, so it stays."""
SINGLE_OF = {"concat": TOKEN_ALONE, "native_and": TOKEN_ALONE}
"""The single-behavior method whose rate a composition method is compared with: with
one behavior, concatenation and native " and" are the token alone (``TOKEN_ALONE``);
every other method is compared with itself alone."""
TESTS = (
    ("and", "concat"),
    ("and", "native_and"),
    ("hybrid", "instruction"),
    ("and", "instruction"),
)
"""The paired comparisons reported (first vs second)."""


def selection_questions(
    validation: ValidationConfig | None, limit: int | None = None
) -> list[str]:
    """Validation questions for pair selection (at most ``limit``): the val split
    without the ones that chose each token's training step (those are biased upward by
    that choice)."""
    val = P.load("val")
    used = validation.n_questions if validation is not None else 0
    if used >= len(val):
        raise ConfigError(
            f"no validation questions left for pair selection ({used} of {len(val)} "
            "choose steps)"
        )
    return val[used:][:limit]


def single_rate(records: pd.DataFrame) -> pd.Series:
    """Pass rate per behavior from single-behavior records (k == 1)."""
    singles = records[records["k"] == 1]
    return singles.groupby("combo")["ok"].mean()


def select_pairs(
    val_rates: pd.Series, threshold: float = CAPABLE_RATE
) -> list[tuple[str, str]]:
    """Every compatible cross-category pair (registry order) whose two behaviors each
    pass ``threshold`` on validation (``val_rates``: behavior -> rate, validation
    records only)."""
    return passing_pairs(B.combinations(2, "all"), val_rates.get, threshold)


def joint(records: pd.DataFrame) -> pd.DataFrame:
    """Joint pass rate per method and split, in %, with Wilson intervals."""
    return pass_rates(records).rename(
        columns={"rate": "joint", "lo": "joint_lo", "hi": "joint_hi", "combos": "pairs"}
    )


def _single_method(method: str) -> str:
    return SINGLE_OF.get(method, method)


def retention(pairs: pd.DataFrame, singles: pd.DataFrame) -> pd.DataFrame:
    """Per method, split and behavior: its pass rate inside the pairs against alone (in
    %)."""
    inside = behavior_pass_rates(pairs, by=("method", "split")).rename(
        columns={"pass_rate": "in_pair", "n": "n_pair"}
    )
    alone = singles[singles["k"] == 1].groupby(["method", "combo"])["ok"].mean()
    inside["alone"] = [
        alone.get((_single_method(m), b), np.nan)
        for m, b in zip(inside["method"], inside["behavior"])
    ]
    inside[["in_pair", "alone"]] *= 100
    inside["retention"] = inside["in_pair"] / inside["alone"]
    return inside


def _efficiency(
    pairs: pd.DataFrame, alone: dict[tuple[str, str], float], method: str
) -> float:
    expected = [
        alone.get((_single_method(method), a), np.nan)
        * alone.get((_single_method(method), b), np.nan)
        for a, b in (c.split("+") for c in pairs["combo"])
    ]
    denominator = float(np.mean(expected))
    return float(pairs["ok"].mean()) / denominator if denominator > 0 else np.nan


def efficiency(
    pairs: pd.DataFrame, singles: pd.DataFrame, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Per method and split: joint / mean over its generations of (single a x single b),
    the single rates measured under the same method on the same test prompts. The 95%
    interval resamples prompts (with replacement) for pairs and singles together."""
    singles = singles[singles["k"] == 1]
    pids = np.array(sorted(set(pairs["prompt_id"]) | set(singles["prompt_id"])))

    def alone_of(s: pd.DataFrame) -> dict[tuple[str, str], float]:
        return s.groupby(["method", "combo"])["ok"].mean().to_dict()

    def resample(df: pd.DataFrame, draw: np.ndarray) -> pd.DataFrame:
        counts = pd.Series(draw).value_counts()
        weights = df["prompt_id"].map(counts).fillna(0).astype(int)
        return df.loc[df.index.repeat(weights)]

    rows = []
    for (method, split), g in pairs.groupby(["method", "split"]):

        def of_prompts(draw: np.ndarray, g=g, method=method) -> float:
            sub = resample(g, draw)
            return (
                _efficiency(sub, alone_of(resample(singles, draw)), method)
                if len(sub)
                else np.nan
            )

        lo, hi = bootstrap_ci(pids, of_prompts, n_boot=n_boot, seed=seed)
        rows.append(
            {
                "method": method,
                "split": split,
                "efficiency": _efficiency(g, alone_of(singles), method),
                "eff_lo": lo,
                "eff_hi": hi,
            }
        )
    return pd.DataFrame(rows)


def paired_tests(
    records: pd.DataFrame, comparisons: Sequence[tuple[str, str]] | None = None
) -> pd.DataFrame:
    """``stats.paired_test`` (exact McNemar on identical prompt-orderings) for each
    comparison and split where both methods were run; ``a_rate``/``b_rate`` in %.
    Default: ``TESTS``, then ``<and>`` against every other method recorded (the
    baselines)."""
    if comparisons is None:
        others = (
            sorted(set(records["method"]) - set(COMPOSITION_METHODS))
            if len(records)
            else []
        )
        comparisons = [*TESTS, *((TOKEN_ALONE, m) for m in others)]
    rows = []
    for a, b in comparisons:
        if {a, b} <= set(records["method"]):
            table = paired_test(records, a, b).rename(
                columns={f"{a} %": "a_rate", f"{b} %": "b_rate"}
            )
            rows.append(table.assign(a=a, b=b))
    if not rows:
        return pd.DataFrame()
    return pd.concat(rows, ignore_index=True)[
        ["split", "a", "b", "n", "a_rate", "b_rate", "a_only", "b_only", "p"]
    ]


def joint_table(
    pairs: pd.DataFrame, singles: pd.DataFrame, n_boot: int = 1000
) -> pd.DataFrame:
    """Joint rate and efficiency per method and split, one table."""
    return joint(pairs).merge(
        efficiency(pairs, singles, n_boot), on=["method", "split"]
    )


def write_report(
    pairs: pd.DataFrame,
    singles: pd.DataFrame,
    val_rates: pd.Series,
    selected: Sequence[tuple],
    out: Path,
    threshold: float = CAPABLE_RATE,
) -> dict[str, pd.DataFrame]:
    """The study's tables from its records, written by
    ``capable_reports.capable_pairs``."""
    report = {
        "summary": joint_table(pairs, singles),
        "retention": retention(pairs, singles),
        "tests": paired_tests(pairs),
    }
    capable_reports.capable_pairs(
        out, report, val_rates, selected, threshold, slot_lines(pairs)
    )
    return report


def choose(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    out: Path,
    threshold: float = CAPABLE_RATE,
) -> tuple[pd.Series, list[tuple]]:
    """Validation pass rate of every token alone (records in ``out``, resumable) and the
    pairs it selects. Reads validation questions only (as many as ``eval.n_single``, the
    test prompts of a single behavior, allow)."""
    ev = preset.eval
    val = evaluate(
        SteeredModel(bb, tokens),
        [TOKEN_ALONE],
        [(n,) for n in B.names()],
        selection_questions(preset.validation, ev.n_single),
        max_new_tokens=ev.max_new_tokens,
        batch_size=ev.batch_size,
        seed=ev.seed,
        records=out / "capable_val_records.jsonl",
    )
    val_rates = single_rate(val)
    selected = select_pairs(val_rates, threshold)
    log.info(
        "capable pairs (validation >= %.0f%%): %s", 100 * threshold, selected or "none"
    )
    return val_rates, selected


def study_records(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    out: Path,
    methods: Sequence[str | Method] = COMPOSITION_METHODS,
    threshold: float = CAPABLE_RATE,
    keep_recorded: Sequence[str] = (),
) -> tuple[pd.Series, list[tuple], pd.DataFrame, pd.DataFrame]:
    """The study's generations, resumable (records in ``out``): ``choose``, then every
    selected pair under ``methods`` and each of their behaviors alone on
    ``eval.n_capable`` test prompts (pairs in ``capable_records.jsonl``, singles in
    ``single_records.jsonl``). Returns (validation rates, selected pairs, pair records,
    single records); the records are empty when no pair qualified. Writes no report, so
    the book reads the committed records through it without changing a file.
    ``keep_recorded``: methods not in ``methods`` whose records in ``out`` join the
    returned ones as they are (``recorded``), so the baselines' committed rows are read
    without their weights."""
    ev = preset.eval
    val_rates, selected = choose(bb, tokens, preset, out, threshold)
    if not selected:
        return val_rates, selected, pd.DataFrame(), pd.DataFrame()
    sm = SteeredModel(bb, tokens)
    kw = dict(max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size, seed=ev.seed)
    test = P.load("test", limit=ev.n_capable)
    single_methods = list(dict.fromkeys(SINGLE_OF.get(_name(m), m) for m in methods))
    # one records file for every single-behavior generation: where the single-behavior
    # table asked the same (method, behavior, prompt) with the same vectors, its record
    # is reused
    singles = evaluate(
        sm,
        single_methods,
        sorted({(n,) for p in selected for n in p}),
        test,
        records=out / "single_records.jsonl",
        **kw,
    )
    pairs = evaluate(
        sm, methods, selected, test, records=out / "capable_records.jsonl", **kw
    )
    kept = [m for m in keep_recorded if m not in {_name(x) for x in methods}]
    if kept:
        old_pairs, old_singles = recorded(preset, out, selected, kept, bb.fingerprint)
        pairs = pd.concat([pairs, old_pairs], ignore_index=True)
        singles = pd.concat([singles, old_singles], ignore_index=True)
    return val_rates, selected, pairs, singles


def recorded(
    preset: Preset,
    out: Path,
    selected: Sequence[tuple],
    methods: Sequence[str],
    model: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pair and single records of ``methods`` that the study already made in
    ``out`` for ``selected``, with this model and the preset's prompts and generation
    settings; generates nothing. The book shows the baselines this way: their weights
    stay in the artifacts cache (not committed), and their generations do not depend on
    the tokens."""
    ev = preset.eval
    kw = dict(
        model=model,
        max_new_tokens=ev.max_new_tokens,
        seed=ev.seed,
        prompts=P.load("test", limit=ev.n_capable),
    )
    pairs = read_records(out / "capable_records.jsonl", **kw)
    singles = read_records(out / "single_records.jsonl", **kw)
    orders = {"+".join(o) for pair in selected for o in orderings(pair)}
    names = {n for pair in selected for n in pair}
    return (
        pairs[pairs["method"].isin(methods) & pairs["order"].isin(orders)],
        singles[singles["method"].isin(methods) & singles["order"].isin(names)],
    )


def run(
    bb: Backbone, tokens: SteeringTokens, preset: Preset, out: Path, **options
) -> dict[str, pd.DataFrame]:
    """The whole study, resumable: ``study_records`` (``options``: its ``methods``,
    ``threshold`` and ``keep_recorded``), then the report (``write_report``) and the
    retention figure. ``methods`` may include baselines (Method objects);
    ``keep_recorded``: a run without the baselines keeps their rows."""
    from steerlib.study import plots

    threshold = options.get("threshold", CAPABLE_RATE)
    val_rates, selected, pairs, singles = study_records(
        bb, tokens, preset, out, **options
    )
    if not selected:  # nothing to compose: say so, with the rates that decided it
        capable_reports.capable_selection(out, val_rates, selected, threshold)
        return {}
    report = write_report(pairs, singles, val_rates, selected, out, threshold)
    plots.save(plots.retention(report["retention"]), out / "capable_retention.png")
    return report


def _name(method: str | Method) -> str:
    return method if isinstance(method, str) else method.name
