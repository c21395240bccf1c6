"""Step time of weighted DPO (WeightedDPOTrainer) against plain DPO (trl's DPOTrainer), one process.

    # the measurement in the README: SmolLM2-135M's width and vocabulary, 6 of its 30 layers (a full
    # 30-layer step takes minutes on 2 shared cores), random weights, batch 6 and 12; without
    # --output it writes out/bench/weighted_dpo_speed.json
    python -m benchmarks.weighted_dpo_speed --layers 6 --output benchmarks/results/weighted_dpo_speed.json

    # SmolLM2-135M's architecture in full
    python -m benchmarks.weighted_dpo_speed

    # a quick look with the tests' tiny model (seconds; tests/test_training.py runs this)
    python -m benchmarks.weighted_dpo_speed --model tiny --batch-sizes 2 --repeats 2 --output out/wdpo.json

Both trainers are built on the same saved model folder (trl rebuilds each one's reference model
from it) and the same pairs. Each repeat times one training step of each, plain and weighted in
alternating order (the order flips every repeat), so machine drift and load from other processes
hit both alike; the ratio reported is the median over repeats of weighted / plain time of the
same repeat. A step is trl's `training_step`: the policy forward and backward on 2·B sequences
(chosen and rejected) and the reference forward, no optimizer update (the same for both).

Writes a table to stdout and everything (per-step times, medians, ratios, threads, machine) as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import at_least_one

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/weighted_dpo_speed.py` as well as `-m`
    sys.path.insert(0, str(ROOT))

MODEL = "smollm2"  # "smollm2": SmolLM2-135M's config (30 layers, 576 wide, 49k vocab), random weights; "tiny"
BATCH_SIZES = (6, 12)  # the paper's per-device batch, and twice it
REPEATS = 7  # alternated plain/weighted pairs per batch size; medians are reported
WARMUP = 1  # untimed steps of each first (allocator, first-call overheads)
MAX_LENGTH = 128  # prompt + response tokens
THREADS = None  # None: torch's default for this machine
LAYERS = None  # None: the model's own depth (SmolLM2: 30); fewer for a quicker measurement
TRACKED = "benchmarks/results/weighted_dpo_speed.json"  # the README's numbers: written only when --output names it
SCRATCH = "out/bench/weighted_dpo_speed.json"
TARGET = 1.1  # issue 13: weighted ≤ 1.1 × plain at batch 6 and 12

# SmolLM2-135M-Instruct's architecture (its config.json), so the step is a realistic size for a CPU
SMOLLM2_CONFIG = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                      num_key_value_heads=3, max_position_embeddings=2048, rope_theta=100000.0, tie_word_embeddings=True)
SMOLLM2_VOCAB = 49152


def make_model_dir(kind: str, path: Path, layers: int | None = None) -> Path:
    """A random-weight model folder with the tests' tiny tokenizer (ids stay below any vocab)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.tiny import make_tiny_model_dir, make_tiny_tokenizer

    if kind == "tiny":
        return make_tiny_model_dir(path, **({"num_layers": layers} if layers else {}))
    tokenizer = make_tiny_tokenizer()
    config = LlamaConfig(vocab_size=SMOLLM2_VOCAB, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
                         **{**SMOLLM2_CONFIG, **({"num_hidden_layers": layers} if layers else {})})
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def pairs(n: int) -> list[dict]:
    """Pairs of different lengths (so the batch is padded, as real ones are), weights not all equal."""
    words = "the answer is clear because each step follows from the last one and so on".split()
    rows = []
    for i in range(n):
        prompt = f"Question {i}: " + " ".join(words[: 4 + i % 9])
        chosen = " ".join((words * 4)[: 12 + (7 * i) % 30])
        rejected = " ".join((words * 4)[3: 10 + (5 * i) % 25])
        rows.append({"prompt": prompt, "prompt_id": str(i), "weight": 0.5 + (i % 4) / 2,
                     "chosen": [{"role": "user", "content": prompt}, {"role": "assistant", "content": chosen}],
                     "rejected": [{"role": "user", "content": prompt}, {"role": "assistant", "content": rejected}]})
    return rows


def build(model_dir: Path, data: Path, out: Path, batch_size: int, weighted: bool):
    from zebra.models import load_policy
    from zebra.trainers import make_trainer, trainer_config
    from zebra.training_data import load_training_data
    from zebra.training_settings import TrainSettings

    settings = TrainSettings(method="dpo", data=str(data), model=str(model_dir), output_dir=str(out), max_steps=1,
                             batch_size=batch_size, grad_accum=1, warmup_steps=0, bf16=False, max_length=MAX_LENGTH,
                             gradient_checkpointing=False, weight_column="weight" if weighted else None)
    data = load_training_data(settings.data, "dpo", settings.weight_column)
    model, tokenizer, _ = load_policy(settings.model, None, None, bf16=False)
    return make_trainer(settings, model, tokenizer, data.dataset, trainer_config(settings, bf16=False))


