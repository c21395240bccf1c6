r"""Join the shard outputs of one binarize run into the file and meta that one run writes.

    # 4 shards of a run (each anywhere: a core, a machine, a Slurm array task), then the merge
    for i in 0 1 2 3; do python binarize_score.py --num-shards 4 --shard-index $i --output out/sup.shard-$i.jsonl; done
    python merge.py out/sup.shard-*.jsonl --output out/sup.jsonl

    # on one machine, --num-proc does both steps (same output)
    python binarize_score.py --num-proc 4 --output out/sup.jsonl

A shard (`--num-shards S --shard-index I`, every binarize_*.py script) selects the pairs of the
prompts whose prompt_id (sha256 of the prompt text) mod S is I. The merge refuses shards of
different settings, data or behaviour table, and a shard missing or given twice; it sums their
counts and writes the pairs in the input's order: JSON and JSON lines byte for byte as one run,
Parquet as the same table (zebra/shards.py). The shards' files are left as they are.
"""

import argparse

from zebra import cli


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shards", nargs="+", metavar="SHARD", help="the S shard outputs (.json/.jsonl/.parquet, each "
                    "with its .meta.json beside)")
    ap.add_argument("--output", required=True, help="the run's output, in the shards' format")
    args = ap.parse_args()
    import logging

    from zebra.errors import ZebraError
    from zebra.pipeline import summary_line
    from zebra.shards import merge

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        meta = merge(args.shards, args.output)
    except ZebraError as err:
        raise SystemExit(f"error: {err}") from None
    print(summary_line(meta) + f" (merged from {len(args.shards)} shards)")


if __name__ == "__main__":
    cli.main_guard(main)  # Ctrl-C: one line, exit 130
