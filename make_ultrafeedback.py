r"""Write made-up UltraFeedback-schema data: the shipped sample, or full size for speed runs.

    # 300 short made-up rows into out/ultrafeedback_made_up.jsonl (the shipped sample's settings)
    python make_ultrafeedback.py

    # remake the shipped sample: byte-identical to the file in git (tests/test_pipeline.py checks it);
    # other settings are refused for that path, since the tests and the README's counts stand on it
    python make_ultrafeedback.py --output data/ultrafeedback_sample.jsonl

    # full size, responses of realistic length (~1,300 characters), for benchmarks/
    python make_ultrafeedback.py --rows 63967 --response-words 220 --output out/uf_full.jsonl

The same seed and settings give byte-identical files. The first rows are the awkward cases
(ultralm-65b, 2- and 3-completion rows, completions out of `models` order, an empty and a
duplicated response, a model absent from the behaviour table, N/A ratings, truthful_qa).
"""

import argparse
import json
import os
from pathlib import Path

from zebra.errors import ZebraError
from zebra.settings import check_number, check_output_path  # the standard library only, like the line above

ROWS = 300  # enough for every strategy to pick among many model pairs, small enough to ship
SEED = 0
RESPONSE_WORDS = 40  # short texts keep the shipped file small (~1 MB)
AWKWARD_RATE = 0.05  # after the first rows, how often a row is made awkward again
# Not the shipped sample's path: a bare run must not rewrite the file the tests and README stand on.
OUTPUT = "out/ultrafeedback_made_up.jsonl"
# The shipped sample (zebra.data.SAMPLE), named here so the guard needs no pyarrow before main_guard runs.
SAMPLE = Path(__file__).resolve().parent / "data" / "ultrafeedback_sample.jsonl"


def check_settings(args) -> None:
    """Every setting in range and the output writable, before any row is made (zebra.settings)."""
    from zebra.records import make_parent, remove_stale_tmp  # pyarrow: after main_guard can name it if missing

    check_number("--rows", args.rows, low=1, integer=True)
    check_number("--seed", args.seed, low=0, high=2**32 - 1, integer=True)
    check_number("--response-words", args.response_words, low=1, integer=True)
    check_number("--awkward-rate", args.awkward_rate, low=0, high=1, hint="a probability")
    if Path(args.output).suffix.lower() != ".jsonl":
        raise ZebraError(f"--output {args.output}: name it .jsonl (one JSON row per line)")
    check_output_path(args.output, [])
    make_parent(args.output)
    remove_stale_tmp(args.output)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=ROWS, help="rows to write (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=SEED, help="generator seed (default: %(default)s)")
    ap.add_argument("--response-words", type=int, default=RESPONSE_WORDS,
                    help="mean words a response, each drawn from 0.5-1.5 times this (default: %(default)s)")
    ap.add_argument("--awkward-rate", type=float, default=AWKWARD_RATE,
                    help="share of rows after the first ones made awkward again (default: %(default)s)")
    ap.add_argument("--output", default=OUTPUT, help="a .jsonl file (default: %(default)s)")
    args = ap.parse_args()
    try:
        check_settings(args)
    except ZebraError as err:
        raise SystemExit(f"error: {err}")

    from tqdm.auto import tqdm

    from zebra.synthetic import make_rows

    out = Path(args.output)
    sample_settings = (ROWS, SEED, RESPONSE_WORDS, AWKWARD_RATE)
    if out.resolve() == SAMPLE.resolve() and (args.rows, args.seed, args.response_words, args.awkward_rate) != sample_settings:
        raise SystemExit(f"error: --output {args.output}: {SAMPLE.name} is the shipped sample; only its own settings "
                         f"(--rows {ROWS} --seed {SEED} --response-words {RESPONSE_WORDS} --awkward-rate {AWKWARD_RATE}) "
                         f"may write it; choose another --output")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            rows = make_rows(args.rows, args.seed, args.response_words, args.awkward_rate)
            # always shown (stderr), also when piped: a full-size file takes a while
            for row in tqdm(rows, total=args.rows, unit="row", desc=f"writing {out.name}", mininterval=1.0):
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {args.rows} rows to {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    from zebra.cli import main_guard  # Ctrl-C, a missing package: one line
    main_guard(main)
