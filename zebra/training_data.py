"""A training run's data: a binarize output → trl's dataset, checked once, and what made the pairs.

`load_training_data(path, method, weight_column)` reads the records file, refuses what would fail
later or train on nothing (text UTF-8 cannot encode, weights that cannot divide), converts the
records to trl's conversational formats (zebra/formats.py) and reads `<path>.meta.json`, the
binarize run's record, into the `preference_data` block that `settings.json` carries: the strategy
travels with the data, so the evaluation tables never guess it from file names.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zebra.errors import ZebraError
from zebra.formats import convert_records

logger = logging.getLogger(__name__)

WEIGHT_KEY = "weight"  # the column name trl examples carry, whatever the user's field is called
UNKNOWN = "unknown"  # the strategy of records whose meta file says none
TEXT_FIELDS = ("prompt", "chosen", "rejected")
FLOAT32_TINY = float(np.finfo(np.float32).smallest_subnormal)  # 1.4e-45: smaller weights are 0 in the loss
FLOAT32_MAX = float(np.finfo(np.float32).max)  # 3.4e38: larger weights are inf in the loss
MAX_META_HOPS = 8  # data made from data (select_potential.py re-scores SUP pairs): follow the metas this far


@dataclass
class TrainingData:
    """What a run trains on: trl's dataset, the counts of records kept and skipped, and the binarize
    settings that made the pairs (`preference_data`, copied into settings.json)."""

    dataset: Any  # datasets.Dataset in trl's conversational format
    counts: dict[str, int]
    preference_data: dict[str, Any]


def load_training_data(path: str, method: str, weight_column: str | None = None) -> TrainingData:
    """Binarized records file → TrainingData. Bad records are one-line errors naming the file and row."""
    from datasets import Dataset

    from zebra.records import read_records  # one-line errors for empty or truncated files

    records = read_records(path)
    check_text(records, str(path))
    examples, counts = convert_records(records, method, weight_column=weight_column, source=str(path))
    if not examples:
        raise ZebraError(f"{path}: no usable records ({counts}); is it a binarize_*.py output?")
    if weight_column:
        check_weights(records, examples, str(path), weight_column)
    logger.info("%s: %s", path, json.dumps(counts))
    return TrainingData(Dataset.from_list(examples), counts, preference_data(path))


def _texts(value: Any) -> list[str]:
    """The strings of a `prompt` (a string) or a `chosen`/`rejected` (a string, or messages)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [part for msg in value if isinstance(msg, dict) for part in (msg.get("role"), msg.get("content"))
                if isinstance(part, str)]
    return []


def _surrogate_at(text: str) -> int | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return err.start
    return None


def check_text(records: list[Any], source: str) -> None:
    """Every string a run tokenizes must be text UTF-8 can encode. JSON's `\\ud800` escape decodes to
    a lone surrogate, which Python keeps but Arrow and the tokenizer cannot; found here, it is one
    line naming the row, not a UnicodeEncodeError from deep inside `datasets`."""
    for row, record in enumerate(records):
        if not isinstance(record, dict):
            continue  # convert_records names it
        for field in TEXT_FIELDS:
            for text in _texts(record.get(field)):
                at = _surrogate_at(text)
                if at is not None:
                    raise ZebraError(f"{source} row {row}: field {field!r} holds a lone surrogate ({text[at]!r} at "
                                     f"character {at}), which is not text UTF-8 can encode; fix that record")


