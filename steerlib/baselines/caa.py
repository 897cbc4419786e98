"""CAA: contrastive activation addition, the paper's first model-changing baseline.

Per behavior, the steering vector is the mean over training questions of

    h_L(question + instruction) - h_L(question),

where h_L is the residual stream leaving decoder layer L at the last prompt token (the
position the answer is generated from). To steer a combination, alpha times the sum of
its behaviors' vectors is added to layer L's output at every position while generating.
Paper: layer 10 of Qwen3-8B's 36, alpha 3.0. Other depths get the same relative layer,
``round(10/36 * n_layers)`` (ours), and ``sweep`` picks layer and alpha on validation
prompts. Vectors are extracted at every layer in the same forward passes, so a sweep
over layers needs no new extraction.
"""

from __future__ import annotations

import contextlib
import functools
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from steerlib.evaluation.evaluate import evaluate
from steerlib.model.backbone import Backbone
from steerlib.model.generate import SteeredModel
from steerlib.model.template import Rendered, embed, render
from steerlib.tasks import behaviors as B
from steerlib.tasks import prompts as P

from .common import Baseline, behavior_seed, log, train_each


@dataclass(frozen=True)
class CAAConfig:
    """How CAA vectors are extracted."""

    n_prompts: int = 256
    """Training questions averaged over (ours; the paper does not say)."""
    batch_size: int = 16
    """Questions per forward pass."""
    seed: int = 0
    """Seeds the question sample and each question's instruction paraphrase."""


def default_layer(bb: Backbone) -> int:
    """The paper's layer 10 of 36, at the same relative depth of this model."""
    return round(10 / 36 * len(bb.model.base_model.layers))


@dataclass(frozen=True)
class CAA(Baseline):
    """Adds ``alpha * sum of the behaviors' vectors`` to decoder layer ``layer``'s
    output.

    ``params[name]["vector"]`` is [n_layers, d]: the behavior's vector at every layer.
    """

    name: str = "caa"
    layer: int | None = None
    """Decoder layer whose output is steered; None = ``default_layer`` (paper's
    depth)."""
    alpha: float = 3.0
    """Scale of the summed vectors (paper: 3.0)."""

    KIND = "caa"
    SETTINGS = ("name", "layer", "alpha")
    order_free = True

    def layer_for(self, bb: Backbone) -> int:
        return default_layer(bb) if self.layer is None else self.layer

    def delta(self, bb: Backbone, names: Sequence[str]) -> torch.Tensor:
        """What steering ``names`` adds to the layer's output: alpha * sum of their
        vectors."""
        self.require(names)
        layer = self.layer_for(bb)
        return self.alpha * torch.stack(
            [self.params[n]["vector"][layer] for n in sorted(names)]
        ).sum(0)

    @contextlib.contextmanager
    def context(self, sm: SteeredModel, names: Sequence[str]) -> Iterator[SteeredModel]:
        self.check_backbone(sm.backbone)
        with add_to_layer(
            sm.backbone, self.layer_for(sm.backbone), self.delta(sm.backbone, names)
        ):
            yield sm


def _hidden(output) -> torch.Tensor:
    """A decoder layer's hidden states (older transformers return a tuple)."""
    return output[0] if isinstance(output, tuple) else output


