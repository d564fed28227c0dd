"""Data stage: download and prepare the benchmark data sets."""
