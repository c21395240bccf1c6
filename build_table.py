r"""Build a behaviour table (the `--behaviour-table` CSV) from evaluation result files: lm-evaluation-harness
JSON (0.3 and 0.4 formats) and this project's `evaluate.py` summary.json.

    # the 8 UltraFeedback models that public lm-eval files cover (shipped), named as in UltraFeedback
    python build_table.py --lm-eval data/lm_eval_results --model-names data/lm_eval_results/ultrafeedback_names.csv \
        --output model_aware/lm_eval_table.csv
    python binarize_score.py --behaviour-table model_aware/lm_eval_table.csv --output out/sup_lm_eval.json

    # your own files: pick columns, change a metric, decide what a missing cell means
    python build_table.py --lm-eval results/ --tasks arc_challenge,hellaswag,mmlu_stem --metric arc_challenge=acc \
        --missing drop-model --output out/my_table.csv

    # your pool's models evaluated by this project (evaluate.py --output-dir evals/<model>), plus lm-eval files
    python build_table.py --evaluate evals --lm-eval results/ --missing drop-task --output out/my_table.csv

    # Open LLM Leaderboard v2 runs (`lm_eval --tasks leaderboard`): IFEval, MMLU-Pro, BBH, GPQA, MATH-Lvl-5, MuSR
    python build_table.py --lm-eval tests/data/lm_eval/leaderboard_v2 --output out/leaderboard_v2_table.csv

    # the study in the README: this table vs the paper's on the shipped real pool (AlpacaEval, GPT-4 judged)
    python build_table.py study --table model_aware/lm_eval_table.csv --judged-only --models-per-prompt 4 all \
        --output-dir out/lm_eval_study

One row per model (its `pretrained=` name, or `--model-names`' name), one column per task, fractions
in [0, 1] as the files give them. Beside the CSV, `<name>.provenance.json` names the file and JSON
key of every cell, the settings, and every choice made (counted). Metric per task: METRICS below,
else `acc`; MMLU groups computed from subjects when a file lacks them (size-weighted, as lm-eval 0.4);
the Open LLM Leaderboard v2's tasks become its six columns. See zebra/lmeval.py.
"""

import argparse
import logging
import sys

from zebra import lmeval  # the standard library only: --help and a missing package need nothing else
from zebra.cli import renamed
from zebra.errors import ZebraError

# Metric per task where it is not plain `acc`. acc_norm where the Open LLM Leaderboard (v1) used it
# (ARC-Challenge 25-shot, HellaSwag 10-shot); TruthfulQA as the leaderboard's mc2; GSM8K as its
# strict match; IFEval prompt-level strict, the headline evaluate.py reports too. Every other task
# (ARC-Easy, Winogrande, PIQA, BoolQ, OpenBookQA, MMLU and its groups) uses FALLBACK_METRIC.
METRICS = {
    "arc_challenge": "acc_norm",
    "hellaswag": "acc_norm",
    "ifeval": "prompt_level_strict_acc",
    "truthfulqa_mc2": "acc",
    "gsm8k": "exact_match,strict-match",
    "mmlu_pro": "exact_match,custom-extract",
    # Open LLM Leaderboard v2 (zebra/lmeval_leaderboard.csv): the metrics the leaderboard reads. IFEval is
    # prompt-level strict, the headline of evaluate.py and of the paper's IFEval column (the leaderboard's
    # displayed IFEval averages it with instruction-level strict: --metric IFEval=inst_level_strict_acc
    # picks that one instead). BBH and MuSR: the leaderboard's mean of subtasks normalised above chance.
    "IFEval": "prompt_level_strict_acc",
    "MMLU-Pro": "acc",
    "BBH": "acc_norm_above_chance",
    "MuSR": "acc_norm_above_chance",
    "GPQA": "acc_norm",
    "MATH-Lvl-5": "exact_match",
    # the same tasks named by their lm-eval names (--tasks leaderboard_ifeval ...)
    "leaderboard_ifeval": "prompt_level_strict_acc",
    "leaderboard_arc_challenge": "acc_norm",
}
FALLBACK_METRIC = "acc"  # a task with neither an entry above nor `acc` is no column (named in a warning)
MISSING = "error"  # a missing cell stops the run; drop-task | drop-model | keep are counted choices
ON_CONFLICT = "error"  # two files disagreeing on one model/task stop the run; first | last keep one (path order)

# The study: which table it compares against, and the binarize settings (the scripts' defaults).
PAPER_TABLE = "model_aware/benchmark.csv"
STUDY_DATA = "data/alpaca_eval"  # the shipped real pool (zebra/pools.py), GPT-4 judged
STUDY_STRATEGIES = ("sup", "sim")
TAU = 0.1  # paper §3.6, as binarize_*.py
SEED = 42  # the --models-per-prompt draw: binarize_*.py's and analyze.py's POOL_SEED, so the pools match
MIN_GAP = 0.0  # as analyze.py agreement: any judge-label difference decides a pair
N_BOOT = 2000  # bootstrap resamples of the agreement interval


