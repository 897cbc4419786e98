"""llama.cpp as a steered-generation engine, against steerlib's fp32 path (issue 27,
item 3).

``python -m benchmarks.llama_cpp [--prompts 64] [--new-tokens 128] [--threads 2]``

llama.cpp (through ``llama-cpp-python``, an optional extra built from source) runs the
embedded GGUF file as it is: Q4_1 weights and its own CPU kernels, where steerlib runs
the de-quantised fp32 weights through torch. A steering token is one row of input
embeddings, so a steered prompt enters llama.cpp's batch API as embeddings
(``llama_batch.embd``): the rows are exactly those steerlib feeds its own model
(``SteeredModel.prompt_embeds``), one sequence per prompt, so llama.cpp never needs to
know what a steering token is. Answers are then decoded greedily, one token per live
sequence per ``llama_decode`` call, every sequence in the same call.

Both engines answer the same evaluation-style requests (``generation.workload``: test
questions through the five prompt methods, shipped tokens), and the report gives their
tokens per second in wall time, run one after the other in this process, and how far
they agree: rows with identical answers, the mean share of each answer's tokens before
the first difference, and each engine's pass rate of the requests' behaviors (the
verifiers' verdicts), since Q4_1 arithmetic is not fp32 arithmetic and cannot be
expected to give the same tokens everywhere.
"""

from __future__ import annotations

import argparse
import ctypes
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from steerlib.model.backbone import Backbone, load_backbone
from steerlib.model.generate import SteeredModel
from steerlib.model.gguf import embedded_gguf_path
from steerlib.tasks import behaviors as B

from .generation import answer_length, steered_model, workload, workload_names


def _require_llama_cpp():
    try:
        import llama_cpp
    except ImportError:
        raise SystemExit(
            "llama-cpp-python is not installed: `pip install -e '.[llama-cpp]'` builds "
            "it from "
            "source (minutes; an optional extra, never needed by steerlib itself)"
        ) from None
    return llama_cpp


