r"""RLAIF baseline (Table 1's "Baseline"): pairs chosen by UltraFeedback's GPT-4 instance scores.

    # on the shipped real pool (AlpacaEval responses, no network), writing model_aware/UltraFeedback.baseline.json
    python binarize_baseline.py

    # on full UltraFeedback; Argilla's cleaned ranking (mean of the four aspect ratings)
    python binarize_baseline.py --data openbmb/UltraFeedback --output out/baseline.json
    python binarize_baseline.py --data openbmb/UltraFeedback --score mean-rating --output out/baseline_clean.json

    # only GPT-4 pairs the benchmarks also take a clear side on (vote entropy <= the run's median);
    # pairs with a model outside the behaviour table have no votes: weight 1, dropped by a cut
    python binarize_baseline.py --entropy-quantile 0.5 --output out/baseline_reliable.json

The recipe of HuggingFaceH4/ultrafeedback_binarized, which the paper's baseline follows: chosen =
the response with the highest `overall_score`, rejected = one of the strictly lower-scored
responses drawn at random (seeded; the draw depends only on seed, prompt and slot), truthful_qa
prompts dropped. `overall_score` turns a critique score of 1 into 10 for hundreds of responses
(found by Argilla); `--score mean-rating` ranks by the mean of the four aspect ratings instead
(N/A ignored). Prompts whose responses all score the same give no pair and are counted.
This is the one constructor that uses instance labels: it is the comparison, not ZEBRA.
"""

from zebra import cli, strategies

DATA = "data/alpaca_eval"  # the shipped real pool: 12 models x 403 AlpacaEval prompts, GPT-4 judged (pool.json)
BEHAVIOUR_TABLE = "model_aware/benchmark.csv"  # only for the mb_* provenance columns (and --only-rated)
OUTPUT = "model_aware/UltraFeedback.baseline.json"
SCORE = "overall"  # what the paper used; "mean-rating" is Argilla's cleaned variant
DROP_SOURCES = ("truthful_qa",)  # ultrafeedback_binarized drops them (TruthfulQA is an eval set)
SEED = 42  # picks the random rejected response
# Benchmark-agreement reliability (zebra.reliability, seed 003): a cut drops pairs the benchmarks split on.
MAX_ENTROPY = None  # e.g. 0.5 keeps six-benchmark votes of 6–0 and 5–1 (entropy 0 and 0.451 nats)
ENTROPY_QUANTILE = None  # e.g. 0.5: seed 003's cut, entropy <= the median of this run's pairs
RELIABILITY_TEMPERATURE = 0.2  # seed 003's softmax temperature for `weight`


def baseline(prompts: strategies.Scored, settings) -> strategies.BaselineSelection:
    """The RLAIF baseline, per prompt: chosen = the response with the highest instance score
    (--score); rejected = one drawn at random (seeded) among the responses scored strictly lower."""
    return strategies.select_baseline(prompts.scores, prompts.usable, prompts.keys)


def main() -> None:
    ap = cli.binarize_parser(__doc__, data=DATA, behaviour_table=BEHAVIOUR_TABLE, tau=None, seed=SEED, max_entropy=MAX_ENTROPY,
                             entropy_quantile=ENTROPY_QUANTILE, reliability_temperature=RELIABILITY_TEMPERATURE,
                             tau_help="ignored: the baseline pairs by instance score, not MB-SIM (default: not used)",
                             seed_help="seed of the random rejected response and of --models-per-prompt's draw "
                                       "(default: %(default)s)")
    ap.add_argument("--output", default=None, help=cli.output_help(OUTPUT, "score-mean-rating"))
    ap.add_argument("--score", choices=("overall", "mean-rating"), default=SCORE, help="instance score (default: %(default)s)")
    ap.add_argument("--keep-truthful-qa", action="store_true", help="do not drop truthful_qa prompts")
    ap.add_argument("--only-rated", action="store_true",
                    help="use only responses of models in the behaviour table (same pool as ZEBRA: no ultralm-65b)")
    args = ap.parse_args()
    cli.run_binarize("baseline", args.output, args, OUTPUT, rule=baseline,  # loading, batching, writing: zebra.pipeline
                     score=args.score, only_rated=args.only_rated, drop_sources=() if args.keep_truthful_qa else DROP_SOURCES)


if __name__ == "__main__":
    cli.main_guard(main)  # Ctrl-C: one line, exit 130
