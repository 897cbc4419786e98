"""LoRA + DARE: one LoRA adapter per behavior, merged per combination with DARE.

Each behavior trains a PEFT LoRA (r 8, alpha 16, dropout 0.1, on the MLP's gate, up and
down projections; paper) by the behavior tokens' self-distillation, on the same targets.
The teacher pass runs with the adapter disabled (PEFT's ``disable_adapter_layers``), the
student pass with it enabled.

Dropout (ours): the backbone stays in eval mode, as everywhere in steerlib. Only the
LoRA dropout modules are put in training mode, and only for the student pass, so the
paper's dropout 0.1 acts in training and never at the teacher or in generation. Its
masks come from the global torch RNG: a resumed run is not bit-identical to an
uninterrupted one (token runs are).

Composition: PEFT's own ``add_weighted_adapter(combination_type="dare_linear")``. DARE
drops a random share (1 - density) of the entries and rescales the rest by 1/density;
PEFT's "dare_linear" does this to the A and B matrices separately and sums each weighted
by sqrt(weight * scaling), so, as with LM-Steer's summed factors, a pair's merged update
B A holds cross terms B_a A_b. Density 0.5 and weight 1.0 per behavior are ours (the
paper gives neither); the DARE masks are seeded, so a merge is reproducible.

PEFT injects its layers into the model it wraps, in place: ``attach`` therefore wraps
``bb.model`` for a ``with`` block only and unloads on exit (``unload`` puts the original
Linear modules back), leaving the Backbone exactly as before.

Files: a folder with one PEFT adapter folder per behavior (``adapter_model.safetensors``
and ``adapter_config.json``, the files ``PeftModel.save_pretrained`` writes and
``PeftModel.from_pretrained`` reads) plus ``steerlib.json``, the steerlib metadata.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Unpack

import peft
import torch
from peft.tuners.lora import LoraLayer
from peft.utils import SAFETENSORS_WEIGHTS_NAME, load_peft_weights
from safetensors.torch import save_file

from steerlib.config import TrainConfig
from steerlib.errors import ConfigError
from steerlib.model.backbone import Backbone
from steerlib.model.generate import SteeredModel
from steerlib.storage import atomic_folder
from steerlib.train.loop import TrainResult

from .common import (
    Baseline,
    DistillRun,
    Train,
    behavior_seed,
    distill_each,
    read_metadata,
)

MLP = ("gate_proj", "up_proj", "down_proj")
COMBINATION = "dare_linear"
MERGED = "steerlib_merged"
"""Adapter name of a combination's merge (never a behavior name)."""
META_FILE = "steerlib.json"


@dataclass(frozen=True)
class LoRAConfig:
    """One behavior's LoRA adapter and its training run."""

    r: int = 8
    """LoRA rank (paper)."""
    alpha: int = 16
    """LoRA alpha; the update is scaled by alpha / r (paper)."""
    dropout: float = 0.1
    """Dropout on the adapter's input, student pass only (paper; see module
    docstring)."""
    target_modules: tuple[str, ...] = MLP
    """Adapted Linear layers: the MLP's gate, up and down projections (paper)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Optimiser, steps and targets: the behavior tokens' stage-1 config."""

    def peft_config(self, bb: Backbone) -> peft.LoraConfig:
        return peft.LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            base_model_name_or_path=bb.model_id,
        )


