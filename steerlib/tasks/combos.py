"""Combinations of behaviors as the evaluation protocol draws them: their orderings,
their split (seen / unseen, by size), and seeded samples of one split.

These depend on the behavior registry only, so a preset (``Preset.composition_combos``)
and the evaluation both use them without importing each other.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence

from steerlib.tasks import behaviors as B


def split_of(combo: Sequence[str]) -> str:
    """'seen-2', 'unseen-3', 'seen-4+json' ...: seen when every non-json member is seen.

    >>> split_of(("french", "upper_case"))
    'seen-2'
    >>> split_of(("german", "upper_case", "json"))
    'unseen-2+json'
    """
    core = [n for n in combo if n != "json"]
    kind = "seen" if all(B.get(n).seen for n in core) else "unseen"
    return f"{kind}-{len(core)}" + ("+json" if "json" in combo else "")


def orderings(combo: Sequence[str]) -> list[tuple[str, ...]]:
    """All k! orders of a combination (one for a single behavior).

    >>> orderings(("french", "upper_case"))
    [('french', 'upper_case'), ('upper_case', 'french')]
    """
    return list(itertools.permutations(combo))


def sample_combos(
    k: int,
    split: str,
    n: int | None,
    seed: int = 0,
    include_json: bool = False,
    keep: Callable[[tuple[str, ...]], bool] | None = None,
) -> list[tuple[str, ...]]:
    """``n`` combinations of one split drawn without replacement (all when n is None),
    from those ``keep`` accepts when given. The draw depends on the seed, k, split and
    ``include_json`` only, so every run of a preset evaluates the same combinations."""
    combos = B.combinations(k, split, include_json=include_json)
    if include_json:
        combos = [c for c in combos if "json" in c]
    if keep is not None:
        combos = [c for c in combos if keep(c)]
    if n is None or n >= len(combos):
        return combos
    return sorted(random.Random(f"{seed}-{k}-{split}-{include_json}").sample(combos, n))
