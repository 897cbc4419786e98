"""What a user's function computes, as text for a cache key: source, closure, defaults.

The source is taken without its docstring: a docstring says what the function is for
and changes nothing it computes, so rewording one does not retrain a token.

Your own behavior's checker and transform decide every verdict and every constructed
target, so their definitions are part of the keys of its tokens and records
(``registry.cache_name``). The source text alone is not enough: ``make_checker(100000)``
and ``make_checker(1)`` share it and differ only in a closure cell. So the values a
function closes over and its default arguments are digested too, by value; a value
whose text does not follow its content (an arbitrary object) is refused when the
behavior is registered, not silently left out. Globals the function reads are not
digested (book/guarantees.md says so).
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
from functools import partial

from steerlib.errors import ConfigError

_PLAIN = (type(None), bool, int, float, complex, str, bytes)


def code_text(fn, where: str = "a function") -> str:
    """``fn``'s source without its docstring (``source_text``; a partial's function and
    arguments), then the values of its closure cells and its defaults where it has any
    (``value_text``); '' for None."""
    if fn is None:
        return ""
    if isinstance(fn, partial):  # the arguments checked, written as before (same keys)
        value_text((fn.args, dict(fn.keywords)), where)
        return f"{code_text(fn.func, where)}{fn.args!r}{sorted(fn.keywords.items())!r}"
    try:
        source = source_text(inspect.getsource(fn))
    except (OSError, TypeError):
        source = (
            f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"
        )
    code = getattr(fn, "__code__", None)
    cells = getattr(fn, "__closure__", None) or ()
    bound = {
        name: value_text(cell.cell_contents, f"{where} (its variable {name!r})")
        for name, cell in zip(code.co_freevars if code else (), cells)
        if name != "__class__"
    }
    defaults = [getattr(fn, "__defaults__", None), getattr(fn, "__kwdefaults__", None)]
    return (
        source
        + (json.dumps(bound, sort_keys=True) if bound else "")
        + "".join(value_text(d, where) for d in defaults if d)
    )


def source_text(source: str) -> str:
    """``source`` (one function's definition, as ``inspect.getsource`` gives it) with
    the lines of its docstring removed; comments and layout are kept, so the text is
    the same on every Python version (``ast.unparse``'s layout is not). A source that
    does not parse on its own (a lambda inside an expression) is returned as it is."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return source
    node = tree.body[0] if tree.body else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or (
        ast.get_docstring(node, clean=False) is None
    ):
        return source
    doc, after = node.body[0], node.body[1:2]
    if doc.lineno == node.lineno or (after and after[0].lineno == doc.end_lineno):
        return source  # the docstring shares a line with code: keep it all
    lines = source.splitlines(keepends=True)
    return "".join(lines[: doc.lineno - 1] + lines[doc.end_lineno :])


def value_text(value, where: str) -> str:
    """A text of ``value`` that changes exactly when it does: plain values and
    containers of them, compiled patterns, functions (``code_text``) and modules.
    Anything else is a ``ConfigError`` naming ``where``: its ``repr`` may stay the same
    when its content changes, and a changed checker would then keep old verdicts and
    tokens."""
    if isinstance(value, _PLAIN):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return (
            f"{type(value).__name__}[{','.join(value_text(v, where) for v in value)}]"
        )
    if isinstance(value, (set, frozenset)):
        return f"set[{','.join(sorted(value_text(v, where) for v in value))}]"
    if isinstance(value, dict):
        items = sorted(
            f"{value_text(k, where)}:{value_text(v, where)}" for k, v in value.items()
        )
        return f"dict[{','.join(items)}]"
    if isinstance(value, re.Pattern):
        return f"re({value.pattern!r},{value.flags})"
    if inspect.ismodule(value):
        return f"module {value.__name__}"
    if inspect.isroutine(value) or isinstance(value, partial):
        return code_text(value, where)
    raise ConfigError(
        f"{where} reads a {type(value).__name__} ({value!r:.40}), which steerlib "
        "cannot digest, so a changed value would keep old verdicts and tokens: pass "
        "plain values (numbers, strings, tuples, dicts, compiled patterns, functions) "
        "instead"
    )
