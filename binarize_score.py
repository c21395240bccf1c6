r"""SUP (superiority-first, "Aq"): chosen = the top MB-SUP model's response, rejected = the second's.

    # on the shipped real pool (AlpacaEval responses, no network), writing model_aware/UltraFeedback.similarity.anchor.json
    python binarize_score.py

    # on full UltraFeedback: the hub id on a machine that reaches it, or a local copy
    python binarize_score.py --data openbmb/UltraFeedback --output out/sup.json
    python binarize_score.py --data ~/mirror/ultrafeedback.parquet --behaviour-table my_table.csv --output out/sup.parquet

    # only pairs the benchmarks agree on (vote entropy <= the run's median, as seed 003);
    # every record always carries `agreement`, `entropy` and `weight` (train_dpo.py --weight-column weight)
    python binarize_score.py --entropy-quantile 0.5 --output out/sup_reliable.json

Among each prompt's responses whose models are in the behaviour table, the pair is the admissible
one (MB-SIM ≥ τ) with the largest MB-SUP sum: the top-1 and top-2 models unless τ forbids that
pair (paper §3.5, Strategy 1). Writes the records and `<output>.meta.json` beside them.
"""

from zebra import cli, strategies

DATA = "data/alpaca_eval"  # the shipped real pool: 12 models x 403 AlpacaEval prompts, GPT-4 judged (pool.json)
BEHAVIOUR_TABLE = "model_aware/benchmark.csv"  # the paper's behaviour table (Table 4)
OUTPUT = "model_aware/UltraFeedback.similarity.anchor.json"  # the original project's name for Aq
TAU = 0.1  # paper §3.6; the original README says 0.9 and the original code applies none
SEED = 42  # seeds the --models-per-prompt draw of a pool's responses; SUP itself draws nothing
# Benchmark-agreement reliability (zebra.reliability, seed 003): a cut drops pairs the benchmarks split on.
MAX_ENTROPY = None  # e.g. 0.5 keeps six-benchmark votes of 6–0 and 5–1 (entropy 0 and 0.451 nats)
ENTROPY_QUANTILE = None  # e.g. 0.5: seed 003's cut, entropy <= the median of this run's pairs
RELIABILITY_TEMPERATURE = 0.2  # seed 003's softmax temperature for `weight`
MIN_MB_SUP_GAP = None  # e.g. 0.1 drops pairs whose MB-SUP gap is below it (README: agreement study); None: the paper


def sup(prompts: strategies.Candidates, settings) -> strategies.Selection:
    """SUP, per prompt: of the pairs of rated responses whose models have MB-SIM >= tau, the pair
    with the largest MB-SUP sum; the higher-MB-SUP model's response is chosen."""
    return strategies.select(prompts.models, prompts.mb_sup, prompts.mb_sim, "sup", tau=settings.tau)


def main() -> None:
    ap = cli.binarize_parser(__doc__, data=DATA, behaviour_table=BEHAVIOUR_TABLE, tau=TAU, seed=SEED, max_entropy=MAX_ENTROPY,
                             entropy_quantile=ENTROPY_QUANTILE, reliability_temperature=RELIABILITY_TEMPERATURE)
    ap.add_argument("--output", default=None, help=cli.output_help(OUTPUT, "tau-0.5"))
    cli.add_min_mb_sup_gap(ap, MIN_MB_SUP_GAP)
    args = ap.parse_args()
    cli.run_binarize("sup", args.output, args, OUTPUT, rule=sup)  # loading, batching, writing: zebra.pipeline


if __name__ == "__main__":
    cli.main_guard(main)  # Ctrl-C: one line, exit 130
