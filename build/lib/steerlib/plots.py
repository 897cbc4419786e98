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


def loss_curve(losses: dict[str, list[float]], title: str = "distillation loss") -> plt.Figure:
    """Loss per optimiser step for one or more tokens."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, curve in losses.items():
        ax.plot(range(1, len(curve) + 1), curve, label=f"<{name}>", lw=1.2)
    ax.set(xlabel="optimiser step", ylabel="loss: T² · KL (nats)", title=title)
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
    ax.set_title(f"pair accuracy (%), method '{method}' (blank: not evaluated)")
    ax.set(xlabel="behavior", ylabel="behavior")
    fig.tight_layout()
    return fig


def method_bars(table: pd.DataFrame, value: str = "mean_acc", lo: str = "mean_lo", hi: str = "mean_hi",
                title: str = "accuracy by split", ylabel: str = "accuracy (%)", xlabel: str = "split") -> plt.Figure:
    """Grouped bars of a metric (in %) per method and split, with 95% interval whiskers.

    The y axis ends a little above the highest interval, not at 100: values of a few
    percent stay readable (the axis label says it is a percentage)."""
    splits = list(dict.fromkeys(table["split"]))
    methods = list(dict.fromkeys(table["method"]))
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for i, m in enumerate(methods):
        d = table[table["method"] == m].set_index("split").reindex(splits)
        x = np.arange(len(splits)) + i * width
        err = np.vstack([d[value] - d[lo], d[hi] - d[value]])
        ax.bar(x, d[value], width, yerr=err, capsize=2, label=m)
    ax.set_xticks(np.arange(len(splits)) + 0.4 - width / 2, splits)
    top = float(np.nanmax(table[hi].to_numpy(dtype=float))) if len(table) else 100.0
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, ylim=(0, min(100.0, max(5.0, 1.15 * top))))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    fig.tight_layout()
    return fig


def rate_dots(table: pd.DataFrame, row: str = "behavior", value: str = "pass_rate", lo: str = "lo",
              hi: str = "hi", title: str = "pass rate") -> plt.Figure:
    """One line per ``row`` (behaviors), one dot per method with its 95% interval: many rows
    and a few methods stay readable at the text column's width, where grouped bars do not."""
    rows = list(dict.fromkeys(table[row]))
    methods = list(dict.fromkeys(table["method"]))
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.34 * len(rows)))
    step = 0.7 / max(1, len(methods) - 1)
    for i, m in enumerate(methods):
        d = table[table["method"] == m].set_index(row).reindex(rows)
        y = np.arange(len(rows)) - 0.35 + i * step
        ax.errorbar(d[value], y, xerr=np.vstack([d[value] - d[lo], d[hi] - d[value]]), fmt="o", ms=3.5,
                    elinewidth=0.8, capsize=0, label=m)
    ax.set_yticks(np.arange(len(rows)), rows)
    ax.invert_yaxis()
    ax.set(xlabel="pass rate (%)", xlim=(-2, 102), title=title)
    ax.grid(axis="x", lw=0.4, alpha=0.5)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    fig.tight_layout()
    return fig


def cosine_heatmap(cos: pd.DataFrame, title: str = "cosine similarity") -> plt.Figure:
    """Pairwise cosines (unitless, -1 to 1) between named vectors."""
    fig, ax = plt.subplots(figsize=(7.5, 6.8))
    sns.heatmap(cos, cmap="RdBu_r", vmin=-1, vmax=1, ax=ax, annot=len(cos) <= 14, fmt=".1f",
                annot_kws={"size": 6}, cbar_kws={"label": "cosine similarity"}, xticklabels=True, yticklabels=True)
    ax.tick_params(labelsize=7)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def pca_scatter(points: pd.DataFrame) -> plt.Figure:
    """PCA of steering tokens over a grey vocabulary cloud: left, the whole cloud; right,
    the steering tokens close up, each labelled (labels pushed apart vertically so that
    tokens of one category, which sit together, stay legible). Legend outside the axes."""
    fig, (whole, zoom) = plt.subplots(1, 2, figsize=(9, 4.6), gridspec_kw={"width_ratios": [1, 1.3]})
    vocab = points[points["category"] == "vocabulary"]
    steer = points[points["category"] != "vocabulary"]
    for ax in (whole, zoom):
        ax.scatter(vocab["pc1"], vocab["pc2"], s=2, c="lightgrey", label="vocabulary", rasterized=True)
        sns.scatterplot(data=steer, x="pc1", y="pc2", hue="category", style="category", s=40, ax=ax,
                        legend=ax is zoom)
        ax.set(xlabel="first principal component", ylabel="second principal component")
    pad_x = 0.15 * (steer["pc1"].max() - steer["pc1"].min()) + 1e-6
    pad_y = 0.15 * (steer["pc2"].max() - steer["pc2"].min()) + 1e-6
    zoom.set(xlim=(steer["pc1"].min() - pad_x, steer["pc1"].max() + 3 * pad_x),
             ylim=(steer["pc2"].min() - pad_y, steer["pc2"].max() + pad_y))
    whole.set_title("all points")
    zoom.set_title("steering tokens, close up")
    # spread the labels: sorted by height, each at least a label's height above the last
    order = steer.sort_values("pc2")
    gap = 0.045 * (zoom.get_ylim()[1] - zoom.get_ylim()[0])
    placed = []
    for _, r in order.iterrows():
        y = max([r["pc2"], *[p + gap for p in placed[-1:]]])
        placed.append(y)
        zoom.annotate(r["label"], (r["pc1"], r["pc2"]), xytext=(r["pc1"] + 0.4 * pad_x, y), fontsize=6.5,
                      arrowprops={"arrowstyle": "-", "lw": 0.3, "color": "grey"}, va="center")
    zoom.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, fontsize=7)
    fig.suptitle("PCA of steering tokens and 2,000 vocabulary embeddings (unitless coordinates)", fontsize=11)
    fig.tight_layout()
    return fig


def norm_histogram(token_norms: pd.DataFrame, vocab_norms: np.ndarray) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(vocab_norms, bins=60, color="lightgrey", label="vocabulary")
    for _, r in token_norms.iterrows():
        ax.axvline(r["norm"], lw=1, alpha=0.7)
    ax.set(xlabel="L2 norm of the embedding vector", ylabel="vocabulary tokens (count)",
           title="steering-token norms (vertical lines) vs the vocabulary's (histogram)")
    fig.tight_layout()
    return fig
