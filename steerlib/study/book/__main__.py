"""``python -m steerlib.study.book [results folder]``: rewrite ``headline.md`` from the
committed records (default: the cpu preset's results)."""

import sys

from steerlib.study.book.headline import write_headline
from steerlib.study.folders import results_dir

write_headline(sys.argv[1] if len(sys.argv) > 1 else results_dir("cpu"))
