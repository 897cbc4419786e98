"""The paper's ablations of the composition token, on any backbone.

Each ablation trains ``<and>`` settings on top of the same frozen behavior tokens and
evaluates them on the same sampled combinations and prompts as the main table:

* ``no_and``: concatenated behavior tokens vs ``<and>`` (2-behavior, seen and unseen);
* ``init``: zero, " and", mean-of-tokens and random inits, each with and without L_orth;
* ``lambda``: the weight of L_orth in {0, 0.25, 0.5, 1.0};
* ``combos``: ``<and>`` trained on pairs ("2") vs pairs and triples ("2+3")
  (``Stage2Combos``), tested on 3 behaviors and on 3 + json.

Where they are tested is a ``Protocol``: the paper's (``paper_protocol``: the main
table's sampled combinations and prompts), or the capable pairs of the composition study
(``capable_protocol``: pairs chosen on validation data, ``eval.n_ablation`` test prompts
per ordering, and the study's own records for the recipe and for concatenation, so those
are generated once for both). ``paired_vs_recipe`` compares each setting with the
paper's recipe (zero init, lambda 0.5, pairs) by exact McNemar tests on identical
prompt-orderings.

Every setting is cached (tokens under ``artifacts/``, generations as records), so the
tables can be rebuilt, and an interrupted run resumes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from steerlib.config import Init, Stage2Combos
from steerlib.errors import ConfigError
from steerlib.evaluation.evaluate import evaluate
from steerlib.evaluation.records import read_records
from steerlib.evaluation.stats import METRIC_COLUMNS, metrics
from steerlib.model.backbone import Backbone
from steerlib.model.generate import SteeredModel
from steerlib.model.methods import METHODS, Method
from steerlib.model.tokens import SteeringTokens
from steerlib.preset import Preset
from steerlib.tasks import prompts as P
from steerlib.tasks.combos import orderings, sample_combos
from steerlib.train.compose import cached_composition_token, train_composition_token


@dataclass(frozen=True)
class Setting:
    """One ``<and>`` training setting, named by the ablation it belongs to (the ablation
    named "combos" compares what ``<and>`` trains on)."""

    ablation: str
    setting: str
    init: Init = Init.ZERO
    orth_weight: float = 0.5
    combos: Stage2Combos = Stage2Combos.PAIRS
    method: str = "and"


def settings() -> list[Setting]:
    """Every setting the four ablations compare (shared settings appear in each)."""
    out = [
        Setting("no_and", "concatenation", method="concat"),
        Setting("no_and", "<and>"),
    ]
    for init in (Init.ZERO, Init.WORD, Init.MEAN, Init.RANDOM):
        for w in (0.0, 0.5):
            out.append(
                Setting(
                    "init",
                    f"{init}, {'with' if w else 'without'} L_orth",
                    init=init,
                    orth_weight=w,
                )
            )
    out += [
        Setting("lambda", f"lambda={w}", orth_weight=w) for w in (0.0, 0.25, 0.5, 1.0)
    ]
    out += [Setting("combos", f"trained on {c}", combos=c) for c in Stage2Combos]
    return out


ABLATIONS = ("no_and", "init", "lambda", "combos")
RECIPE = {
    "no_and": "<and>",
    "init": "zero, with L_orth",
    "lambda": "lambda=0.5",
    "combos": "trained on 2",
}
"""Per ablation, the setting that is the paper's recipe (what every other one is tested
against)."""


def label(v: Setting) -> str:
    """The method name a setting's generations are recorded under."""
    return f"{v.method}|{v.combos}|{v.init}|{v.orth_weight}"


@dataclass(frozen=True)
class Protocol:
    """Where the ablations are tested: the combinations, prompts per ordering and
    records file of the 2-behavior ablations (``pairs``) and of the "combos" ablation
    (``triples``)."""

    name: str
    pairs: tuple[tuple[str, ...], ...]
    triples: tuple[tuple[str, ...], ...]
    n_pairs: int
    n_triples: int
    records: str = "records.jsonl"
    study_labels: bool = False
    """Record the recipe and concatenation under the composition study's method names
    ("and", "concat"): with the shipped ``<and>`` (the recipe under this preset) they
    are the very generations the capable-pairs study made, so they are not made
    twice."""

    def label(self, v: Setting, recipe: bool) -> str:
        """The records label of ``v`` (``recipe``: its ``<and>`` is the preset's
        own)."""
        if self.study_labels and (v.method == "concat" or recipe):
            return v.method
        return label(v)


def paper_protocol(preset: Preset) -> Protocol:
    """The main composition table's sampled combinations and prompts (paper's
    protocol)."""
    combos = preset.composition_combos()
    return Protocol(
        "paper",
        tuple(c for c in combos if len(c) == 2),
        tuple(c for c in combos if len(c) > 2),
        preset.eval.n_prompts,
        preset.eval.n_prompts_3,
    )


def capable_protocol(preset: Preset, pairs: Sequence[tuple[str, str]]) -> Protocol:
    """The capable pairs (``capable.choose``) on ``eval.n_ablation`` prompts per
    ordering (default ``eval.n_capable``: the study's first prompts, so every test is
    paired); the "combos" ablation on triples whose three pairs are all capable (at
    most ``eval.n_combos_3`` per split, drawn like the main table's), on as many
    prompts."""
    chosen = {frozenset(p) for p in pairs}

    def capable_triple(c: tuple[str, ...]) -> bool:
        return all(frozenset(p) in chosen for p in itertools.combinations(c, 2))

    triples = [
        t
        for split in ("seen", "unseen")
        for t in sample_combos(
            3, split, preset.eval.n_combos_3, preset.eval.seed, keep=capable_triple
        )
    ]
    n = preset.eval.n_ablation or preset.eval.n_capable
    return Protocol(
        "capable",
        tuple(tuple(p) for p in pairs),
        tuple(triples),
        n,
        n,
        records="capable_records.jsonl",
        study_labels=True,
    )


