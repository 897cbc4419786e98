"""Benchmark 3: first against second load of a model, through steerlib's weight cache.

Each repeat points ``$STEERLIB_CACHE`` at a new empty folder, loads the model (first
load: for the embedded model, de-quantise the GGUF file and write the safetensors
cache), then loads it again from the same folder (second load: read the cache). The
goal is second <= 1/3 of first, i.e. the cache pays for itself by a wide margin.
"""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from steerlib.model.backbone import load_backbone

from .core import Goal, Section


@contextmanager
def cache_folder(path: str) -> Iterator[None]:
    """``$STEERLIB_CACHE`` set to ``path`` inside the block, restored after."""
    old = os.environ.get("STEERLIB_CACHE")
    os.environ["STEERLIB_CACHE"] = path
    try:
        yield
    finally:
        if old is None:
            del os.environ["STEERLIB_CACHE"]
        else:
            os.environ["STEERLIB_CACHE"] = old


def _timed_load(model: str | None) -> float:
    start = time.perf_counter()
    bb = load_backbone(model)
    seconds = time.perf_counter() - start
    del bb
    gc.collect()  # free this copy before the next load allocates another
    return seconds


def bench_load(model: str | None, repeats: int) -> Section:
    """Median first and second load time of ``model`` (None = embedded) over
    ``repeats`` fresh caches."""
    # the GGUF readers are imported on the first GGUF load; import them now so that
    # one-time cost does not count as first-load work of the first repeat only
    import gguf  # noqa: F401
    import transformers.modeling_gguf_pytorch_utils  # noqa: F401

    firsts, seconds = [], []
    for _ in range(repeats):
        with (
            tempfile.TemporaryDirectory(prefix="steerlib-cache-") as folder,
            cache_folder(folder),
        ):
            firsts.append(_timed_load(model))
            seconds.append(_timed_load(model))
    first, second = statistics.median(firsts), statistics.median(seconds)
    return Section(
        f"Load: {model or 'embedded'} model, first vs second load ({repeats} fresh "
        "cache folder(s))",
        figures=[
            ("first load (empty cache)", f"{first:.2f} s"),
            ("second load (cache filled)", f"{second:.2f} s"),
        ],
        goals=[Goal("second / first load", second / first, "<=", 1 / 3)],
    )


def load_not_measured(model: str) -> Section:
    """The load section when the model has no conversion cache to measure."""
    return Section(
        "Load: first vs second load",
        goals=[Goal("second / first load", None, "<=", 1 / 3)],
        notes=[f"not measured: only with --model embedded (this run: {model})"],
    )
