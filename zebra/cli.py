"""The flags and the run that the binarize_*.py scripts, and the two train_*.py scripts, share.

Each script keeps its own constants block (what a user edits) and passes those values here as
the flags' defaults; this module only spares the scripts the same argparse lines. It is the
package's one module that knows about argparse and prints, because it is the scripts'.
Every script names its flags by one scheme (issue 21 §5): --data the main input, --behaviour-table
the behaviour CSV, --benchmarks the evaluation sets and --eval-dir local copies of them, --output one
file and --output-dir a folder, --limit N the first N and --sample N a seeded draw of N; `renamed`
keeps the old spellings working, unlisted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any, Callable

from zebra.errors import ZebraError

INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a job stopped by Ctrl-C


def main_guard(main: Callable[[], Any]) -> None:
    """Run a script's `main()`; Ctrl-C stops it with one line and exit 130 instead of a traceback,
    and so does a missing third-party package (exit 1), naming it and the set-up command.

    Every top-level script ends with `cli.main_guard(main)` and imports its third-party packages
    inside `main()`, so both reach this. Outputs are written to temporary files and renamed only
    when complete (zebra.records), so an interrupted run leaves none.
    """
    try:
        main()
    except KeyboardInterrupt:
        sys.stderr.write(f"\ninterrupted: {Path(sys.argv[0]).name} stopped by Ctrl-C before finishing\n")
        raise SystemExit(INTERRUPTED) from None
    except ModuleNotFoundError as err:
        if not err.name or err.name.split(".")[0] == "zebra":
            raise  # a module of this project missing is a broken checkout, not a set-up step
        raise SystemExit(missing_package_message(err.name)) from None


def missing_package_message(module: str) -> str:
    """The one line for a third-party module this Python lacks (the usual cause: the system Python
    instead of the project's .venv, which `make setup` fills from requirements.txt)."""
    return (f"error: this Python ({sys.executable}) has no module {module.split('.')[0]!r}; set up once with "
            "`make setup`, then run the scripts with .venv/bin/python (or `source .venv/bin/activate` first)")


def renamed(ap: argparse.ArgumentParser, new: str, *old: str) -> None:
    """Let the old spellings `old` of the flag `new` still parse, hidden from --help and usage.

    Issue 21 §5 gave each meaning one flag name across the scripts (--behaviour-table, --data,
    --eval-dir, --output vs --output-dir, --limit vs --sample); commands written with an old name keep
    working for a while, with the same action, so the same dest, type, default and checks. The old
    string is registered on the parser only, not on the action: argparse shows an action's
    option_strings, so --help and its error messages name the new flag alone, and a required new
    flag is satisfied by the old one too.
    """
    action = ap._option_string_actions[new]  # argparse keeps no public map from a flag to its action
    for name in old:
        if name in ap._option_string_actions:
            raise ValueError(f"{name} is already a flag of this parser")
        ap._option_string_actions[name] = action


def binarize_parser(doc: str, *, behaviour_table: str, tau: float | None, seed: int, max_entropy: float | None,
                    entropy_quantile: float | None, reliability_temperature: float,
                    tau_help: str = "admit a pair only if MB-SIM >= tau (default: %(default)s)",
                    seed_help: str | None = None, data: str | None = None) -> argparse.ArgumentParser:
    """A parser with the common flags; the script adds `--output` and its own flags."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=data, help="hub id, .json/.jsonl/.parquet/.arrow file or folder, or a long-format "
                    "pool (one row per response, zebra/pools.py) (default: %(default)s)")
    ap.add_argument("--behaviour-table", default=behaviour_table,
                    help="behaviour table CSV: each model's benchmark scores (default: %(default)s)")
    renamed(ap, "--behaviour-table", "--benchmark")
    ap.add_argument("--tau", type=float, default=tau, help=tau_help)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N prompts (default: all)")
    ap.add_argument("--seed", type=int, default=seed, help=seed_help or "seed of --models-per-prompt's draw "
                    "(sha256 of seed, prompt, model); this strategy itself draws nothing (default: %(default)s)")
    ap.add_argument("--max-entropy", type=float, default=max_entropy, help="drop pairs whose benchmark-vote entropy (nats) is above this (default: no cut)")
    ap.add_argument("--entropy-quantile", type=float, default=entropy_quantile, help="drop pairs above this entropy quantile of the run, 0.5: seed 003 (default: no cut)")
    ap.add_argument("--reliability-temperature", type=float, default=reliability_temperature, help="softmax temperature of `weight` (default: %(default)s)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar (so does TQDM_DISABLE=1)")
    add_sharding_flags(ap)
    add_pool_flags(ap)
    return ap


def add_min_mb_sup_gap(ap: argparse.ArgumentParser, default: float | None) -> None:
    """--min-mb-sup-gap, for the strategies whose chosen response is the higher-MB-SUP one (SUP, SIM,
    SUP+SIM); the baseline orders a pair by instance score, so its pairs have no such gap."""
    ap.add_argument("--min-mb-sup-gap", type=float, default=default, metavar="G",
                    help="drop a selected pair whose MB-SUP(chosen) − MB-SUP(rejected) is below G, counted in the "
                    "meta as mb_sup_gap_below_min; GPT-4 agrees with gaps <= 0.1 less often than a coin (README's "
                    "agreement study) (default: no minimum, the paper's behaviour)")


def add_sharding_flags(ap: argparse.ArgumentParser) -> None:
    """One run spread over cores (--num-proc) or machines (--num-shards/--shard-index; merge.py joins them)."""
    g = ap.add_argument_group("one run over several cores or machines (zebra/shards.py)")
    g.add_argument("--num-proc", type=int, default=1, metavar="N",
                   help="run N shards in N processes and merge them: the same output as one process (default: 1)")
    g.add_argument("--num-shards", type=int, default=1, metavar="S", help="split the prompts into S shards by "
                   "their prompt_id (sha256 of the text) mod S; this run does one, --shard-index (default: 1)")
    g.add_argument("--shard-index", type=int, default=0, metavar="I",
                   help="which shard, 0 … S-1 (a Slurm array's $SLURM_ARRAY_TASK_ID); merge.py joins the S outputs (default: 0)")


POOL_FLAGS = ("format", "instruction_field", "model_field", "response_field", "source_field", "score_field",
              "prompts", "prompt_id_field", "prompt_field",
              "model_names", "judgments", "judgment_kind", "judgment_instruction_field", "judgment_model_field",
              "judgment_value_field")
POOL_SWITCHES = ("skip_unmatched_judgments", "judged_only")


def add_pool_flags(ap: argparse.ArgumentParser, several_k: bool = False) -> None:
    """Flags of a long-format pool (zebra.pools.PoolOptions); unset ones come from the pool's pool.json.

    `several_k`: --models-per-prompt takes several values, each K or `all` (analyze.py's study).
    """
    g = ap.add_argument_group("long-format pools (one row per response; zebra/pools.py)")
    g.add_argument("--format", default="auto", choices=["auto", "ultrafeedback", "long"], help="auto: long when the "
                   "folder has a pool.json or the first record has the model and response fields (default: %(default)s)")
    for name, default in (("instruction", "instruction"), ("model", "generator"), ("response", "output"), ("source", "dataset")):
        g.add_argument(f"--{name}-field", default=None, help=f"pool field of the {name} (default: {default}); "
                       "a.0.b is a field path (key a, its first item, its key b)")
    g.add_argument("--prompts", default=None, help="prompts in a file of their own, keyed by --prompt-id-field, which the "
                   "responses (and judgments) carry instead of the prompt text (Arena-Hard, MT-bench) (default: none)")
    g.add_argument("--prompt-id-field", default=None, help="field of the prompt id in --prompts, the responses and the "
                   "judgments (default: question_id)")
    g.add_argument("--prompt-field", default=None, help="--prompts field of the text; MT-bench and Arena-Hard: "
                   "turns.0.content (the first turn) (default: prompt)")
    g.add_argument("--score-field", default=None, help="a per-response score column of the pool, larger = better (default: none)")
    g.add_argument("--model-names", default=None, help="CSV: pool name,behaviour-table name, header row; a name mapped twice is an error (default: none, or the pool.json's)")
    g.add_argument("--judgments", default=None, help="per-response labels: pairwise vs a reference (AlpacaEval's annotations) or scores (default: none, or the pool.json's)")
    g.add_argument("--judgment-kind", default=None, choices=["pairwise", "score"], help="pairwise: value in [1, 2] (0 = draw); score: any number (default: pairwise)")
    g.add_argument("--judgment-instruction-field", default=None, help="judgments field of the prompt, of its id with "
                   "--prompts (default: as the pool's)")
    g.add_argument("--judgment-model-field", default=None, help="judgments field of the judged model (default: generator_2)")
    g.add_argument("--judgment-value-field", default=None, help="judgments field of the value; pairwise values may be "
                   "verdicts A>>B … B>>A, A = the reference (Arena-Hard: games.0.score) (default: preference)")
    g.add_argument("--skip-unmatched-judgments", action="store_true", help="skip and count judgments of responses the "
                   "pool lacks (default: such a judgment is an error)")
    g.add_argument("--judged-only", action="store_true", help="keep only responses that have a label")
    if several_k:
        g.add_argument("--models-per-prompt", nargs="+", default=["all"], metavar="K",
                       help="draw K responses per prompt; several values (e.g. 4 all) run the agreement study once each (default: all)")
    else:
        g.add_argument("--models-per-prompt", type=int, default=None, metavar="K",
                       help="draw K responses per prompt by sha256 of --seed, prompt, model (default: all)")


def pool_flag_args(args: argparse.Namespace) -> list[str]:
    """The pool flags of `args` that differ from their defaults, as a command line (to pass on)."""
    out = [] if args.format == "auto" else ["--format", args.format]
    for name in POOL_FLAGS[1:]:
        if getattr(args, name) is not None:
            out += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return out + [f"--{name.replace('_', '-')}" for name in POOL_SWITCHES if getattr(args, name)]


def pool_options(args: argparse.Namespace):
    """The PoolOptions of parsed add_pool_flags flags; the draw uses the script's --seed."""
    from zebra.pools import PoolOptions

    return PoolOptions(format=args.format, instruction_field=args.instruction_field, model_field=args.model_field,
                       response_field=args.response_field, source_field=args.source_field, score_field=args.score_field,
                       prompts=args.prompts, prompt_id_field=args.prompt_id_field, prompt_field=args.prompt_field,
                       skip_unmatched_judgments=args.skip_unmatched_judgments,
                       model_names=args.model_names, judgments=args.judgments, judgment_kind=args.judgment_kind,
                       judgment_instruction_field=args.judgment_instruction_field,
                       judgment_model_field=args.judgment_model_field, judgment_value_field=args.judgment_value_field,
                       judged_only=args.judged_only, models_per_prompt=args.models_per_prompt, seed=args.seed)


def output_help(base: str, example: str) -> str:
    """--output's help: the default name and how the run's settings extend it (pipeline.default_output)."""
    ext = Path(base).suffix
    return (f".json, .jsonl or .parquet (default: {base}; settings that change the pairs, when not the "
            f"defaults, are added to the name: ….{example}{ext})")


def run_binarize(strategy: str, output: str | None, args: argparse.Namespace, default_output: str = "",
                 rule: Callable | None = None, **settings: Any) -> None:
    """Binarize with the common flags plus a script's own `settings` and `rule` (the script's
    strategy, zebra.pipeline.Rule); one-line errors, one-line summary.

    `output` None: `default_output` extended by the settings that change the pairs, so two
    differently-set runs never write the same default file."""
    from zebra.pipeline import BinarizeConfig, binarize, summary_line  # numpy/pyarrow: not for --help or train_*.py
    from zebra.pipeline import default_output as pipeline_default_output

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    common = {"data": args.data, "benchmark": args.behaviour_table, "seed": args.seed, "limit": args.limit,
              "max_entropy": args.max_entropy, "entropy_quantile": args.entropy_quantile,
              "reliability_temperature": args.reliability_temperature, "pool": pool_options(args),
              "progress": not args.quiet, "num_proc": args.num_proc, "num_shards": args.num_shards,
              "shard_index": args.shard_index}
    if args.tau is not None:  # the baseline takes --tau only so every script accepts the same flags
        common["tau"] = args.tau
    if getattr(args, "min_mb_sup_gap", None) is not None:  # SUP, SIM, SUP+SIM only (add_min_mb_sup_gap)
        common["min_mb_sup_gap"] = args.min_mb_sup_gap
    try:
        cfg = BinarizeConfig(strategy, output or default_output, **common, **settings)
        if output is None:
            cfg = dataclasses.replace(cfg, output=pipeline_default_output(default_output, cfg))
        meta = binarize(cfg, rule)
    except ZebraError as err:
        raise SystemExit(f"error: {err}")
    print(summary_line(meta))


def training_parser(doc: str, *, epochs: float, max_steps: int, batch_size: int, grad_accum: int, lr: float,
                    warmup_steps: int, max_length: int, seed: int, bf16: bool, lora_r: int, lora_alpha: int,
                    gradient_checkpointing: bool, logging_steps: int) -> argparse.ArgumentParser:
    """The flags train_sft.py and train_dpo.py share (TrainSettings' fields); DPO adds its own."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="binarize_*.py output: .json, .jsonl or .parquet")
    ap.add_argument("--model", required=True, help="hub id or local HF folder; with --gguf-file, the folder holding that file")
    ap.add_argument("--gguf-file", default=None, help="GGUF file name inside --model (e.g. SmolLM2-135M-Instruct.Q4_1.gguf)")
    ap.add_argument("--chat-template", default=None, help="for models without one: chatml, zephyr, a .jinja file, or a template")
    ap.add_argument("--output-dir", required=True)
    ap.add_argument("--epochs", type=float, default=epochs, help="passes over the data (default: %(default)s)")
    ap.add_argument("--max-steps", type=int, default=max_steps, help="optimizer steps; overrides --epochs (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=batch_size, help="per device (default: %(default)s)")
    ap.add_argument("--grad-accum", type=int, default=grad_accum, help="gradient accumulation steps (default: %(default)s)")
    ap.add_argument("--lr", type=float, default=lr, help="peak learning rate, linear decay after warm-up (default: %(default)s)")
    ap.add_argument("--warmup-steps", type=int, default=warmup_steps,
                    help="linear warm-up (default: %(default)s); with --max-steps, at most 10%% of the run's steps")
    ap.add_argument("--max-length", type=int, default=max_length, help="tokens, prompt + response (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=seed, help="data order and initialisation (default: %(default)s)")
    ap.add_argument("--no-bf16", dest="bf16", action="store_false", default=bf16, help="train in fp32 even on a bf16 GPU")
    ap.add_argument("--lora", action="store_true", help="train a LoRA adapter (peft) instead of all weights")
    ap.add_argument("--lora-r", type=int, default=lora_r, help="LoRA rank (default: %(default)s)")
    ap.add_argument("--lora-alpha", type=int, default=lora_alpha, help="LoRA scale (default: %(default)s)")
    ap.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false",
                    default=gradient_checkpointing, help="faster, more memory (trl turns checkpointing on by default)")
    ap.add_argument("--logging-steps", type=int, default=logging_steps, help="log every N optimizer steps (default: %(default)s)")
    return ap


def run_training(train: Callable[[Any], tuple[Path, dict[str, Any]]], settings: Any) -> None:
    """Run a train script's experiment, `train(settings)`: bad flags are one `error:` line before
    trl is even imported, so is any bad input found later; rank 0 prints a one-line summary."""
    from zebra.run_folder import is_main_process  # light: trl is imported inside `train` only

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    fresh = not Path(settings.output_dir).exists()
    try:
        settings.check()
        out, metrics = train(settings)
    except BaseException as err:
        if fresh:  # transformers' Trainer makes the output folder when it starts: a failed run leaves none
            with contextlib.suppress(OSError):
                Path(settings.output_dir).rmdir()  # only if empty: never what a run saved
        if isinstance(err, ZebraError):
            raise SystemExit(f"error: {err}") from None
        raise
    if is_main_process():  # under `accelerate launch` every rank returns here; one line is the run's
        print(f"{settings.method}: saved {out} | " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
