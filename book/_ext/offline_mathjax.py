"""Serve MathJax from the built book instead of a CDN, so equations render offline.

The MathJax 3 distribution comes from the ``django-static-mathjax`` wheel (a plain copy
of MathJax's files, no Django needed; requirements-dev.txt). ``mathjax_path`` in
book/_config.yml points Sphinx at ``_static/mathjax/tex-mml-chtml.js``; this extension
copies the distribution's ``es5`` folder there after each build (once: it is skipped
when the copy is already in place).
"""

from __future__ import annotations

import shutil
from pathlib import Path


def _distribution() -> Path:
    try:
        import mathjax  # the django-static-mathjax wheel's package
    except ImportError as err:
        raise RuntimeError(
            "MathJax for the book is missing: pip install django-static-mathjax "
            "(requirements-dev.txt; `make setup` installs it)"
        ) from err
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / "tex-mml-chtml.js").is_file():
        raise RuntimeError(
            f"{es5} holds no tex-mml-chtml.js: reinstall django-static-mathjax"
        )
    return es5


def _copy(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    if not (target / "tex-mml-chtml.js").is_file():
        shutil.copytree(_distribution(), target, dirs_exist_ok=True)


def setup(app):
    # fail at the start of the build, not after executing every notebook
    _distribution()
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