class LlamaCppEngine:
    """Greedy decoding of prompt embeddings with llama.cpp, many sequences at once."""

    def __init__(
        self,
        gguf: str,
        n_seq: int,
        n_ctx_per_seq: int,
        threads: int,
        n_batch: int = 512,
    ) -> None:
        lc = self.lc = _require_llama_cpp()
        lc.llama_backend_init()
        self.model = lc.llama_model_load_from_file(
            gguf.encode(), lc.llama_model_default_params()
        )
        params = lc.llama_context_default_params()
        params.n_ctx = n_seq * n_ctx_per_seq
        params.n_batch = params.n_ubatch = n_batch
        params.n_seq_max = n_seq
        params.n_threads = params.n_threads_batch = threads
        self.ctx = lc.llama_init_from_model(self.model, params)
        self.n_embd = lc.llama_model_n_embd(self.model)
        self.n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(self.model))
        self.n_batch = n_batch

    def _clear(self) -> None:
        self.lc.llama_memory_clear(self.lc.llama_get_memory(self.ctx), True)

    def _decode(self, batch) -> None:
        if self.lc.llama_decode(self.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    def _logits(self, n_out: int) -> np.ndarray:
        ptr = self.lc.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(ptr, shape=(n_out, self.n_vocab))

    def prefill(self, prompts: Sequence[np.ndarray]) -> np.ndarray:
        """Feed each prompt's embedding rows as its own sequence; the logits after the
        last row of each prompt, in order (prompts are cut into calls of ``n_batch``
        rows)."""
        lc = self.lc
        self._clear()
        entries = [
            (seq, pos, row)
            for seq, p in enumerate(prompts)
            for pos, row in enumerate(p)
        ]
        out = np.empty((len(prompts), self.n_vocab), dtype=np.float32)
        batch = lc.llama_batch_init(self.n_batch, self.n_embd, 1)
        try:
            for start in range(0, len(entries), self.n_batch):
                chunk = entries[start : start + self.n_batch]
                rows = np.ascontiguousarray(
                    np.stack([row for _, _, row in chunk]), dtype=np.float32
                )
                ctypes.memmove(batch.embd, rows.ctypes.data, rows.nbytes)
                wanted = []
                for i, (seq, pos, _) in enumerate(chunk):
                    batch.pos[i], batch.n_seq_id[i], batch.seq_id[i][0] = pos, 1, seq
                    batch.logits[i] = pos == len(prompts[seq]) - 1
                    if batch.logits[i]:
                        wanted.append(seq)
                batch.n_tokens = len(chunk)
                self._decode(batch)
                if wanted:
                    out[wanted] = self._logits(len(wanted))
        finally:
            lc.llama_batch_free(batch)
        return out

    def greedy(
        self, prompts: Sequence[np.ndarray], max_new_tokens: int, eos: set[int]
    ) -> list[list[int]]:
        """Greedy answers, each ending at its first end token (kept) or at the cap."""
        lc = self.lc
        answers: list[list[int]] = [
            [int(t)] for t in self.prefill(prompts).argmax(axis=1)
        ]
        batch = lc.llama_batch_init(len(prompts), 0, 1)
        try:
            while True:
                live = [
                    s
                    for s, a in enumerate(answers)
                    if len(a) < max_new_tokens and a[-1] not in eos
                ]
                if not live:
                    return answers
                for i, seq in enumerate(live):
                    batch.token[i], batch.pos[i] = (
                        answers[seq][-1],
                        len(prompts[seq]) + len(answers[seq]) - 1,
                    )
                    batch.n_seq_id[i], batch.seq_id[i][0], batch.logits[i] = (
                        1,
                        seq,
                        True,
                    )
                batch.n_tokens = len(live)
                self._decode(batch)
                for seq, t in zip(live, self._logits(len(live)).argmax(axis=1)):
                    answers[seq].append(int(t))
        finally:
            lc.llama_batch_free(batch)


@dataclass(frozen=True)
class Run:
    answers: list[list[int]]
    tokens: int
    wall: float


def pass_rate(bb: Backbone, asked: Sequence[tuple[str, ...] | None], answers) -> float:
    """Share of (request, behavior) verdicts that pass, over the requests that ask for
    behaviors (``None``: a plain request, not counted)."""
    verdicts = [
        v
        for names, a in zip(asked, answers)
        if names is not None
        for v in B.verify_all(
            bb.tokenizer.decode(a, skip_special_tokens=True), names
        ).values()
    ]
    return sum(verdicts) / max(len(verdicts), 1)


def agreement(a: Sequence[list[int]], b: Sequence[list[int]]) -> tuple[int, float]:
    """Rows with identical answers, and the mean share of tokens before the first
    difference."""
    same, shares = 0, []
    for x, y in zip(a, b):
        same += x == y
        n = next(
            (i for i, (s, t) in enumerate(zip(x, y)) if s != t), min(len(x), len(y))
        )
        shares.append(n / max(len(x), len(y)))
    return same, float(np.mean(shares))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.llama_cpp", description=__doc__.split("\n")[0]
    )
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--batch",
        type=int,
        default=64,
        help="steerlib's batch size (the cpu preset's evaluation)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    bb = load_backbone()
    sm: SteeredModel = steered_model(bb)
    reqs = workload(args.prompts)
    asked = [
        None if method == "plain" else names
        for method, names in workload_names(len(reqs))
    ]
    eos = set(bb.eos_ids)
    embeds = [e.numpy() for e in sm.prompt_embeds(reqs)]
    per_seq = max(len(e) for e in embeds) + args.new_tokens + 8
    engine = LlamaCppEngine(str(embedded_gguf_path()), len(reqs), per_seq, args.threads)
    engine.greedy(embeds[:4], 4, eos)  # warm up both engines
    sm.generate_ids(reqs[:4], max_new_tokens=4, batch_size=args.batch)

    def timed(fn) -> Run:
        start = time.perf_counter()
        answers = fn()
        wall = time.perf_counter() - start
        return Run(answers, sum(answer_length(a, eos) for a in answers), wall)

    ours = timed(
        lambda: sm.generate_ids(
            reqs, max_new_tokens=args.new_tokens, batch_size=args.batch
        )
    )
    llama = timed(lambda: engine.greedy(embeds, args.new_tokens, eos))
    same, share = agreement(ours.answers, llama.answers)
    print(
        f"{len(reqs)} prompts, greedy, max_new_tokens {args.new_tokens}, "
        f"{args.threads} thread(s)"
    )
    print(
        "| engine | tok/s (wall) | wall s | tokens | behaviors passed "
        "|\n|---|---|---|---|---|"
    )
    for name, run in (
        (f"steerlib (fp32 torch, batch {args.batch})", ours),
        ("llama.cpp (Q4_1, all sequences)", llama),
    ):
        print(
            f"| {name} | {run.tokens / run.wall:,.1f} | {run.wall:,.1f} | {run.tokens} "
            "| "
            f"{100 * pass_rate(bb, asked, run.answers):.1f}% |"
        )
    print(
        "\nllama.cpp / steerlib tok/s: "
        f"{(llama.tokens / llama.wall) / (ours.tokens / ours.wall):.2f}"
    )
    print(
        f"identical answers: {same} of {len(reqs)}; mean share of tokens before the "
        f"first difference: {share:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
