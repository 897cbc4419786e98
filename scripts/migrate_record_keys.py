"""One-off migration (issue 17): give the committed cpu records their full key.

Records used to be matched by (method, order, prompt index) and the vectors' stamp only;
``evaluate.KEY_FIELDS`` now also holds the model fingerprint, the generation settings
(``max_new_tokens``, ``seed``) and a digest of the prompt text. Every record under
``results/cpu`` was made by the cpu preset on the embedded model, so those fields are
known and are added here without regenerating anything:

* ``model``: the fingerprint of the embedded model (loaded here, and checked against the
  fingerprint stored in ``results/cpu/tokens.safetensors``);
* ``max_new_tokens``: the cpu preset's ``eval.max_new_tokens`` (128 since before the
  first record was committed). Checked loosely: re-encoding a decoded answer does not
  give back exactly its generated ids (answers cut at 128 re-encode to up to 136 tokens
  here), so no answer may exceed the cap by more than ``SLACK`` tokens; the preset's
  earlier cap of 160 would show answers far longer;
* ``seed``: the cpu preset's ``eval.seed`` (every evaluation of the study passes it or
  the default 0, which is the same);
* ``prompt_sha``: ``prompt_digest`` of the record's own prompt text.

Run from the repo root: ``python scripts/migrate_record_keys.py``. Rewrites each file
atomically; running it again changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open

from steerlib.evaluation.records import prompt_digest
from steerlib.model.backbone import load_backbone
from steerlib.presets import presets
from steerlib.storage import read_jsonl, write_jsonl

FILES = [
    "records.jsonl",
    "single_records.jsonl",
    "targets_records.jsonl",
    "caa_sweep_records.jsonl",
    "ablations/records.jsonl",
]
SLACK = 10
"""Tokens an answer may gain when its decoded text is encoded again."""


def main(results: Path = Path("results/cpu")) -> None:
    ev = presets.cpu().eval
    bb = load_backbone()
    with safe_open(str(results / "tokens.safetensors"), framework="pt") as f:
        shipped = json.loads(f.metadata()["steerlib"])["fingerprint"]
    if shipped != bb.fingerprint:
        raise SystemExit(
            f"embedded model fingerprint {bb.fingerprint} != {shipped} of the cpu "
            "results"
        )
    for name in FILES:
        path = results / name
        rows = read_jsonl(path)
        longest = max(
            len(bb.tokenizer(r["text"], add_special_tokens=False)["input_ids"])
            for r in rows
        )
        if longest > ev.max_new_tokens + SLACK:
            raise SystemExit(
                f"{path}: an answer of {longest} tokens cannot come from "
                "max_new_tokens="
                f"{ev.max_new_tokens}"
            )
        new = [
            r
            | {
                "prompt_sha": prompt_digest(r["prompt"]),
                "model": bb.fingerprint,
                "max_new_tokens": ev.max_new_tokens,
                "seed": ev.seed,
            }
            for r in rows
        ]
        write_jsonl(path, new)
        print(f"{path}: {len(rows)} records; longest answer {longest} tokens")


if __name__ == "__main__":
    main()
