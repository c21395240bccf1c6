"""Binarized preference records → trl's documented conversational dataset formats.

The binarize scripts write, per prompt (SPEC §5, the original project's shape):

    {"prompt": "...", "chosen":   [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}],
                      "rejected": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}],
     "prompt_id": "...", "most_similar_pair": [...], "kinship_rank": 1, "mb_sup_chosen": ..., ...}

The prompt sits both in `prompt` and inside `chosen`/`rejected`. trl wants it once: its
"conversational preference, explicit prompt" format for DPO and "conversational prompt-completion"
for SFT (https://huggingface.co/docs/trl/dataset_formats):

    DPO: {"prompt": [{"role": "user", ...}], "chosen": [{"role": "assistant", ...}], "rejected": [...]}
    SFT: {"prompt": [{"role": "user", ...}], "completion": [{"role": "assistant", ...}]}

`convert_records` is the one function that does it, for both, and says what it skipped.
"""

from __future__ import annotations

import math
from collections import Counter
from numbers import Real
from typing import Any

from zebra.errors import ZebraError

METHODS = ("dpo", "sft")
REQUIRED_FIELDS = {"dpo": ("chosen", "rejected"), "sft": ("chosen",)}

# Reasons a record is skipped (counted, never an error): the data is valid, just unusable.
SKIP_EMPTY = "empty"  # no prompt text, or an empty chosen/rejected response
SKIP_DUPLICATE_PROMPT = "duplicate_prompt"  # same prompt as an earlier record: training on it twice
SKIP_PROMPT_MISMATCH = "prompt_mismatch"  # chosen and rejected continue different conversations
SKIP_IDENTICAL = "identical_responses"  # DPO only: chosen == rejected carries no preference


def _split_conversation(value: Any, where: str, field: str) -> tuple[list[dict], str]:
    """(context messages, final assistant text) of a `chosen`/`rejected` value.

    Accepts the binarize scripts' message list, or a bare response string (no context).
    """
    if isinstance(value, str):
        return [], value
    if not isinstance(value, (list, tuple)) or not value:
        raise ZebraError(f"{where}: field {field!r} must be a list of {{role, content}} messages or a string")
    messages = []
    for msg in value:
        if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
            raise ZebraError(f"{where}: field {field!r} holds a message without 'role' and 'content'")
        messages.append({"role": str(msg["role"]), "content": "" if msg["content"] is None else str(msg["content"])})
    if messages[-1]["role"] != "assistant":
        raise ZebraError(f"{where}: field {field!r} does not end with an assistant message")
    return messages[:-1], messages[-1]["content"]


def _prompt_messages(record: dict, context: list[dict]) -> list[dict]:
    """The explicit prompt: the conversation before the response, else the `prompt` string as a user turn."""
    if context:
        return context
    return [{"role": "user", "content": "" if record.get("prompt") is None else str(record["prompt"])}]


def _last_user_text(messages: list[dict]) -> str | None:
    for msg in reversed(messages):
        if msg["role"] == "user":
            return msg["content"]
    return None


def parse_weight(value: Any, where: str, column: str) -> float:
    """A per-example weight: a finite number ≥ 0 (bools and numeric strings are rejected)."""
    if value is None:
        raise ZebraError(f"{where}: weight column {column!r} is empty (null); every record needs a number")
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ZebraError(f"{where}: weight column {column!r} is not numeric ({value!r}); fix the data or drop --weight-column")
    weight = float(value)
    if not math.isfinite(weight) or weight < 0:
        raise ZebraError(f"{where}: weight column {column!r} is {weight}; weights must be finite and >= 0")
    return weight


