"""The figures the book shows. Each function takes tables steerlib computed and returns
a Figure.

Importing this module changes no global setting: matplotlib picks its backend as usual
(inline in a notebook, a non-interactive one on a machine without a display). Scripts
write figures with ``save``, which also closes them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from steerlib import distributed
from steerlib.tasks import behaviors as B


def save(fig: plt.Figure, path: Path) -> None:
    """Write ``fig`` as a PNG (rank 0 only, under torchrun) and close it, so a long run
    does not keep every figure it made open."""
    distributed.main_only(fig.savefig, path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def validation_curves(
    table: pd.DataFrame,
    chosen: dict[str, int] | None = None,
    title: str = "validation pass rate while training",
) -> plt.Figure:
    """Validation pass rate (%) against step, one line per behavior
    (``curves.measure``); ``chosen`` marks the step each token kept."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for name, rows in table.groupby("behavior", sort=False):
        (line,) = ax.plot(
            rows["step"],
            100 * rows["pass_rate"],
            marker="o",
            ms=3,
            lw=1.2,
            label=f"<{name}>",
        )
        if chosen and name in chosen:
            hit = rows[rows["step"] == chosen[name]]
            ax.plot(
                hit["step"],
                100 * hit["pass_rate"],
                marker="*",
                ms=12,
                color=line.get_color(),
                ls="none",
            )
    ax.set(
        xlabel="optimiser step (batch of 8)",
        ylabel="validation pass rate (%)",
        ylim=(-3, 103),
        title=title,
    )
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def token_validation(
    info: dict, name: str, title: str | None = None
) -> plt.Figure | None:
    """The validation curve a trained token carries in its metadata
    (``info["validation"]``), the step it kept starred; None for a token trained
    without validation."""
    record = info.get("validation")
    if not record:
        return None
    curve = pd.DataFrame(record["curve"], columns=["step", "pass_rate"]).assign(
        behavior=name
    )
    return validation_curves(
        curve,
        {name: record["best_step"]},
        title=title or f"<{name}>: validation pass rate",
    )


def retention(
    table: pd.DataFrame, title: str = "each behavior inside its capable pairs vs alone"
) -> plt.Figure:
    """Pass rate (%) of each behavior inside the pairs (bars) against its rate alone
    under the same method (markers), per method (``capable.retention``), seen and
    unseen pairs pooled."""
    pooled = table.assign(k=table["in_pair"] / 100 * table["n_pair"]).groupby(
        ["method", "behavior"], as_index=False
    )
    pooled = pooled.agg(k=("k", "sum"), n=("n_pair", "sum"), alone=("alone", "first"))
    pooled["in_pair"] = 100 * pooled["k"] / pooled["n"]
    behaviors = list(dict.fromkeys(pooled["behavior"]))
    methods = list(dict.fromkeys(pooled["method"]))
    fig, ax = plt.subplots(
        figsize=(max(6.0, 0.9 * len(behaviors) * len(methods) / 3), 3.6)
    )
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        rows = (
            pooled[pooled["method"] == method].set_index("behavior").reindex(behaviors)
        )
        x = np.arange(len(behaviors)) + (i - (len(methods) - 1) / 2) * width
        bars = ax.bar(x, rows["in_pair"], width, label=method)
        ax.plot(
            x,
            rows["alone"],
            "_",
            ms=10,
            mew=2,
            color=bars.patches[0].get_facecolor(),
            alpha=0.9,
        )
    ax.set_xticks(
        np.arange(len(behaviors)),
        [f"<{b}>" for b in behaviors],
        rotation=20,
        ha="right",
    )
    ax.set(
        ylabel="pass rate (%)",
        ylim=(0, 105),
        title=title + "  (bar: in pair, dash: alone)",
    )
    ax.legend(fontsize=7, ncols=min(4, len(methods)), loc="upper right")
    fig.tight_layout()
    return fig


def loss_curve(
    losses: dict[str, list[float]], title: str = "distillation loss"
) -> plt.Figure:
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
    d = per_order[
        (per_order["method"] == method) & (per_order["combo"].str.count(r"\+") == 1)
    ]
    d = d.groupby("combo", as_index=False)["acc"].mean()
    pairs = d["combo"].str.split("+", expand=True)
    order = [n for n in B.names() if n in set(pairs[0]) | set(pairs[1])]
    grid = pd.DataFrame(np.nan, index=order, columns=order)
    for (a, b), acc in zip(pairs.values, d["acc"]):
        grid.loc[a, b] = grid.loc[b, a] = 100 * acc
    fig, ax = plt.subplots(figsize=(1 + 0.45 * len(order), 0.8 + 0.4 * len(order)))
    sns.heatmap(
        grid,
        annot=True,
        fmt=".0f",
        cmap="viridis",
        vmin=0,
        vmax=100,
        ax=ax,
        cbar_kws={"label": "accuracy (%)"},
        annot_kws={"size": 7},
    )
    ax.set_title(f"pair accuracy (%), method '{method}' (blank: not evaluated)")
    ax.set(xlabel="behavior", ylabel="behavior")
    fig.tight_layout()
    return fig


