"""The paper's ablations of the composition token, on any backbone.

Each ablation trains ``<and>`` variants on top of the same frozen behavior tokens and
evaluates them on the same sampled combinations and prompts as the main table:

* ``no_and``: concatenated behavior tokens vs ``<and>`` (2-behavior, seen and unseen);
* ``init``: zero, " and", mean-of-tokens and random inits, each with and without L_orth;
* ``lambda``: the weight of L_orth in {0, 0.25, 0.5, 1.0};
* ``variant``: ``<and>`` trained on pairs ("2") vs pairs and triples ("2+3"), tested on
  3 behaviors and on 3 + json.

Every variant is cached (tokens under ``artifacts/``, generations as records), so the
tables can be rebuilt, and an interrupted run resumes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from . import prompts as P
from .backbone import Backbone
from .compose import train_composition_token
from .config import Init, Preset, Stage2Variant, replace
from .evaluate import evaluate, metrics, orderings, read_records
from .generate import METHODS, Method, SteeredModel
from .study import composition_combos
from .tokens import SteeringTokens


@dataclass(frozen=True)
class Variant:
    """One ``<and>`` training setting, named by the ablation it belongs to."""

    ablation: str
    setting: str
    init: Init = Init.ZERO
    orth_weight: float = 0.5
    variant: Stage2Variant = Stage2Variant.PAIRS
    method: str = "and"


def variants() -> list[Variant]:
    """Every setting the four ablations compare (shared settings appear in each)."""
    out = [Variant("no_and", "concatenation", method="concat"), Variant("no_and", "<and>")]
    for init in (Init.ZERO, Init.WORD, Init.MEAN, Init.RANDOM):
        for w in (0.0, 0.5):
            out.append(Variant("init", f"{init}, {'with' if w else 'without'} L_orth", init=init, orth_weight=w))
    out += [Variant("lambda", f"lambda={w}", orth_weight=w) for w in (0.0, 0.25, 0.5, 1.0)]
    out += [Variant("variant", f"trained on {v}", variant=v) for v in Stage2Variant]
    return out


ABLATIONS = ("no_and", "init", "lambda", "variant")


def label(v: Variant) -> str:
    """The method name a variant's generations are recorded under."""
    return f"{v.method}|{v.variant}|{v.init}|{v.orth_weight}"


def run_ablations(bb: Backbone, tokens: SteeringTokens, preset: Preset, out: Path,
                  which: Sequence[str] = ABLATIONS, progress: bool | None = None,
                  cached_only: bool = False) -> pd.DataFrame:
    """Train and evaluate every variant of the chosen ablations; one metrics row per split.

    ``tokens`` must hold the behavior tokens (an ``<and>`` in it is ignored). The
    "variant" ablation is tested on 3 behaviors and 3 + json, the others on pairs.
    ``cached_only`` trains and generates nothing: it reports the variants whose
    records are already complete in ``out`` (e.g. the committed ones) and skips the rest.
    """
    unknown = set(which) - set(ABLATIONS)
    if unknown:
        raise ValueError(f"unknown ablation(s) {sorted(unknown)}; choose from {ABLATIONS}")
    ev = preset.eval
    behaviors = tokens.subset([n for n in tokens.names if n != "and"])
    combos = composition_combos(preset)
    if cached_only:  # records of this model, these prompts and settings (the vectors are not at hand)
        done = read_records(out / "records.jsonl", model=bb.fingerprint, max_new_tokens=ev.max_new_tokens,
                            seed=ev.seed, prompts=P.load("test", limit=max(ev.n_prompts, ev.n_prompts_3)))
    rows = []
    for v in (v for v in variants() if v.ablation in which):
        k_test = (3, 4) if v.ablation == "variant" else (2,)
        test = [c for c in combos if len(c) in k_test]
        n_prompts = ev.n_prompts if k_test == (2,) else ev.n_prompts_3
        if cached_only:  # the records alone: the <and> variants' vectors need not be at hand
            expected = sum(len(orderings(c)) for c in test) * n_prompts
            wanted = {"+".join(o) for c in test for o in orderings(c)}
            recs = done[(done["method"] == label(v)) & done["order"].isin(wanted) & (done["prompt_id"] < n_prompts)]
            if len(recs) < expected:
                continue
        else:
            cfg = replace(preset.stage2, init=v.init, orth_weight=v.orth_weight)
            steer = (train_composition_token(bb, behaviors, cfg, variant=v.variant, progress=progress)
                     if v.method == "and" else behaviors)
            recs = evaluate(SteeredModel(bb, steer), [Method(label(v), joiner=METHODS[v.method].joiner)], test,
                            P.load("test", limit=n_prompts), max_new_tokens=ev.max_new_tokens,
                            batch_size=ev.batch_size, records=out / "records.jsonl", seed=ev.seed,
                            progress=progress)
        table = metrics(recs).drop(columns="method")
        rows.append(table.assign(ablation=v.ablation, setting=v.setting))
    if not rows:
        return pd.DataFrame(columns=["ablation", "setting", "split", "mean_acc", "mean_lo", "mean_hi", "best_acc",
                                     "best_lo", "best_hi", "order_var", "ov_lo", "ov_hi", "combos", "n"])
    table = pd.concat(rows, ignore_index=True)
    return table[["ablation", "setting", *[c for c in table.columns if c not in ("ablation", "setting")]]]
