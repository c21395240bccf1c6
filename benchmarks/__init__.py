"""Speed benchmarks (run as modules from the repository root: python -m benchmarks.binarize_speed).

Their results under benchmarks/results/ are what the README quotes: a run writes there only when
`--output` names the file (binarize_speed and long_pool_speed: their whole default run), so a smoke
or partial run never replaces them.
"""

import argparse


def at_least_one(text: str) -> int:
    """argparse type for sizes, scales and repeats: a whole number ≥ 1, refused in one line before
    any data is made (a 0 or −2 reached make_ultrafeedback.py and ended in a traceback)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value
