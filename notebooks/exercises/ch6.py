"""Chapter 6 exercises: a token's pass rate by its place, and the shared
layout's position ids."""

from __future__ import annotations

import pandas as pd


def place_rates(records: pd.DataFrame, method: str) -> pd.DataFrame:
    """Pass rate (%) of each behavior's own verdict when its token stands first
    and when it stands second in the ordering, over the 2-behavior generations
    of ``method``."""
    pairs = records[(records["method"] == method) & (records["k"] == 2)]
    rows = [
        {"behavior": name, "place": place, "ok": bool(verdicts[name])}
        for order, verdicts in zip(pairs["order"], pairs["verdicts"])
        for place, name in zip(("first", "second"), order.split("+"))
    ]
    table = pd.DataFrame(rows).pivot_table(
        index="behavior", columns="place", values="ok", aggfunc="mean"
    )
    return 100 * table[["first", "second"]]


def shared_positions(length: int, slots: list[tuple[int, str]]) -> list[int]:
    """Position ids of a prompt of ``length`` tokens whose steering slots stand
    at ``slots`` ((index, name), one run) when every slot takes the first slot's
    position id and the tokens after the run continue from there, as if the run
    were one token long."""
    if len(slots) < 2:
        return list(range(length))
    first, last = slots[0][0], slots[-1][0]
    return [
        i if i < first else first if i <= last else i - (last - first)
        for i in range(length)
    ]


# -- checks (st.book.check) ----------------------------------------------------
def _pairs(
    rows: list[tuple[str, bool, bool]], method: str = "and"
) -> pd.DataFrame:
    """Made-up 2-behavior records: (order, first behavior's verdict, second's)."""
    out = []
    for i, (order, ok1, ok2) in enumerate(rows):
        a, b = order.split("+")
        out.append(
            {
                "method": method,
                "combo": "+".join(sorted((a, b))),
                "order": order,
                "k": 2,
                "prompt_id": i,
                "verdicts": {a: ok1, b: ok2},
                "ok": ok1 and ok2,
            }
        )
    return pd.DataFrame(out)


def check_place_rates(fn, records: pd.DataFrame | None = None) -> bool:
    """Exercise 6.1: worked out by hand, french passes 2 of 2 first and 1 of 3
    second, json 1 of 3 first and 1 of 2 second (the concat row is another
    method's); on the chapter's records, the library's ``slots.slot_rates``
    numbers."""
    import steerlib as st
    from steerlib.study import slots

    made_up = pd.concat(
        [
            _pairs(
                [
                    ("french+json", True, False),
                    ("french+json", True, True),
                    ("json+french", False, False),
                    ("json+french", True, True),
                    ("json+french", False, False),
                ]
            ),
            _pairs([("french+json", False, False)], method="concat"),
        ],
        ignore_index=True,
    )
    by_hand = pd.DataFrame(
        {"first": [100 / 3, 100.0], "second": [50.0, 100 / 3]},
        index=pd.Index(["json", "french"], name="behavior"),
    )

    def agrees(expected: pd.DataFrame):
        def right(got) -> bool:
            got = pd.DataFrame(got)
            return set(got.index) == set(expected.index) and all(
                abs(got.loc[b, col] - expected.loc[b, col]) < 1e-6
                for b in expected.index
                for col in ("first", "second")
            )

        return right

    cases = [((made_up, "and"), agrees(by_hand))]
    if records is not None and len(records):
        library = slots.slot_rates(records[records["method"] == "and"], False)
        cases.append(
            (
                (records, "and"),
                agrees(library.set_index("behavior")[["first", "second"]]),
            )
        )
    return st.book.check("place_rates", fn, cases)


def check_shared_positions(fn, bb=None) -> bool:
    """Exercise 6.2: positions worked out by hand (three slots after three
    tokens, one slot alone, a run at the very end); with a model, the library's
    own layout on a real prompt."""
    import steerlib as st
    from steerlib.model import layout as L
    from steerlib.model.layout import Layout, SlotPositions
    from steerlib.model.template import render

    cases = [
        (
            (8, [(3, "french"), (4, "and"), (5, "json")]),
            [0, 1, 2, 3, 3, 3, 4, 5],
        ),
        ((5, [(2, "french")]), [0, 1, 2, 3, 4]),
        ((5, [(3, "french"), (4, "json")]), [0, 1, 2, 3, 3]),
    ]
    if bb is not None:
        row = render(
            bb, "Why is the sky blue?", ["french", "and", "sentences_1"]
        )
        shared = L.positions(
            len(row.ids), row.blocks, Layout(SlotPositions.SHARED)
        )
        cases.append(((len(row.ids), list(row.slots)), shared))
    return st.book.check("shared_positions", fn, cases)
