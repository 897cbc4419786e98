"""The optional llama.cpp engine of ``benchmarks.llama_cpp``: skipped unless
``llama-cpp-python`` is installed (an optional extra; ``make test`` never installs it).

What must hold whatever the quantisation does: steered prompts fed as embeddings reach
llama.cpp's model as the prompt they are (its next-token distribution agrees with the
fp32 model's), and prompts decoded together equal the same prompts decoded one by one.
"""

import numpy as np
import pytest
import torch

pytest.importorskip("llama_cpp")

from benchmarks.llama_cpp import LlamaCppEngine, agreement
from steerlib.model.generate import Request, SteeredModel
from steerlib.model.gguf import embedded_gguf_path
from steerlib.model.tokens import SteeringTokens
from steerlib.tasks import prompts as P


@pytest.fixture(scope="module")
def steered(embedded):
    sm = SteeredModel(embedded, SteeringTokens.pretrained(embedded))
    questions = P.load("test")[:3]
    reqs = [
        Request(questions[0]),
        Request(questions[1], slots=("french",)),
        Request(questions[2], slots=("upper_case", "and", "sentences_1")),
    ]
    return sm, reqs, [e.numpy() for e in sm.prompt_embeds(reqs)]


@pytest.fixture(scope="module")
def engine(steered):
    _, _, embeds = steered
    return LlamaCppEngine(
        str(embedded_gguf_path()), len(embeds), max(map(len, embeds)) + 16, threads=1
    )


def test_embedding_input_reads_as_the_prompt(steered, engine):
    sm, _, embeds = steered
    theirs = engine.prefill(embeds)
    with torch.inference_mode():
        ours = np.stack(
            [
                sm.backbone.model(inputs_embeds=torch.from_numpy(e)[None])
                .logits[0, -1]
                .numpy()
                for e in embeds
            ]
        )
    assert (theirs.argmax(axis=1) == ours.argmax(axis=1)).all()
    for a, b in zip(theirs, ours):
        assert np.corrcoef(a, b)[0, 1] > 0.99


def test_prompts_decoded_together_equal_one_by_one(steered, engine):
    _, _, embeds = steered
    eos = set(steered[0].backbone.eos_ids)
    together = engine.greedy(embeds, 8, eos)
    alone = [engine.greedy([e], 8, eos)[0] for e in embeds]
    assert together == alone


def test_agreement_counts_the_common_prefix():
    assert agreement([[1, 2, 3, 4], [5, 6]], [[1, 2, 9, 4], [5, 6]]) == (1, 0.75)
