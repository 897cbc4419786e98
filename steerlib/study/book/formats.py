"""The names and number formats every page of the book shares: one display name per
method, p-values, intervals and cut answers as the tables print them."""

from __future__ import annotations

import pandas as pd

METHOD_NAMES = {
    "instruction": "instruction",
    "hybrid": "hybrid",
    "concat": "concatenation",
    "and": "<and>",
    "native_and": 'native " and"',
    "lora_dare": "LoRA-DARE",
    "lm_steer": "LM-Steer",
    "caa": "CAA",
    "plain": "plain",
    "token": "token",
}
"""One display name per method on every page (the records keep the short ids on the
left)."""

PAGE_METHODS = (
    "instruction",
    "hybrid",
    "lora_dare",
    "concat",
    "and",
    "native_and",
    "lm_steer",
    "caa",
)
"""The order methods take in chapter 2's tables: prompt-side methods first, then the
trained and activation baselines."""


def p_text(p: float) -> str:
    """A p-value as the pages print it: "< 0.001", else three decimals; "–" when there
    is none."""
    if p is None or pd.isna(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_phrase(p: float) -> str:
    """ "p < 0.001" or "p = 0.017": for prose."""
    text = p_text(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def interval(value: float, lo: float, hi: float, digits: int = 1) -> str:
    """``value [lo, hi]`` (percentages), or "–" for a missing value."""
    if value is None or pd.isna(value):
        return "–"
    return f"{value:.{digits}f} [{lo:.0f}, {hi:.0f}]"


def clip(text: str, limit: int = 200) -> str:
    """A generation cut to ``limit`` characters for a table cell: whitespace runs
    collapsed, a line repeated right after itself shown once with a count, "…" where it
    was cut."""
    lines, out = [line.strip() for line in str(text).splitlines() if line.strip()], []
    for line in lines:
        if out and out[-1][0] == line:
            out[-1][1] += 1
        else:
            out.append([line, 1])
    flat = " / ".join(line if n == 1 else f"{line} (x{n})" for line, n in out)
    flat = " ".join(flat.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def split_label(split: str) -> str:
    """A record split as a page names it: "seen-2" -> "seen pairs"."""
    return {"seen-2": "seen pairs", "unseen-2": "unseen pairs"}.get(split, split)
