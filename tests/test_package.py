"""The package root: what ``import steerlib`` loads, and what it leaves alone."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import steerlib

PACKAGE = Path(steerlib.__file__).parent
STUDY = (
    "steerlib.study.pipeline",
    "steerlib.study.reports",
    "steerlib.study.ablations",
    "steerlib.baselines",
    "steerlib.study.plots",
    "steerlib.evaluation.geometry",
    "steerlib.study.book",
)


def _in_fresh_interpreter(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_import_loads_the_core_only_and_sets_no_display_options():
    seen = _in_fresh_interpreter(
        "import json, sys\n"
        "import pandas as pd\n"
        "defaults = {k: pd.get_option(k) for k in ('display.width', "
        "'display.max_colwidth')}\n"
        "import steerlib as st\n"
        "print(json.dumps({'modules': sorted(m for m in sys.modules if "
        "m.startswith('steerlib')),\n"
        "                  'options_kept': defaults == {k: pd.get_option(k) for k in "
        "defaults},\n"
        "                  'core': [hasattr(st, n) for n in ('SteeredModel', "
        "'train_behavior_token',\n"
        "                           'train_composition_token', 'evaluate', 'metrics', "
        "'presets')]}))"
    )
    assert not set(STUDY) & set(seen["modules"]), seen["modules"]
    assert seen["options_kept"]
    assert all(seen["core"])


@pytest.mark.slow
def test_study_modules_are_imported_on_use():
    seen = _in_fresh_interpreter(
        "import json, sys\nimport steerlib as st\nst.ablations\n"
        "print(json.dumps({'modules': sorted(m for m in sys.modules if "
        "m.startswith('steerlib'))}))"
    )
    assert "steerlib.study.ablations" in seen["modules"]


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        steerlib.nope  # noqa: B018


def test_no_module_imports_the_package_root():
    """The version lives in ``_version``; a module reading ``steerlib``'s root would
    import every core module (and itself, half-initialised)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__init__.py" and path.parent == PACKAGE:
            continue
        depth = len(
            path.relative_to(PACKAGE).parts
        )  # 1: steerlib/x.py, 2: steerlib/sub/x.py
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                root = (node.module == "steerlib") or (
                    node.level == depth and node.module is None
                )
                if root and any(
                    not (PACKAGE / a.name).with_suffix(".py").is_file()
                    and not (PACKAGE / a.name).is_dir()
                    for a in node.names
                ):
                    offenders.append(f"{path.name}: {ast.unparse(node)}")
            elif isinstance(node, ast.Import) and any(
                a.name == "steerlib" for a in node.names
            ):
                offenders.append(f"{path.name}: {ast.unparse(node)}")
    assert not offenders, offenders


def test_version_is_the_packaging_version():
    from steerlib._version import __version__

    assert steerlib.__version__ == __version__
    assert (
        'attr = "steerlib._version.__version__"'
        in (PACKAGE.parent / "pyproject.toml").read_text()
    )


LAYERS = [
    {"_version"},
    {"cores"},
    {"errors"},
    {"paths"},
    {"storage"},
    {"guard"},
    {"distributed"},
    {"checkout"},
    {"launch"},
    {"config"},
    {"tasks"},
    {"model"},
    {"preset"},
    {"presets"},
    {"train"},
    {"evaluation"},
    {"baselines"},
    {"study"},
    {"cli", "__main__"},
]
"""steerlib's layers, lowest first, by top-level name: a module may import its own layer
and those below, never one above. The plumbing modules each have a layer of their
own, so their order is checked too. Inside a layer (the modules of one subpackage) the
rule is that no import chain comes back to where it started
(``test_no_import_cycle``)."""


