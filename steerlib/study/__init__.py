"""The study: its steps (``pipeline``), reports, ablations, curves, the capable-pairs
study, figures and the book's helpers.

``st.study.<name>`` is the pipeline's ``<name>`` (``st.study.reproduce``,
``st.study.train_all_behaviors``): once any module of this package is imported, Python
binds ``steerlib.study`` to the package itself, so the package stands for its pipeline
(read on first use, so importing ``steerlib.study.plots`` alone stays light).
"""

import importlib


def __getattr__(name: str):
    if name.startswith(
        "__"
    ):  # dunder lookups (pickling, introspection) are not pipeline names
        raise AttributeError(name)
    return getattr(importlib.import_module("steerlib.study.pipeline"), name)
