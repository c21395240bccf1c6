r"""SUP+SIM (hybrid, "Aqs"): the pair that best trades model quality against behaviour similarity.

    # on the shipped real pool (AlpacaEval responses, no network), with the weights below
    python binarize_combined.py

    # quality only (= binarize_score.py) or similarity only (= binarize_similarity.py)
    python binarize_combined.py --rank-weight 1 --similarity-weight 0
    python binarize_combined.py --rank-weight 0 --similarity-weight 1

    # on full UltraFeedback (hub id on a machine that reaches it, or a local copy)
    python binarize_combined.py --data openbmb/UltraFeedback --output out/sup_sim.json

    # only pairs the benchmarks agree on (vote entropy <= the run's median, as seed 003);
    # every record always carries `agreement`, `entropy` and `weight` (train_dpo.py --weight-column weight)
    python binarize_combined.py --entropy-quantile 0.5 --output out/sup_sim_reliable.json

For every admissible pair (MB-SIM ≥ τ) of a prompt's rated responses this maximises

    rank_weight · (MB-SUP(i) + MB-SUP(j)) / 2  +  similarity_weight · MB-SIM(i, j)

and chooses the pair's higher-MB-SUP model. The paper (§3.5, Strategy 3) names the two weights
but gives no formula; this one is exactly SUP at similarity_weight = 0 and exactly SIM at
rank_weight = 0, and both terms lie in [0, 1], so the weights read as shares.
"""

from zebra import cli, strategies

DATA = "data/alpaca_eval"  # the shipped real pool: 12 models x 403 AlpacaEval prompts, GPT-4 judged (pool.json)
BEHAVIOUR_TABLE = "model_aware/benchmark.csv"  # the paper's behaviour table (Table 4)
OUTPUT = "model_aware/UltraFeedback.combined.json"  # the original project's name for Aqs
RANK_WEIGHT = 0.5  # weight of the pair's mean MB-SUP (quality); the paper gives no value
SIMILARITY_WEIGHT = 0.5  # weight of the pair's MB-SIM (similarity); the paper gives no value
TAU = 0.1  # paper §3.6; the original README says 0.9 and the original code applies none
SEED = 42  # seeds the --models-per-prompt draw of a pool's responses; SUP+SIM itself draws nothing
# Benchmark-agreement reliability (zebra.reliability, seed 003): a cut drops pairs the benchmarks split on.
MAX_ENTROPY = None  # e.g. 0.5 keeps six-benchmark votes of 6–0 and 5–1 (entropy 0 and 0.451 nats)
ENTROPY_QUANTILE = None  # e.g. 0.5: seed 003's cut, entropy <= the median of this run's pairs
RELIABILITY_TEMPERATURE = 0.2  # seed 003's softmax temperature for `weight`
MIN_MB_SUP_GAP = None  # e.g. 0.1 drops pairs whose MB-SUP gap is below it (README: agreement study); None: the paper


def sup_sim(prompts: strategies.Candidates, settings) -> strategies.Selection:
    """SUP+SIM, per prompt: of the pairs of rated responses whose models have MB-SIM >= tau, the pair
    with the largest rank_weight·(MB-SUP(i) + MB-SUP(j))/2 + similarity_weight·MB-SIM(i, j); the
    higher-MB-SUP model's response is chosen."""
    return strategies.select(prompts.models, prompts.mb_sup, prompts.mb_sim, "sup_sim", tau=settings.tau,
                             rank_weight=settings.rank_weight, similarity_weight=settings.similarity_weight)


def main() -> None:
    ap = cli.binarize_parser(__doc__, data=DATA, behaviour_table=BEHAVIOUR_TABLE, tau=TAU, seed=SEED, max_entropy=MAX_ENTROPY,
                             entropy_quantile=ENTROPY_QUANTILE, reliability_temperature=RELIABILITY_TEMPERATURE)
    ap.add_argument("--output", default=None, help=cli.output_help(OUTPUT, "rank_weight-1.similarity_weight-0"))
    ap.add_argument("--rank-weight", type=float, default=RANK_WEIGHT, help="quality weight (default: %(default)s)")
    ap.add_argument("--similarity-weight", type=float, default=SIMILARITY_WEIGHT, help="similarity weight (default: %(default)s)")
    cli.add_min_mb_sup_gap(ap, MIN_MB_SUP_GAP)
    args = ap.parse_args()
    cli.run_binarize("sup_sim", args.output, args, OUTPUT, rule=sup_sim,  # loading, batching, writing: zebra.pipeline
                     rank_weight=args.rank_weight, similarity_weight=args.similarity_weight)


if __name__ == "__main__":
    cli.main_guard(main)  # Ctrl-C: one line, exit 130
