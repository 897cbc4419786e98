"""The chapters' exercises: importing a chapter's solutions, and checking a learner's
function against cases with one line of verdict."""

from __future__ import annotations

import importlib
import math
import sys
from types import ModuleType

import pandas as pd

from steerlib.paths import project_root


def exercises(chapter: int) -> ModuleType:
    """The solutions of a chapter's exercises (``notebooks/exercises/ch<chapter>.py``),
    imported from the checkout, also in Colab's clone; each chapter's last cells show
    and run them."""
    folder = project_root() / "notebooks"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return importlib.import_module(f"exercises.ch{chapter}")


def _same(got, expected, tol: float = 1e-6) -> bool:
    """Equal up to float tolerance: numbers, strings, bools, sequences, dicts, pandas
    objects."""
    if isinstance(expected, (pd.DataFrame, pd.Series)):
        try:
            (
                pd.testing.assert_frame_equal
                if isinstance(expected, pd.DataFrame)
                else pd.testing.assert_series_equal
            )(got, expected, check_dtype=False, check_names=False, rtol=1e-5, atol=tol)
            return True
        except (AssertionError, TypeError):
            return False
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        return got == expected
    if isinstance(expected, (int, float)):
        return (
            isinstance(got, (int, float))
            and not isinstance(got, bool)
            and math.isclose(float(got), float(expected), rel_tol=1e-5, abs_tol=tol)
        )
    if isinstance(expected, dict):
        return (
            isinstance(got, dict)
            and got.keys() == expected.keys()
            and all(_same(got[k], v, tol) for k, v in expected.items())
        )
    if isinstance(expected, (list, tuple)):
        return (
            isinstance(got, (list, tuple))
            and len(got) == len(expected)
            and all(_same(g, e, tol) for g, e in zip(got, expected))
        )
    return got == expected


def _short(value, limit: int = 120) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shown(value) -> str:
    """One argument of a failed case, as a learner can read it: plain values as Python
    writes them, a table by its size, a model or token pack by its kind."""
    if isinstance(value, pd.DataFrame):
        return f"<a table of {len(value)} rows: {', '.join(map(str, value.columns))}>"
    if value is None or isinstance(value, (str, int, float, bool, list, tuple, dict)):
        return _short(value, 80)
    return f"<{type(value).__name__}>"


def _inputs(fn, args) -> str:
    """The arguments of a failed case, named as the learner's function names them."""
    import inspect

    try:
        named = inspect.signature(fn).bind(*args).arguments.items()
    except (TypeError, ValueError):  # a signature that does not take them: by position
        named = ((f"argument {i}", a) for i, a in enumerate(args, 1))
    return ", ".join(f"{k}={_shown(v)}" for k, v in named) or "no arguments"


def check(name: str, fn, cases) -> bool:
    """Run a learner's ``fn`` on each case ``(args, expected)`` and say pass or fail,
    with the first case that failed and its input (named as ``fn`` names them);
    ``expected`` may be a predicate (a callable taking the result). A stub that still
    raises ``NotImplementedError`` is reported as not attempted. Returns True only when
    every case passed (``tests/test_exercises.py`` runs the solutions here)."""
    cases = list(cases)
    for i, (args, expected) in enumerate(cases, 1):
        try:
            got = fn(*args)
        except NotImplementedError:
            print(
                f"[not yet] {name}: the stub still raises NotImplementedError. Fill it "
                "in and rerun this cell."
            )
            return False
        except Exception as e:  # the learner's bug, shown in one line
            print(
                f"[FAIL] {name}, case {i} of {len(cases)}: raised {type(e).__name__}: "
                f"{e}\n  input: {_inputs(fn, args)}"
            )
            return False
        try:
            ok = bool(expected(got)) if callable(expected) else _same(got, expected)
        except Exception:  # a result of the wrong shape: a failed case, not a crash
            ok = False
        if not ok:
            shown = "" if callable(expected) else f", expected {_short(expected)}"
            print(
                f"[FAIL] {name}, case {i} of {len(cases)}: got {_short(got)}{shown}"
                f"\n  input: {_inputs(fn, args)}"
            )
            return False
    print(f"[PASS] {name}: all {len(cases)} checks passed.")
    return True
