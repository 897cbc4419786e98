"""Device check only (not part of the repo): the tiny test model on CUDA.

The device image lacks the embedded-model wheel and lingua; the baseline tests need
neither (a stub lingua calls every text English).
"""
import os
import sys
import types

import torch

lingua = types.ModuleType("lingua")
lingua.Language = types.SimpleNamespace(**{n: n for n in ("ENGLISH", "FRENCH", "SPANISH", "ITALIAN", "PORTUGUESE",
                                                          "GERMAN", "DUTCH", "CATALAN")})


class _Detector:
    def detect_language_of(self, text):
        return "ENGLISH"

    def compute_language_confidence_values(self, text):
        return []


class _Builder:
    @staticmethod
    def from_languages(*langs):
        return _Builder()

    def build(self):
        return _Detector()


lingua.LanguageDetector, lingua.LanguageDetectorBuilder = _Detector, _Builder
sys.modules["lingua"] = lingua

import steerlib.backbone as backbone  # noqa: E402
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM  # noqa: E402

DTYPE = getattr(torch, os.environ.get("GPU_DTYPE", "float32"))


def tiny_cuda(name=None, **kw):
    tok = AutoTokenizer.from_pretrained(os.path.join(os.path.dirname(__file__), "tok"))
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    return backbone._finish(model, tok, "tiny-llama-2x64-seed0", "cuda", DTYPE)


backbone.load_backbone = tiny_cuda
