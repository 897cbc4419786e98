"""LM-Steer: a low-rank map on the final hidden state, one per behavior.

    h' = h + eps * (h @ P1) @ P2,    P1 [d, r], P2 [r, d],  r = 64, eps = 1e-3  (paper)

applied to the output of the model's final norm, the hidden state the LM head reads.
P1 and P2 both start from N(0, 0.01^2), as in the paper; the usual zero start (P2 = 0,
so the map starts as the identity) would differ, but we follow the paper. They learn the
behavior tokens' self-distillation on the very same targets: the teacher is the
unchanged model reading the instruction, the student the steered model reading the plain
question (the map is switched on for the student pass only).

Composition (paper): the behaviors' P1s are summed and their P2s are summed, so a pair
steers with eps * h (P1a + P1b)(P2a + P2b), cross terms P1a P2b included, not with the
sum of the two maps eps * h (P1a P2a + P1b P2b).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Unpack

import torch

from steerlib.config import TrainConfig
from steerlib.model.backbone import Backbone
from steerlib.model.generate import SteeredModel
from steerlib.train.loop import TrainResult

from .common import Baseline, DistillRun, Train, behavior_seed, distill_each


@dataclass(frozen=True)
class LMSteerConfig:
    """LM-Steer's map and its training run."""

    rank: int = 64
    """r of P1 [d, r] and P2 [r, d] (paper)."""
    eps: float = 1e-3
    """Scale of the map's contribution (paper)."""
    init_std: float = 0.01
    """Both factors start from N(0, init_std^2) (paper)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Optimiser, steps and targets: the behavior tokens' stage-1 config."""


@dataclass(frozen=True)
class LMSteer(Baseline):
    """Steers with ``h + eps * (h @ sum P1) @ sum P2`` on the final hidden state.

    ``params[name]`` holds ``"P1"`` [d, r] and ``"P2"`` [r, d].
    """

    name: str = "lm_steer"
    eps: float = 1e-3
    """Scale of the map (paper: 1e-3); must match the value it was trained with."""

    KIND = "lm_steer"
    SETTINGS = ("name", "eps")
    order_free = True

    def factors(self, names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The composed map: summed P1s and summed P2s (paper)."""
        self.require(names)
        return (
            torch.stack([self.params[n]["P1"] for n in sorted(names)]).sum(0),
            torch.stack([self.params[n]["P2"] for n in sorted(names)]).sum(0),
        )

    @contextlib.contextmanager
    def context(self, sm: SteeredModel, names: Sequence[str]) -> Iterator[SteeredModel]:
        self.check_backbone(sm.backbone)
        p1, p2 = (p.to(sm.backbone.device) for p in self.factors(names))
        with steer_final_hidden(sm.backbone, p1, p2, self.eps):
            yield sm


@contextlib.contextmanager
def steer_final_hidden(
    bb: Backbone, p1: torch.Tensor, p2: torch.Tensor, eps: float
) -> Iterator[None]:
    """``h -> h + eps * (h @ p1) @ p2`` on the final norm's output, inside the block
    only.

    The map is computed in float32, where ``p1``/``p2`` live, and cast back to the
    model's dtype; gradients reach ``p1`` and ``p2`` when they require them.
    """

    def hook(_module, _inputs, h):
        return h + (eps * (h.float() @ p1) @ p2).to(h.dtype)

    handle = bb.model.base_model.norm.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def train_lm_steer(
    bb: Backbone,
    names: Sequence[str],
    config: LMSteerConfig | None = None,
    **run: Unpack[DistillRun],
) -> LMSteer:
    """Train one LM-Steer map per behavior by self-distillation (cached, resumable).

    ``run``: ``train_for``, ``questions``, ``retrain``, ``progress``, ``stop_after``
    (``common.distill_each``). ``train_for[name]``, where given, replaces
    ``config.train`` for that behavior: pass each behavior token's own stage-1 config
    so the map learns from the same targets.
    """
    config = config or LMSteerConfig()

    def fit(name: str, cfg: LMSteerConfig, train: Train) -> tuple[TrainResult, dict]:
        gen = torch.Generator().manual_seed(behavior_seed(cfg.train.seed, name))
        d = bb.hidden_size
        params = {
            "P1": (torch.randn(d, cfg.rank, generator=gen) * cfg.init_std).to(
                bb.device
            ),
            "P2": (torch.randn(cfg.rank, d, generator=gen) * cfg.init_std).to(
                bb.device
            ),
        }
        result = train(
            params,
            lambda: steer_final_hidden(bb, params["P1"], params["P2"], cfg.eps),
        )
        trained = {k: p.detach().cpu() for k, p in params.items()}
        return result, {"eps": cfg.eps, "params": {name: trained}}

    return distill_each(bb, names, LMSteer, config, fit, **run)
