"""The study's tables and figures: what ``steerlib.study.pipeline`` leaves in a results
folder.

Each function takes a table the study computed and writes it, with a caption saying
what it shows and which command made it, as markdown (and CSV or PNG where the book
reads one). Nothing here trains or generates. Under torchrun only rank 0 writes.
"""

from __future__ import annotations

import json
import resource
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from steerlib import distributed
from steerlib.evaluation.records import read_records
from steerlib.evaluation.stats import format_metrics, interval_cells, per_ordering
from steerlib.model.hub import WEIGHTS_FILE
from steerlib.model.tokens import SteeringTokens
from steerlib.preset import Preset
from steerlib.storage import write_text
from steerlib.study.folders import preset_args
from steerlib.tasks.combos import orderings


def write_md(path: Path, table: pd.DataFrame, caption: str) -> None:
    """``caption``, a blank line, then ``table`` as a markdown table (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    distributed.main_only(
        write_text, path, f"{caption}\n\n{table.to_markdown(index=False)}\n"
    )


def markdown_or_none(table: pd.DataFrame, decimals: dict[str, int]) -> str:
    """``table`` rounded to ``decimals`` (column -> digits) as a markdown table, or
    "none" when it has no rows: a report section whose tests had nothing to compare."""
    return table.round(decimals).to_markdown(index=False) if len(table) else "none"


def teacher_compliance(
    out: Path, table: pd.DataFrame, model_id: str, preset: Preset
) -> None:
    ev = preset.eval
    write_md(
        out / "teacher_compliance.md",
        table,
        f"Instruction compliance (%) of {model_id}: {ev.n_single} test prompts per "
        "behavior, greedy, "
        f"{ev.max_new_tokens} new tokens. Made by `python -m steerlib "
        f"teacher-compliance {preset_args(preset)}`.",
    )


def single_behavior(out: Path, table: pd.DataFrame, preset: Preset) -> None:
    """The single-behavior table, its ``policy`` column naming what each token trained
    on."""
    write_md(
        out / "single_behavior.md",
        table.reset_index(),
        f"Pass rate (%) per behavior, {preset.eval.n_single} held-out prompts each, "
        "greedy, "
        f"{preset.eval.max_new_tokens} new tokens. token: the behavior token, trained "
        "on the target "
        f"policy named in the last column ({_budget(preset.stage1)} unless it says "
        "otherwise); "
        "filtered: the filtered-target token of the target comparison "
        "(targets_comparison.md), read "
        f"from its records (empty where fewer than {preset.stage1.targets.min_kept} "
        "targets passed). "
        f"Made by `python -m steerlib reproduce {preset_args(preset)}`.",
    )


def _budget(cfg) -> str:
    """How long a stage trains, in words."""
    if cfg.validation is None:
        return f"for {cfg.steps} steps"
    v = cfg.validation
    return (
        f"at most {cfg.steps} steps, keeping the step with the best pass rate on "
        f"{v.n_questions} validation "
        f"questions scored every {v.every} steps, stopping after {v.patience} scores "
        "without improvement"
    )


def tokens_folder(
    out: Path, tokens: SteeringTokens, single: pd.DataFrame, preset: Preset
) -> Path:
    """``tokens.safetensors`` and its model card (README.md), with each token's pass
    rate alone from the single-behavior table: ``out`` loads with
    ``SteeringTokens.from_pretrained``."""
    rates = {
        name: (rate, preset.eval.n_single)
        for name, rate in single["token"].dropna().items()
    }
    # the folder is this run's (keyed by its config), so its tokens are replaced; a card
    # someone edited there is kept (save_pretrained)
    distributed.main_only(tokens.save_file, out / WEIGHTS_FILE, overwrite=True)
    distributed.main_only(tokens.save_pretrained, out, pass_rates=rates)
    return out


def composition(out: Path, table: pd.DataFrame) -> None:
    """composition.csv and .md (the metrics table) and pair_heatmap.png (from
    records.jsonl)."""
    from steerlib.study import plots

    distributed.main_only(table.to_csv, out / "composition.csv", index=False)
    write_md(
        out / "composition.md",
        format_metrics(table),
        "Composition accuracy (%), mean over orderings [95% Wilson interval]; best "
        "ordering; order "
        "variance [bootstrap interval over combinations]; combinations and generations "
        "per cell. "
        "Baseline rows (caa, lm_steer, lora_dare) are their recorded generations when "
        "`reproduce` ran "
        "without --baselines; baselines.md says how they were trained.",
    )
    fig = plots.pair_heatmap(
        per_ordering(read_records(out / "records.jsonl")), method="and"
    )
    plots.save(fig, out / "pair_heatmap.png")


def timings(out: Path, seconds: dict[str, float]) -> dict[str, float]:
    """timings.json: the given seconds per stage, their total, and this process's peak
    memory. Returns what it wrote (``seconds`` itself is left as it was)."""
    written = {
        **seconds,
        "total": round(
            sum(v for k, v in seconds.items() if k != "stage1_token_seconds"), 1
        ),
        "peak_rss_gb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, 2
        ),
    }
    distributed.main_only(
        write_text, out / "timings.json", json.dumps(written, indent=1) + "\n"
    )
    return written


def baselines(out: Path, baselines: dict, name: str = "baselines") -> None:
    """<name>.md: training seconds per behavior and baseline, and each one's
    settings."""
    write_md(
        out / f"{name}.md",
        baseline_costs(baselines).reset_index(),
        "Seconds each baseline took to train per behavior, as recorded when it was "
        "trained (cached "
        "ones keep their first run's time); LM-Steer and LoRA train for the steps of "
        "the behavior's "
        "token. Settings: "
        + "; ".join(
            f"{m.name} {json.dumps(baseline_settings(m))}" for m in baselines.values()
        )
        + ".",
    )


def baseline_costs(baselines: dict) -> pd.DataFrame:
    """Training seconds per behavior (rows, plus a total) and baseline (columns)."""
    table = pd.DataFrame(
        {m.name: {n: m.info[n]["seconds"] for n in m.names} for m in baselines.values()}
    )
    table.loc["total"] = table.sum()
    return table.rename_axis("behavior")


def baseline_settings(method) -> dict:
    """What shapes a baseline's steering at generation: its settings, and how LoRA
    merges."""
    meta = method.metadata()
    return {k: v for k, v in meta["settings"].items() if k != "name"} | meta.get(
        "merge", {}
    )


def ablations(
    out: Path,
    protocol: str,
    table: pd.DataFrame,
    tests: pd.DataFrame,
    paper: pd.DataFrame,
) -> None:
    """ablations.md (the metrics per setting, the McNemar tests against the recipe and
    the comparison with the paper's numbers) and ablations.csv (the metrics, with each
    ``<and>`` setting's training seconds)."""
    distributed.main_only(write_text, out / "ablations.csv", table.to_csv(index=False))
    cols = [
        "ablation",
        "setting",
        "split",
        "mean_acc",
        "mean_lo",
        "mean_hi",
        "n",
        "train_s",
    ]
    lines = [
        f"Ablations of `<and>` ({protocol} protocol; `python -m steerlib ablations`). "
        "Mean accuracy (%) "
        "[95% Wilson]; `train_s`: seconds the setting's `<and>` took to train, as "
        "recorded when it was "
        "trained.",
        "",
        table[cols].round(1).to_markdown(index=False),
        "",
        "**Each setting against the recipe: exact McNemar on the same prompts and "
        "orderings**",
        "",
        markdown_or_none(tests, {"setting %": 1, "recipe %": 1, "p": 4}),
        "",
        "**Beside the paper** (setting minus recipe, points, 95% paired interval; the "
        "paper's "
        "difference is Qwen3-4B, unseen pairs)",
        "",
        markdown_or_none(paper, {"diff": 1, "lo": 1, "hi": 1, "p": 4, "paper diff": 1}),
        "",
    ]
    distributed.main_only(write_text, out / "ablations.md", "\n".join(lines))


def caa_sweep(path: Path, table: pd.DataFrame, n_questions: int) -> None:
    write_md(
        path,
        (table.set_index(["layer", "alpha"]) * 100).round(1).reset_index(),
        f"CAA pass rate (%) per single behavior on {n_questions} validation questions "
        "for every layer "
        "and alpha tried, best mean first; the first row is the setting the "
        "composition table uses.",
    )


def targets_comparison(
    out: Path,
    table: pd.DataFrame,
    preset: Preset,
    names: Sequence[str],
    policies: Sequence[str],
) -> None:
    """targets_comparison.csv (every row, with notes) and .md (behaviors x target
    policies)."""
    ev = preset.eval
    distributed.main_only(table.to_csv, out / "targets_comparison.csv", index=False)
    cells = [
        cell if n else "too few targets"
        for cell, n in zip(interval_cells(table, "pass_rate", "lo", "hi"), table["n"])
    ]
    wide = (
        table.assign(cell=cells)
        .pivot(index="behavior", columns="method", values="cell")
        .reindex(index=list(names), columns=["instruction", *policies])
    )
    write_md(
        out / "targets_comparison.md",
        wide.reset_index(),
        f"Pass rate (%) [95% Wilson interval], {ev.n_single} held-out prompts per "
        "cell, greedy, "
        f"{ev.max_new_tokens} new tokens: the model's instruction compliance, and a "
        "token per target "
        f"policy, all trained with the `{preset.name}` preset's stage-1 config. A "
        "language has no "
        "transform: its constructed targets are its filtered ones (constructed+ce: "
        "filtered plus the CE "
        f"term). 'too few targets': fewer than {preset.stage1.targets.min_kept} "
        "survived, nothing trained. "
        f"Made by `python -m steerlib targets-compare {preset_args(preset)}`; every "
        "row, with notes, is "
        f"in targets_comparison.csv.",
    )


def plan(
    preset: Preset,
    out: Path,
    with_baselines: bool | Sequence[str],
    combos: Sequence[tuple[str, ...]],
    methods: Sequence[str],
) -> None:
    """Print what ``reproduce`` is about to do (cached work included)."""
    from steerlib.tasks import behaviors as B

    ev = preset.eval
    n_orders = sum(len(orderings(c)) for c in combos)
    n_gen = (
        len(B.names()) * ev.n_single * 3
        + ev.n_single
        + sum(
            len(orderings(c)) * (ev.n_prompts if len(c) == 2 else ev.n_prompts_3)
            for c in combos
        )
        * len(methods)
    )
    print(
        f"steerlib reproduce --preset {preset.name} -> {out}\n"
        f"  stage 1: {len(B.names())} behavior tokens, batches of "
        f"{preset.stage1.batch_size}, "
        f"{_budget(preset.stage1)}"
        + "".join(f", <{n}> {k} steps" for n, k in preset.steps.items())
        + " (cached ones are loaded)\n"
        f"  stage 2: <and>, batches of {preset.stage2.batch_size}, "
        f"{_budget(preset.stage2)}\n"
        f"  evaluation: {len(B.names())} behaviors x {ev.n_single} prompts alone; "
        f"{len(combos)} combinations "
        f"({n_orders} orderings) x {len(methods)} methods; about {n_gen} generations "
        "of "
        f"<= {ev.max_new_tokens} tokens (cached ones are reused)"
        + (
            "\n  baselines: "
            f"{'all three' if with_baselines is True else ', '.join(with_baselines)}, "
            "for every "
            f"behavior"
            if with_baselines
            else ""
        )
    )