def step_time(trainer, batch) -> float:
    start = time.perf_counter()
    trainer.training_step(trainer.model, batch)
    return time.perf_counter() - start


def run(model: str, batch_sizes: list[int], repeats: int, output: str, layers: int | None = None) -> dict:
    import torch

    from zebra.trainers import WeightedDPOTrainer

    work = Path(tempfile.mkdtemp(prefix="wdpo_"))
    model_dir = make_model_dir(model, work / "model", layers)
    data = work / "pairs.json"
    data.write_text(json.dumps(pairs(max(batch_sizes))))
    results = []
    for batch_size in batch_sizes:
        trainers = {"plain": build(model_dir, data, work / "plain", batch_size, False),
                    "weighted": build(model_dir, data, work / "weighted", batch_size, True)}
        assert isinstance(trainers["weighted"], WeightedDPOTrainer)
        batches = {}
        for name, trainer in trainers.items():
            trainer.model.train()
            trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop, which this bypasses
            examples = [trainer.train_dataset[i] for i in range(batch_size)]
            batches[name] = trainer._prepare_inputs(trainer.data_collator(examples))
            for _ in range(WARMUP):
                step_time(trainer, batches[name])
        times = {"plain": [], "weighted": []}
        for r in range(repeats):
            order = ("plain", "weighted") if r % 2 == 0 else ("weighted", "plain")
            for name in order:
                times[name].append(step_time(trainers[name], batches[name]))
            print(f"# batch {batch_size} repeat {r + 1}/{repeats}: plain {times['plain'][-1]:.3f} s, "
                  f"weighted {times['weighted'][-1]:.3f} s", file=sys.stderr, flush=True)
        ratios = [w / p for w, p in zip(times["weighted"], times["plain"])]
        tokens = int(batches["plain"]["attention_mask"].sum())
        results.append({
            "batch_size": batch_size, "sequences": 2 * batch_size, "padded_length": int(batches["plain"]["input_ids"].shape[1]),
            "tokens": tokens, "plain_s": times["plain"], "weighted_s": times["weighted"],
            "plain_median_s": round(statistics.median(times["plain"]), 4),
            "weighted_median_s": round(statistics.median(times["weighted"]), 4),
            "ratio_per_repeat": [round(x, 4) for x in ratios],
            "ratio_median": round(statistics.median(ratios), 4),
            "meets_target": statistics.median(ratios) <= TARGET,
        })
        del trainers
    out = {
        "what": "weighted DPO (WeightedDPOTrainer) vs plain DPO (trl DPOTrainer) training-step time, alternated in one process",
        "model": model, "model_config": SMOLLM2_CONFIG if model == "smollm2" else "tests/tiny.py", "layers": layers,
        "max_length": MAX_LENGTH, "repeats": repeats, "warmup_steps": WARMUP, "target_ratio": TARGET,
        "torch_threads": torch.get_num_threads(), "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "results": results,
    }
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("smollm2", "tiny"), default=MODEL, help="model size (default: %(default)s)")
    ap.add_argument("--batch-sizes", type=at_least_one, nargs="+", default=list(BATCH_SIZES), help="pairs per step (default: 6 12)")
    ap.add_argument("--repeats", type=at_least_one, default=REPEATS, help="alternated plain/weighted pairs (default: %(default)s)")
    ap.add_argument("--layers", type=at_least_one, default=LAYERS, help="decoder layers (default: the model's own)")
    ap.add_argument("--threads", type=at_least_one, default=THREADS, help="torch threads (default: torch's choice)")
    ap.add_argument("--output", default=SCRATCH, help=f"JSON file (default: %(default)s; the README's is {TRACKED})")
    args = ap.parse_args()
    import logging

    import torch

    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = run(args.model, args.batch_sizes, args.repeats, args.output, args.layers)
    print(f"# {out['model']}, {out['torch_threads']} torch threads, {out['repeats']} alternated repeats")
    print("batch  plain_s  weighted_s  ratio (median of per-repeat weighted/plain)")
    for r in out["results"]:
        print(f"{r['batch_size']:5d}  {r['plain_median_s']:7.3f}  {r['weighted_median_s']:10.3f}  {r['ratio_median']:.3f}")
    print(f"# written {args.output}")


if __name__ == "__main__":
    main()
