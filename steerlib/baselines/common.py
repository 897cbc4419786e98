"""What the three model-changing baselines share: the method base class, files, caches,
data.

Each baseline is a frozen ``Method`` with ``tokens=False`` (the prompt is the plain
question) whose ``context`` changes the model for the duration of a ``with`` block and
undoes the change on exit. It holds per-behavior tensors (``params[name][key]``) and
writes them as safetensors with a JSON metadata block (model id, embedding fingerprint,
names, settings, per-behavior training records, library version), like steering tokens
(LoRA writes PEFT's own adapter files instead, with the same metadata beside them).

Training results are cached per behavior under
``artifacts/<fingerprint>/baselines/<kind>/<name>-<config hash>``, plus a digest of the
training questions when they are not the shipped train split (``prompts.cache_tag``).
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import ClassVar, TypedDict, TypeVar

import torch
from safetensors import safe_open
from tqdm.auto import tqdm

from steerlib import distributed
from steerlib._version import __version__
from steerlib.config import TrainConfig, config_hash
from steerlib.errors import ConfigError, TokenFileError, UnknownNameError
from steerlib.guard import refuse_work
from steerlib.model.backbone import Backbone
from steerlib.model.generate import SteeredModel
from steerlib.model.methods import Method
from steerlib.model.tokens import tensor_digest
from steerlib.storage import save_safetensors
from steerlib.tasks import behaviors as B
from steerlib.tasks import prompts as P
from steerlib.train.distill import behavior_targets
from steerlib.train.loop import TrainResult
from steerlib.train.loss import Example, examples_for, train_vectors
from steerlib.train.targets import artifacts_root

log = logging.getLogger("steerlib")
FORMAT = "steerlib.baseline/1"
T = TypeVar("T", bound="Baseline")
C = TypeVar("C")


@dataclass(frozen=True)
class Baseline(Method):
    """A steering method that changes the model; the prompt carries no tokens or
    instructions."""

    tokens: bool = False
    params: dict[str, dict[str, torch.Tensor]] = field(
        default_factory=dict, compare=False, repr=False
    )
    """Per behavior, its trained tensors (float32, CPU)."""
    model_id: str = ""
    fingerprint: str = ""
    """Fingerprint of the backbone the tensors were trained on
    (``Backbone.fingerprint``)."""
    info: dict[str, dict] = field(default_factory=dict, compare=False, repr=False)
    """Per behavior, its training record (config, steps, seconds, loss curve)."""

    KIND: ClassVar[str] = ""
    """Short name of the baseline: cache folder and the ``kind`` checked on load."""
    SETTINGS: ClassVar[tuple[str, ...]] = ("name",)
    """Fields written to the metadata and restored on load."""
    PER_BEHAVIOR: ClassVar[tuple[str, ...]] = ("params", "info")
    """Fields that are dicts keyed by behavior (``join`` merges them)."""
    SUFFIX: ClassVar[str] = ".safetensors"
    """Cache file suffix ("" for a folder)."""
    changes_model: ClassVar[bool] = True
    order_free: ClassVar[bool] = False
    """True when the steering is the same for every ordering of the behaviors (a sum
    taken in a fixed order, bit for bit): ``evaluate`` then generates once per
    combination, since every ordering reads the same plain prompt under the same model.
    LoRA + DARE is not: its seeded drop masks are drawn in the order of the adapters."""

    @property
    def names(self) -> list[str]:
        return list(self.params)

    def check_backbone(self, bb: Backbone) -> None:
        """Fail clearly when these parameters were trained for another model."""
        if bb.fingerprint != self.fingerprint:
            raise ConfigError(
                f"this {self.KIND} baseline was trained for {self.model_id!r} "
                f"(fingerprint {self.fingerprint}) "
                f"but the backbone is {bb.model_id!r} (fingerprint {bb.fingerprint}); "
                "train it for this model"
            )

    def require(self, names: Sequence[str]) -> None:
        """Every behavior of a combination must have trained parameters."""
        missing = [n for n in names if n not in self.params]
        if missing:
            raise UnknownNameError(
                f"{self.KIND} has no parameters for {missing}; trained: "
                f"{self.names or 'none'}"
            )

    def digest(self, sm: SteeredModel, names: Sequence[str]) -> str:
        """A short hash of the settings and the named behaviors' tensors: generation
        records carry it, so records of other settings or retrained parameters count as
        stale. (``sm``'s tokens play no part: the prompt reads none.)"""
        settings = json.dumps(
            {k: getattr(self, k) for k in self.SETTINGS}, sort_keys=True
        )
        return tensor_digest(
            (
                (f"{name}/{key}", tensor)
                for name in sorted(set(names))
                for key, tensor in sorted(self.params[name].items())
            ),
            salt=settings,
        )

    def metadata(self) -> dict:
        return {
            "format": FORMAT,
            "kind": self.KIND,
            "model_id": self.model_id,
            "fingerprint": self.fingerprint,
            "names": self.names,
            "settings": {k: getattr(self, k) for k in self.SETTINGS},
            "info": self.info,
            "steerlib_version": __version__,
        }

    def save(self, path: str | Path) -> Path:
        """Write ``<name>/<key>`` tensors to one safetensors file with the JSON
        metadata."""
        tensors = {
            f"{n}/{k}": t.contiguous()
            for n, group in self.params.items()
            for k, t in group.items()
        }
        # atomic, under a unique temp name: an interrupted save never leaves a torn file
        return save_safetensors(
            tensors, path, metadata={"steerlib": json.dumps(self.metadata())}
        )

    @classmethod
    def load(cls: type[T], path: str | Path, backbone: Backbone) -> T:
        """Read a file written by ``save``, checking it was trained for ``backbone``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{cls.KIND} file not found: {path}")
        with safe_open(str(path), framework="pt") as f:
            meta = read_metadata(f.metadata(), path, cls.KIND)
            params: dict[str, dict[str, torch.Tensor]] = {n: {} for n in meta["names"]}
            for key in f.keys():
                name, _, part = key.partition("/")
                params[name][part] = f.get_tensor(key)
        return cls.from_metadata(meta, backbone, params=params)

    @classmethod
    def from_metadata(
        cls: type[T], meta: dict, backbone: Backbone, **per_behavior
    ) -> T:
        out = cls(
            **meta["settings"],
            model_id=meta["model_id"],
            fingerprint=meta["fingerprint"],
            info=meta["info"],
            **per_behavior,
        )
        out.check_backbone(backbone)
        return out

    @classmethod
    def join(cls: type[T], parts: Sequence[T]) -> T:
        """One method holding every part's behaviors (settings from the first part)."""
        merged = {
            k: {n: v for p in parts for n, v in getattr(p, k).items()}
            for k in cls.PER_BEHAVIOR
        }
        return replace(parts[0], **merged)


def read_metadata(raw: dict | None, path: Path, kind: str) -> dict:
    """The steerlib metadata of a baseline file, checked to be of ``kind``."""
    text = (raw or {}).get("steerlib")
    meta = json.loads(text) if text else {}
    if meta.get("format") != FORMAT:
        raise TokenFileError(f"{path} is not a steerlib baseline file")
    if meta["kind"] != kind:
        raise TokenFileError(f"{path} holds a {meta['kind']} baseline, not {kind}")
    return meta


def cache_dir(bb: Backbone, kind: str) -> Path:
    return artifacts_root() / bb.fingerprint / "baselines" / kind


def train_each(
    bb: Backbone,
    names: Sequence[str],
    cls: type[T],
    config_for: Callable[[str], C],
    train_one: Callable[[str, C, Path], tuple[T, bool]],
    *,
    questions: Sequence[str] | None = None,
    retrain: bool = False,
    progress: bool | None = None,
) -> T:
    """Per behavior: load its cached result, or train it and cache it once complete.

    ``config_for(name)`` is that behavior's config (behaviors may train with different
    configs, as the behavior tokens do); its hash and ``questions`` (what ``train_one``
    trains on; None = the shipped train split) make the cache key.
    ``train_one(name, config, checkpoint)`` trains one behavior (resuming from
    ``checkpoint`` when it exists) and returns the one-behavior method and whether the
    run finished; an unfinished run (``stop_after``) is returned but not cached.
    """
    if not names:
        raise ConfigError("no behaviors to train")
    folder = cache_dir(bb, cls.KIND)
    parts = []
    for name in tqdm(
        names, desc=cls.KIND, disable=progress is False or len(names) < 2, leave=False
    ):
        config = config_for(name)
        stem = f"{B.cache_name(name)}-{config_hash(config)}{P.cache_tag(questions)}"
        final = folder / f"{stem}{cls.SUFFIX}"
        if final.exists() and not retrain:
            parts.append(cls.load(final, bb))
            continue
        refuse_work(f"{cls.KIND} baseline for <{name}> ({final.name})")
        ckpt = folder / f"{stem}.ckpt.safetensors"
        if retrain:
            distributed.main_only(ckpt.unlink, missing_ok=True)
        part, complete = train_one(name, config, ckpt)
        if complete:
            distributed.main_only(part.save, final)
        parts.append(part)
    return cls.join(parts)


def distill_examples(
    bb: Backbone,
    name: str,
    cfg: TrainConfig,
    questions: Sequence[str] | None,
    progress: bool | None,
) -> list[Example]:
    """Stage 1's targets for ``name``, with the student reading the plain question.

    LM-Steer and LoRA learn the same self-distillation as the behavior tokens, on the
    very same (cached) targets; only where the student's steering lives differs.
    """
    return examples_for(
        bb, behavior_targets(bb, name, cfg, questions, progress), lambda t: ()
    )


class DistillRun(TypedDict, total=False):
    """How a distilled baseline trains (``distill_each``'s keyword arguments of the same
    names, whose defaults it sets): ``train_lm_steer`` and ``train_lora`` pass them
    through, declared once here."""

    train_for: Mapping[str, TrainConfig] | None
    questions: Sequence[str] | None
    retrain: bool
    progress: bool | None
    stop_after: int | None


Train = Callable[
    [dict[str, torch.Tensor], Callable[[], AbstractContextManager]], TrainResult
]
"""``train(params, student_context)``: one behavior's distillation of ``params``, the
student pass inside ``student_context()`` (``distill_each``)."""


def distill_each(
    bb: Backbone,
    names: Sequence[str],
    cls: type[T],
    config: C,
    fit: Callable[[str, C, Train], tuple[TrainResult, dict]],
    *,
    train_for: Mapping[str, TrainConfig] | None = None,
    questions: Sequence[str] | None = None,
    retrain: bool = False,
    progress: bool | None = None,
    stop_after: int | None = None,
) -> T:
    """``train_each`` for the baselines that learn the behavior tokens'
    self-distillation (LM-Steer, LoRA): one recipe, where only the trained tensors and
    the student pass differ.

    Per behavior: its config (``config`` with ``train_for[name]`` as its training run,
    where given, as the behavior token of that name trained), its examples
    (``distill_examples``), then ``fit(name, config, train)``, which sets up what it
    trains, calls ``train(params, student_context)`` (the shared loop, checkpointed and
    resumable; ``stop_after`` ends it early) and returns the run's result and the fields
    of its one-behavior method (``params``, settings); the training record and the
    model's identity are added here.
    """

    def one(name: str, cfg: C, checkpoint: Path) -> tuple[T, bool]:
        start = time.perf_counter()
        examples = distill_examples(bb, name, cfg.train, questions, progress)

        def train(params, student_context) -> TrainResult:
            return train_vectors(
                bb,
                params,
                examples,
                cfg.train,
                checkpoint=checkpoint,
                desc=f"{cls.KIND} <{name}>",
                student_context=student_context,
                progress=progress,
                stop_after=stop_after,
                started=start,
            )

        result, fields = fit(name, cfg, train)
        info = training_record(cls.KIND, name, cfg, result, len(examples))
        method = cls(
            model_id=bb.model_id,
            fingerprint=bb.fingerprint,
            info={name: info},
            **fields,
        )
        return method, result.finished

    return train_each(
        bb,
        names,
        cls,
        lambda name: per_behavior(config, train_for, name),
        one,
        questions=questions,
        retrain=retrain,
        progress=progress,
    )


def per_behavior(
    config: C, train_for: Mapping[str, TrainConfig] | None, name: str
) -> C:
    """``config`` with ``train_for[name]`` as its training run, where one is given."""
    return (
        replace(config, train=train_for[name])
        if train_for and name in train_for
        else config
    )


def behavior_seed(seed: int, name: str) -> int:
    """A per-behavior seed, so behaviors do not all start from the same random init."""
    return zlib.crc32(f"{seed}-{name}".encode())


def training_record(
    kind: str, name: str, config, result: TrainResult, n_examples: int
) -> dict:
    """The per-behavior ``info`` entry, and a log line saying what was done; its
    ``seconds`` count every leg of a resumed run (``TrainResult.seconds``)."""
    losses, seconds = result.losses, round(result.seconds, 1)
    log.info(
        "%s <%s>: %d steps in %.0f s, loss %.3f -> %.3f",
        kind,
        name,
        len(losses),
        seconds,
        losses[0],
        losses[-1],
    )
    return {
        "config": asdict(config),
        "n_examples": n_examples,
        "steps": len(losses),
        "seconds": seconds,
        "final_loss": losses[-1],
        "losses": losses,
    }
