"""SIM (similarity-first, "As"): the most behaviour-alike pair of models; chosen = higher MB-SUP.

    # on the shipped sample (no network)
    python binarize_similarity.py                  # most similar pair (the paper's SIM)
    python binarize_similarity.py --order least    # least similar pair (the paper's analysis, §5.1)

    # on full UltraFeedback (hub id on a machine that reaches it, or a local copy)
    python binarize_similarity.py --data openbmb/UltraFeedback --output out/sim.json

    # only pairs the benchmarks agree on (vote entropy <= the run's median, as seed 003);
    # every record always carries `agreement`, `entropy` and `weight` (train_dpo.py --weight-column weight)
    python binarize_similarity.py --entropy-quantile 0.5 --output out/sim_reliable.json

Among each prompt's responses whose models are in the behaviour table, the pair is the admissible
one (MB-SIM ≥ τ) with the highest MB-SIM (`--order least`: the lowest); inside it the model with the
higher MB-SUP is chosen (paper §3.5, Strategy 2). Writes the records and `<output>.meta.json`.
"""

import argparse
import logging

from zebra.errors import ZebraError
from zebra.pipeline import BinarizeConfig, binarize, summary_line

BENCHMARK = "model_aware/benchmark.csv"  # the paper's behaviour table (Table 4)
ORDER = "most"  # most: the paper's SIM; least: its contrast (TF-IDF check, §5.1)
# The original project named its As output "least"; "most" gets the matching name.
OUTPUT = {"most": "model_aware/UltraFeedback.most.score_ranking.no_ultra65.json",
          "least": "model_aware/UltraFeedback.least.score_ranking.no_ultra65.json"}
TAU = 0.1  # paper §3.6; the original README says 0.9 and the original code applies none
SEED = 42  # SIM draws nothing at random; the flag exists so every binarize script takes the same ones
# Benchmark-agreement reliability (zebra.reliability, seed 003): a cut drops pairs the benchmarks split on.
MAX_ENTROPY = None  # e.g. 0.5 keeps six-benchmark votes of 6–0 and 5–1 (entropy 0 and 0.451 nats)
ENTROPY_QUANTILE = None  # e.g. 0.5: seed 003's cut, entropy <= the median of this run's pairs
RELIABILITY_TEMPERATURE = 0.2  # seed 003's softmax temperature for `weight`


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="hub id, .json/.jsonl/.parquet/.arrow file or folder (default: shipped sample)")
    ap.add_argument("--benchmark", default=BENCHMARK, help="behaviour table CSV (default: %(default)s)")
    ap.add_argument("--order", choices=("most", "least"), default=ORDER, help="most or least similar pair (default: %(default)s)")
    ap.add_argument("--output", default=None, help=f".json, .jsonl or .parquet (default: {OUTPUT[ORDER]}, or the least name)")
    ap.add_argument("--tau", type=float, default=TAU, help="admit a pair only if MB-SIM >= tau (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N prompts")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--max-entropy", type=float, default=MAX_ENTROPY, help="drop pairs whose benchmark-vote entropy (nats) is above this")
    ap.add_argument("--entropy-quantile", type=float, default=ENTROPY_QUANTILE, help="drop pairs above this entropy quantile of the run (0.5: seed 003)")
    ap.add_argument("--reliability-temperature", type=float, default=RELIABILITY_TEMPERATURE, help="softmax temperature of `weight` (default: %(default)s)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    strategy = "sim" if args.order == "most" else "sim_least"
    try:
        meta = binarize(BinarizeConfig(strategy, args.output or OUTPUT[args.order], args.data, args.benchmark,
                                       tau=args.tau, seed=args.seed, limit=args.limit, max_entropy=args.max_entropy,
                                       entropy_quantile=args.entropy_quantile,
                                       reliability_temperature=args.reliability_temperature))
    except ZebraError as err:
        raise SystemExit(f"error: {err}")
    print(summary_line(meta))


if __name__ == "__main__":
    main()
