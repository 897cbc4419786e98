"""Launched under torchrun by test_distributed.py (and imported by it for the single-process
side): train one vector on fixed examples whose answers differ in length, so that ranks
hold different shares of each batch's answer tokens."""
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from steerlib import distributed
from steerlib.backbone import tiny_backbone
from steerlib.config import TrainConfig
from steerlib.distill import Example, train_vectors
from steerlib.template import render

QUESTIONS = ["Why is the sky blue?", "How do bees make honey?", "What causes tides?", "Why do we sleep?",
             "What is rain?", "How do magnets work?"]
ANSWERS = ["Light.", "Bees collect nectar and store it in wax cells for winter.", "The moon pulls the sea.",
           "Sleep restores the body and the brain, and it helps memory form.", "Water falls.",
           "Moving charges make fields that attract iron."]
CONFIG = TrainConfig(steps=6, batch_size=4, lr=5e-2, checkpoint_every=2)


def examples(bb):
    return [Example(render(bb, q, (), "Answer in French."), render(bb, q, ("v",)),
                    tuple(bb.tokenizer(" " + a, add_special_tokens=False)["input_ids"]))
            for q, a in zip(QUESTIONS, ANSWERS)]


def train(checkpoint: Path | None = None, stop_after: int | None = None):
    """The vector and loss curve (the vector starts from zero)."""
    bb = tiny_backbone()
    vector = torch.zeros(bb.hidden_size)
    result = train_vectors(bb, {"v": vector}, examples(bb), CONFIG, checkpoint=checkpoint, progress=False,
                           stop_after=stop_after)
    return vector.detach(), result.losses


if __name__ == "__main__":
    out, ckpt, stop = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    distributed.init()
    vector, losses = train(Path(ckpt) if ckpt != "-" else None, int(stop) if stop != "-" else None)
    distributed.main_only(save_file, {"vector": vector, "losses": torch.tensor(losses)}, str(out))
