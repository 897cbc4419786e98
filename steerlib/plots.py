"""The figures the book shows. Each function takes tables steerlib computed and returns a Figure."""
from __future__ import annotations

import sys

import matplotlib

if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # scripts and CI write files, never open a window; notebooks keep inline

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from . import behaviors as B  # noqa: E402


def validation_curves(table: pd.DataFrame, chosen: dict[str, int] | None = None,
                      title: str = "validation pass rate while training") -> plt.Figure:
    """Validation pass rate (%) against step, one line per behavior (``curves.measure``);
    ``chosen`` marks the step each token kept."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for name, rows in table.groupby("behavior", sort=False):
        line, = ax.plot(rows["step"], 100 * rows["pass_rate"], marker="o", ms=3, lw=1.2, label=f"<{name}>")
        if chosen and name in chosen:
            hit = rows[rows["step"] == chosen[name]]
            ax.plot(hit["step"], 100 * hit["pass_rate"], marker="*", ms=12, color=line.get_color(), ls="none")
    ax.set(xlabel="optimiser step (batch of 8)", ylabel="validation pass rate (%)", ylim=(-3, 103), title=title)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def retention(table: pd.DataFrame, title: str = "each behavior inside its capable pairs vs alone") -> plt.Figure:
    """Pass rate (%) of each behavior inside the pairs (bars) against its rate alone under
    the same method (markers), per method (``capable.retention``), seen and unseen pairs pooled."""
    pooled = table.assign(k=table["in_pair"] / 100 * table["n_pair"]).groupby(["method", "behavior"],
                                                                            as_index=False)
    pooled = pooled.agg(k=("k", "sum"), n=("n_pair", "sum"), alone=("alone", "first"))
    pooled["in_pair"] = 100 * pooled["k"] / pooled["n"]
    behaviors = list(dict.fromkeys(pooled["behavior"]))
    methods = list(dict.fromkeys(pooled["method"]))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(behaviors) * len(methods) / 3), 3.6))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        rows = pooled[pooled["method"] == method].set_index("behavior").reindex(behaviors)
        x = np.arange(len(behaviors)) + (i - (len(methods) - 1) / 2) * width
        bars = ax.bar(x, rows["in_pair"], width, label=method)
        ax.plot(x, rows["alone"], "_", ms=10, mew=2, color=bars.patches[0].get_facecolor(), alpha=0.9)
    ax.set_xticks(np.arange(len(behaviors)), [f"<{b}>" for b in behaviors], rotation=20, ha="right")
    ax.set(ylabel="pass rate (%)", ylim=(0, 105), title=title + "  (bar: in pair, dash: alone)")
    ax.legend(fontsize=7, ncols=min(4, len(methods)), loc="upper right")
    fig.tight_layout()
    return fig


def loss_curve(losses: dict[str, list[float]], title: str = "distillation loss") -> plt.Figure:
    """Loss per optimiser step for one or more tokens."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, curve in losses.items():
        ax.plot(range(1, len(curve) + 1), curve, label=f"<{name}>", lw=1.2)
    ax.set(xlabel="step", ylabel="T² · KL", title=title)
    if len(losses) <= 8:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pair_heatmap(per_order: pd.DataFrame, method: str = "and") -> plt.Figure:
    """Accuracy of every evaluated pair (mean over its two orderings) for one method."""
    d = per_order[(per_order["method"] == method) & (per_order["combo"].str.count(r"\+") == 1)]
    d = d.groupby("combo", as_index=False)["acc"].mean()
    pairs = d["combo"].str.split("+", expand=True)
    order = [n for n in B.names() if n in set(pairs[0]) | set(pairs[1])]
    grid = pd.DataFrame(np.nan, index=order, columns=order)
    for (a, b), acc in zip(pairs.values, d["acc"]):
        grid.loc[a, b] = grid.loc[b, a] = 100 * acc
    fig, ax = plt.subplots(figsize=(1 + 0.45 * len(order), 0.8 + 0.4 * len(order)))
    sns.heatmap(grid, annot=True, fmt=".0f", cmap="viridis", vmin=0, vmax=100, ax=ax,
                cbar_kws={"label": "accuracy (%)"}, annot_kws={"size": 7})
    ax.set_title(f"pair accuracy, method '{method}' (blank: not evaluated)")
    fig.tight_layout()
    return fig


def method_bars(table: pd.DataFrame, value: str = "mean_acc", lo: str = "mean_lo", hi: str = "mean_hi",
                title: str = "accuracy by split") -> plt.Figure:
    """Grouped bars of a metric per method and split, with 95% interval whiskers."""
    splits = list(dict.fromkeys(table["split"]))
    methods = list(dict.fromkeys(table["method"]))
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(splits)), 3.5))
    for i, m in enumerate(methods):
        d = table[table["method"] == m].set_index("split").reindex(splits)
        x = np.arange(len(splits)) + i * width
        err = np.vstack([d[value] - d[lo], d[hi] - d[value]])
        ax.bar(x, d[value], width, yerr=err, capsize=2, label=m)
    ax.set_xticks(np.arange(len(splits)) + 0.4 - width / 2, splits)
    ax.set(ylabel="%", title=title, ylim=(0, 100))
    ax.legend(fontsize=8, ncol=min(4, len(methods)))
    fig.tight_layout()
    return fig


def cosine_heatmap(cos: pd.DataFrame, title: str = "cosine similarity") -> plt.Figure:
    fig, ax = plt.subplots(figsize=(1 + 0.38 * len(cos), 0.8 + 0.34 * len(cos)))
    sns.heatmap(cos, cmap="RdBu_r", vmin=-1, vmax=1, ax=ax, annot=len(cos) <= 14, fmt=".1f",
                annot_kws={"size": 6})
    ax.set_title(title)
    fig.tight_layout()
    return fig


def pca_scatter(points: pd.DataFrame) -> plt.Figure:
    """PCA of steering tokens (coloured by category, labelled) over a grey vocabulary cloud."""
    fig, ax = plt.subplots(figsize=(6.5, 5))
    vocab = points[points["category"] == "vocabulary"]
    ax.scatter(vocab["pc1"], vocab["pc2"], s=3, c="lightgrey", label="vocabulary")
    steer = points[points["category"] != "vocabulary"]
    sns.scatterplot(data=steer, x="pc1", y="pc2", hue="category", style="category", s=60, ax=ax)
    for _, r in steer.iterrows():
        ax.annotate(r["label"], (r["pc1"], r["pc2"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_title("PCA of steering tokens and vocabulary embeddings")
    fig.tight_layout()
    return fig


def norm_histogram(token_norms: pd.DataFrame, vocab_norms: np.ndarray) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(vocab_norms, bins=60, color="lightgrey", label="vocabulary")
    for _, r in token_norms.iterrows():
        ax.axvline(r["norm"], lw=1, alpha=0.7)
    ax.set(xlabel="L2 norm", ylabel="count", title="steering-token norms (lines) vs vocabulary")
    fig.tight_layout()
    return fig
