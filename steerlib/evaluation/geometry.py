"""Where steering tokens sit in the input-embedding space.

The paper finds language tokens near their language's name in the vocabulary, length
tokens near digits, and ``<and>`` far from every vocabulary embedding and from the
behavior tokens, an outlier in a PCA where the other tokens cluster by category.
These functions compute the same views for any token set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA

from steerlib.model.backbone import Backbone
from steerlib.model.tokens import SteeringTokens
from steerlib.tasks import behaviors as B


def cosine_matrix(vectors: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Pairwise cosine similarity between named vectors."""
    names = list(vectors)
    m = F.normalize(torch.stack([vectors[n].float() for n in names]), dim=-1)
    return pd.DataFrame((m @ m.T).numpy(), index=names, columns=names)


def nearest_vocabulary(
    bb: Backbone, tokens: SteeringTokens, k: int = 8
) -> pd.DataFrame:
    """The k vocabulary tokens with the highest cosine to each steering token."""
    vocab = F.normalize(bb.embeddings.detach().float().cpu(), dim=-1)
    rows = []
    for name in tokens.names:
        sims = vocab @ F.normalize(tokens[name].float(), dim=0)
        top = sims.topk(k)
        words = [bb.tokenizer.decode([i]) for i in top.indices.tolist()]
        rows.append(
            {
                "token": f"<{name}>",
                "nearest": words,
                "cosines": [round(v, 3) for v in top.values.tolist()],
                "top_cosine": round(top.values[0].item(), 3),
            }
        )
    return pd.DataFrame(rows)


KEYWORDS = {
    "french": "French",
    "spanish": "Spanish",
    "italian": "Italian",
    "portuguese": "Portuguese",
    "german": "German",
    "words_10_50": "10",
    "words_50_70": "50",
    "words_70_90": "70",
    "words_90_120": "90",
    "lower_case": "lowercase",
    "upper_case": "uppercase",
    "title_case": "title",
    "sentences_1": "one",
    "sentences_2": "two",
    "sentences_3": "three",
    "sentences_4": "four",
    "sentences_5": "five",
    "json": "JSON",
}
"""The word of each behavior's instructions that carries it (ours), for comparisons with
the vocabulary: a language's name, the range's lower bound, the case, the count."""


def instruction_word_vectors(bb: Backbone, names: list[str]) -> dict[str, torch.Tensor]:
    """Vocabulary embedding of each behavior's keyword (mean over its tokens), labelled
    "'word'"."""
    out = {}
    for name in names:
        word = KEYWORDS[name]
        ids = bb.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        out[f"'{word}'"] = bb.embeddings[ids].detach().float().mean(0).cpu()
    return out


def pca_projection(
    bb: Backbone, tokens: SteeringTokens, n_vocab: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """2-D PCA fitted on steering tokens plus a vocabulary sample; one row per point."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(bb.embeddings.shape[0], generator=gen)[:n_vocab]
    vocab = bb.embeddings.detach().float().cpu()[idx]
    steer = torch.stack([tokens[n].float() for n in tokens.names])
    pts = PCA(n_components=2, random_state=seed).fit_transform(
        torch.cat([vocab, steer]).numpy()
    )
    cats = ["vocabulary"] * len(idx) + [
        ("composition" if n == "and" else B.get(n).category) for n in tokens.names
    ]
    labels = [""] * len(idx) + [f"<{n}>" for n in tokens.names]
    return pd.DataFrame(
        {"pc1": pts[:, 0], "pc2": pts[:, 1], "category": cats, "label": labels}
    )


def norms(bb: Backbone, tokens: SteeringTokens) -> tuple[pd.DataFrame, np.ndarray]:
    """Norm of each steering token, and the vocabulary's norms to compare with."""
    table = pd.DataFrame(
        {
            "token": [f"<{n}>" for n in tokens.names],
            "norm": [tokens[n].float().norm().item() for n in tokens.names],
        }
    )
    return table, bb.embeddings.detach().float().norm(dim=1).cpu().numpy()
