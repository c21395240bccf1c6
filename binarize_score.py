"""SUP (superiority-first, "Aq"): chosen = the top MB-SUP model's response, rejected = the second's.

    # on the shipped sample (no network), writing model_aware/UltraFeedback.similarity.anchor.json
    python binarize_score.py

    # on full UltraFeedback: the hub id on a machine that reaches it, or a local copy
    python binarize_score.py --data openbmb/UltraFeedback --output out/sup.json
    python binarize_score.py --data ~/mirror/ultrafeedback.parquet --benchmark my_table.csv --output out/sup.parquet

    # only pairs the benchmarks agree on (vote entropy <= the run's median, as seed 003);
    # every record always carries `agreement`, `entropy` and `weight` (train_dpo.py --weight-column weight)
    python binarize_score.py --entropy-quantile 0.5 --output out/sup_reliable.json

Among each prompt's responses whose models are in the behaviour table, the pair is the admissible
one (MB-SIM ≥ τ) with the largest MB-SUP sum: the top-1 and top-2 models unless τ forbids that
pair (paper §3.5, Strategy 1). Writes the records and `<output>.meta.json` beside them.
"""

import argparse
import logging

from zebra.errors import ZebraError
from zebra.pipeline import BinarizeConfig, binarize, summary_line

BENCHMARK = "model_aware/benchmark.csv"  # the paper's behaviour table (Table 4)
OUTPUT = "model_aware/UltraFeedback.similarity.anchor.json"  # the original project's name for Aq
TAU = 0.1  # paper §3.6; the original README says 0.9 and the original code applies none
SEED = 42  # SUP draws nothing at random; the flag exists so every binarize script takes the same ones
# Benchmark-agreement reliability (zebra.reliability, seed 003): a cut drops pairs the benchmarks split on.
MAX_ENTROPY = None  # e.g. 0.5 keeps six-benchmark votes of 6–0 and 5–1 (entropy 0 and 0.451 nats)
ENTROPY_QUANTILE = None  # e.g. 0.5: seed 003's cut, entropy <= the median of this run's pairs
RELIABILITY_TEMPERATURE = 0.2  # seed 003's softmax temperature for `weight`


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="hub id, .json/.jsonl/.parquet/.arrow file or folder (default: shipped sample)")
    ap.add_argument("--benchmark", default=BENCHMARK, help="behaviour table CSV (default: %(default)s)")
    ap.add_argument("--output", default=OUTPUT, help=".json, .jsonl or .parquet (default: %(default)s)")
    ap.add_argument("--tau", type=float, default=TAU, help="admit a pair only if MB-SIM >= tau (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N prompts")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--max-entropy", type=float, default=MAX_ENTROPY, help="drop pairs whose benchmark-vote entropy (nats) is above this")
    ap.add_argument("--entropy-quantile", type=float, default=ENTROPY_QUANTILE, help="drop pairs above this entropy quantile of the run (0.5: seed 003)")
    ap.add_argument("--reliability-temperature", type=float, default=RELIABILITY_TEMPERATURE, help="softmax temperature of `weight` (default: %(default)s)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        meta = binarize(BinarizeConfig("sup", args.output, args.data, args.benchmark, tau=args.tau,
                                       seed=args.seed, limit=args.limit, max_entropy=args.max_entropy,
                                       entropy_quantile=args.entropy_quantile,
                                       reliability_temperature=args.reliability_temperature))
    except ZebraError as err:
        raise SystemExit(f"error: {err}")
    print(summary_line(meta))


if __name__ == "__main__":
    main()
