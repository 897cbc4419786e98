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
        "defaults = {k: pd.get_option(k) for k in ('display.width', 'display.max_colwidth')}\n"
        "import steerlib as st\n"
        "print(json.dumps({'modules': sorted(m for m in sys.modules if m.startswith('steerlib')),\n"
        "                  'options_kept': defaults == {k: pd.get_option(k) for k in defaults},\n"
        "                  'core': [hasattr(st, n) for n in ('SteeredModel', 'train_behavior_token',\n"
        "                           'train_composition_token', 'evaluate', 'metrics', 'presets')]}))"
    )
    assert not set(STUDY) & set(seen["modules"]), seen["modules"]
    assert seen["options_kept"]
    assert all(seen["core"])


@pytest.mark.slow
def test_study_modules_are_imported_on_use():
    seen = _in_fresh_interpreter(
        "import json, sys\nimport steerlib as st\nst.ablations\n"
        "print(json.dumps({'modules': sorted(m for m in sys.modules if m.startswith('steerlib'))}))"
    )
    assert "steerlib.study.ablations" in seen["modules"]


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        steerlib.nope  # noqa: B018


def test_no_module_imports_the_package_root():
    """The version lives in ``_version``; a module reading ``steerlib``'s root would import
    every core module (and itself, half-initialised)."""
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
    {
        "_version",
        "cores",
        "errors",
        "paths",
        "storage",
        "guard",
        "distributed",
        "launch",
    },
    {"config"},
    {"tasks"},
    {"model"},
    {"presets"},
    {"train"},
    {"evaluation"},
    {"baselines"},
    {"study"},
    {"cli", "__main__"},
]
"""steerlib's layers, lowest first: a module may import its own layer and those below, never one above."""


def _imports() -> dict[str, set[str]]:
    """Every steerlib module but the package root (which re-exports the public API) -> the
    steerlib modules it imports (at the top or inside a function)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts == ("__init__",):
            continue
        name = ".".join(
            ("steerlib", *parts[:-1], *([] if parts[-1] == "__init__" else parts[-1:]))
        )
        package = name if parts[-1] == "__init__" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *filter(None, [base])])
                for alias in node.names:
                    found.add(
                        f"{base}.{alias.name}"
                        if _is_module(f"{base}.{alias.name}")
                        else base
                    )
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        graph[name] = {m for m in found if m.startswith("steerlib.") and m != name}
    return graph


def _is_module(name: str) -> bool:
    """True when ``name`` is a steerlib module or package (not a name defined in one)."""
    if not name.startswith("steerlib."):
        return False
    path = PACKAGE.joinpath(*name.split(".")[1:])
    return path.with_suffix(".py").is_file() or path.is_dir()


def _layer(module: str) -> int:
    top = module.split(".")[1]
    return next(i for i, layer in enumerate(LAYERS) if top in layer)


def test_no_module_imports_a_higher_layer():
    graph = _imports()
    assert set(
        map(_layer, graph)
    )  # every module sits in a layer (StopIteration names a new top-level one)
    upward = {
        f"{m} -> {d}"
        for m, deps in graph.items()
        for d in deps
        if _layer(d) > _layer(m)
    }
    assert not upward, sorted(upward)


def test_modules_do_not_import_each_other():
    """No import cycle between two modules (e.g. a model card and the tokens it describes)."""
    graph = _imports()
    cycles = {
        tuple(sorted((a, b)))
        for a, deps in graph.items()
        for b in deps
        if a in graph.get(b, ())
        and not (a.startswith(b + ".") or b.startswith(a + "."))
    }
    assert not cycles, sorted(cycles)


def test_importing_plots_switches_no_matplotlib_backend(monkeypatch):
    import importlib

    import matplotlib

    import steerlib.study.plots as plots

    def refuse(*args, **kwargs):
        raise AssertionError("steerlib.study.plots called matplotlib.use on import")

    monkeypatch.setattr(matplotlib, "use", refuse)
    importlib.reload(plots)
