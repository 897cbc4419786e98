"""The study and the book: the preset pipelines (``reproduce``), the capable-pairs study,
the ablations, the reports and figures, and the notebooks' helpers."""
