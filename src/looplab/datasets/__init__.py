"""Step 3 of the loop, data's side: datasets of test cases, versioned by time, filled from
labelled traces and from JSONL/CSV files."""
