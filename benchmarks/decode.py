"""Benchmark: steerlib's own decoding loop against
``model.generate(inputs_embeds=...)``.

``python -m benchmarks.decode [--model embedded] [--batch 64] [--new-tokens 128 256]
[--repeats 3] [--threads N] [--figure benchmarks/decode.png] [--out
benchmarks/decode.md]``

``python -m benchmarks.decode --from-logs LOG [LOG ...]`` makes the figure and the table
from the printed output of one or more runs instead (each run prints a line per timed
decode), e.g. of runs split over several processes, or stopped before the end.

Both sides decode the same left-padded batch of steered prompts (one batch of
``--batch`` evaluation-style prompts: a test question and one shipped behavior token,
the behaviors taken in turn, so answers range from a few words to the length cap),
greedily, with the same end tokens:

* ``loop``: the custom KV-cache loop that ``steerlib.model.generate`` used up to 0.1.0
  (kept here, as ``row_dropping_decode``, so this comparison can be rerun); it drops a
  row from the batch and the cache as soon as the row's answer ends;
* ``hf``: transformers' ``generate`` on ``inputs_embeds``, which computes every row
  until the longest answer ends.

The runs alternate (the order rotates each repeat), and each repeat times both sides
on identical work, so a ratio is measured within one run; the median of the per-repeat
ratios is reported. Each run's CPU time (``time.process_time``) is recorded beside its
wall time: on a shared machine the wall time mostly measures what the other processes
did, the CPU time (with ``--threads 1``) the work each side did. The machine's load
average is printed beside every run.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import logging
import os
import re
import statistics
import time
from pathlib import Path

import torch
from transformers import DynamicCache

from steerlib.model.backbone import Backbone, load_backbone
from steerlib.model.generate import Request, SteeredModel
from steerlib.model.packs import Pack
from steerlib.model.template import Batch, embed
from steerlib.model.tokens import SteeringTokens
from steerlib.tasks import behaviors as B
from steerlib.tasks import prompts as P


@torch.inference_mode()
def row_dropping_decode(
    bb: Backbone, batch: Batch, max_new_tokens: int, eos: set[int]
) -> list[list[int]]:
    """Greedy decoding with a KV cache that drops rows as their answers end.

    The loop ``steerlib.model.generate.decode`` ran before this benchmark (greedy path
    only). Each answer ends with its end token, or stops at ``max_new_tokens``.
    """
    model = bb.model
    cache = DynamicCache(config=model.config)
    cache_kw = (
        "cache"
        if "cache" in inspect.signature(model.forward).parameters
        else "past_key_values"
    )
    rows = torch.arange(batch.inputs_embeds.shape[0], device=bb.device)
    mask, pos = batch.attention_mask, batch.position_ids[:, -1:]
    out = model(
        inputs_embeds=batch.inputs_embeds,
        attention_mask=mask,
        position_ids=batch.position_ids,
        use_cache=True,
        logits_to_keep=1,
        **{cache_kw: cache},
    )
    results: list[list[int]] = [[] for _ in range(len(rows))]
    eos_t = torch.tensor(sorted(eos), device=bb.device)
    for step in range(max_new_tokens):
        nxt = out.logits[:, -1].float().argmax(-1)
        for r, t in zip(rows.tolist(), nxt.tolist()):
            results[r].append(t)
        live = ~torch.isin(nxt, eos_t)
        if step == max_new_tokens - 1 or not live.any():
            break
        if not live.all():
            keep = live.nonzero().squeeze(1)
            rows, nxt, mask, pos = rows[keep], nxt[keep], mask[keep], pos[keep]
            cache.batch_select_indices(keep)
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
        pos = pos + 1
        out = model(
            input_ids=nxt[:, None],
            attention_mask=mask,
            position_ids=pos,
            use_cache=True,
            **{cache_kw: cache},
        )
    return results


@torch.inference_mode()
def hf_decode(
    bb: Backbone, batch: Batch, max_new_tokens: int, eos: set[int]
) -> list[list[int]]:
    """``model.generate(inputs_embeds=...)``, greedy; each row cut after its first end
    token."""
    out = bb.model.generate(
        inputs_embeds=batch.inputs_embeds,
        attention_mask=batch.attention_mask,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=sorted(eos),
        pad_token_id=bb.tokenizer.pad_token_id,
    )
    return [cut_at_end(row, eos) for row in out.tolist()]


def cut_at_end(row: list[int], eos: set[int]) -> list[int]:
    """Tokens up to and including the first end token (all of them if none)."""
    for i, t in enumerate(row):
        if t in eos:
            return row[: i + 1]
    return row


def eval_batch(bb: Backbone, n: int) -> Batch:
    """``n`` test questions, each with one shipped behavior token (behaviors in
    turn)."""
    tokens = (
        SteeringTokens.pretrained(bb, Pack.PAPER)
        if bb.model_id.endswith("(GGUF Q4_1, embedded)")
        else None
    )
    if tokens is None:  # the tiny model: random vectors in the behaviors' slots
        tokens = SteeringTokens.for_backbone(bb)
        gen = torch.Generator().manual_seed(0)
        for name in B.names():
            tokens.set(name, torch.randn(bb.hidden_size, generator=gen))
    names = B.names()
    sm = SteeredModel(bb, tokens)
    questions = P.load("test", limit=n)
    rows = [
        sm.render(Request(q, (names[i % len(names)],))) for i, q in enumerate(questions)
    ]
    return embed(bb, rows, tokens)


def run(
    bb: Backbone, batch_size: int, new_tokens: list[int], repeats: int
) -> list[dict]:
    """Time both sides ``repeats`` times per length, alternating; one dict per timed
    run."""
    batch = eval_batch(bb, batch_size)
    eos = set(bb.eos_ids)
    sides = {"loop": row_dropping_decode, "hf": hf_decode}
    for fn in sides.values():  # warm-up: allocator, lazy init
        fn(bb, batch, 4, eos)
    runs = []
    for k in new_tokens:
        answers = {}
        for r in range(repeats):
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
            for side in order:
                gc.collect()
                load = os.getloadavg()[0]
                start, cpu = time.perf_counter(), time.process_time()
                out = sides[side](bb, batch, k, eos)
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
                answers[side] = out
                runs.append(
                    {
                        "side": side,
                        "new_tokens": k,
                        "repeat": r,
                        "seconds": seconds,
                        "cpu": cpu,
                        "tokens": sum(map(len, out)),
                        "load": load,
                    }
                )
                print(
                    f"  {side:>4} k={k} repeat {r}: {seconds:6.1f} s, "
                    f"{runs[-1]['tokens']} tokens, "
                    f"load {load:.1f}, cpu {cpu:.1f} s",
                    flush=True,
                )
            if r == 0:
                lengths = sorted(map(len, answers["loop"]))
                same = sum(a == b for a, b in zip(answers["loop"], answers["hf"]))
                runs.append(
                    {
                        "side": "answers",
                        "new_tokens": k,
                        "lengths": lengths,
                        "identical": same,
                        "rows": len(lengths),
                    }
                )
                print("ANSWERS " + json.dumps(runs[-1]), flush=True)
    return runs


_RUN_LINE = re.compile(
    r"^\s+(loop|hf) k=(\d+) repeat (\d+):\s+([\d.]+) s, (\d+) tokens, load ([\d.]+)"
    r"(?:, cpu ([\d.]+) s)?$"
)


def runs_from_logs(paths: list[Path]) -> list[dict]:
    """The runs printed in each log; repeats are numbered per log, so that a ratio
    always pairs two runs of one process."""
    runs = []
    for n, path in enumerate(paths):
        for line in path.read_text().splitlines():
            m = _RUN_LINE.match(line)
            if m:
                side, k, r, seconds, tokens, load, cpu = m.groups()
                runs.append(
                    {
                        "side": side,
                        "new_tokens": int(k),
                        "repeat": (n, int(r)),
                        "seconds": float(seconds),
                        "cpu": float(cpu) if cpu else None,
                        "tokens": int(tokens),
                        "load": float(load),
                    }
                )
            elif line.startswith("ANSWERS "):
                runs.append(json.loads(line.removeprefix("ANSWERS ")))
    return runs


def summary(runs: list[dict]) -> list[dict]:
    """Per length: median seconds per side, the median per-repeat ratio hf / loop,
    answers."""
    out = []
    for k in sorted({r["new_tokens"] for r in runs}):
        timed = [
            r for r in runs if r["new_tokens"] == k and r["side"] in ("loop", "hf")
        ]
        by = {
            s: {r["repeat"]: r for r in timed if r["side"] == s} for s in ("loop", "hf")
        }
        pairs = [
            i for i in by["loop"] if i in by["hf"]
        ]  # repeats with both sides timed
        if not pairs:
            continue
        ratios = [by["hf"][i]["seconds"] / by["loop"][i]["seconds"] for i in pairs]
        timed_cpu = [
            i for i in pairs if by["loop"][i].get("cpu") and by["hf"][i].get("cpu")
        ]
        cpu_ratios = [by["hf"][i]["cpu"] / by["loop"][i]["cpu"] for i in timed_cpu]
        ans = next(
            (r for r in runs if r["new_tokens"] == k and r["side"] == "answers"), None
        )
        lengths = ans["lengths"] if ans else None
        out.append(
            {
                "new_tokens": k,
                "loop_s": statistics.median(by["loop"][i]["seconds"] for i in pairs),
                "hf_s": statistics.median(by["hf"][i]["seconds"] for i in pairs),
                "ratio": statistics.median(ratios),
                "ratios": ratios,
                "cpu_ratios": cpu_ratios,
                "cpu_ratio": statistics.median(cpu_ratios) if cpu_ratios else None,
                "loop_cpu": statistics.median(by["loop"][i]["cpu"] for i in timed_cpu)
                if cpu_ratios
                else None,
                "hf_cpu": statistics.median(by["hf"][i]["cpu"] for i in timed_cpu)
                if cpu_ratios
                else None,
                "tokens": by["loop"][pairs[0]]["tokens"],
                "rows": ans["rows"] if ans else None,
                "identical": ans["identical"] if ans else None,
                "lengths": (
                    lengths[0],
                    statistics.median(lengths),
                    lengths[-1],
                    sum(n == k for n in lengths),
                )
                if lengths
                else None,
                "load": statistics.mean(
                    r["load"] for i in pairs for r in (by["loop"][i], by["hf"][i])
                ),
            }
        )
    return out


def figure(runs: list[dict], rows: list[dict], path: Path, title: str) -> None:
    """Seconds per batch, CPU time (left) and wall time (right): each run a point, the
    bar its side's median, the median ratio HF / loop above each pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    ks = [row["new_tokens"] for row in rows]
    for ax, measure, ratio, label in [
        (axes[0], "cpu", "cpu_ratio", "CPU seconds per batch"),
        (axes[1], "seconds", "ratio", "wall seconds per batch (shared machine)"),
    ]:
        top = 0.0
        for j, (side, name, colour) in enumerate(
            [
                ("loop", "row-dropping loop", "tab:blue"),
                ("hf", "HF generate(inputs_embeds)", "tab:orange"),
            ]
        ):
            for i, k in enumerate(ks):
                values = [
                    r[measure]
                    for r in runs
                    if r["side"] == side and r["new_tokens"] == k and r.get(measure)
                ]
                if not values:
                    continue
                x = i + (j - 0.5) * 0.3
                ax.bar(
                    x,
                    statistics.median(values),
                    width=0.28,
                    color=colour,
                    alpha=0.6,
                    label=name if i == 0 else None,
                )
                ax.scatter([x] * len(values), values, color=colour, s=12, zorder=3)
                top = max(top, *values)
        for i, row in enumerate(rows):
            if row[ratio]:
                ax.text(
                    i,
                    top * 1.05,
                    f"HF / loop = {row[ratio]:.2f}x",
                    ha="center",
                    fontsize=9,
                )
        ax.set_xticks(range(len(ks)), [f"max_new_tokens {k}" for k in ks])
        ax.set_ylabel(label)
        ax.set_ylim(0, top * 1.2 or 1)
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def markdown(rows: list[dict], header: str) -> str:
    lines = [
        header,
        "",
        "| max_new_tokens | loop CPU s | HF CPU s | HF / loop, CPU time (each repeat) "
        "| loop wall s | HF wall s | "
        "HF / loop, wall (median) | wall, each repeat | answer tokens (min / median / "
        "max, at cap) | "
        "identical answers | mean load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lengths = (
            "{} / {:g} / {}, {} of ".format(*r["lengths"]) + str(r["rows"])
            if r["lengths"]
            else f"{r['tokens']} tokens in all (lengths not logged)"
        )
        same = (
            f"{r['identical']} of {r['rows']}"
            if r["identical"] is not None
            else "not logged"
        )
        cpu = (
            f"{r['loop_cpu']:.1f} | {r['hf_cpu']:.1f} | "
            f"{', '.join(f'{x:.2f}' for x in r['cpu_ratios'])}"
            if r["cpu_ratio"]
            else "not measured | not measured | not measured"
        )
        lines.append(
            f"| {r['new_tokens']} | {cpu} | {r['loop_s']:.1f} | {r['hf_s']:.1f} | "
            f"{r['ratio']:.2f} | "
            f"{', '.join(f'{x:.2f}' for x in r['ratios'])} | {lengths} | {same} | "
            f"{r['load']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.decode", description=__doc__.splitlines()[0]
    )
    p.add_argument("--model", choices=["tiny", "embedded"], default="embedded")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--new-tokens", type=int, nargs="+", default=[128, 256])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's choice)",
    )
    p.add_argument("--figure", type=Path, default=Path("benchmarks/decode.png"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/decode.md"))
    p.add_argument(
        "--from-logs",
        type=Path,
        nargs="+",
        default=None,
        help="report the runs printed in these logs",
    )
    args = p.parse_args(argv)
    if args.from_logs:
        runs = runs_from_logs(args.from_logs)
        rows = summary(runs)
        figure(runs, rows, args.figure, f"embedded model, batch {args.batch}, greedy")
        text = markdown(
            rows,
            f"Decoding, batch {args.batch}, greedy: the runs printed in "
            f"{', '.join(p.name for p in args.from_logs)} (`python -m "
            "benchmarks.decode --from-logs`).",
        )
        args.out.write_text(text)
        print(text)
        return 0
    logging.getLogger("transformers").setLevel(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    bb = load_backbone(args.model)
    header = (
        f"Decoding, batch {args.batch}, greedy, {args.repeats} alternating repeats: "
        f"{bb.model_id} "
        f"({bb.device}, {bb.dtype}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), "
        f"{os.cpu_count()} CPU(s). Made by `python -m benchmarks.decode --model "
        f"{args.model} --batch "
        f"{args.batch} --new-tokens {' '.join(map(str, args.new_tokens))} --repeats "
        f"{args.repeats}"
        + (f" --threads {args.threads}" if args.threads else "")
        + "`."
    )
    runs = run(bb, args.batch, args.new_tokens, args.repeats)
    rows = summary(runs)
    figure(runs, rows, args.figure, f"{args.model} model, batch {args.batch}, greedy")
    text = markdown(rows, header)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
