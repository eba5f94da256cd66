"""``make demo``: the marketing refresh DAG run for real, then a results table and gallery."""
