"""What a training run leaves in `--output-dir`, and whether a folder holds a finished run.

`save_run` writes the model (full weights gathered from any engine, or the LoRA adapter), the
tokenizer, `settings.json` (the flags, what ran, the data counts and the `preference_data` block
that made the pairs), `log_history.json` and, last, `metrics.json`. `run_is_done` reads that last
file back: train_grid.py and reproduce.py skip a run only when it holds finite losses.
"""

from __future__ import annotations

import math
import os
import platform
import resource
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zebra.errors import ZebraError
from zebra.training_settings import TrainSettings, effective_warmup_steps

if TYPE_CHECKING:
    import torch

    from zebra.training_data import TrainingData


def _last_logged(log_history: list[dict], key: str):
    for entry in reversed(log_history):
        if key in entry:
            return entry[key]
    return None


def peak_memory() -> dict[str, float]:
    """Peak GPU memory allocated by torch (GiB), and this process's peak resident memory (GiB)."""
    import torch

    out = {}
    if torch.cuda.is_available():
        out["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes
    out["peak_rss_gib"] = round(rss / (2**30 if platform.system() == "Darwin" else 2**20), 3)
    return out


def run_metrics(trainer, train_output, n_examples: int, wall_s: float) -> dict[str, Any]:
    """The short summary a comparison table needs; the full curve is in log_history.json."""
    history = trainer.state.log_history
    args = trainer.args
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    epochs = args.num_train_epochs if args.max_steps <= 0 else float("inf")
    examples_seen = int(min(trainer.state.global_step * per_step, n_examples * epochs))
    runtime = train_output.metrics.get("train_runtime") or wall_s
    tokens = _last_logged(history, "num_tokens")
    metrics = {
        "final_loss": _last_logged(history, "loss"),
        "train_loss": train_output.training_loss,
        "steps": trainer.state.global_step,
        "examples_seen": examples_seen,
        "train_examples": n_examples,
        "tokens_seen": tokens,
        "tokens_per_s": round(tokens / runtime, 2) if tokens and runtime else None,
        "train_runtime_s": round(runtime, 2),
        "s_per_step": round(runtime / max(trainer.state.global_step, 1), 3),
    }
    for key in ("rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected"):
        value = _last_logged(history, key)
        if value is not None:
            metrics["final_" + key.replace("/", "_")] = value
    metrics.update(peak_memory())
    return metrics


def finite_losses(metrics: dict[str, Any]) -> bool:
    """train_loss is a finite number, and so is final_loss where one was logged."""
    def finite(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    return finite(metrics.get("train_loss")) and (metrics.get("final_loss") is None or finite(metrics["final_loss"]))


def run_is_done(output_dir: str | Path) -> bool:
    """A training folder is finished when its metrics.json (written last by save_run) reads and
    holds finite losses: train_grid.py and reproduce.py skip such runs and redo any other."""
    from zebra.jsonio import read_json

    try:
        metrics = read_json(Path(output_dir) / "metrics.json", "metrics file")
    except ZebraError:  # missing, half-written or damaged: the run is redone
        return False
    return isinstance(metrics, dict) and finite_losses(metrics)


def checkpoint_state_dict(state_dict: dict[str, torch.Tensor], model, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The full state dict as it goes into model.safetensors: floats in `dtype`, a tied head once.

    FSDP2 keeps fp32 master weights (accelerate upcasts bf16 ones) and its FULL_STATE_DICT gather
    returns the tied `lm_head.weight` as a tensor of its own, so `save_pretrained` wrote fp32 with
    the embedding twice; DDP and ZeRO-3 (16-bit gather) wrote bf16 once. Every engine now leaves
    the same checkpoint: the run's weight dtype, tied weights stored once (from_pretrained re-ties).
    """
    out = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()}
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    head = model.get_output_embeddings()
    if getattr(config, "tie_word_embeddings", False) and head is not None:
        for name, module in model.named_modules():
            if module is head:
                out.pop(f"{name}.weight", None)
    return out


def is_main_process() -> bool:
    """Rank 0 of an `accelerate launch` / torchrun group, or a plain single process."""
    return int(os.environ.get("RANK", "0")) == 0


def save_model(trainer, out: Path, settings: TrainSettings, bf16: bool) -> None:
    """Gather the weights from every engine (a collective: all ranks call it); rank 0 writes them."""
    import torch

    if settings.lora:  # the adapter only; peft saves it from the unwrapped model
        trainer.save_model(str(out))
        return
    accelerator = trainer.accelerator
    state_dict = accelerator.get_state_dict(trainer.model_wrapped)  # FSDP / ZeRO-3 gather the shards here
    if not accelerator.is_main_process:
        return
    model = accelerator.unwrap_model(trainer.model)
    dtype = torch.bfloat16 if bf16 else torch.float32
    model.config.dtype = dtype
    model.save_pretrained(str(out), state_dict=checkpoint_state_dict(state_dict, model, dtype), safe_serialization=True)


def run_record(trainer, bf16: bool) -> dict[str, Any]:
    """What ran, read back from the accelerator rather than from the flags."""
    accelerator = trainer.accelerator
    kind = accelerator.distributed_type.name  # NO, MULTI_GPU, MULTI_CPU, FSDP, DEEPSPEED, ...
    if kind == "FSDP":
        engine = f"fsdp{getattr(accelerator.state.fsdp_plugin, 'fsdp_version', 1)}".replace("fsdp1", "fsdp")
    elif kind == "DEEPSPEED":
        engine = f"deepspeed-zero{accelerator.state.deepspeed_plugin.zero_stage}"
    else:
        engine = "single" if kind == "NO" else "ddp"
    precision = {"no": "fp32"}.get(str(accelerator.mixed_precision), str(accelerator.mixed_precision))
    args = trainer.args
    return {
        "precision": precision,
        "bf16_used": precision == "bf16",
        "weights_dtype": "bf16" if bf16 else "fp32",
        "engine": engine,
        "num_processes": accelerator.num_processes,
        "world_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps * accelerator.num_processes,
    }


def save_run(trainer, tokenizer, settings: TrainSettings, metrics: dict[str, Any], *, data: TrainingData,
             model_path: str, bf16: bool) -> Path:
    """Write the model (adapter or full), tokenizer, settings.json, log_history.json and metrics.json."""
    from zebra.records import write_json_atomic

    out = Path(settings.output_dir)
    save_model(trainer, out, settings, bf16)
    if not trainer.is_world_process_zero():
        return out
    tokenizer.save_pretrained(out)
    record = {**settings.to_dict(), **run_record(trainer, bf16), "warmup_steps_used": effective_warmup_steps(settings),
              "resolved_model_path": model_path, "data_counts": data.counts, "trainer": type(trainer).__name__,
              "preference_data": data.preference_data}
    write_json_atomic(out / "settings.json", record)
    write_json_atomic(out / "log_history.json", trainer.state.log_history)
    write_json_atomic(out / "metrics.json", metrics)  # last: its presence marks the run finished (run_is_done)
    return out
