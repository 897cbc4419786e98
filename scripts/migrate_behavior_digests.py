"""One-off migration (issue 28): stamp chapter 5's committed records with its
behavior's definition.

``evaluate.KEY_FIELDS`` now holds ``behaviors``, the ``cache_name`` of each of your own
behaviors in a record's order (``behaviors.definitions_stamp``), so that a behavior
registered again with another checker or instruction gets new records. Records of
built-ins only have an empty stamp and keep their keys; the one committed file with your
own behavior in it, ``results/cpu/own_behavior_records.jsonl`` (chapter 5's
``<ends_with_question>``), is stamped here without regenerating anything:

* the behavior is registered from the chapter's own cells
  (``notebooks/05_your_own_behavior.py``: its verifier, paraphrases, rule and
  transform, the text its digest is taken over);
* its ``cache_name`` must be the one the committed token was trained under
  (``results/cpu/ends_with_question.safetensors``), so the records and the token agree.

Run from the repo root: ``python scripts/migrate_behavior_digests.py``. Rewrites the
file atomically; running it again changes nothing.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

from steerlib.model.tokens import SteeringTokens
from steerlib.storage import read_jsonl, write_jsonl
from steerlib.tasks import behaviors as B

CHAPTER = Path("notebooks/05_your_own_behavior.py")
CELLS = ("CLOSERS =", "PARAPHRASES = (", "FOLLOW_UP =", "question = B.Behavior")
"""The chapter's cells that define the behavior (the rest loads models and
evaluates)."""


def chapter_behavior() -> B.Behavior:
    """The chapter's ``question`` behavior, its functions loaded from a file so that
    their source, which the digest covers, is the chapter's text."""
    cells = [c for c in CHAPTER.read_text().split("# %%") if any(k in c for k in CELLS)]
    head = (
        "from dataclasses import replace\n"
        "from steerlib.tasks import behaviors as B, verifiers as V\n"
    )
    path = Path(tempfile.mkdtemp()) / "chapter5.py"
    path.write_text(head + "\n".join(cells))
    spec = importlib.util.spec_from_file_location("chapter5", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.question


def main(results: Path = Path("results/cpu")) -> None:
    B.register(chapter_behavior(), new_category=True)
    token = SteeringTokens.load_file(results / "ends_with_question.safetensors")
    name = B.cache_name("ends_with_question")
    if not token.info["ends_with_question"]["key"].startswith(name + "-"):
        raise SystemExit(
            f"the chapter's behavior is {name}, the committed token was trained under "
            f"{token.info['ends_with_question']['key']}"
        )
    path = results / "own_behavior_records.jsonl"
    rows = read_jsonl(path)
    new = [
        r
        | (
            {"behaviors": s}
            if (s := B.definitions_stamp(r["order"].split("+")))
            else {}
        )
        for r in rows
    ]
    write_jsonl(path, new)
    print(
        f"{path}: {sum('behaviors' in r for r in new)} of {len(rows)} records stamped "
        f"{name}"
    )


if __name__ == "__main__":
    main()
