"""trl's trainers as this project runs them: configs, weighted DPO, fp32 log-probs, a stop on NaN.

- `trainer_config(settings, bf16)`: trl's DPOConfig / SFTConfig from TrainSettings.
- `make_trainer(settings, model, tokenizer, dataset, config)`: trl's SFTTrainer or DPOTrainer, or
  `WeightedDPOTrainer` when `--weight-column` is set; every DPO trainer scores tokens in fp32.
- `WeightedDPOTrainer`: trl's DPOTrainer whose loss is `zebra.dpo.weighted_dpo_loss`. The trainer
  only gathers the log-probs (trl's batched forward passes) and calls it.
- `fit(trainer)`: `trainer.train()`, its metrics, and no finished run with a NaN loss.
- Precision: `fp32_lm_head` (trl's fused LM head in fp32) and `fsdp_fp32_outputs` (FSDP2 keeps the
  log-probs fp32), so DPO's sums of hundreds of log-probs are not rounded to bf16 on any engine.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any

import torch
from transformers import TrainerCallback
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

from zebra.dpo import weighted_dpo_loss
from zebra.errors import ZebraError
from zebra.training_data import WEIGHT_KEY
from zebra.training_settings import TrainSettings, effective_warmup_steps

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# trl's configs


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
        # the final model is saved once by zebra.run_folder.save_run; intermediate checkpoints of an
        # 8B full fine-tune (weights + Adam) would fill the disk for no use in this study
        save_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        # pinned memory only speeds host-to-GPU copies; without a GPU torch warns on every run
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def trainer_config(settings: TrainSettings, bf16: bool) -> DPOConfig | SFTConfig:
    """trl's DPOConfig / SFTConfig. Build it before loading the model: it initialises the
    distributed state that FSDP's cpu_ram_efficient_loading and ZeRO-3's zero.Init rely on."""
    if settings.method == "sft":
        return SFTConfig(**_common_args(settings, bf16))
    return DPOConfig(beta=settings.beta, **_common_args(settings, bf16))


def lora_config(settings: TrainSettings):
    """peft LoRA on every linear layer except the LM head (trl's DPO reads lm_head.weight directly)."""
    if not settings.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")


# ---------------------------------------------------------------------------------------------
# weighted DPO

_NON_MODEL_KEYS = {"completion_mask", "ref_chosen_logps", "ref_rejected_logps"}  # trl 1.16's, for the forward


class WeightedDPOTrainer(DPOTrainer):
    """trl's DPOTrainer with the loss of `zebra.dpo.weighted_dpo_loss`: Σ_i w_i ℓ_i / Σ_i w_i over the
    batch, w_i the dataset's `weight` column (at w_i = 1, trl's loss exactly).

    trl (1.16) computes its per-pair losses inside the ~300-line `_compute_loss` and returns only
    their mean (a weight column was proposed in trl#5613 and not merged), so `_compute_loss` is
    overridden: one batched policy forward over [chosen; rejected] with trl's fused LM head (as
    trl's own), the reference log-probs from trl's `compute_ref_log_probs` (or the precomputed
    ones), the pure loss, and the per-step metrics trl logs, computed the same way.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # the pure loss is trl's default DPO only; anything else would silently be a different loss
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

    def _compute_loss(self, model, inputs, return_outputs):
        inputs = dict(inputs)
        weights = inputs.pop(WEIGHT_KEY, None)
        if return_outputs:  # evaluation asking for logits (deprecated in trl): trl's own, unweighted
            return super()._compute_loss(model, inputs, return_outputs)
        if weights is None:  # never train unweighted by accident: the column was lost on the way
            raise ZebraError(f"WeightedDPOTrainer: batch without a {WEIGHT_KEY!r} tensor; keep the column in the dataset")
        completion_mask = inputs["completion_mask"]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        model_kwargs = {k: v for k, v in inputs.items() if k not in _NON_MODEL_KEYS}
        outputs = model(**model_kwargs, use_cache=False, labels=labels, fused_lm_head=True)
        seq_len = completion_mask.size(1) - 1
        # prompt-learning PEFT prepends virtual tokens to the outputs: keep the real tokens' positions (as trl)
        chosen_logps, rejected_logps = outputs.log_probs[:, -seq_len:].sum(dim=1).chunk(2, dim=0)
        if self.precompute_ref_logps:
            ref_chosen_logps, ref_rejected_logps = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:  # LoRA: no reference model; trl's method runs the policy with the adapters off
            reference = self.model if self.ref_model is None else self.ref_model
            ref_chosen_logps, ref_rejected_logps = self.compute_ref_log_probs(reference, inputs)
        out = weighted_dpo_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps,
                                weights.to(chosen_logps.device), self.beta)
        self._log_dpo_metrics(outputs, inputs, chosen_logps.detach(), rejected_logps.detach(), out)
        return out.loss

    def _log_dpo_metrics(self, outputs, inputs, chosen_logps, rejected_logps, out) -> None:
        """The per-step metrics of trl 1.16's `_compute_loss` (same keys, same arithmetic), so a
        weighted run's log_history reads like a plain one's."""
        mode = "train" if self.model.training else "eval"
        metrics, gather, gather_all = self._metrics[mode], self.accelerator.gather_for_metrics, self.accelerator.gather
        mask = inputs["completion_mask"][..., 1:]
        seq_len = mask.size(1)
        entropy = gather((outputs.entropy[:, -seq_len:].detach() * mask).sum()).sum()
        tokens = gather(mask.sum()).sum()
        metrics["entropy"].append((entropy / tokens).item() if tokens > 0 else 0.0)
        if mode == "train":
            self._total_train_tokens += gather(inputs["attention_mask"].sum()).sum().item() // self._tp_size
        metrics["num_tokens"] = [self._total_train_tokens]
        masks = mask.chunk(2, dim=0)
        for side, logits, side_mask in zip(("chosen", "rejected"), outputs.mean_logits[:, -seq_len:].chunk(2, dim=0), masks):
            total, count = gather(logits[side_mask.bool()].sum()).sum().item(), gather(side_mask.sum()).sum().item()
            metrics[f"logits/{side}"].append(total / count if count > 0 else 0.0)
        chosen_top1 = outputs.is_top1[:, -seq_len:].chunk(2, dim=0)[0] & masks[0].bool()
        correct, count = gather(chosen_top1.sum()).sum(), gather(masks[0].sum()).sum()
        metrics["mean_token_accuracy"].append((correct / count).item() if count > 0 else 0.0)
        chosen, rejected = gather_all(out.chosen_rewards), gather_all(out.rejected_rewards)
        metrics["rewards/chosen"].append(chosen.mean().item())
        metrics["rewards/rejected"].append(rejected.mean().item())
        metrics["rewards/accuracies"].append((chosen > rejected).float().mean().item())
        metrics["rewards/margins"].append((chosen - rejected).mean().item())
        metrics["logps/chosen"].append(gather_all(chosen_logps).mean().item())
        metrics["logps/rejected"].append(gather_all(rejected_logps).mean().item())


class _WeightCollator:
    """Wrap trl's preference collator: same batch, plus a float `weight` tensor of shape (B,)."""

    def __init__(self, base):
        self.base = base

    def __call__(self, examples):
        batch = self.base(examples)
        if examples and WEIGHT_KEY in examples[0]:
            batch[WEIGHT_KEY] = torch.tensor([float(e[WEIGHT_KEY]) for e in examples], dtype=torch.float32)
        return batch


# ---------------------------------------------------------------------------------------------
# building and running a trainer


class NonFiniteLossError(ZebraError):
    """A run's loss or gradient norm became NaN/inf."""


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


def make_trainer(settings: TrainSettings, model, tokenizer, dataset, config):
    """trl's SFTTrainer / DPOTrainer, or WeightedDPOTrainer when a weight column is set."""
    peft_config = lora_config(settings)
    quiet_known_warnings()
    if settings.method == "sft":
        trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=peft_config)
    else:
        if settings.weight_column and settings.batch_size == 1:  # Σ w_i ℓ_i / Σ w_i over one pair is ℓ_i
            logger.warning("--weight-column with --batch-size 1: weights are normalised per batch, so only a "
                           "weight of 0 changes anything; use a batch of 2 or more (the paper's is 6)")
        trainer_class = WeightedDPOTrainer if settings.weight_column else DPOTrainer
        trainer = trainer_class(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                                peft_config=peft_config)
        dropped = len(dataset) - len(trainer.train_dataset)  # trl drops a pair whose prompt alone fills max_length
        if dropped == len(dataset):
            raise ZebraError(f"all {len(dataset)} pairs have a prompt of --max-length {settings.max_length} tokens or more, "
                             "which trl drops: nothing to train on; raise --max-length")
        if dropped:
            logger.warning("%d of %d pairs dropped by trl: their prompt alone fills --max-length %d tokens",
                           dropped, len(dataset), settings.max_length)
        fp32_lm_head(trainer)
    trainer.add_callback(StopOnNonFinite())
    return trainer


def fit(trainer) -> dict[str, Any]:
    """`trainer.train()`, then the run's metrics (zebra.run_folder.run_metrics); a loss that is not
    finite at the end (a divergence between two logged steps) stops the run before anything is saved."""
    from zebra.run_folder import finite_losses, run_metrics

    fsdp_plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    if fsdp_plugin is not None:  # before trainer.train() shards the model with it
        fsdp_fp32_outputs(fsdp_plugin)
    start = time.perf_counter()
    train_output = trainer.train()
    metrics = run_metrics(trainer, train_output, len(trainer.train_dataset), time.perf_counter() - start)
    if not finite_losses(metrics):
        raise NonFiniteLossError(f"the training loss is {metrics['train_loss']} (final {metrics['final_loss']}; non-finite): "
                                 f"training diverged; nothing saved to {trainer.args.output_dir}. Lower --lr or check the data")
    return metrics


# ---------------------------------------------------------------------------------------------
# precision


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
