"""The README's quick start is quickstart.py, word for word (so the file a user runs is the one they read)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_quick_start_is_quickstart_py():
    readme = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "load_backbone" in b]
    assert blocks, "README has no quick-start block"
    script = (ROOT / "quickstart.py").read_text()
    body = script.split('"""', 2)[2].lstrip("\n")  # after the module docstring
    assert blocks[0] == body, "README's quick start and quickstart.py differ: edit one, copy it to the other"