def ablation_setup(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    capable_pairs: bool,
    results: Path | None = None,
) -> tuple[Protocol, Path]:
    """The protocol and the folder its records live in: the capable pairs
    (``capable.choose``, validation data only) and the results folder itself, whose
    ``capable_records.jsonl`` the composition study shares; else the paper's protocol
    and ``<results>/ablations``. Falls back to the paper's when no pair is capable."""
    from steerlib.study import capable
    from steerlib.study.folders import results_dir

    results = results or results_dir(preset, bb)
    if capable_pairs:
        _, selected = capable.choose(bb, tokens, preset, results)
        if selected:
            return capable_protocol(preset, selected), results
    return paper_protocol(preset), results / "ablations"


def run_ablations(
    bb: Backbone,
    tokens: SteeringTokens,
    preset: Preset,
    out: Path,
    which: Sequence[str] = ABLATIONS,
    progress: bool | None = None,
    cached_only: bool = False,
    protocol: Protocol | None = None,
) -> pd.DataFrame:
    """Train and evaluate every setting of the chosen ablations; one metrics row per
    split.

    ``tokens`` must hold the behavior tokens (an ``<and>`` in it is ignored). The
    "combos" ablation is tested on ``protocol.triples``, the others on its pairs
    (default: ``paper_protocol``); records go to ``out / protocol.records``.
    ``cached_only`` trains and generates nothing: it reports the settings whose
    records are already complete in ``out`` (e.g. the committed ones) and skips the
    rest; ``train_s`` (the seconds a setting's ``<and>`` took to train) is then read
    from the setting's vector where there is one. Each ``<and>`` setting at hand
    (trained, or in the artifacts cache) is saved once to
    ``out/ablation_tokens/<protocol>-<label>.safetensors``, to be committed with the
    records.
    """
    unknown = set(which) - set(ABLATIONS)
    if unknown:
        raise ConfigError(
            f"unknown ablation(s) {sorted(unknown)}; choose from {ABLATIONS}"
        )
    ev = preset.eval
    protocol = protocol or paper_protocol(preset)
    behaviors = tokens.subset([n for n in tokens.names if n != "and"])
    path = out / protocol.records
    # records of this model, these prompts and settings (the vectors are not at hand)
    if cached_only:
        done = read_records(
            path,
            model=bb.fingerprint,
            max_new_tokens=ev.max_new_tokens,
            seed=ev.seed,
            prompts=P.load("test", limit=max(protocol.n_pairs, protocol.n_triples)),
        )
    rows = []
    for v in (v for v in settings() if v.ablation in which):
        test, n_prompts = (
            (protocol.triples, protocol.n_triples)
            if v.ablation == "combos"
            else (protocol.pairs, protocol.n_pairs)
        )
        cfg = replace(preset.stage2, init=v.init, orth_weight=v.orth_weight)
        name = protocol.label(
            v,
            recipe=v.method == "and"
            and cfg == preset.stage2
            and v.combos == Stage2Combos.PAIRS,
        )
        if not test:
            continue
        if (
            cached_only
        ):  # the records alone: the <and> settings' vectors need not be at hand
            expected = sum(len(orderings(c)) for c in test) * n_prompts
            wanted = {"+".join(o) for c in test for o in orderings(c)}
            recs = done[
                (done["method"] == name)
                & done["order"].isin(wanted)
                & (done["prompt_id"] < n_prompts)
            ]
            if len(recs) < expected:
                continue
        else:
            steer = (
                train_composition_token(
                    bb, behaviors, cfg, combos=v.combos, progress=progress
                )
                if v.method == "and"
                else behaviors
            )
            recs = evaluate(
                SteeredModel(bb, steer),
                [Method(name, joiner=METHODS[v.method].joiner)],
                test,
                P.load("test", limit=n_prompts),
                max_new_tokens=ev.max_new_tokens,
                batch_size=ev.batch_size,
                records=path,
                seed=ev.seed,
                progress=progress,
            )
        table = metrics(recs.assign(method=label(v))).drop(columns="method")
        trained = None
        if (
            v.method == "and"
        ):  # the setting's vector, saved next to the records to be committed with them
            vector = (
                out
                / "ablation_tokens"
                / f"{protocol.name}-{label(v).replace('|', '_')}.safetensors"
            )
            if not cached_only:
                trained = steer
            elif vector.is_file():
                trained = SteeringTokens.load_file(vector, bb)
            else:
                trained = cached_composition_token(bb, behaviors, cfg, combos=v.combos)
            if trained is not None and not vector.is_file():
                trained.subset(["and"]).save_file(vector)
        seconds = trained.info["and"].get("seconds") if trained is not None else None
        rows.append(
            table.assign(
                ablation=v.ablation, setting=v.setting, label=name, train_s=seconds
            )
        )
    if not rows:  # the table's columns, with no setting to fill them
        metric = [c for c in METRIC_COLUMNS if c != "method"]
        return pd.DataFrame(
            columns=["ablation", "setting", *metric, "label", "train_s"]
        )
    table = pd.concat(rows, ignore_index=True)
    return table[
        [
            "ablation",
            "setting",
            *[c for c in table.columns if c not in ("ablation", "setting")],
        ]
    ]