@contextlib.contextmanager
def add_to_layer(bb: Backbone, layer: int, delta: torch.Tensor) -> Iterator[None]:
    """Add ``delta`` to decoder layer ``layer``'s output at every position, inside the
    block only."""
    delta = delta.to(bb.device, bb.dtype)

    def hook(_module, _inputs, output):
        if isinstance(output, tuple):
            return (output[0] + delta,) + output[1:]
        return output + delta

    handle = bb.model.base_model.layers[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@torch.inference_mode()
def last_token_states(
    bb: Backbone,
    rows: Sequence[Rendered],
    batch_size: int = 16,
    progress: bool | None = None,
    desc: str = "CAA",
) -> torch.Tensor:
    """Mean over ``rows`` of every decoder layer's output at the last prompt token,
    [n_layers, d].

    Prompts are left-padded, so every prompt's last token is in the last column.
    """
    layers = bb.model.base_model.layers
    seen: list[torch.Tensor] = []  # one [batch, d] per layer, in layer order
    hooks = [
        layer.register_forward_hook(
            lambda _m, _i, out: seen.append(_hidden(out)[:, -1].float())
        )
        for layer in layers
    ]
    total = torch.zeros(len(layers), bb.hidden_size)
    try:
        starts = range(0, len(rows), batch_size)
        for i in tqdm(
            starts, desc=desc, disable=progress is False or len(starts) < 4, leave=False
        ):
            seen.clear()
            batch = embed(bb, rows[i : i + batch_size])
            bb.model.base_model(**batch.model_inputs(), use_cache=False)
            total += torch.stack(seen).sum(1).cpu()
    finally:
        for h in hooks:
            h.remove()
    return total / len(rows)


def extraction_questions(
    cfg: CAAConfig, questions: Sequence[str] | None = None
) -> list[str]:
    """The ``n_prompts`` questions CAA averages over, drawn with the config's seed from
    ``questions`` (default: the shipped training split)."""
    return P.load(
        "train",
        list(questions) if questions is not None else None,
        limit=cfg.n_prompts,
        seed=cfg.seed,
    )


def train_caa(
    bb: Backbone,
    names: Sequence[str],
    config: CAAConfig | None = None,
    *,
    layer: int | None = None,
    alpha: float = 3.0,
    questions: Sequence[str] | None = None,
    retrain: bool = False,
    progress: bool | None = None,
) -> CAA:
    """CAA vectors for ``names`` (cached per behavior), as a method steering at
    ``layer`` with ``alpha``.

    ``questions`` defaults to the shipped training questions; ``n_prompts`` of them are
    drawn with the config's seed. Each question gets one random instruction paraphrase.
    """
    cfg = config or CAAConfig()
    source, questions = questions, extraction_questions(cfg, questions)
    plain = functools.cache(
        lambda: last_token_states(
            bb,
            [render(bb, q) for q in questions],
            cfg.batch_size,
            progress,
            desc="CAA plain",
        )
    )

    def one(name: str, cfg: CAAConfig, _checkpoint) -> tuple[CAA, bool]:
        start = time.perf_counter()
        rng = random.Random(behavior_seed(cfg.seed, name))
        rows = [render(bb, q, (), B.get(name).instruction(rng)) for q in questions]
        vector = (
            last_token_states(bb, rows, cfg.batch_size, progress, desc=f"CAA {name}")
            - plain()
        )
        seconds = round(time.perf_counter() - start, 1)
        log.info("caa <%s>: %d prompts in %.0f s", name, len(questions), seconds)
        info = {"config": asdict(cfg), "n_prompts": len(questions), "seconds": seconds}
        return CAA(
            params={name: {"vector": vector}},
            model_id=bb.model_id,
            fingerprint=bb.fingerprint,
            info={name: info},
        ), True

    caa = train_each(
        bb,
        names,
        CAA,
        lambda _: cfg,
        one,
        questions=source,
        retrain=retrain,
        progress=progress,
    )
    return replace(caa, layer=layer, alpha=alpha)


def sweep(
    bb: Backbone,
    caa: CAA,
    behaviors: Sequence[str],
    prompts: Sequence[str],
    alphas: Sequence[float],
    layers: Sequence[int],
    *,
    max_new_tokens: int = 256,
    batch_size: int = 32,
    records: str | Path | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Verifier pass rate of each single behavior under every (layer, alpha), best mean
    first.

    ``prompts`` should be a validation split: questions used neither for extraction nor
    for the final evaluation. Take the first row's setting with
    ``replace(caa, layer=int(table.layer[0]), alpha=float(table.alpha[0]))``.
    """
    settings = [
        replace(caa, name=f"{caa.name}@L{layer}a{alpha:g}", layer=layer, alpha=alpha)
        for layer in layers
        for alpha in alphas
    ]
    recs = evaluate(
        SteeredModel(bb),
        settings,
        [(b,) for b in behaviors],
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        records=records,
        progress=progress,
    )
    rates = recs.groupby(["method", "order"])["ok"].mean().unstack()
    rows = [
        {
            "layer": m.layer,
            "alpha": m.alpha,
            "mean": rates.loc[m.name].mean(),
            **rates.loc[m.name].to_dict(),
        }
        for m in settings
    ]
    return (
        pd.DataFrame(rows)
        .sort_values("mean", ascending=False, kind="stable")
        .reset_index(drop=True)
    )
