"""Evaluation: generations verified into records, records into metrics and statistics,
and the geometry of the learned vectors."""
