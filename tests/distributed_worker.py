"""Launched under torchrun by test_distributed.py (and imported by it for the
single-process side). ``train``: one vector on fixed examples whose answers differ in
length, so that ranks hold different shares of each batch's answer tokens.
``generate``: teacher targets and evaluation records, each rank generating its share.
``validate``: one validation score, and how many answers this rank generated for it
with how many threads."""

import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from steerlib import distributed, launch
from steerlib.config import TargetConfig, TrainConfig, ValidationConfig
from steerlib.evaluation.evaluate import evaluate
from steerlib.model.backbone import tiny_backbone
from steerlib.model.generate import SteeredModel
from steerlib.model.template import render
from steerlib.model.tokens import SteeringTokens
from steerlib.train.loss import Example, train_vectors
from steerlib.train.targets import make_targets
from steerlib.train.validation import pass_rate

QUESTIONS = [
    "Why is the sky blue?",
    "How do bees make honey?",
    "What causes tides?",
    "Why do we sleep?",
    "What is rain?",
    "How do magnets work?",
]
ANSWERS = [
    "Light.",
    "Bees collect nectar and store it in wax cells for winter.",
    "The moon pulls the sea.",
    "Sleep restores the body and the brain, and it helps memory form.",
    "Water falls.",
    "Moving charges make fields that attract iron.",
]
CONFIG = TrainConfig(steps=6, batch_size=4, lr=5e-2, checkpoint_every=2)


def examples(bb):
    return [
        Example(
            render(bb, q, (), "Answer in French."),
            render(bb, q, ("v",)),
            tuple(bb.tokenizer(" " + a, add_special_tokens=False)["input_ids"]),
        )
        for q, a in zip(QUESTIONS, ANSWERS)
    ]


def train(checkpoint: Path | None = None, stop_after: int | None = None):
    """The vector and loss curve (the vector starts from zero)."""
    bb = tiny_backbone()
    vector = torch.zeros(bb.hidden_size)
    result = train_vectors(
        bb,
        {"v": vector},
        examples(bb),
        CONFIG,
        checkpoint=checkpoint,
        progress=False,
        stop_after=stop_after,
    )
    return vector.detach(), result.losses


def generate(records: Path) -> None:
    """Targets for two behaviors, then records of five methods on two pairs x 2
    orderings x 8 prompts (160 records, appended method by method)."""
    if distributed.active():  # the test kills a rank by its process id
        records.with_name(f"pid{distributed.rank()}").write_text(str(os.getpid()))
    bb = tiny_backbone()
    make_targets(
        bb,
        [(q, (n,)) for q in QUESTIONS for n in ("french", "upper_case")],
        TargetConfig(max_new_tokens=24),
        key="both",
    )
    tokens = SteeringTokens.for_backbone(bb)
    g = torch.Generator().manual_seed(0)
    for name in ("french", "upper_case", "sentences_1", "and"):
        tokens.set(name, torch.randn(bb.hidden_size, generator=g))
    evaluate(
        SteeredModel(bb, tokens),
        ["plain", "instruction", "concat", "and", "hybrid"],
        [("french", "upper_case"), ("upper_case", "sentences_1")],
        QUESTIONS + ANSWERS[:2],
        max_new_tokens=32,
        batch_size=4,
        records=records,
        progress=False,
    )


class CountingModel(SteeredModel):
    """A steered model that counts the prompts it answers and notes torch's thread
    count while it answers them."""

    answered = 0
    threads = None

    def generate(self, requests, *args, **kwargs):
        self.answered += len(requests)
        self.threads = torch.get_num_threads()
        return super().generate(requests, *args, **kwargs)


def validate(rounds: int = 1) -> dict:
    """A validation score of random ``<french>`` and ``<upper_case>`` vectors on the
    questions asked ``rounds`` times, the number of answers this process generated for
    it, and its thread count then and now."""
    bb = tiny_backbone()
    tokens = SteeringTokens.for_backbone(bb)
    g = torch.Generator().manual_seed(0)
    for name in ("french", "upper_case"):
        tokens.set(name, torch.randn(bb.hidden_size, generator=g))
    sm = CountingModel(bb, tokens)
    jobs = [
        (q, (name,), (name,))
        for q in QUESTIONS * rounds
        for name in ("french", "upper_case")
    ]
    rate = pass_rate(sm, jobs, ValidationConfig(max_new_tokens=12, batch_size=4))
    return {
        "rate": rate,
        "answered": sm.answered,
        "jobs": len(jobs),
        "threads_answering": sm.threads,
        "threads_after": torch.get_num_threads(),
    }


def main() -> None:
    distributed.init()
    if sys.argv[1] == "generate":
        generate(Path(sys.argv[2]))
        return
    if sys.argv[1] == "validate":  # validate FOLDER ROUNDS
        out = Path(sys.argv[2]) / f"rank{distributed.rank()}.json"
        out.write_text(json.dumps(validate(int(sys.argv[3]))))
        return
    out, ckpt, stop = (
        Path(sys.argv[2]),
        sys.argv[3],
        sys.argv[4],
    )  # train OUT CHECKPOINT|- STOP_AFTER|-
    vector, losses = train(
        Path(ckpt) if ckpt != "-" else None, int(stop) if stop != "-" else None
    )
    distributed.main_only(
        save_file, {"vector": vector, "losses": torch.tensor(losses)}, str(out)
    )


if __name__ == "__main__":
    try:  # as python -m steerlib does (cli.main)
        main()
    except Exception as err:
        if not launch.record_worker_failure(err):
            raise
        sys.exit(1)
