"""The flags and the run that the binarize_*.py scripts, and the two train_*.py scripts, share.

Each script keeps its own constants block (what a user edits) and passes those values here as
the flags' defaults; this module only spares the scripts the same argparse lines. It is the
package's one module that knows about argparse and prints, because it is the scripts'.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from zebra.errors import ZebraError
from zebra.pipeline import BinarizeConfig, binarize, summary_line


def binarize_parser(doc: str, *, benchmark: str, tau: float | None, seed: int, max_entropy: float | None,
                    entropy_quantile: float | None, reliability_temperature: float,
                    tau_help: str = "admit a pair only if MB-SIM >= tau (default: %(default)s)",
                    seed_help: str | None = None) -> argparse.ArgumentParser:
    """A parser with the common flags; the script adds `--output` and its own flags."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="hub id, .json/.jsonl/.parquet/.arrow file or folder (default: shipped sample)")
    ap.add_argument("--benchmark", default=benchmark, help="behaviour table CSV (default: %(default)s)")
    ap.add_argument("--tau", type=float, default=tau, help=tau_help)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N prompts")
    ap.add_argument("--seed", type=int, default=seed, help=seed_help)
    ap.add_argument("--max-entropy", type=float, default=max_entropy, help="drop pairs whose benchmark-vote entropy (nats) is above this")
    ap.add_argument("--entropy-quantile", type=float, default=entropy_quantile, help="drop pairs above this entropy quantile of the run (0.5: seed 003)")
    ap.add_argument("--reliability-temperature", type=float, default=reliability_temperature, help="softmax temperature of `weight` (default: %(default)s)")
    return ap


def run_binarize(strategy: str, output: str, args: argparse.Namespace, **settings: Any) -> None:
    """Binarize with the common flags plus a script's own `settings`; one-line errors, one-line summary."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    common = {"data": args.data, "benchmark": args.benchmark, "seed": args.seed, "limit": args.limit,
              "max_entropy": args.max_entropy, "entropy_quantile": args.entropy_quantile,
              "reliability_temperature": args.reliability_temperature}
    if args.tau is not None:  # the baseline takes --tau only so every script accepts the same flags
        common["tau"] = args.tau
    try:
        meta = binarize(BinarizeConfig(strategy, output, **common, **settings))
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
    ap.add_argument("--epochs", type=float, default=epochs)
    ap.add_argument("--max-steps", type=int, default=max_steps, help="optimizer steps; overrides --epochs (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=batch_size, help="per device (default: %(default)s)")
    ap.add_argument("--grad-accum", type=int, default=grad_accum)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--warmup-steps", type=int, default=warmup_steps)
    ap.add_argument("--max-length", type=int, default=max_length, help="tokens, prompt + response (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=seed)
    ap.add_argument("--no-bf16", dest="bf16", action="store_false", default=bf16, help="train in fp32 even on a bf16 GPU")
    ap.add_argument("--lora", action="store_true", help="train a LoRA adapter (peft) instead of all weights")
    ap.add_argument("--lora-r", type=int, default=lora_r)
    ap.add_argument("--lora-alpha", type=int, default=lora_alpha)
    ap.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false",
                    default=gradient_checkpointing, help="faster, more memory (trl turns checkpointing on by default)")
    ap.add_argument("--logging-steps", type=int, default=logging_steps)
    return ap


def run_training(method: str, args: argparse.Namespace) -> None:
    """Train with the parsed flags; one-line errors, a one-line summary of metrics.json."""
    from zebra.training import TrainSettings, is_main_process, train  # trl is slow to import: only the train scripts pay

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        out, metrics = train(TrainSettings(method=method, **vars(args)))
    except ZebraError as err:
        raise SystemExit(f"error: {err}")
    if is_main_process():  # under `accelerate launch` every rank returns here; one line is the run's
        print(f"{method}: saved {out} | " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
