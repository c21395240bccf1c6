"""What decides a training run (`TrainSettings`), and every check made before any work.

`train_sft.py` and `train_dpo.py` parse their flags into `TrainSettings`; `check()` refuses bad
values before trl is even imported, and `prepare()` looks at the world (output folder, model,
bf16 hardware) before the data and the model load. Nothing here imports torch or trl at module
level, so `--help`, a bad flag and `train_grid.py --dry-run` stay fast.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any

from zebra.errors import ZebraError

logger = logging.getLogger(__name__)


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


def bf16_available() -> bool:
    """True where transformers accepts bf16 mixed precision without `use_cpu`: a bf16-capable GPU."""
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def resolve_bf16(requested: bool, available: bool | None = None) -> tuple[bool, str | None]:
    """(use bf16, one-line notice or None). The paper trains in bf16; CPUs and pre-Ampere GPUs cannot."""
    available = bf16_available() if available is None else available
    if requested and not available:
        return False, "bf16 off: no bf16-capable GPU here (the paper used bf16 on L40s); training in fp32"
    return requested, None


def check_output_holds_no_input(settings: TrainSettings) -> None:
    """The output folder is the run's own: not the --model folder (the new weights would replace the
    ones it reads, and trl rebuilds the reference model from that path) and not a folder holding
    --data or its meta (the run's files would land beside them, and over them by name)."""
    from pathlib import Path

    from zebra.settings import SettingError

    out = Path(settings.output_dir).expanduser().resolve()
    inputs = (("--model", Path(settings.model)), ("--data", Path(settings.data)),
              ("--data", Path(f"{settings.data}.meta.json")))
    for flag, given in inputs:
        path = given.expanduser()
        if not path.exists():
            continue  # a hub id, or a file checked (and named) later
        path = path.resolve()
        if path == out or out in path.parents:
            raise SettingError(f"--output-dir {settings.output_dir} holds the input {flag} {given}: a run writes its "
                               "model and JSON files there; choose a folder of its own")


def prepare(settings: TrainSettings) -> bool:
    """Every check that needs no data and no model, in the order a user fixes them; returns bf16.

    The flags; the output folder (a file in the way, a folder this user cannot write, or one that
    holds an input fails now, not at save after the training); the model (a missing folder or an offline hub id); then bf16
    where the hardware has it (a notice otherwise) and the warm-up the run will use.
    """
    from zebra.models import check_model_source
    from zebra.settings import check_output_dir

    settings.check()
    check_output_dir(settings.output_dir)
    check_output_holds_no_input(settings)
    check_model_source(settings.model, settings.gguf_file)
    bf16, notice = resolve_bf16(settings.bf16)
    if notice:
        logger.warning(notice)
    warmup = effective_warmup_steps(settings)
    if warmup != settings.warmup_steps:
        logger.info("warm-up: %d steps, not --warmup-steps %d (capped at %d%% of --max-steps %d)",
                    warmup, settings.warmup_steps, round(100 * WARMUP_FRACTION), settings.max_steps)
    return bf16