def check_weights(records: list[Any], examples: list[dict], source: str, column: str) -> None:
    """Weights the loss can divide by. zebra.formats refuses a missing, non-numeric, negative or
    non-finite weight; here, as the loss sees them (float32): a weight too large for float32 is
    refused, and so is a column whose kept weights sum to 0 (all 0, or all below float32's
    smallest positive number, such as 1e-320): every step's loss would be 0 and the saved model
    the untrained one. Single weights that float32 rounds to 0 train as 0, with a warning."""
    for row, record in enumerate(records):
        value = record.get(column) if isinstance(record, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > FLOAT32_MAX:
            raise ZebraError(f"{source} row {row}: weight column {column!r} is {value}, beyond float32 (3.4e38), "
                             "in which the loss computes; rescale the column")
    weights = np.array([e[WEIGHT_KEY] for e in examples], dtype=np.float64)
    as_loss_sees_them = weights.astype(np.float32)
    if not as_loss_sees_them.any():
        raise ZebraError(f"{source}: the weights in column {column!r} sum to 0 over the {len(weights)} pairs kept "
                         f"(every one 0, or below float32's smallest {FLOAT32_TINY:.1e}): weighted DPO would train on "
                         "nothing; fix the column or drop --weight-column")
    vanished = int(((weights > 0) & (as_loss_sees_them == 0)).sum())
    if vanished:
        logger.warning("%s: %d weight(s) in column %r are below float32's smallest %.1e and train as 0",
                       source, vanished, column, FLOAT32_TINY)


def _read_meta(path: Path) -> dict[str, Any]:
    from zebra.jsonio import ReadError, read_json

    try:
        return read_json(path, "binarize meta file", expect=dict)
    except ReadError as err:
        raise err.with_hint("remake the data beside it with its binarize_*.py script, or move the meta file away") from None


def _block(settings: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The settings that made the pairs, each where it applies (binarize's meta lists only those)."""
    pool = settings.get("pool") if isinstance(settings.get("pool"), dict) else {}
    k = pool.get("models_per_prompt")
    block: dict[str, Any] = {"strategy": settings["strategy"]}
    block.update({key: settings[key] for key in ("tau", "rank_weight", "similarity_weight") if key in settings})
    # the seed matters to the baseline's random rejected response, and to any K-of-a-prompt draw
    block["seed"] = settings["seed"] if "seed" in settings else (pool.get("seed") if k is not None else None)
    block.update(models_per_prompt=k, data=settings.get("data"), limit=settings.get("limit"))
    block.update({key: settings[key] for key in ("max_entropy", "entropy_quantile", "min_mb_sup_gap")
                  if settings.get(key) is not None})
    table = settings.get("behaviour_table") if isinstance(settings.get("behaviour_table"), str) else settings.get("benchmark")
    block["behaviour_table"] = table
    table_meta = meta.get("behaviour_table") if isinstance(meta.get("behaviour_table"), dict) else {}
    if table_meta.get("sha256"):
        block["behaviour_table_sha256"] = table_meta["sha256"]
    return block


def preference_data(path: str | Path) -> dict[str, Any]:
    """The `preference_data` block of settings.json, from `<path>.meta.json`.

    The strategy, τ, SUP+SIM weights (where they apply), seed, models per prompt, pool, limit,
    behaviour table (and its sha256 when the meta has one) and the meta file's path. Data made
    from other data (select_potential.py keeps a share of SUP pairs) names its input in the meta's
    `settings.data`; that input's meta is read in turn, and the metas passed are listed as `via`.
    Without a meta, or with none naming a strategy, the strategy is "unknown" and a warning says
    how to name it.
    """
    meta_path = Path(f"{path}.meta.json")
    via: list[str] = []
    current = meta_path
    for _ in range(MAX_META_HOPS):
        if not current.is_file():
            break
        meta = _read_meta(current)
        settings = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}
        if isinstance(settings.get("strategy"), str) and settings["strategy"]:
            block = _block(settings, meta)
            block["meta"] = str(meta_path)
            if via:
                block["via"] = via + [str(current)]
            return block
        upstream = settings.get("data")
        if not isinstance(upstream, str) or str(current) in via:
            break
        via.append(str(current))
        current = Path(f"{upstream}.meta.json")
    found = f"{meta_path} names no strategy" if meta_path.is_file() else f"no {meta_path.name} beside it"
    logger.warning("%s: %s, so the strategy that made these pairs is unknown (settings.json says %r); name it "
                   "when evaluating: evaluate.py --run-strategy NAME", path, found, UNKNOWN)
    return {"strategy": UNKNOWN, "meta": str(meta_path) if meta_path.is_file() else None}
