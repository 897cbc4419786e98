"""Solutions to the book's exercises and their checks, one module per chapter
(``ch1`` ... ``ch6``).

Each chapter's last section states its exercises; after each check cell a hidden
solution cell holds a copy of these functions (hidden on the page, a form in Colab,
a collapsed input in Jupyter) and runs the check on them.
``tests/test_book_sources.py`` keeps the copies equal to these functions and
``tests/test_exercises.py`` checks each one on the tiny model. They use only
steerlib's public functions: they are examples of using the library, not part of it.
"""