@dataclass(frozen=True)
class LoRADare(Baseline):
    """Steers with the DARE-linear merge of the behaviors' LoRA adapters.

    ``params[name]`` is the adapter's PEFT state dict, ``configs[name]`` its
    ``LoraConfig``.
    """

    name: str = "lora_dare"
    configs: dict[str, peft.LoraConfig] = field(
        default_factory=dict, compare=False, repr=False
    )
    density: float = 0.5
    """Share of adapter entries DARE keeps; the drop rate is 1 - density (ours)."""
    weight: float = 1.0
    """Merge weight of every behavior's adapter (ours)."""
    seed: int = 0
    """Seeds DARE's random drop masks."""

    KIND = "lora_dare"
    SETTINGS = ("name", "density", "weight", "seed")
    PER_BEHAVIOR = ("params", "info", "configs")
    SUFFIX = ""

    def merge_settings(self) -> dict:
        """How combinations are merged: PEFT combination type, density, drop rate,
        weight, seed."""
        return {
            "combination_type": COMBINATION,
            "density": self.density,
            "drop_rate": 1 - self.density,
            "weight": self.weight,
            "seed": self.seed,
        }

    def metadata(self) -> dict:
        return super().metadata() | {"merge": self.merge_settings()}

    @contextlib.contextmanager
    def context(self, sm: SteeredModel, names: Sequence[str]) -> Iterator[SteeredModel]:
        bb = sm.backbone
        self.check_backbone(bb)
        self.require(names)
        with attach(
            bb, {n: self.configs[n] for n in names}, {n: self.params[n] for n in names}
        ) as model:
            with _seeded(bb, self.seed):
                model.add_weighted_adapter(
                    list(names),
                    [self.weight] * len(names),
                    MERGED,
                    combination_type=COMBINATION,
                    density=self.density,
                )
            model.set_adapter(MERGED, inference_mode=True)
            set_dropout(model, False)
            yield sm

    def save(self, path: str | Path) -> Path:
        """One PEFT adapter folder per behavior, plus ``steerlib.json``; replaced
        atomically."""
        path = Path(path)
        with atomic_folder(path) as tmp:
            for name in self.names:
                write_adapter(tmp / name, self.params[name], self.configs[name])
            (tmp / META_FILE).write_text(json.dumps(self.metadata(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path, backbone: Backbone) -> LoRADare:
        """Read a folder written by ``save`` through PEFT's own readers, checking the
        model."""
        path = Path(path)
        if not (path / META_FILE).is_file():
            raise FileNotFoundError(
                f"no {cls.KIND} folder at {path} (missing {META_FILE})"
            )
        meta = read_metadata(
            {"steerlib": (path / META_FILE).read_text()}, path, cls.KIND
        )
        return cls.from_metadata(
            meta,
            backbone,
            params={
                n: load_peft_weights(str(path / n), device="cpu") for n in meta["names"]
            },
            configs={
                n: peft.LoraConfig.from_pretrained(str(path / n)) for n in meta["names"]
            },
        )


def write_adapter(
    folder: Path, state: dict[str, torch.Tensor], config: peft.LoraConfig
) -> None:
    """One adapter as ``PeftModel.save_pretrained`` writes it: safetensors weights,
    JSON config."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: t.contiguous() for k, t in state.items()},
        str(folder / SAFETENSORS_WEIGHTS_NAME),
        metadata={"format": "pt"},
    )
    replace(config, inference_mode=True).save_pretrained(str(folder))


@contextlib.contextmanager
def _seeded(bb: Backbone, seed: int) -> Iterator[None]:
    """Draw random numbers from ``seed`` without disturbing the global RNG state."""
    with torch.random.fork_rng(devices=[bb.device] if bb.device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def set_dropout(model: peft.PeftModel, active: bool) -> None:
    """Switch the LoRA dropout modules alone (PEFT creates them in training mode)."""
    for module in model.modules():
        if isinstance(module, LoraLayer):
            module.lora_dropout.train(active)


@contextlib.contextmanager
def attach(
    bb: Backbone,
    configs: dict[str, peft.LoraConfig],
    params: dict[str, dict[str, torch.Tensor]] | None = None,
    seed: int = 0,
) -> Iterator[peft.PeftModel]:
    """``bb.model`` wrapped by PEFT with one adapter per entry of ``configs``, inside
    the block only.

    Adapters take their weights from ``params`` where given, else PEFT's init drawn from
    ``seed``. Dropout is off. On exit ``unload`` removes every LoRA layer.
    """
    names = list(configs)
    with contextlib.ExitStack() as stack:
        with _seeded(bb, seed):
            model = peft.PeftModel(bb.model, configs[names[0]], adapter_name=names[0])
            stack.callback(model.unload)
            for name in names[1:]:
                model.add_adapter(name, configs[name])
        for name, state in (params or {}).items():
            result = peft.set_peft_model_state_dict(
                model, {k: t.to(bb.device) for k, t in state.items()}, adapter_name=name
            )
            if result.unexpected_keys:
                raise ConfigError(
                    f"adapter <{name}> does not fit this model: "
                    f"{result.unexpected_keys[:3]} ..."
                )
        set_dropout(model, False)
        yield model


@contextlib.contextmanager
def student_pass(
    model: peft.PeftModel, params: dict[str, torch.Tensor]
) -> Iterator[None]:
    """The adapter on, with its dropout active, for the student pass only."""
    model.base_model.enable_adapter_layers()
    set_dropout(model, True)
    try:
        yield
    finally:
        set_dropout(model, False)
        model.base_model.disable_adapter_layers()
        # PEFT's disable also sets requires_grad=False on the adapter, and autograd
        # would then drop the gradients of the pass just recorded: mark it trainable
        # again.
        for p in params.values():
            p.requires_grad_(True)


def train_lora(
    bb: Backbone,
    names: Sequence[str],
    config: LoRAConfig | None = None,
    *,
    density: float = 0.5,
    weight: float = 1.0,
    **run: Unpack[DistillRun],
) -> LoRADare:
    """Train one LoRA adapter per behavior by self-distillation (cached, resumable).

    ``run``: ``train_for``, ``questions``, ``retrain``, ``progress``, ``stop_after``
    (``common.distill_each``). ``train_for[name]``, where given, replaces
    ``config.train`` for that behavior (the behavior token's own stage-1 config: same
    targets). ``density`` and ``weight`` only shape the merge at generation time; they
    are not part of the cache key.
    """
    config = config or LoRAConfig()

    def fit(name: str, cfg: LoRAConfig, train: Train) -> tuple[TrainResult, dict]:
        lora = cfg.peft_config(bb)
        with attach(
            bb, {name: lora}, seed=behavior_seed(cfg.train.seed, name)
        ) as model:
            params = {
                k: p for k, p in model.named_parameters() if p.requires_grad
            }  # A and B only
            # the teacher sees the unchanged model
            model.base_model.disable_adapter_layers()
            result = train(params, lambda: student_pass(model, params))
            # no embedding layers are adapted; "auto" would look the base model up on
            # the Hub
            state = peft.get_peft_model_state_dict(
                model, adapter_name=name, save_embedding_layers=False
            )
        state = {k: t.detach().cpu() for k, t in state.items()}
        return result, {"params": {name: state}, "configs": {name: lora}}

    out = distill_each(bb, names, LoRADare, config, fit, **run)
    return replace(out, density=density, weight=weight, seed=config.train.seed)
