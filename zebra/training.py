"""SFT and DPO with trl: settings, data, model, trainer, and what a run leaves behind.

`train_sft.py` and `train_dpo.py` are thin: they parse flags into `TrainSettings` and call
`train`, which reads top to bottom: `resolve_bf16` → `load_examples` → `trainer_args` →
`load_policy` → `make_trainer` (trl's SFTTrainer / DPOTrainer, or `WeightedDPOTrainer`) →
`trainer.train()` → `run_metrics` → `save_run`. No training loop is written here.

`WeightedDPOTrainer` is the one piece of new maths: per-example weights on the DPO loss.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import platform
import resource
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from zebra.errors import ZebraError
from zebra.formats import convert_records
from zebra.models import resolve_model_path, set_chat_template
from zebra.settings import check_output_dir

logger = logging.getLogger(__name__)

WEIGHT_KEY = "weight"  # the column name trl examples carry, whatever the user's field is called


@dataclass
class TrainSettings:
    """Everything that decides a run; saved as `settings.json` next to the model.

    The defaults mirror the constants of train_sft.py / train_dpo.py, which pass every field.
    """

    method: str  # "sft" | "dpo"
    data: str
    model: str
    output_dir: str
    gguf_file: str | None = None
    chat_template: str | None = None
    epochs: float = 1.0
    max_steps: int = -1  # -1: run `epochs`
    batch_size: int = 6
    grad_accum: int = 4
    lr: float = 5e-5
    warmup_steps: int = 500
    bf16: bool = True
    beta: float = 0.1  # DPO only
    max_length: int | None = 1024
    seed: int = 42
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    weight_column: str | None = None  # DPO only
    gradient_checkpointing: bool = True
    logging_steps: int = 1

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if self.method == "sft":  # DPO-only settings would only mislead in an SFT run's record
            out.pop("beta")
            out.pop("weight_column")
        return out

    def check(self) -> None:
        """Fail early, naming the flag, on settings trl would only reject deep inside (or accept and
        train to an all-NaN model: a NaN beta or lr). Touches no file."""
        if self.method not in ("sft", "dpo"):
            raise ZebraError(f"method {self.method!r}: expected 'sft' or 'dpo'")
        for flag, value in (("--epochs", self.epochs), ("--lr", self.lr), ("--beta", self.beta)):
            if not math.isfinite(value):  # checked even where unused (--epochs under --max-steps): it is saved
                raise ZebraError(f"{flag} {value}: must be a finite number > 0")
        for flag, value in (("--batch-size", self.batch_size), ("--grad-accum", self.grad_accum),
                            ("--logging-steps", self.logging_steps)):
            if value < 1:
                raise ZebraError(f"{flag} {value}: must be >= 1")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ZebraError(f"--max-steps {self.max_steps}: use a positive number, or -1 to run --epochs")
        if self.max_steps == -1 and self.epochs <= 0:
            raise ZebraError(f"--epochs {self.epochs}: must be > 0 when --max-steps is not set")
        if self.lr <= 0:
            raise ZebraError(f"--lr {self.lr}: must be a finite number > 0")
        if self.warmup_steps < 0:
            raise ZebraError(f"--warmup-steps {self.warmup_steps}: must be >= 0")
        if not 0 <= self.seed < 2**32:  # numpy's seed range, which transformers' set_seed feeds
            raise ZebraError(f"--seed {self.seed}: must lie in [0, 2**32)")
        if self.method == "dpo" and self.beta <= 0:
            raise ZebraError(f"--beta {self.beta}: must be a finite number > 0")
        if self.method == "sft" and self.weight_column:
            raise ZebraError("--weight-column: per-example weights are implemented for DPO only (train_dpo.py)")
        if self.max_length is not None and self.max_length < 8:
            raise ZebraError(f"--max-length {self.max_length}: too short to hold a prompt and a response")
        if self.lora and (self.lora_r < 1 or self.lora_alpha <= 0):
            raise ZebraError(f"--lora-r {self.lora_r} / --lora-alpha {self.lora_alpha}: need r >= 1 and alpha > 0")


WARMUP_FRACTION = 0.1  # with --max-steps set, warm-up is at most this share of the run


def effective_warmup_steps(settings: TrainSettings) -> int:
    """The warm-up the run uses: `warmup_steps`, capped at 10 % of `max_steps` when that is set.

    The paper's 500 warm-up steps belong to its ~600-step epoch; kept in a 3-step smoke run they
    hold the learning rate at 0, 1e-7, 2e-7 and nothing is learned. An `--epochs` run keeps them.
    """
    if settings.max_steps > 0:
        return min(settings.warmup_steps, int(settings.max_steps * WARMUP_FRACTION))
    return settings.warmup_steps


# ---------------------------------------------------------------------------------------------
# hardware


def bf16_available() -> bool:
    """True where transformers accepts bf16 mixed precision without `use_cpu`: a bf16-capable GPU."""
    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def resolve_bf16(requested: bool, available: bool | None = None) -> tuple[bool, str | None]:
    """(use bf16, one-line notice or None). The paper trains in bf16; CPUs and pre-Ampere GPUs cannot."""
    available = bf16_available() if available is None else available
    if requested and not available:
        return False, "bf16 off: no bf16-capable GPU here (the paper used bf16 on L40s); training in fp32"
    return requested, None


def peak_memory() -> dict[str, float]:
    """Peak GPU memory allocated by torch (GiB), and this process's peak resident memory (GiB)."""
    out = {}
    if torch.cuda.is_available():
        out["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes
    out["peak_rss_gib"] = round(rss / (2**30 if platform.system() == "Darwin" else 2**20), 3)
    return out


# ---------------------------------------------------------------------------------------------
# data and model


def _looks_like_hub_id(model: str) -> bool:
    """`org/name` or `name`, as the hub spells repos; anything else can only be a local path."""
    parts = model.split("/")
    return (not model.startswith((".", "/", "~")) and len(parts) <= 2
            and all(p and all(c.isalnum() or c in "-_." for c in p) for p in parts))


def check_model_source(model: str, gguf_file: str | None = None) -> None:
    """One-line errors for a --model that cannot load, before minutes of imports and data work:
    a missing path, a folder that is not a Hugging Face model, a file, or (HF_HUB_OFFLINE=1) a hub
    id that is not in the local cache (transformers would say so only after its own retries)."""
    path = Path(model).expanduser()
    if gguf_file:
        if not path.is_dir():
            raise ZebraError(f"--model {model}: no such folder (with --gguf-file, --model is the folder holding the file)")
        return  # zebra.models names a missing GGUF file itself
    if path.is_file():
        hint = f"; pass its folder as --model and --gguf-file {path.name}" if path.suffix == ".gguf" else ""
        raise ZebraError(f"--model {model} is a file, not a Hugging Face model folder or hub id{hint}")
    if path.is_dir():
        if not any((path / name).exists() for name in ("config.json", "adapter_config.json")):
            raise ZebraError(f"--model {model} has no config.json: not a Hugging Face model folder "
                             "(for a GGUF file, pass the folder as --model and the file name as --gguf-file)")
        return
    if not _looks_like_hub_id(model):
        raise ZebraError(f"--model {model}: no such folder (and not a hub id like org/name)")
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE and not isinstance(try_to_load_from_cache(model, "config.json"), str):
        raise ZebraError(f"--model {model}: no such folder, and not in the local Hugging Face cache (HF_HUB_OFFLINE=1); "
                         "download it on a machine with the hub, or pass a local folder")


def load_examples(path: str, method: str, weight_column: str | None = None):
    """Binarized records file → (datasets.Dataset in trl's conversational format, counts)."""
    from datasets import Dataset

    from zebra.records import read_records  # one-line errors for empty or truncated files

    records = read_records(path)
    examples, counts = convert_records(records, method, weight_column=weight_column, source=str(path))
    if not examples:
        raise ZebraError(f"{path}: no usable records ({counts}); is it a binarize_*.py output?")
    return Dataset.from_list(examples), counts


def load_policy(settings: TrainSettings, bf16: bool):
    """(model, tokenizer, model_path) ready for trl. `model_path` is a plain HF folder or hub id.

    A GGUF checkpoint is dequantised once into the cache first: trl rebuilds the DPO reference
    model from the policy's path, which must therefore load without `gguf_file`.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(settings.model, settings.gguf_file)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as err:  # hub: not found, gated, no network; transformers' message runs to many lines
        raise ZebraError(f"--model {settings.model}: cannot load ({str(err).strip().splitlines()[0]})") from None
    set_chat_template(tokenizer, settings.chat_template, model_name=f"--model {settings.model}")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # bf16 weights as in alignment-handbook's recipes: halves memory on the GPU box; fp32 elsewhere.
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if bf16 else torch.float32)
    return model, tokenizer, path


def lora_config(settings: TrainSettings):
    """peft LoRA on every linear layer except the LM head (trl's DPO reads lm_head.weight directly)."""
    if not settings.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def _common_args(settings: TrainSettings, bf16: bool) -> dict[str, Any]:
    return dict(
        output_dir=settings.output_dir,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        learning_rate=settings.lr,
        warmup_steps=effective_warmup_steps(settings),
        bf16=bf16,
        max_length=settings.max_length,
        seed=settings.seed,
        # transformers 5 renamed it; the old name still works but warns (FutureWarning) on every run
        activation_checkpointing=settings.gradient_checkpointing,
        logging_steps=settings.logging_steps,
        # the final model is saved once by save_run; intermediate checkpoints of an 8B full
        # fine-tune (weights + Adam) would fill the disk for no use in this study
        save_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        # pinned memory only speeds host-to-GPU copies; without a GPU torch warns on every run
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def dpo_config(settings: TrainSettings, bf16: bool):
    from trl import DPOConfig

    return DPOConfig(beta=settings.beta, **_common_args(settings, bf16))


def sft_config(settings: TrainSettings, bf16: bool):
    from trl import SFTConfig

    return SFTConfig(**_common_args(settings, bf16))


# ---------------------------------------------------------------------------------------------
# weighted DPO


@functools.cache
def _weighted_dpo_trainer_class():
    # Built lazily so importing zebra.training does not import trl (slow) for settings-only use.
    import torch.nn.functional as F
    from trl import DPOTrainer

    class WeightedDPOTrainer(DPOTrainer):
        """DPOTrainer whose loss weighs each preference pair by the dataset's `weight` column.

        For a batch of pairs (x_i, y_w,i, y_l,i) with weights w_i ≥ 0 (loss_type "sigmoid"):

            ℓ_i = −log σ(β [log πθ(y_w,i|x_i)/π_ref(y_w,i|x_i) − log πθ(y_l,i|x_i)/π_ref(y_l,i|x_i)])
            L   = Σ_i w_i ℓ_i / Σ_i w_i            (0 when every weight in the batch is 0)

        i.e. DPO (Rafailov et al. 2023, eq. 7) with the batch mean replaced by a weighted mean,
        as in reliability-aware alignment (SPEC §9, seed 003). With all w_i = 1, L is trl's loss.

        The smallest override: trl (1.16) computes the per-pair losses inside its ~300-line
        `_compute_loss` and returns only their mean (a `weight` column was proposed in trl#5613
        and not merged). So trl's `_compute_loss` runs unchanged on the whole batch (one policy
        forward, one reference forward, trl's metrics), a forward hook keeps the per-token
        log-probs those two forwards return, and ℓ_i is rebuilt from them with trl's own
        arithmetic (sum over the completion, log-ratios, −logσ(β·Δ)). trl's returned mean is
        dropped; the weighted mean is returned instead.
        """

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # ℓ_i is rebuilt for trl's default DPO only; anything else would silently be a different loss
            if (self.loss_types != ["sigmoid"] or list(self.loss_weights) != [1.0] or self.f_divergence_type != "reverse_kl"
                    or self.ld_alpha is not None or self.use_weighting or self.aux_loss_enabled):
                raise ZebraError(f"--weight-column: implemented for trl's sigmoid DPO loss only, not loss_type "
                                 f"{self.loss_types} / f_divergence {self.f_divergence_type} / ld_alpha / WPO / MoE aux loss")
            self.data_collator = _WeightCollator(self.data_collator)

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            # keep the column through Trainer's remove_unused_columns
            if WEIGHT_KEY not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, WEIGHT_KEY]

        def _fused_modules(self):
            """(policy module, reference module or None): the modules whose forward trl patched."""
            policy = self.accelerator.unwrap_model(self.model)
            policy = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
            ref = None if self.ref_model is None else self.accelerator.unwrap_model(self.ref_model)
            return policy, ref

        def _compute_loss(self, model, inputs, return_outputs):
            inputs = dict(inputs)
            weights = inputs.pop(WEIGHT_KEY, None)
            if return_outputs:
                return super()._compute_loss(model, inputs, return_outputs)
            if weights is None:  # never train unweighted by accident: the column was lost on the way
                raise ZebraError(f"WeightedDPOTrainer: batch without a {WEIGHT_KEY!r} tensor; keep the column in the dataset")
            policy, ref = self._fused_modules()
            seen = {"policy": [], "ref": []}
            hooks = [policy.register_forward_hook(lambda m, a, out: seen["policy"].append(out.log_probs))]
            if ref is not None:
                hooks.append(ref.register_forward_hook(lambda m, a, out: seen["ref"].append(out.log_probs)))
            try:
                super()._compute_loss(model, inputs, False)  # trl's batched forwards and metrics
            finally:
                for hook in hooks:
                    hook.remove()
            # without a separate reference model (LoRA) trl's second forward, adapters off, is the reference
            ref_log_probs = seen["ref"] or seen["policy"][1:]
            seq_len = inputs["completion_mask"].size(1) - 1
            chosen_logps, rejected_logps = seen["policy"][0][:, -seq_len:].sum(dim=1).chunk(2, dim=0)
            if self.precompute_ref_logps:
                ref_chosen_logps, ref_rejected_logps = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
            else:
                ref_chosen_logps, ref_rejected_logps = ref_log_probs[0][:, -seq_len:].sum(dim=1).chunk(2, dim=0)
            delta = (chosen_logps - ref_chosen_logps) - (rejected_logps - ref_rejected_logps)
            losses = -F.logsigmoid(self.beta * delta)  # trl's per_sequence_loss for loss_type "sigmoid"
            weights = weights.to(losses.device, losses.dtype)
            return (weights * losses).sum() / weights.sum().clamp_min(torch.finfo(losses.dtype).tiny)

    return WeightedDPOTrainer


class _WeightCollator:
    """Wrap trl's preference collator: same batch, plus a float `weight` tensor of shape (B,)."""

    def __init__(self, base):
        self.base = base

    def __call__(self, examples):
        batch = self.base(examples)
        if examples and WEIGHT_KEY in examples[0]:
            batch[WEIGHT_KEY] = torch.tensor([float(e[WEIGHT_KEY]) for e in examples], dtype=torch.float32)
        return batch


def __getattr__(name: str):
    # `from zebra.training import WeightedDPOTrainer` works, trl imported on first use only
    if name == "WeightedDPOTrainer":
        return _weighted_dpo_trainer_class()
    raise AttributeError(name)


@functools.cache
def _stop_on_non_finite_class():
    from transformers import TrainerCallback

    class StopOnNonFinite(TrainerCallback):
        """Raise at the first logged loss or gradient norm that is NaN or inf.

        Such a run cannot recover (the weights are already non-finite) and must not be saved:
        train_grid.py and reproduce.py take a folder with metrics.json as finished.
        """

        def on_log(self, args, state, control, logs=None, **kwargs):
            for key in ("loss", "grad_norm"):
                value = (logs or {}).get(key)
                if isinstance(value, (int, float)) and not math.isfinite(value):
                    raise NonFiniteLossError(
                        f"{key} became {value} at step {state.global_step} (non-finite): training diverged; nothing saved "
                        f"to {args.output_dir}. Lower --lr ({args.learning_rate:g}) or check the data")

    return StopOnNonFinite


class NonFiniteLossError(ZebraError):
    """A run's loss or gradient norm became NaN/inf."""


def quiet_known_warnings() -> None:
    """Silence the warnings this project cannot fix, and only those.

    trl 1.16's DPOTrainer (trl/models/utils.py `disable_gradient_checkpointing`, entered on every
    loss computation) still calls transformers 5's deprecated `is_gradient_checkpointing`,
    `gradient_checkpointing_disable` and `gradient_checkpointing_enable`: three FutureWarnings per
    run that no setting here can avoid. Our own settings use the new `activation_checkpointing`.
    """
    import warnings

    warnings.filterwarnings("ignore", message=r"`(is_gradient_checkpointing|gradient_checkpointing_(enable|disable))` "
                            r"is deprecated", category=FutureWarning)


def trainer_args(settings: TrainSettings, bf16: bool):
    """trl's DPOConfig / SFTConfig. Build it before loading the model: it initialises the
    distributed state that FSDP's cpu_ram_efficient_loading and ZeRO-3's zero.Init rely on."""
    return sft_config(settings, bf16) if settings.method == "sft" else dpo_config(settings, bf16)


def make_trainer(settings: TrainSettings, model, tokenizer, dataset, args):
    """trl's SFTTrainer / DPOTrainer, or WeightedDPOTrainer when a weight column is set."""
    peft_config = lora_config(settings)
    quiet_known_warnings()
    trainer = _make_trainer(settings, model, tokenizer, dataset, args, peft_config)
    trainer.add_callback(_stop_on_non_finite_class())
    return trainer


def _make_trainer(settings: TrainSettings, model, tokenizer, dataset, args, peft_config):
    if settings.method == "sft":
        from trl import SFTTrainer

        return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          peft_config=peft_config)
    if settings.weight_column:
        if settings.batch_size == 1:  # L = Σ w_i ℓ_i / Σ w_i over one pair is ℓ_i whatever its weight
            logger.warning("--weight-column with --batch-size 1: weights are normalised per batch, so only a "
                        "weight of 0 changes anything; use a batch of 2 or more (the paper's is 6)")
        trainer_cls = _weighted_dpo_trainer_class()
    else:
        from trl import DPOTrainer as trainer_cls
    trainer = trainer_cls(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          peft_config=peft_config)
    fp32_lm_head(trainer)
    return trainer


def fp32_lm_head(trainer) -> None:
    """Make trl's DPO log-probs come from fp32 logits, whatever the engine's compute dtype.

    trl 1.16 patches the policy and reference forwards with a fused LM head (`add_fused_lm_head`)
    that projects in the compute dtype: with bf16 weights (DDP's bf16 load, ZeRO-3) or bf16
    autocast / FSDP2 param_dtype, every logit is rounded to bf16 (3 significant digits) before the
    log-softmax, and DPO's loss is a difference of sums of hundreds of such log-probs. trl has the
    switch (`cast_lm_head_to_fp32`, used by its GRPO) but DPOTrainer does not expose it, so the
    same patch is applied again with it on: the hidden states and the head's weight go to fp32
    for the projection only (one vocabulary chunk at a time), the backbone stays in bf16.
    """
    from trl.trainer.utils import add_fused_lm_head

    policy = trainer.model.get_base_model() if hasattr(trainer.model, "get_base_model") else trainer.model
    # the per-token fields trl's DPOTrainer.__init__ asks for (trl 1.16, dpo_trainer.py)
    outputs = ("log_probs", "entropy", "mean_logits", "is_top1") + (("log_sum_sq_probs",) if trainer.use_weighting else ())
    for module, fields in ((policy, outputs), (trainer.ref_model, ("log_probs",))):
        if module is None:
            continue
        module.__dict__.pop("forward", None)  # undo trl's instance-level patch, then patch once more
        add_fused_lm_head(module, cast_lm_head_to_fp32=True, outputs=fields)


def fsdp_fp32_outputs(fsdp_plugin) -> None:
    """FSDP2: leave module outputs in the dtype they were computed in, instead of bf16.

    accelerate's bf16 policy for FSDP2 sets `output_dtype=bf16`, so the root module's outputs
    are cast to bf16 after the forward: trl's per-token log-probs (fp32 from the fused head) came
    out rounded to bf16 and were summed in bf16 (-430.0 instead of -430.049 in a 2-process run;
    DPO's loss stuck at 0.6914). `output_dtype=None` casts nothing: the decoder layers still
    compute and return bf16 (param_dtype), the fused head's fp32 log-probs stay fp32.
    """
    policy = getattr(fsdp_plugin, "mixed_precision_policy", None)
    if getattr(fsdp_plugin, "fsdp_version", 1) == 2 and policy is not None and policy.output_dtype is not None:
        fsdp_plugin.mixed_precision_policy = dataclasses.replace(policy, output_dtype=None)


# ---------------------------------------------------------------------------------------------
# outputs


def _last_logged(log_history: list[dict], key: str):
    for entry in reversed(log_history):
        if key in entry:
            return entry[key]
    return None


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
    import os

    return int(os.environ.get("RANK", "0")) == 0


def save_model(trainer, out: Path, settings: TrainSettings, bf16: bool) -> None:
    """Gather the weights from every engine (a collective: all ranks call it); rank 0 writes them."""
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


def save_run(trainer, tokenizer, settings: TrainSettings, extra: dict[str, Any], metrics: dict[str, Any],
             bf16: bool = False) -> Path:
    """Write the model (adapter or full), tokenizer, settings.json, log_history.json and metrics.json."""
    from zebra.records import write_json_atomic

    out = Path(settings.output_dir)
    save_model(trainer, out, settings, bf16)
    if not trainer.is_world_process_zero():
        return out
    tokenizer.save_pretrained(out)
    write_json_atomic(out / "settings.json", {**settings.to_dict(), **extra})
    write_json_atomic(out / "log_history.json", trainer.state.log_history)
    write_json_atomic(out / "metrics.json", metrics)
    return out


def _finite_losses(metrics: dict[str, Any]) -> bool:
    """train_loss is a finite number, and so is final_loss where one was logged."""
    def finite(value) -> bool:
        return isinstance(value, (int, float)) and math.isfinite(value)

    return finite(metrics.get("train_loss")) and (metrics.get("final_loss") is None or finite(metrics["final_loss"]))


def run_is_done(output_dir: str | Path) -> bool:
    """A training folder is finished when its metrics.json (written last by save_run) reads and
    holds finite losses: train_grid.py and reproduce.py skip such runs and redo any other."""
    from zebra.jsonio import read_json

    try:
        metrics = read_json(Path(output_dir) / "metrics.json", "metrics file")
    except ZebraError:  # missing, half-written or damaged: the run is redone
        return False
    return isinstance(metrics, dict) and _finite_losses(metrics)


def train(settings: TrainSettings) -> tuple[Path, dict[str, Any]]:
    """One full run, start to saved folder. Returns (output_dir, metrics)."""
    import os

    settings.check()
    check_output_dir(settings.output_dir)  # zebra.settings: a file in the way fails now, not at save
    check_model_source(settings.model, settings.gguf_file)
    bf16, notice = resolve_bf16(settings.bf16)
    if notice:
        logger.warning(notice)
    warmup = effective_warmup_steps(settings)
    if warmup != settings.warmup_steps:
        logger.info("warm-up: %d steps, not --warmup-steps %d (capped at %d%% of --max-steps %d)",
                    warmup, settings.warmup_steps, round(100 * WARMUP_FRACTION), settings.max_steps)
    # `accelerate launch --config_file recipes/accelerate/*.yaml` exports ACCELERATE_MIXED_PRECISION=bf16,
    # and TrainingArguments takes it when bf16=False: --no-bf16 (or no bf16 GPU) must win over the config
    os.environ["ACCELERATE_MIXED_PRECISION"] = "bf16" if bf16 else "no"
    dataset, counts = load_examples(settings.data, settings.method, settings.weight_column)
    logger.info("%s: %s", settings.data, json.dumps(counts))
    args = trainer_args(settings, bf16)
    model, tokenizer, model_path = load_policy(settings, bf16)
    trainer = make_trainer(settings, model, tokenizer, dataset, args)
    fsdp_plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    if fsdp_plugin is not None:  # before trainer.train() shards the model with it
        fsdp_fp32_outputs(fsdp_plugin)
    start = time.perf_counter()
    train_output = trainer.train()
    metrics = run_metrics(trainer, train_output, len(dataset), time.perf_counter() - start)
    if not _finite_losses(metrics):  # a divergence between two logged steps (--logging-steps > 1)
        raise NonFiniteLossError(f"the training loss is {metrics['train_loss']} (final {metrics['final_loss']}; non-finite): "
                                 f"training diverged; nothing saved to {settings.output_dir}. Lower --lr or check the data")
    extra = {**run_record(trainer, bf16), "warmup_steps_used": warmup, "resolved_model_path": model_path,
             "data_counts": counts,
             "trainer": type(trainer).__name__}
    return save_run(trainer, tokenizer, settings, extra, metrics, bf16), metrics


# ---------------------------------------------------------------------------------------------
# recipes: one YAML file per paper run (recipes/<model>/<method>-<strategy>.yaml)

RECIPE_KEYS = {"script", "accelerate_config", "data", "args"}


def args_to_flags(args: dict[str, Any]) -> list[str]:
    """{"batch_size": 6, "lora": True, "bf16": False} → ["--batch-size", "6", "--lora", "--no-bf16"]."""
    flags: list[str] = []
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False:
            flags.append("--no-" + key.replace("_", "-"))
        elif value is not None:
            flags += [flag, str(value)]
    return flags


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read and check one run recipe; errors name the file and the key."""
    from zebra.jsonio import read_yaml

    path = Path(path)
    recipe = read_yaml(path, "recipe")
    if not isinstance(recipe, dict):
        raise ZebraError(f"{path}: expected a mapping with keys {sorted(RECIPE_KEYS)}")
    missing = RECIPE_KEYS - set(recipe)
    unknown = set(recipe) - RECIPE_KEYS
    if missing or unknown:
        raise ZebraError(f"{path}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    if not isinstance(recipe["args"], dict) or "output_dir" not in recipe["args"] or "model" not in recipe["args"]:
        raise ZebraError(f"{path}: `args` must be a mapping with at least model and output_dir")
    if recipe["script"] not in ("train_sft.py", "train_dpo.py"):
        raise ZebraError(f"{path}: script {recipe['script']!r} is neither train_sft.py nor train_dpo.py")
    return {**recipe, "name": f"{path.parent.name}/{path.stem}"}


# This interpreter's accelerate, not whichever `accelerate` is first on PATH (a venv not activated).
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch"]


def shown_command(cmd: list[str]) -> str:
    """A grid command as a user would type it: `python ...`, `accelerate launch ...`."""
    if cmd[: len(LAUNCH)] == LAUNCH:
        cmd = ["accelerate", "launch", *cmd[len(LAUNCH):]]
    return shlex.join(["python" if c == sys.executable else c for c in cmd])


def recipe_command(recipe: dict[str, Any], num_processes: int | None = None, extra: list[str] = ()) -> list[str]:
    """`accelerate launch --config_file ... train_x.py --data ... --model ...` for one recipe."""
    # this interpreter's accelerate, not whatever `accelerate` is on PATH (an un-activated venv)
    cmd = [*LAUNCH, "--config_file", recipe["accelerate_config"]]
    if num_processes:
        cmd += ["--num_processes", str(num_processes)]
    cmd += [recipe["script"], "--data", str(recipe["data"]), *args_to_flags(recipe["args"]), *extra]
    return cmd


def data_commands(entries: dict[str, Any], needed: list[str], ultrafeedback: str | None) -> list[list[str]]:
    """Commands that make the data files in `needed` (recipes/data.yaml entries), inputs first.

    An entry reads UltraFeedback (`--data <ultrafeedback>`) unless it names an `input:`, another
    entry's output (e.g. select_potential.py re-scores SUP data): that file is made first when
    missing.
    """
    by_output = {str(e["output"]): e for e in entries.values()}
    commands: list[list[str]] = []
    planned: set[str] = set()

    def plan(output: str) -> None:
        if output in planned:
            return
        entry = by_output.get(output)
        if entry is None:
            raise ZebraError(f"recipes/data.yaml: no entry writes {output}; add one or make the file yourself")
        cmd = [sys.executable, entry["script"], "--output", output]
        if entry.get("input"):
            source = str(entry["input"])
            if not Path(source).exists():
                plan(source)
            cmd += ["--data", source]
        elif ultrafeedback:
            cmd += ["--data", ultrafeedback]
        planned.add(output)
        commands.append(cmd + args_to_flags(entry.get("args") or {}))

    for output in dict.fromkeys(needed):
        plan(str(output))
    return commands


SAMPLE_WARNING = ("no --ultrafeedback: the data commands read the binarize scripts' shipped pool (403 AlpacaEval prompts), "
                  "far too little for the paper's 3B-8B runs")


@dataclass
class GridPlan:
    """What train_grid.py runs: recipes matched, those still to train, data and training commands."""

    recipes: list[dict[str, Any]]
    todo: list[dict[str, Any]]
    data: list[list[str]]
    training: list[list[str]]

    @property
    def commands(self) -> list[list[str]]:
        return self.data + self.training


def grid_plan(recipes_glob: str, only: str | None, ultrafeedback: str | None, num_processes: int | None = None,
              extra: list[str] = (), rerun: bool = False, data_recipes: str = "recipes/data.yaml") -> GridPlan:
    """The grid's commands, in order: the missing data files first, then one launch per unfinished run.

    A run counts as finished when `run_is_done(output_dir)` (finite metrics.json); `rerun` redoes all.
    """
    import fnmatch
    import glob

    from zebra.jsonio import read_yaml

    if num_processes is not None and num_processes < 1:
        raise ZebraError(f"--num-processes {num_processes}: must be >= 1")
    paths = sorted(p for p in glob.glob(recipes_glob) if Path(p).parent.name != "accelerate")
    recipes = [load_recipe(p) for p in paths]
    recipes = [r for r in recipes if not only or fnmatch.fnmatchcase(r["name"], only)]
    if not recipes:
        raise ZebraError(f"no recipe matches --recipes {recipes_glob} --only {only}")
    todo = [r for r in recipes if rerun or not run_is_done(r["args"]["output_dir"])]
    missing = [r["data"] for r in todo if not Path(r["data"]).exists()]
    data = data_commands(read_yaml(data_recipes, "data recipes file", expect=dict), missing, ultrafeedback)
    training = [recipe_command(r, num_processes, list(extra)) for r in todo]
    return GridPlan(recipes, todo, data, training)


def check_launch(cmd: list[str], parser) -> None:
    """Parse a recipe launch's script flags with the script's own parser and check them, so a bad
    recipe value or pass-through flag (`-- --lr nan`) fails once, before the grid starts."""
    script = next(i for i, c in enumerate(cmd) if c.endswith(".py"))
    ns = parser.parse_args(cmd[script + 1:])
    TrainSettings(method="dpo" if cmd[script].endswith("train_dpo.py") else "sft", **vars(ns)).check()
