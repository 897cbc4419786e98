"""The candidate-name language of the position search, and the families it names.

A candidate of the search is named by a string that says how to make it:
``<method>@<layout label>`` for family A (today's tokens read in a layout),
``|disp<k>`` for family B (behavior tokens trained ``0..k`` slots behind the question),
``|T<t>|ce<w>`` for family C (``<and>`` trained anew). ``parse_candidate`` reads a name
back; each record's method and each selection file carries it.
"""

from __future__ import annotations

from dataclasses import replace

from steerlib.errors import ConfigError
from steerlib.model.layout import Layout, SlotPositions
from steerlib.model.methods import METHODS, Method

LAYOUTS = (
    Layout(),
    Layout(SlotPositions.SHARED),
    Layout(SlotPositions.AND_OWN),
    Layout(SlotPositions.SHARED, isolate=True),
    Layout(SlotPositions.AND_OWN, isolate=True),
    Layout(isolate=True),
)
"""Family A of the search: today's tokens read in other places (no training)."""


def layout_method(layout: Layout, base: str = "and") -> Method:
    """``base`` ("and", "concat" or "hybrid") with the tokens read in ``layout``'s
    places, named ``base@layout`` (``and@shared+isolate``)."""
    return replace(METHODS[base], name=f"{base}@{layout.label}", layout=layout)


def screen_methods() -> list[Method]:
    """Family A as evaluated: ``<and>`` in every layout, and concatenation with shared,
    isolated slots (each token alone at its trained place, nothing joining them)."""
    return [layout_method(lay) for lay in LAYOUTS] + [
        layout_method(LAYOUTS[3], "concat")
    ]


RETRAINS = (
    {"temperature": 10.0, "ce_weight": 0.0},
    {"temperature": 2.0, "ce_weight": 0.0},
    {"temperature": 1.0, "ce_weight": 0.0},
    {"temperature": 2.0, "ce_weight": 1.0},
)
"""Family C in screening order: stage 2 retrained in the best A layout, the recipe's T
= 10 first, then lower temperatures and a cross-entropy term on the pair targets."""


DISPLACE = 2
"""Family B: stage 1 with 0-2 frozen blank slots between the question and the token
(``TrainConfig.displace``), the most a token stands behind the question in a pair."""


DISPLACED_STAGE2 = RETRAINS[0]
"""Family B's ``<and>`` on top of the displaced tokens: the recipe's stage 2 (T =
10)."""


def retrained_name(
    layout: Layout, temperature: float, ce_weight: float, displace: int = 0
) -> str:
    return (
        f"and@{layout.label}{displace_part(displace)}|T{temperature:g}|ce{ce_weight:g}"
    )


def displace_part(displace: int) -> str:
    return f"|disp{displace}" if displace else ""


TRAIN_PARTS = {
    "disp": ("displace", int),
    "T": ("temperature", float),
    "ce": ("ce_weight", float),
}
"""The training parts of a candidate name after its layout: ``|disp2`` (family B),
``|T2|ce0`` (a retrained ``<and>``)."""


def parse_candidate(name: str) -> tuple[str, Layout, dict | None]:
    """``"and@shared+isolate|T2|ce0"`` -> ("and", its Layout, {"temperature": 2,
    "ce_weight": 0}); ``"concat@sequential|disp2"`` -> ("concat", Layout(),
    {"displace": 2}); None: no training."""
    base, _, rest = name.partition("@")
    label, *parts = rest.split("|")
    positions, _, isolate = label.partition("+")
    layout = Layout(SlotPositions(positions), isolate=bool(isolate))
    train = {}
    for part in parts:
        prefix = next(
            (p for p in TRAIN_PARTS if part.startswith(p) and part[len(p) :]), None
        )
        if prefix is None:
            raise ConfigError(
                f"candidate {name!r}: unknown part {part!r}; parts: disp<k>, T<t>, "
                "ce<w>"
            )
        key, kind = TRAIN_PARTS[prefix]
        train[key] = kind(part[len(prefix) :])
    return base, layout, train or None