def rate_dots(
    table: pd.DataFrame, row: str = "behavior", title: str = "pass rate"
) -> plt.Figure:
    """One line per ``row`` (behaviors), one dot per method with its 95% interval: many
    rows and a few methods stay readable at the text column's width, where grouped bars
    do not. ``table``: a ``pass_rate`` (%) with its interval ``lo``, ``hi`` per ``row``
    and method, as ``singles.targets_comparison`` writes it."""
    rows = list(dict.fromkeys(table[row]))
    methods = list(dict.fromkeys(table["method"]))
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.34 * len(rows)))
    step = 0.7 / max(1, len(methods) - 1)
    for i, m in enumerate(methods):
        d = table[table["method"] == m].set_index(row).reindex(rows)
        y = np.arange(len(rows)) - 0.35 + i * step
        ax.errorbar(
            d["pass_rate"],
            y,
            xerr=np.vstack([d["pass_rate"] - d["lo"], d["hi"] - d["pass_rate"]]),
            fmt="o",
            ms=3.5,
            elinewidth=0.8,
            capsize=0,
            label=m,
        )
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
    sns.heatmap(
        cos,
        cmap="RdBu_r",
        vmin=-1,
        vmax=1,
        ax=ax,
        annot=len(cos) <= 14,
        fmt=".1f",
        annot_kws={"size": 6},
        cbar_kws={"label": "cosine similarity"},
        xticklabels=True,
        yticklabels=True,
    )
    ax.tick_params(labelsize=7)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def pca_scatter(points: pd.DataFrame) -> plt.Figure:
    """PCA of steering tokens over a grey vocabulary cloud: left, the whole cloud;
    right, the steering tokens close up, each named in a column of labels beside the
    points (in the points' vertical order, joined by thin lines), so that tokens of one
    category, which sit together, stay legible. Legend below the axes."""
    fig, (whole, zoom) = plt.subplots(
        1, 2, figsize=(9, 5.6), gridspec_kw={"width_ratios": [1, 1.5]}
    )
    vocab = points[points["category"] == "vocabulary"]
    steer = points[points["category"] != "vocabulary"]
    for ax in (whole, zoom):
        ax.scatter(
            vocab["pc1"],
            vocab["pc2"],
            s=2,
            c="lightgrey",
            label="vocabulary",
            rasterized=True,
        )
        sns.scatterplot(
            data=steer,
            x="pc1",
            y="pc2",
            hue="category",
            style="category",
            s=40,
            ax=ax,
            legend=ax is zoom,
        )
        ax.set(xlabel="first principal component", ylabel="second principal component")
    lo_x, hi_x = steer["pc1"].min(), steer["pc1"].max()
    lo_y, hi_y = steer["pc2"].min(), steer["pc2"].max()
    span_x, span_y = hi_x - lo_x + 1e-6, hi_y - lo_y + 1e-6
    label_x = hi_x + 0.25 * span_x  # the column of labels, right of every point
    zoom.set(
        xlim=(lo_x - 0.1 * span_x, hi_x + 0.75 * span_x),
        ylim=(lo_y - 0.08 * span_y, hi_y + 0.08 * span_y),
    )
    order = steer.sort_values("pc2")
    for (_, r), y in zip(
        order.iterrows(),
        np.linspace(lo_y - 0.05 * span_y, hi_y + 0.05 * span_y, len(order)),
    ):
        zoom.annotate(
            r["label"],
            (r["pc1"], r["pc2"]),
            xytext=(label_x, y),
            fontsize=7,
            va="center",
            arrowprops={"arrowstyle": "-", "lw": 0.3, "color": "grey"},
        )
    whole.set_title("all points")
    zoom.set_title("steering tokens, close up")
    zoom.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        ncol=4,
        fontsize=7,
        frameon=False,
    )
    fig.suptitle(
        "PCA of steering tokens and 2,000 vocabulary embeddings (unitless coordinates)",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


def norm_histogram(token_norms: pd.DataFrame, vocab_norms: np.ndarray) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(vocab_norms, bins=60, color="lightgrey", label="vocabulary")
    for _, r in token_norms.iterrows():
        ax.axvline(r["norm"], lw=1, alpha=0.7)
    ax.set(
        xlabel="L2 norm of the embedding vector",
        ylabel="vocabulary tokens (count)",
        title="steering-token norms (vertical lines) vs the vocabulary's (histogram)",
    )
    fig.tight_layout()
    return fig
