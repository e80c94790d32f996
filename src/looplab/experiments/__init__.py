"""4: variants, the experiment runner, comparison of a candidate with its baseline, and its statistics."""