def build_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lm-eval", action="append", default=[], metavar="PATH",
                    help="lm-eval results JSON, or a folder searched for *.json (repeatable)")
    ap.add_argument("--evaluate", action="append", default=[], metavar="PATH",
                    help="evaluate.py summary.json, or a folder searched for summary.json (repeatable)")
    ap.add_argument("--model-names", default=None, help="CSV pool_name,behaviour_table_name (full pretrained= name or its last part)")
    ap.add_argument("--only-mapped", action="store_true", help="leave out models the --model-names map does not name")
    ap.add_argument("--tasks", default=None, help="comma-separated columns, in order (default: every task found, MMLU subjects as groups)")
    ap.add_argument("--metric", action="append", default=[], metavar="TASK=METRIC",
                    help="override a task's metric, e.g. arc_challenge=acc or 'arc_*=acc' (repeatable; each must "
                         "match a column; METRIC,none is METRIC)")
    ap.add_argument("--missing", choices=lmeval.MISSING_POLICIES, default=MISSING, help="(default: %(default)s)")
    ap.add_argument("--on-conflict", choices=lmeval.CONFLICT_POLICIES, default=ON_CONFLICT, help="(default: %(default)s)")
    ap.add_argument("--output", required=True, help="the table, .csv; <stem>.provenance.json goes beside it")
    args = ap.parse_args(argv)
    # every file the run reads is an input the table or its provenance file must not replace
    lmeval.check_table_output(args.output, [*args.lm_eval, *args.evaluate, args.model_names])
    if args.only_mapped and not args.model_names:
        raise lmeval.ResultFileError("--only-mapped needs --model-names")
    overrides = lmeval.parse_metric_overrides(args.metric)

    files, skipped = lmeval.read_result_files(args.lm_eval, args.evaluate)
    names = lmeval.read_model_names(args.model_names) if args.model_names else {}
    table = lmeval.build_table(
        files, metrics=METRICS, overrides=overrides, fallback=FALLBACK_METRIC, names=names,
        only_mapped=args.only_mapped, tasks=lmeval.parse_task_list(args.tasks), missing=args.missing,
        on_conflict=args.on_conflict,
    )
    settings = {"lm_eval": args.lm_eval, "evaluate": args.evaluate, "model_names": args.model_names,
                "only_mapped": args.only_mapped, "tasks": args.tasks, "metrics": {**METRICS, **overrides},
                "fallback_metric": FALLBACK_METRIC, "missing": args.missing, "on_conflict": args.on_conflict,
                "files_skipped": skipped}
    csv_path, prov_path = lmeval.write_table(table, args.output, settings)
    print(f"wrote {csv_path}: {len(table.models)} models x {len(table.tasks)} tasks ({', '.join(table.tasks)}) "
          f"from {len(files)} files; provenance {prov_path}")


def study_main(argv: list[str]) -> None:
    from zebra import lmeval_study

    ap = argparse.ArgumentParser(
        prog="build_table.py study",
        description="Binarize one pool with two behaviour tables (over the models both rate) and compare: "
        "pairs changed per strategy, Spearman of MB-SUP, and GPT-4 agreement of each table's pairs.",
    )
    ap.add_argument("--table", required=True, help="the built table (e.g. model_aware/lm_eval_table.csv)")
    ap.add_argument("--paper", default=PAPER_TABLE, help="the table to compare with (default: %(default)s)")
    ap.add_argument("--data", default=STUDY_DATA, help="the pool, as binarize_*.py --data (default: %(default)s)")
    ap.add_argument("--tau", type=float, default=TAU, help="(default: %(default)s)")
    ap.add_argument("--models-per-prompt", nargs="+", default=["all"], metavar="K",
                    help="long-format pool: draw K responses per prompt, each K or `all` (default: all)")
    ap.add_argument("--judged-only", action="store_true", help="long-format pool: keep only responses with a GPT-4 label")
    ap.add_argument("--seed", type=int, default=SEED, help="the K draw (default: %(default)s)")
    ap.add_argument("--min-gap", type=float, default=MIN_GAP, help="a judge-label gap above this decides a pair (default: %(default)s)")
    ap.add_argument("--n-boot", type=int, default=N_BOOT, help="(default: %(default)s)")
    ap.add_argument("--output-dir", required=True, help="folder for both tables' pairs and study.json")
    ap.add_argument("--verbose", action="store_true", help="log every binarize run's notes (skipped responses by model, "
                    "pool counts) as it goes; by default they are only in the runs' .meta.json files")
    renamed(ap, "--output-dir", "--output")  # the old name (issue 21 §5): --output is one file elsewhere
    args = ap.parse_args(argv)
    from zebra.settings import check_number

    check_number("--n-boot", args.n_boot, low=1, integer=True)  # before the study's binarize runs, not after
    if not args.verbose:  # the runs' counts are in their .meta.json files; the summary names them
        import datasets

        logging.getLogger().setLevel(logging.ERROR)
        datasets.disable_progress_bars()  # `datasets` reading the pool into its cache, once per run
    ks = []
    for v in args.models_per_prompt:
        if v.lower() != "all" and not (v.isdigit() and int(v) >= 2):
            raise lmeval.ResultFileError(f"--models-per-prompt {v!r}: give integers >= 2 or 'all'")
        ks.append(None if v.lower() == "all" else int(v))
    result = lmeval_study.run_study(args.table, args.paper, args.data, args.output_dir, STUDY_STRATEGIES, args.tau,
                                    ks=ks, judged_only=args.judged_only, seed=args.seed, min_gap=args.min_gap,
                                    n_boot=args.n_boot)
    print(lmeval_study.format_study(result))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    argv = sys.argv[1:]
    try:
        if argv and argv[0] == "study":
            study_main(argv[1:])
        else:
            build_main(argv)
    except ZebraError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    from zebra.cli import main_guard  # Ctrl-C, a missing package: one line

    main_guard(main)
