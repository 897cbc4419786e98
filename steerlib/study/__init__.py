"""The study: its steps (``pipeline``, ``singles``, ``baseline_runs``), reports,
ablations, curves, the capable-pairs study, figures and the book's helpers.

``st.study.<name>`` is a step's ``<name>`` (``st.study.reproduce``,
``st.study.train_all_behaviors``): once any module of this package is imported, Python
binds ``steerlib.study`` to the package itself, so the package stands for its steps
(read on first use, so importing ``steerlib.study.plots`` alone stays light).
"""

import importlib
from pathlib import Path


def __getattr__(name: str):
    here = Path(__file__).parent
    if (
        name.startswith("__")
        or (here / f"{name}.py").is_file()
        or (here / name).is_dir()
    ):
        # dunder lookups (pickling, introspection) are no step's names, and a submodule
        # not imported yet is for the import system to load (``from steerlib.study
        # import reports`` asks here first), not a reason to import the steps
        raise AttributeError(name)
    steps = (  # the modules whose names st.study.<name> reads, in this order
        importlib.import_module("steerlib.study.pipeline"),
        importlib.import_module("steerlib.study.singles"),
        importlib.import_module("steerlib.study.baseline_runs"),
    )
    for module in steps:
        if name in vars(module):
            return vars(module)[name]
    raise AttributeError(f"module 'steerlib.study' has no attribute {name!r}")