def _sources() -> dict[str, str]:
    """Every steerlib module but the package root (which re-exports the public API), by
    dotted name (a package by its own name), -> its source."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts != ("__init__",):
            name = ".".join(
                ("steerlib", *(parts[:-1] if parts[-1] == "__init__" else parts))
            )
            out[name] = path.read_text()
    return out


def _packages() -> set[str]:
    return {
        ".".join(("steerlib", *p.relative_to(PACKAGE).parent.parts))
        for p in PACKAGE.rglob("__init__.py")
    }


IMPORT_FUNCTIONS = {"import_module", "__import__"}
"""Calls that import by name (``importlib.import_module``, ``__import__``)."""


def _imports(sources: dict[str, str]) -> tuple[dict[str, set[str]], list[str]]:
    """The import graph: module -> the steerlib modules it imports, at the top, inside a
    function, or by name through ``importlib.import_module`` / ``__import__``; and the
    by-name imports whose name is not a literal (they cannot be checked, so they are
    refused unless the name plainly lies outside steerlib)."""
    packages = _packages()
    graph, unresolved = {}, []

    def module_of(name: str) -> str:
        """``name`` when it is a module or package, else its parent (a name defined in
        one)."""
        return name if name in sources or name in packages else name.rpartition(".")[0]

    for name, text in sources.items():
        package = name if name in packages else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *filter(None, [base])])
                found |= {module_of(f"{base}.{a.name}") for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.Call) and node.args:
                func = node.func
                called = (
                    func.attr
                    if isinstance(func, ast.Attribute)
                    else getattr(func, "id", "")
                )
                if called not in IMPORT_FUNCTIONS:
                    continue
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    target = arg.value
                    if target.startswith("."):
                        up = package.split(".")[
                            : len(package.split("."))
                            - (len(target) - len(target.lstrip(".")))
                            + 1
                        ]
                        target = ".".join([*up, target.lstrip(".")])
                    found.add(module_of(target))
                elif not (
                    isinstance(arg, ast.JoinedStr)
                    and isinstance(arg.values[0], ast.Constant)
                    and not str(arg.values[0].value).startswith(("steerlib", "."))
                ):
                    unresolved.append(f"{name}: {ast.unparse(node)}")
        graph[name] = {m for m in found if m.startswith("steerlib.") and m != name}
    return graph, unresolved


def _layer(module: str) -> int:
    top = module.split(".")[1]
    return next(i for i, layer in enumerate(LAYERS) if top in layer)


def _upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{m} -> {d}"
        for m, deps in graph.items()
        for d in deps
        if _layer(d) > _layer(m)
    )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of any length: strongly connected components of more than one
    module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_every_module_sits_in_a_layer():
    graph, _ = _imports(_sources())
    homeless = [
        m for m in graph if not any(m.split(".")[1] in layer for layer in LAYERS)
    ]
    assert not homeless, f"put these top-level names in LAYERS: {homeless}"


def test_no_module_imports_a_higher_layer():
    graph, _ = _imports(_sources())
    upward = _upward(graph)
    assert not upward, f"imports of a higher layer: {upward}"


def test_no_import_cycle():
    """No chain of imports, of any length and inside a subpackage too, returns to its
    start (``card -> tokens -> card``; ``backbone -> decoding -> template ->
    backbone``)."""
    graph, _ = _imports(_sources())
    cycles = _cycles(graph)
    assert not cycles, f"modules that import each other, through any chain: {cycles}"


def test_every_import_by_name_can_be_checked():
    _, unresolved = _imports(_sources())
    assert not unresolved, f"imports by a name that is not a literal: {unresolved}"


BREAKS = {
    "paths imports guard (the plumbing order)": (
        "steerlib.paths",
        "from steerlib import guard\n",
        _upward,
    ),
    "backbone -> decoding closes a cycle through template": (
        "steerlib.model.backbone",
        "from steerlib.model import decoding\n",
        _cycles,
    ),
    "plots -> pipeline closes a cycle through reports": (
        "steerlib.study.plots",
        "def f():\n    from steerlib.study import pipeline\n",
        _cycles,
    ),
    "preset imports the named presets (presets -> preset is the order)": (
        "steerlib.preset",
        "def f():\n    from steerlib.presets import presets\n",
        _upward,
    ),
    "cli.artifacts -> cli.run closes a cycle through the parser and a command": (
        "steerlib.cli.artifacts",
        "def f():\n    from steerlib.cli.run import main\n",
        _cycles,
    ),
    "hub -> tokens closes a cycle (the mixin reaches its host through self)": (
        "steerlib.model.hub",
        "def f():\n    from steerlib.model.tokens import SteeringTokens\n",
        _cycles,
    ),
    "token_file -> tokens closes a cycle (the file format knows no SteeringTokens)": (
        "steerlib.model.token_file",
        "from steerlib.model import tokens\n",
        _cycles,
    ),
    "gguf -> backbone closes a cycle (load_gguf returns a model, not a Backbone)": (
        "steerlib.model.gguf",
        "from steerlib.model.backbone import Backbone\n",
        _cycles,
    ),
    "kv_cache -> decoding closes a cycle (the buffers know no greedy loop)": (
        "steerlib.model.kv_cache",
        "from steerlib.model.decoding import greedy\n",
        _cycles,
    ),
    "tasks imports study.pipeline by name": (
        "steerlib.tasks.prompts",
        'import importlib\nimportlib.import_module("steerlib.study.pipeline")\n',
        _upward,
    ),
    "an import by a computed name": (
        "steerlib.tasks.prompts",
        'import importlib\nNAME = "steerlib.study"\nimportlib.import_module(NAME)\n',
        lambda graph: None,
    ),
}
"""Imports that once passed a weaker version of these checks, or that would undo a split
(``preset``/``presets``, the ``cli`` package, ``model``'s tokens, backbone and decoding
splits), and the check that must catch each (the last one is caught as unresolved)."""


@pytest.mark.parametrize("what", BREAKS)
def test_the_checks_catch_the_known_breaks(what):
    module, line, check = BREAKS[what]
    sources = _sources()
    clean, unresolved = _imports(sources)
    assert not check(clean) and not unresolved, "fix the tree first"
    sources[module] += "\n" + line
    graph, unresolved = _imports(sources)
    assert check(graph) or unresolved, f"{what}: not caught"


def test_importing_plots_switches_no_matplotlib_backend(monkeypatch):
    import importlib

    import matplotlib

    import steerlib.study.plots as plots

    def refuse(*args, **kwargs):
        raise AssertionError("steerlib.study.plots called matplotlib.use on import")

    monkeypatch.setattr(matplotlib, "use", refuse)
    importlib.reload(plots)


def test_an_older_transformers_is_refused_at_import_in_one_line():
    """``model.decoding`` uses the KV-cache API of transformers >= 5.24; an older one
    stops ``import steerlib`` with one line naming both versions, before anything fails
    in the middle of a generation."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import transformers; transformers.__version__ = '5.23.0'; import steerlib",
        ],
        capture_output=True,
        text=True,
    )
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode != 0
    assert last.startswith(
        "steerlib.errors.DependencyError: steerlib needs transformers"
    )
    assert "found 5.23.0" in last and ">= 5.24" in last


def test_the_declared_transformers_floor_is_the_one_checked():
    from steerlib.model import TRANSFORMERS_FLOOR

    root = PACKAGE.parent
    for name in ("requirements.txt", "pyproject.toml"):
        text = (root / name).read_text()
        assert f"transformers>={TRANSFORMERS_FLOOR},<6" in text, name
