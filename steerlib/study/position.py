"""The position study (issue 24; ours, beyond the paper): does a behavior token work
wherever it stands?

Stage 1 trains each behavior token right after the question. In a composition
``<b1><and><b2>`` the second token stands two slots later, and on the 135M model it
mostly stops working there. This module

1. **measures it from records** (no generation, ``steerlib.study.slots``): each behavior's
   own verdict split by the place its token (or instruction) stands in the ordering
   (``slots.slot_rates``), and the paper's order variance beside ours
   (``slots.order_variance``);
2. **selects on validation only** (``results/cpu/position/PLAN.md``, committed before
   any test generation): the pairs whose *instructions* pass both behaviors on
   validation questions (``instruction_filter``), and the variant of the search with the
   best joint pass rate on train questions that no target ever used
   (``selection_questions``, ``selection_records``).

Place 1 is the slot right after the question; for instructions, place 1 is the first
instruction of the two, the same ordering the tokens of that record follow.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import pandas as pd

from steerlib.config import Preset
from steerlib.errors import ConfigError
from steerlib.evaluation.evaluate import evaluate
from steerlib.evaluation.records import read_records, unique_records
from steerlib.evaluation.stats import wilson
from steerlib.model.backbone import Backbone
from steerlib.model.generate import METHODS, Method, SteeredModel, SteeringMethod
from steerlib.model.layout import Layout, SlotPositions
from steerlib.model.tokens import SteeringTokens
from steerlib.storage import write_text
from steerlib.study.slots import dashes, order_variance, slot_pivot, slot_rates
from steerlib.tasks import prompts as P
from steerlib.tasks.combos import split_of
from steerlib.train.compose import CAPABLE_RATE

log = logging.getLogger("steerlib")

SELECTION_QUESTIONS = 96
"""Questions of the selection set (issue 24: at least 96)."""
FILTER_QUESTIONS = 24
"""Questions per pair, in both orderings, on which the instruction filter is measured."""
INSTRUCTION_THRESHOLD = CAPABLE_RATE
"""A pair is studied when its instructions pass both behaviors on at least this share."""


# -- selection on validation only ------------------------------------------------------
def target_questions(preset: Preset) -> int:
    """How many of the train questions (from the first) stage 1 and stage 2 draw targets
    from: each asks ``max(batch_size, n_examples // 2)`` jobs, question ``i % len``."""
    return max(
        max(c.batch_size, c.n_examples // 2) for c in (preset.stage1, preset.stage2)
    )


def selection_questions(preset: Preset, n: int = SELECTION_QUESTIONS) -> list[str]:
    """The last ``n`` train questions, refused unless no stage-1 or stage-2 target used
    them: validation questions that are neither targets nor test prompts."""
    train = P.load("train")
    used = target_questions(preset)
    if used + n > len(train):
        raise ConfigError(
            f"only {len(train) - used} train questions are free of targets "
            f"({used} of {len(train)} serve as targets); the position study needs {n}"
        )
    return train[-n:]


def instruction_filter(
    sm: SteeredModel,
    preset: Preset,
    pairs: Sequence[tuple[str, str]],
    records: Path,
    n: int = FILTER_QUESTIONS,
    threshold: float = INSTRUCTION_THRESHOLD,
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """The instructions of each pair on the first ``n`` selection questions, both orderings
    (records resumable in ``records``), and ``filter_table`` of them. A token distilled
    from its instruction cannot learn what the instruction does not do."""
    ev = preset.eval
    recs = evaluate(
        sm,
        ["instruction"],
        pairs,
        selection_questions(preset)[:n],
        max_new_tokens=ev.max_new_tokens,
        batch_size=ev.batch_size,
        seed=ev.seed,
        records=records,
    )
    return filter_table(recs, pairs, threshold)


def filter_table(
    records: pd.DataFrame,
    pairs: Sequence[tuple[str, str]],
    threshold: float = INSTRUCTION_THRESHOLD,
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Per pair: each behavior's pass rate (%) and the joint rate under the instructions,
    and whether it is kept (each behavior >= ``threshold``); and the kept pairs."""
    rows = []
    for a, b in pairs:
        g = records[records["combo"] == f"{a}+{b}"]
        rate_a, rate_b = (
            100 * g["verdicts"].map(lambda v, name=name: v[name]).mean()
            for name in (a, b)
        )
        rows.append(
            {
                "pair": f"{a}+{b}",
                "a": a,
                "a %": rate_a,
                "b": b,
                "b %": rate_b,
                "joint %": 100 * g["ok"].mean(),
                "n": len(g),
                "kept": min(rate_a, rate_b) >= 100 * threshold,
            }
        )
    table = pd.DataFrame(rows)
    return table, [pair for pair, keep in zip(pairs, table["kept"]) if keep]


def selection_assignment(
    pairs: Sequence[tuple[str, str]], questions: Sequence[str]
) -> dict[tuple, list[str]]:
    """Each selection question asks one pair (in both orderings), the pairs taking turns."""
    return {pair: list(questions[i :: len(pairs)]) for i, pair in enumerate(pairs)}


def selection_records(
    sm: SteeredModel,
    preset: Preset,
    methods: Sequence[str | SteeringMethod],
    pairs: Sequence[tuple[str, str]],
    records: Path,
) -> pd.DataFrame:
    """Every method on the selection set (``selection_assignment``), resumable in ``records``."""
    ev = preset.eval
    parts = [
        evaluate(
            sm,
            methods,
            [pair],
            qs,
            max_new_tokens=ev.max_new_tokens,
            batch_size=ev.batch_size,
            seed=ev.seed,
            records=records,
        )
        for pair, qs in selection_assignment(pairs, selection_questions(preset)).items()
    ]
    return pd.concat(parts, ignore_index=True)


# -- the search --------------------------------------------------------------------------
LAYOUTS = (
    Layout(),
    Layout(SlotPositions.SHARED),
    Layout(SlotPositions.AND_OWN),
    Layout(SlotPositions.SHARED, isolate=True),
    Layout(SlotPositions.AND_OWN, isolate=True),
    Layout(isolate=True),
)
"""Family A of the search: today's tokens read in other places (no training)."""


def layout_method(layout: Layout, base: str = "and") -> Method:
    """``base`` ("and", "concat" or "hybrid") with the tokens read in ``layout``'s places,
    named ``base@layout`` (``and@shared+isolate``)."""
    return replace(METHODS[base], name=f"{base}@{layout.label}", layout=layout)


def screen_methods() -> list[Method]:
    """Family A as evaluated: ``<and>`` in every layout, and concatenation with shared,
    isolated slots (each token alone at its trained place, nothing joining them)."""
    return [layout_method(lay) for lay in LAYOUTS] + [
        layout_method(LAYOUTS[3], "concat")
    ]


def candidate_pairs(
    bb: Backbone, tokens: SteeringTokens, preset: Preset, out: Path
) -> list[tuple[str, str]]:
    """The capable pairs of the capable-pairs study, read from its committed validation records."""
    from steerlib.study import capable

    return [tuple(p) for p in capable.choose(bb, tokens, preset, out)[1]]


def seen_pairs(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return [p for p in pairs if split_of(p) == "seen-2"]


def selection_table(records: pd.DataFrame) -> pd.DataFrame:
    """Per method on the selection set: the joint pass rate (%) with its Wilson interval,
    the language/length/sentence tokens' pass rates in first and second place, and the
    order gap: the search's table (selection metric: ``joint``)."""
    rows = []
    slots = slot_rates(records, pool_categories=False)
    for method, g in unique_records(records).groupby("method", sort=False):
        k, n = int(g["ok"].sum()), len(g)
        lo, hi = wilson(k, n)
        s = slots[slots["method"] == method]
        first = (s["first"] * s["first_n"]).sum() / s["first_n"].sum()
        second = (s["second"] * s["second_n"]).sum() / s["second_n"].sum()
        rows.append(
            {
                "variant": method,
                "joint": 100 * k / n,
                "joint_lo": 100 * lo,
                "joint_hi": 100 * hi,
                "first": first,
                "second": second,
                "gap": first - second,
                "n": n,
            }
        )
    return (
        pd.DataFrame(rows)
        .sort_values("joint", ascending=False, kind="stable")
        .reset_index(drop=True)
    )


# -- the search driver -----------------------------------------------------------------
FILTER_RECORDS = "filter_records.jsonl"
SELECTION = "selection"
"""The folder of the selection records, one file per variant (so variants run side by side)."""
PACK_METHODS = ("and", "concat", "hybrid")
"""The winner's methods generated in the test run, each into ``test_<method>.jsonl``."""
COSTS = "costs.json"
RETRAINS = (
    {"temperature": 10.0, "ce_weight": 0.0},
    {"temperature": 2.0, "ce_weight": 0.0},
    {"temperature": 1.0, "ce_weight": 0.0},
    {"temperature": 2.0, "ce_weight": 1.0},
)
"""Family C in screening order: stage 2 retrained in the best A layout, the recipe's T = 10
first, then lower temperatures and a cross-entropy term on the pair targets."""


def kept_pairs(
    sm: SteeredModel, tokens: SteeringTokens, preset: Preset, out: Path
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """The instruction filter over the capable pairs (records in ``out/position``)."""
    folder = out / "position"
    return instruction_filter(
        SteeredModel(sm.backbone),
        preset,
        candidate_pairs(sm.backbone, tokens, preset, out),
        folder / FILTER_RECORDS,
    )


def _costs(folder: Path) -> dict:
    path = folder / COSTS
    return json.loads(path.read_text()) if path.is_file() else {}


def _note_cost(folder: Path, variant: str, kind: str, seconds: float) -> None:
    """Keep a variant's measured cost; a run that reused its records leaves the first figure."""
    costs = _costs(folder)
    costs.setdefault(variant, {})[kind] = round(seconds, 1)
    write_text(folder / COSTS, json.dumps(costs, indent=1, sort_keys=True) + "\n")


def selection_file(folder: Path, variant: str) -> Path:
    return folder / SELECTION / f"{variant.replace('|', '_')}.jsonl"


def screen(
    sm: SteeredModel,
    preset: Preset,
    methods: Sequence[Method],
    pairs: Sequence[tuple[str, str]],
    folder: Path,
) -> pd.DataFrame:
    """Each method on the selection set, one at a time (its generation time noted when it
    generated anything); returns all their selection records."""
    parts = []
    for method in methods:
        start = time.perf_counter()
        parts.append(
            selection_records(
                sm, preset, [method], pairs, selection_file(folder, method.name)
            )
        )
        seconds = time.perf_counter() - start
        if seconds > 30:  # it generated (reading records takes a second or two)
            _note_cost(folder, method.name, "eval_s", seconds)
        log.info("position screen: %s done (%.0f s)", method.name, seconds)
    return pd.concat(parts, ignore_index=True)


def retrained_name(
    layout: Layout, temperature: float, ce_weight: float, displace: int = 0
) -> str:
    return f"and@{layout.label}{_displaced(displace)}|T{temperature:g}|ce{ce_weight:g}"


def _displaced(displace: int) -> str:
    return f"|disp{displace}" if displace else ""


# -- family B: behavior tokens trained displaced ------------------------------------------
DISPLACE = 2
"""Family B: stage 1 with 0-2 frozen blank slots between the question and the token
(``TrainConfig.displace``), the most a token stands behind the question in a pair."""
DISPLACED_STAGE2 = RETRAINS[0]
"""Family B's ``<and>`` on top of the displaced tokens: the recipe's stage 2 (T = 10)."""
STAGE1_COSTS = "stage1{}"
"""The ``costs.json`` entry holding each displaced behavior's stage-1 seconds."""


def displaced_behaviors(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """The behaviors family B retrains: those of the kept seen pairs (the selection set's),
    then those only the kept unseen pairs use (needed for the test alone)."""
    seen = sorted({b for p in seen_pairs(pairs) for b in p})
    return seen + sorted({b for p in pairs for b in p} - set(seen))


def displace_jobs(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """``--stage displace`` jobs in order: each behavior's stage-1 run, then the two B
    variants screened on top of them (their names), so two processes can share the work."""
    return [f"<{b}>" for b in displaced_behaviors(pairs)] + [
        retrained_name(Layout(), **DISPLACED_STAGE2, displace=DISPLACE),
        f"concat@{Layout().label}{_displaced(DISPLACE)}",
    ]


def displaced_tokens(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    behaviors: Sequence[str],
    folder: Path,
    displace: int = DISPLACE,
) -> SteeringTokens:
    """``tokens`` with ``behaviors`` retrained at stage 1 (the preset's config for each, and
    ``displace``), cached and resumable like any stage-1 run; each training time noted."""
    from steerlib.train.distill import stage1_path, train_behavior_token

    out = tokens.copy()
    for name in behaviors:
        cfg = replace(preset.stage1_config(name), displace=displace)
        cached = stage1_path(bb, name, cfg).is_file()
        start = time.perf_counter()
        out = train_behavior_token(bb, name, cfg, tokens=out)
        if not cached:
            _note_cost(
                folder,
                STAGE1_COSTS.format(_displaced(displace)),
                name,
                time.perf_counter() - start,
            )
    return out


def retrain(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    layout: Layout,
    temperature: float,
    ce_weight: float,
    folder: Path,
    displace: int = 0,
) -> SteeringTokens:
    """Family C: ``<and>`` trained anew (stage 2 of the preset, cached and resumable) with
    the behavior tokens read in ``layout``, at distillation temperature ``temperature``
    and cross-entropy weight ``ce_weight``; its training time is noted."""
    from steerlib.train.compose import cached_composition_token, train_composition_token

    cfg = replace(preset.stage2, temperature=temperature, ce_weight=ce_weight)
    behaviors = tokens.subset([n for n in tokens.names if n != "and"]).with_layout(
        layout
    )
    name = retrained_name(layout, temperature, ce_weight, displace)
    if cached_composition_token(bb, behaviors, cfg) is None:
        start = time.perf_counter()
        trained = train_composition_token(bb, behaviors, cfg)
        _note_cost(folder, name, "train_s", time.perf_counter() - start)
        return trained
    return train_composition_token(bb, behaviors, cfg)


def search_table(records: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """``selection_table`` with each variant's family, configuration and measured costs
    (a family-B variant's training time includes its behaviors' stage-1 runs)."""
    table = selection_table(records)
    costs = _costs(folder)
    config = []
    for name in table["variant"]:
        base, layout, train = parse_variant(name)
        train = train or {}
        displace = train.get("displace", 0)
        stage2 = (
            f"T{train['temperature']:g} ce{train['ce_weight']:g}"
            if "temperature" in train
            else "shipped <and>"
            if base == "and"
            else "none"
        )
        seconds = [costs.get(name, {}).get("train_s")]
        if displace:
            seconds += costs.get(STAGE1_COSTS.format(_displaced(displace)), {}).values()
        seconds = [s for s in seconds if s is not None]
        config.append(
            {
                "family": "B" if displace else "C" if train else "A",
                "method": base,
                "layout": layout.label,
                "stage1": f"displaced 0-{displace}" if displace else "shipped",
                "stage2": stage2,
                "train_s": sum(seconds) if seconds else None,
                "eval_s": costs.get(name, {}).get("eval_s"),
            }
        )
    return pd.concat([pd.DataFrame(config), table], axis=1)


# -- the test run ----------------------------------------------------------------------
PLANNED_FAMILIES = ("A", "C")
"""The families PLAN.md screened before its test; family B came after (its amendment 1)
and cannot change the plan's winner."""


def winner(search: pd.DataFrame, families: Sequence[str] = PLANNED_FAMILIES) -> str:
    """The selection rule of PLAN.md: the highest joint rate, ties to the smaller order gap;
    it must beat today's layout by at least one generation, else today's layout wins.
    Only variants of ``families`` compete (a table without a family column: all)."""
    if "family" in search:
        search = search[search["family"].isin(families)]
    ranked = search.sort_values(
        ["joint", "gap"], ascending=[False, True], kind="stable"
    )
    reference = search.loc[search["variant"] == f"and@{Layout().label}"].iloc[0]
    best = ranked.iloc[0]
    one = 100 / reference["n"]
    return (
        best["variant"]
        if best["joint"] >= reference["joint"] + one - 1e-9
        else reference["variant"]
    )


TRAIN_PARTS = {
    "disp": ("displace", int),
    "T": ("temperature", float),
    "ce": ("ce_weight", float),
}
"""The training parts of a variant name after its layout: ``|disp2`` (family B), ``|T2|ce0``
(a retrained ``<and>``)."""


def parse_variant(name: str) -> tuple[str, Layout, dict | None]:
    """``"and@shared+isolate|T2|ce0"`` -> ("and", its Layout, {"temperature": 2, "ce_weight": 0});
    ``"concat@sequential|disp2"`` -> ("concat", Layout(), {"displace": 2}); None: no training."""
    base, _, rest = name.partition("@")
    label, *parts = rest.split("|")
    positions, _, isolate = label.partition("+")
    layout = Layout(SlotPositions(positions), isolate=bool(isolate))
    train = {}
    for part in parts:
        prefix = next(
            (p for p in TRAIN_PARTS if part.startswith(p) and part[len(p) :]), None
        )
        if prefix is None:
            raise ValueError(
                f"variant {name!r}: unknown part {part!r}; parts: disp<k>, T<t>, ce<w>"
            )
        key, kind = TRAIN_PARTS[prefix]
        train[key] = kind(part[len(prefix) :])
    return base, layout, train or None


def winner_tokens(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    name: str,
    pairs: Sequence[tuple[str, str]],
    folder: Path,
) -> SteeringTokens:
    """The winning variant's pack: the behavior tokens (shipped, or displaced for the kept
    pairs' behaviors), its ``<and>`` (shipped or retrained) and its layout in the pack's metadata."""
    _, layout, train = parse_variant(name)
    train = dict(train or {})
    if displace := train.pop("displace", 0):
        tokens = displaced_tokens(
            bb, tokens, preset, displaced_behaviors(pairs), folder, displace
        )
    if not train:
        return tokens.with_layout(layout)
    return retrain(
        bb,
        tokens,
        preset,
        layout,
        train["temperature"],
        train["ce_weight"],
        folder,
        displace,
    )


def test_records(
    bb: Backbone,
    tokens: SteeringTokens,
    pack: SteeringTokens,
    preset: Preset,
    pairs: Sequence[tuple[str, str]],
    out: Path,
    bases: Sequence[str] = PACK_METHODS,
) -> pd.DataFrame:
    """The test generations: today's ``<and>``, concatenation, instructions and hybrid from
    the capable-pairs study's records (same prompts and settings; nothing generated when they
    are committed), and the winner's ``<and>``, concatenation and hybrid in its layout
    (``position/test_<base>.jsonl``, one file per method so they can run side by side).
    Methods of the pack are named ``<base>@pack``."""
    ev = preset.eval
    kw = dict(max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size, seed=ev.seed)
    test = P.load("test", limit=ev.n_capable)
    today = evaluate(
        SteeredModel(bb, tokens),
        ["and", "concat", "instruction", "hybrid"],
        pairs,
        test,
        records=out / "capable_records.jsonl",
        **kw,
    )
    parts = [today]
    for base in bases:
        start = time.perf_counter()
        parts.append(
            evaluate(
                SteeredModel(bb, pack),
                [replace(METHODS[base], name=f"{base}@pack")],
                pairs,
                test,
                records=out / "position" / f"test_{base}.jsonl",
                **kw,
            )
        )
        if time.perf_counter() - start > 30:
            _note_cost(
                out / "position", f"{base}@pack", "test_s", time.perf_counter() - start
            )
    return pd.concat(parts, ignore_index=True)


def test_comparisons(winner_name: str) -> list[tuple[str, str]]:
    """The plan's one test (first: the winner's method in its pack vs today's ``<and>``),
    then the comparisons reported beside it."""
    best = f"{parse_variant(winner_name)[0]}@pack"
    other = "concat@pack" if best == "and@pack" else "and@pack"
    return [
        (best, "and"),
        (best, other),
        (best, "instruction"),
        ("hybrid@pack", "instruction"),
        ("and", "instruction"),
    ]


# -- stages (python -m steerlib position --stage ...) ------------------------------------
PACK = "pack"
"""The winner's token pack, under ``results/<preset>/position/``."""
FAMILY_B = "family_b"
"""Family B's vectors, under ``results/<preset>/position/``: the displaced behavior tokens
and the ``<and>`` trained on them, with their training records."""


def recorded_search(folder: Path) -> pd.DataFrame:
    """``search_table`` of every variant whose selection records are in ``folder``."""
    files = sorted((folder / SELECTION).glob("*.jsonl"))
    if not files:
        return pd.DataFrame()
    records = pd.concat([read_records(f) for f in files], ignore_index=True)
    return search_table(records, folder)


def best_layout(folder: Path) -> Layout:
    """The family-A layout with the best selection metric (``winner`` among A only)."""
    search = recorded_search(folder)
    a = search[(search["family"] == "A") & (search["method"] == "and")]
    return parse_variant(winner(a))[1]


def write_search(folder: Path, search: pd.DataFrame) -> None:
    """``search.csv`` (every variant's config, selection score with interval, cost) and its markdown."""
    write_text(folder / "search.csv", search.round(2).to_csv(index=False))
    lines = [
        "# The search: every variant on the selection set (validation only)",
        "",
        "Selection metric: joint pass rate (%) on 96 train questions no target used, each asking one "
        "kept seen pair in both orderings (PLAN.md). `first`/`second`: the behaviors' own pass rates by "
        "the place their token stands; `gap` = first - second.",
        "",
        search.round(1).to_markdown(index=False),
        "",
        f"Winner by the plan's rule: `{winner(search)}`",
        "",
    ]
    write_text(folder / "search.md", "\n".join(lines))


def test_singles(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    pairs: Sequence[tuple[str, str]],
    out: Path,
) -> pd.DataFrame:
    """Each kept behavior alone on the test prompts (the capable-pairs study's committed
    single records), also under the pack's method names: one token reads the same in every
    layout, so a layout's single rate is today's."""
    from steerlib.study import capable

    ev = preset.eval
    behaviors = sorted({(b,) for pair in pairs for b in pair})
    singles = evaluate(
        SteeredModel(bb, tokens),
        ["and", "hybrid", "instruction"],
        behaviors,
        P.load("test", limit=ev.n_capable),
        max_new_tokens=ev.max_new_tokens,
        batch_size=ev.batch_size,
        seed=ev.seed,
        records=out / "single_records.jsonl",
    )
    renamed = [
        singles[singles["method"] == capable.SINGLE_OF.get(base, base)].assign(
            method=f"{base}@pack"
        )
        for base in ("and", "concat", "hybrid")
    ]
    return pd.concat([singles, *renamed], ignore_index=True)


def test_report(
    pairs: pd.DataFrame, singles: pd.DataFrame, winner_name: str, folder: Path
) -> dict:
    """``test.md``: joint rates with intervals and efficiency, the plan's McNemar test and
    the comparisons beside it, per-place pass rates and order variance."""
    from steerlib.study import book, capable

    table = capable.joint_table(pairs, singles)
    tests = capable.paired_tests(pairs, test_comparisons(winner_name))
    slots = slot_rates(pairs)
    methods = [
        "and",
        "and@pack",
        "concat",
        "concat@pack",
        "instruction",
        "hybrid",
        "hybrid@pack",
    ]
    lines = [
        f"# The test run: `{winner_name}` (as `<base>@pack`) against today's methods",
        "",
        "Test prompts and orderings of the capable-pairs study (the first 30 test questions, both orderings), "
        "on the pairs kept by the instruction filter (PLAN.md). Today's `and`, `concat`, `instruction` and "
        "`hybrid` are the committed records of `capable_records.jsonl`.",
        "",
        "**Joint pass rate (%) [95% Wilson] and efficiency [95% bootstrap over prompts]**",
        "",
        table.round(2).to_markdown(index=False),
        "",
        "**Exact McNemar tests (the first row is the plan's one test)**",
        "",
        tests.round({"a_rate": 1, "b_rate": 1})
        .assign(p=[book.p_text(p) for p in tests["p"]])
        .to_markdown(index=False),
        "",
        "**Each behavior's own pass rate (%) by the place its token stands: first / second**",
        "",
        slot_pivot(slots, methods).to_markdown(index=False),
        "",
        "**Order variance (points) beside the paper's (Qwen3-8B; – where the paper has no such method)**",
        "",
        dashes(order_variance(pairs).round(1)).to_markdown(index=False),
        "",
    ]
    write_text(folder / "test.md", "\n".join(lines))
    write_text(folder / "test_slots.csv", slots.round(2).to_csv(index=False))
    return {"summary": table, "tests": tests, "slots": slots}


def run(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    out: Path,
    stage: str,
    variants: Sequence[int] | None = None,
) -> pd.DataFrame:
    """One stage of the study (PLAN.md), resumable, its tables written under ``out/position``:
    ``filter`` (the pairs), ``screen`` (family A, ``variants`` indexes ``screen_methods()``),
    ``retrain`` (family C in the best A layout, ``variants`` indexes ``RETRAINS``),
    ``displace`` (family B, ``variants`` indexes ``displace_jobs``: each kept behavior's
    displaced stage 1, then ``<and>`` on those tokens, saved with them under ``family_b/``,
    and their concatenation),
    ``search`` (the search table from records, no generation) and ``test`` (the winner's
    pack saved, its methods' test generations, ``variants`` indexing ``PACK_METHODS``, and
    ``test.md`` from every pack method recorded so far)."""
    folder = out / "position"
    table, kept = kept_pairs(SteeredModel(bb), tokens, preset, out)
    write_text(
        folder / "filter.md",
        "\n".join(
            [
                "# Instruction filter (validation questions; PLAN.md)",
                "",
                f"The instructions of each capable pair on {FILTER_QUESTIONS} selection questions, both orderings; "
                f"kept when each behavior passes >= {100 * INSTRUCTION_THRESHOLD:.0f}%.",
                "",
                table.round(1).to_markdown(index=False),
                "",
            ]
        ),
    )
    seen = seen_pairs(kept)
    sm = SteeredModel(bb, tokens)
    if stage == "filter":
        return table
    if not seen:
        raise ConfigError(
            f"no seen pair passed the instruction filter ({folder / 'filter.md'}); the search "
            f"needs at least one"
        )
    if stage == "screen":
        methods = screen_methods()
        screen(
            sm,
            preset,
            [
                methods[i]
                for i in (variants if variants is not None else range(len(methods)))
            ],
            seen,
            folder,
        )
    elif stage == "retrain":
        layout = best_layout(folder)
        for i in variants if variants is not None else range(len(RETRAINS)):
            trained = retrain(bb, tokens, preset, layout, **RETRAINS[i], folder=folder)
            name = retrained_name(layout, **RETRAINS[i])
            screen(
                SteeredModel(bb, trained),
                preset,
                [replace(METHODS["and"], name=name)],
                seen,
                folder,
            )
    elif stage == "displace":
        jobs = displace_jobs(kept)
        behaviors = displaced_behaviors(kept)
        for i in variants if variants is not None else range(len(jobs)):
            if i < len(behaviors):
                displaced_tokens(bb, tokens, preset, [behaviors[i]], folder)
                continue
            pack = winner_tokens(bb, tokens, preset, jobs[i], kept, folder)
            base = parse_variant(jobs[i])[0]
            if base == "and":
                pack.subset([*behaviors, "and"]).save_pretrained(
                    folder / FAMILY_B, repo_id="steerlib-position-family-b"
                )
            screen(
                SteeredModel(bb, pack),
                preset,
                [replace(METHODS[base], name=jobs[i])],
                seen,
                folder,
            )
    elif stage == "test":
        search = recorded_search(folder)
        name = winner(search)
        pack = winner_tokens(bb, tokens, preset, name, kept, folder)
        pack.save_pretrained(folder / PACK, repo_id="steerlib-position-pack")
        bases = (
            [PACK_METHODS[i] for i in variants]
            if variants is not None
            else PACK_METHODS
        )
        pairs = test_records(bb, tokens, pack, preset, kept, out, bases)
        made = [
            read_records(f)
            for b in PACK_METHODS
            if b not in bases and (f := folder / f"test_{b}.jsonl").is_file()
        ]
        pairs = pd.concat([pairs, *made], ignore_index=True)
        test_report(pairs, test_singles(bb, tokens, preset, kept, out), name, folder)
        return pairs
    elif stage != "search":
        raise ConfigError(
            f"unknown stage {stage!r}; stages: filter, screen, retrain, displace, search, test"
        )
    search = recorded_search(folder)
    if len(search):
        write_search(folder, search)
    return search
