"""Speed benchmarks (run as modules from the repository root: python -m benchmarks.binarize_speed)."""