def convert_record(record: Any, method: str, where: str = "record", weight_column: str | None = None) -> dict | str:
    """One record → one trl example (dict), or the skip reason (str). Raises ZebraError on bad schema."""
    if not isinstance(record, dict):
        raise ZebraError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [f for f in REQUIRED_FIELDS[method] if f not in record]
    if missing:
        raise ZebraError(
            f"{where}: missing field(s) {', '.join(map(repr, missing))}; {method.upper()} needs "
            f"{', '.join(REQUIRED_FIELDS[method])} (+ prompt) as written by binarize_*.py"
        )
    if weight_column is not None and weight_column not in record:
        raise ZebraError(f"{where}: no field {weight_column!r} for --weight-column; fields are {sorted(record)}")
    weight = parse_weight(record[weight_column], where, weight_column) if weight_column else None

    chosen_context, chosen_text = _split_conversation(record["chosen"], where, "chosen")
    prompt = _prompt_messages(record, chosen_context)
    rejected_text = None
    if method == "dpo":
        rejected_context, rejected_text = _split_conversation(record["rejected"], where, "rejected")
        # Different contexts: no single explicit prompt exists; keeping either would train on a wrong pair.
        if rejected_context and rejected_context != prompt:
            return SKIP_PROMPT_MISMATCH
    # The `prompt` string must be the conversation's last user turn, or the prompt would appear twice.
    prompt_text = record.get("prompt")
    if chosen_context and isinstance(prompt_text, str) and prompt_text.strip():
        if (_last_user_text(chosen_context) or "").strip() != prompt_text.strip():
            return SKIP_PROMPT_MISMATCH

    if not (_last_user_text(prompt) or "").strip() or not chosen_text.strip():
        return SKIP_EMPTY
    if method == "sft":
        example = {"prompt": prompt, "completion": [{"role": "assistant", "content": chosen_text}]}
    else:
        if not rejected_text.strip():
            return SKIP_EMPTY
        if rejected_text.strip() == chosen_text.strip():
            return SKIP_IDENTICAL
        example = {
            "prompt": prompt,
            "chosen": [{"role": "assistant", "content": chosen_text}],
            "rejected": [{"role": "assistant", "content": rejected_text}],
        }
    if weight_column:
        # trl keeps extra columns; WeightedDPOTrainer reads this fixed name whatever the user's column is called
        example["weight"] = weight
    return example


def prompt_key(record: dict, example: dict) -> str:
    """Identity of a prompt for de-duplication: the binarize scripts' `prompt_id`, else the prompt messages."""
    if record.get("prompt_id"):
        return f"id:{record['prompt_id']}"
    return "text:" + "\x1e".join(f"{m['role']}\x1f{m['content'].strip()}" for m in example["prompt"])


def convert_records(
    records: list[Any], method: str, weight_column: str | None = None, source: str = "data"
) -> tuple[list[dict], dict[str, int]]:
    """Records from a binarize script → (trl examples, counts).

    `method` is "dpo" (conversational preference, explicit prompt) or "sft" (conversational
    prompt-completion on the chosen response). With `weight_column`, each DPO example also gets a
    float `weight`. Records that are empty, repeat an earlier prompt, whose chosen and rejected
    continue different conversations, or (DPO) whose responses are identical are skipped; `counts`
    has `records`, `kept` and one `skipped_<reason>` entry per reason. Schema problems raise
    ZebraError naming `source` and the row.
    """
    if method not in METHODS:
        raise ZebraError(f"unknown method {method!r}; expected one of {METHODS}")
    examples: list[dict] = []
    skipped: Counter = Counter()
    seen: set[str] = set()
    for row, record in enumerate(records):
        result = convert_record(record, method, where=f"{source} row {row}", weight_column=weight_column)
        if isinstance(result, str):
            skipped[result] += 1
            continue
        key = prompt_key(record, result)
        if key in seen:
            skipped[SKIP_DUPLICATE_PROMPT] += 1
            continue
        seen.add(key)
        examples.append(result)
    counts = {"records": len(records), "kept": len(examples)}
    for reason in (SKIP_EMPTY, SKIP_DUPLICATE_PROMPT, SKIP_PROMPT_MISMATCH, SKIP_IDENTICAL):
        counts[f"skipped_{reason}"] = skipped[reason]
    return examples, counts
