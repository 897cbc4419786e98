"""Solutions to the book's exercises, one module per chapter (``ch1`` ... ``ch5``).

Each chapter's last section states its exercises; the book shows these functions in
collapsed "Solution" blocks (``literalinclude``, so the page shows exactly this code)
and runs them, and ``tests/test_exercises.py`` checks each one on the tiny model. They
use only steerlib's public functions: they are examples of using the library, not part
of it.
"""
