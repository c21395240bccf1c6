r"""SIM (similarity-first, "As"): the most behaviour-alike pair of models; chosen = higher MB-SUP.

    # on the shipped real pool (AlpacaEval responses, no network)
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

from zebra import cli, strategies

DATA = "data/alpaca_eval"  # the shipped real pool: 12 models x 403 AlpacaEval prompts, GPT-4 judged (pool.json)
BEHAVIOUR_TABLE = "model_aware/benchmark.csv"  # the paper's behaviour table (Table 4)
ORDER = "most"  # most: the paper's SIM; least: its contrast (TF-IDF check, §5.1)
# The original project named its As output "least"; "most" gets the matching name.
OUTPUT = {"most": "model_aware/UltraFeedback.most.score_ranking.no_ultra65.json",
          "least": "model_aware/UltraFeedback.least.score_ranking.no_ultra65.json"}
TAU = 0.1  # paper §3.6; the original README says 0.9 and the original code applies none
SEED = 42  # seeds the --models-per-prompt draw of a pool's responses; SIM itself draws nothing
# Benchmark-agreement reliability (zebra.reliability, seed 003): a cut drops pairs the benchmarks split on.
MAX_ENTROPY = None  # e.g. 0.5 keeps six-benchmark votes of 6–0 and 5–1 (entropy 0 and 0.451 nats)
ENTROPY_QUANTILE = None  # e.g. 0.5: seed 003's cut, entropy <= the median of this run's pairs
RELIABILITY_TEMPERATURE = 0.2  # seed 003's softmax temperature for `weight`
MIN_MB_SUP_GAP = None  # e.g. 0.1 drops pairs whose MB-SUP gap is below it (README: agreement study); None: the paper


def sim(prompts: strategies.Candidates, settings) -> strategies.Selection:
    """SIM, per prompt: of the pairs of rated responses whose models have MB-SIM >= tau, the pair
    with the highest MB-SIM (strategy "sim_least", --order least: the lowest); the higher-MB-SUP
    model's response is chosen."""
    return strategies.select(prompts.models, prompts.mb_sup, prompts.mb_sim, settings.strategy, tau=settings.tau)


def main() -> None:
    ap = cli.binarize_parser(__doc__, data=DATA, behaviour_table=BEHAVIOUR_TABLE, tau=TAU, seed=SEED, max_entropy=MAX_ENTROPY,
                             entropy_quantile=ENTROPY_QUANTILE, reliability_temperature=RELIABILITY_TEMPERATURE)
    ap.add_argument("--order", choices=("most", "least"), default=ORDER, help="most or least similar pair (default: %(default)s)")
    ap.add_argument("--output", default=None, help=cli.output_help(OUTPUT[ORDER], "tau-0.5") + "; --order least: "
                    + OUTPUT["least"])
    cli.add_min_mb_sup_gap(ap, MIN_MB_SUP_GAP)
    args = ap.parse_args()
    strategy = "sim" if args.order == "most" else "sim_least"
    cli.run_binarize(strategy, args.output, args, OUTPUT[args.order], rule=sim)  # loading, batching, writing: zebra.pipeline


if __name__ == "__main__":
    cli.main_guard(main)  # Ctrl-C: one line, exit 130
