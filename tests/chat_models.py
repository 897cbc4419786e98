"""Chat models built in-process for tests: no downloads.

Tokenizers, trained here on the shipped questions and behavior instructions:

* a SentencePiece BPE model (byte fallback, a dummy prefix space, as Llama 2 and Mistral
  ship), loaded from its ``tokenizer.model`` file exactly as a hub folder holding only
  that file would be, three ways: ``sentencepiece`` (``LlamaTokenizer``, word-start
  space only at the start of the text), ``sentencepiece-legacy`` (``legacy=True``: a
  word-start space after every special token too) and ``sentencepiece-gemma``
  (``GemmaTokenizer``: none);
* ``bytelevel``: a byte-level BPE trained with ``tokenizers`` (GPT-2, Llama 3, Qwen,
  SmolLM).

Chat templates of the shapes Llama 3, Qwen 2, Qwen 3, Gemma and Mistral ship (Jinja, as
in their ``tokenizer_config.json``, trimmed to the user/system/assistant turns), each
with its own special tokens, and ``plain``, plain-text roles (DeepSeek LLM's shape: the
text after the user's message starts with a newline, not a special token). And tiny
random models of the Llama, Qwen2, Qwen3, Gemma and Mistral architectures, built from
configs.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import tempfile
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import torch
from transformers import (
    AddedToken,
    GemmaConfig,
    GemmaForCausalLM,
    GemmaTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaTokenizer,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from steerlib.model.backbone import Backbone, _finish
from steerlib.tasks import behaviors as B

TOKENIZERS = (
    "sentencepiece",
    "sentencepiece-legacy",
    "sentencepiece-gemma",
    "bytelevel",
)


@dataclass(frozen=True)
class ChatFormat:
    """A chat template and the special tokens it writes."""

    template: str
    bos: str | None
    eos: str
    specials: tuple[str, ...]


FORMATS: dict[str, ChatFormat] = {
    "llama3": ChatFormat(
        "{% for message in messages %}"
        "{% set content = '<|start_header_id|>' + message['role'] + "
        "'<|end_header_id|>\n\n'"
        " + message['content'] | trim + '<|eot_id|>' %}"
        "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ "
        "content }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ "
        "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
        "<|begin_of_text|>",
        "<|eot_id|>",
        ("<|start_header_id|>", "<|end_header_id|>"),
    ),
    "qwen2": ChatFormat(
        "{%- for message in messages %}"
        "{%- if loop.first and message['role'] != 'system' %}"
        "{{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{%- "
        "endif %}"
        "{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + "
        "'<|im_end|>' + '\n' }}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}",
        None,
        "<|im_end|>",
        ("<|im_start|>", "<|endoftext|>"),
    ),
    "qwen3": ChatFormat(
        "{%- for message in messages %}"
        "{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + "
        "'\n' }}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}"
        "{%- if enable_thinking is defined and enable_thinking is false %}{{- "
        "'<think>\n\n</think>\n\n' }}"
        "{%- endif %}{%- endif %}",
        None,
        "<|im_end|>",
        ("<|im_start|>", "<|endoftext|>", "<think>", "</think>"),
    ),
    "gemma": ChatFormat(
        "{{ bos_token }}{% for message in messages %}"
        "{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% "
        "set role = message['role'] %}"
        "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + "
        "'<end_of_turn>\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% "
        "endif %}",
        "<bos>",
        "<end_of_turn>",
        ("<start_of_turn>", "<eos>"),
    ),
    "mistral": ChatFormat(
        "{{ bos_token }}{% for message in messages %}"
        "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' "
        "[/INST]' }}"
        "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + "
        "eos_token }}{% endif %}"
        "{% endfor %}",
        "<s>",
        "</s>",
        ("[INST]", "[/INST]"),
    ),
    "plain": ChatFormat(
        "{{ bos_token }}{% for message in messages %}"
        "{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\n\n' }}"
        "{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + "
        "message['content'] + eos_token }}"
        "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% "
        "endif %}",
        "<｜begin▁of▁sentence｜>",
        "<｜end▁of▁sentence｜>",
        (),
    ),
}


def _corpus() -> list[str]:
    """The shipped questions and every behavior instruction: the words tests use."""
    rows = files("steerlib").joinpath("data/prompts.jsonl").read_text().splitlines()
    texts = [json.loads(r)["text"] for r in rows]
    return texts + [p for name in B.names() for p in B.get(name).paraphrases]


@functools.cache
def _sentencepiece_model() -> bytes:
    """A Llama-2-style SentencePiece BPE model (the ``tokenizer.model`` file's
    bytes)."""
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus()),
        model_writer=out,
        vocab_size=1200,
        model_type="bpe",
        byte_fallback=True,
        split_digits=True,
        add_dummy_prefix=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
        num_threads=1,
    )
    return out.getvalue()


@functools.cache
def _base_tokenizer(kind: str):
    if kind.startswith("sentencepiece"):
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "tokenizer.model").write_bytes(_sentencepiece_model())
            if kind == "sentencepiece-gemma":
                return GemmaTokenizer.from_pretrained(folder)
            return LlamaTokenizer.from_pretrained(
                folder, legacy=kind == "sentencepiece-legacy"
            )
    if kind == "bytelevel":
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(
            _corpus(),
            trainers.BpeTrainer(
                vocab_size=1200,
                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                show_progress=False,
            ),
        )
        return PreTrainedTokenizerFast(tokenizer_object=tok)
    raise ValueError(f"unknown tokenizer kind {kind!r}; choose from {TOKENIZERS}")


def chat_tokenizer(kind: str, fmt: str):
    """A ``kind`` tokenizer carrying chat format ``fmt``'s template and special
    tokens."""
    chat = FORMATS[fmt]
    tok = copy.deepcopy(_base_tokenizer(kind))
    named = [t for t in (chat.bos, chat.eos) if t is not None]
    new = [t for t in (*named, *chat.specials) if t not in tok.get_vocab()]
    tok.add_special_tokens(
        {
            "additional_special_tokens": [
                AddedToken(t, special=True, normalized=False) for t in new
            ]
        }
    )
    tok.bos_token = chat.bos
    tok.eos_token = chat.eos
    tok.chat_template = chat.template
    return tok


ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma", "mistral")


def tiny_model(
    arch: str,
    vocab_size: int,
    bos: int | None,
    eos: int,
    hidden: int = 64,
    seed: int = 0,
):
    """A random 2-layer model of ``arch`` (init scale 0.2: peaked next-token
    distributions)."""
    common = dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        initializer_range=0.2,
        bos_token_id=bos,
        eos_token_id=eos,
        tie_word_embeddings=True,
    )
    configs = {
        "llama": (LlamaConfig, LlamaForCausalLM, {}),
        "qwen2": (Qwen2Config, Qwen2ForCausalLM, {}),
        "qwen3": (Qwen3Config, Qwen3ForCausalLM, {"head_dim": hidden // 4}),
        "gemma": (GemmaConfig, GemmaForCausalLM, {"head_dim": hidden // 4}),
        "mistral": (MistralConfig, MistralForCausalLM, {"tie_word_embeddings": False}),
    }
    if arch not in configs:
        raise ValueError(f"unknown architecture {arch!r}; choose from {ARCHITECTURES}")
    config_cls, model_cls, extra = configs[arch]
    torch.manual_seed(seed)
    model = model_cls(config_cls(**{**common, **extra}))
    model.generation_config.eos_token_id = eos
    return model


def chat_backbone(kind: str, fmt: str, arch: str = "llama", seed: int = 0) -> Backbone:
    """A frozen tiny ``arch`` model on a ``kind`` tokenizer speaking chat format
    ``fmt``."""
    tok = chat_tokenizer(kind, fmt)
    model = tiny_model(arch, len(tok), tok.bos_token_id, tok.eos_token_id, seed=seed)
    return _finish(model, tok, f"tiny-{arch}-{kind}-{fmt}", "cpu", torch.float32)
