"""Point the book at the repository named in ``book/_config.yml`` (``repository.url``
and ``repository.branch``): the chapters' Colab badges and setup cells, the README's
chapter links and the pages' links to result files all follow it.

    python scripts/set_repository.py            # after editing book/_config.yml
    python scripts/set_repository.py --check    # exit 1 and list what disagrees

``tests/test_book_sources.py`` runs the check, so the config stays the one source.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FILES = ["README.md", "book/*.md", "notebooks/[0-9]*.py"]
# github.com/OWNER/REPO/blob/BRANCH/... and
# colab.research.google.com/github/OWNER/REPO/blob/BRANCH/...
LINK = re.compile(
    r"(https://(?:colab\.research\.google\.com/)?github(?:\.com)?/)"
    r"([\w.-]+/[\w.-]+)(/blob/)([\w.-]+)(/)"
)
SETUP = re.compile(r'^REPOSITORY = "[^"]*"', re.M)


def configured() -> tuple[str, str]:
    """``(owner/name, branch)`` from book/_config.yml."""
    repo = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())["repository"]
    url = repo["url"].rstrip("/")
    return url.split("github.com/", 1)[1], repo.get("branch", "main")


def rewritten(text: str, slug: str, branch: str) -> str:
    text = LINK.sub(lambda m: f"{m[1]}{slug}{m[3]}{branch}{m[5]}", text)
    return SETUP.sub(f'REPOSITORY = "https://github.com/{slug}"', text)


def files() -> list[Path]:
    return sorted(p for pattern in FILES for p in ROOT.glob(pattern))


def main(argv: list[str]) -> int:
    slug, branch = configured()
    stale = [
        p for p in files() if rewritten(p.read_text(), slug, branch) != p.read_text()
    ]
    if "--check" in argv:
        for p in stale:
            print(f"{p.relative_to(ROOT)}: links or setup cell not at {slug}@{branch}")
        return 1 if stale else 0
    for p in stale:
        p.write_text(rewritten(p.read_text(), slug, branch))
        if p.suffix == ".py":  # the paired notebook follows its source
            subprocess.run(["jupytext", "--sync", str(p)], check=True)
        print(f"updated {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
