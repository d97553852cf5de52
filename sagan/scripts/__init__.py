"""Click commands behind the top-level train.py, sample.py and evaluate.py (and the sagan-* console scripts)."""
