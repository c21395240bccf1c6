"""Alignment potential M_AP: the ZEBRA analogue of reward-margin data selection (SPEC §9, seed 004).

Seed 004 (Huang et al., ICML 2025, "Larger or Smaller Reward Margins to Select Preferences for
Alignment?", github Hesse73/Alignment-Potential-Metric) keeps the preference pairs whose
*explicit* margin (a reward model's) is large while the policy's *implicit* margin is small:
the pairs a reward says are clear but the model has not learnt yet. `metric_selection.py`:

    M_AP = z(explicit margin) − λ · z(|implicit margin|)        z(x) = (x − mean x) / std x
    keep the top ⌊keep · n⌋ pairs by M_AP (paper: keep = 0.4, λ = 1)

with the implicit margin from `cal_logps.py`: the length-normalised log-probability of the
chosen response minus the rejected one under the policy model (mean log-prob per response token).

ZEBRA labels no instance, so its explicit margin is the MB-SUP gap of the pair's two models;
for records that carry instance scores (the RLAIF baseline's `score_chosen`/`score_rejected`)
it is the score gap, as the seed's reward-model margin is.

Departures from the seed's code, each for a reason:
- Response tokens are exactly the ones trl's DPOTrainer trains on: the prompt is templated
  with the generation prompt, and the completion starts where the tokenised prompt and the
  tokenised prompt + response diverge (trl `common_prefix_length`). `cal_logps.py` templates
  the prompt without the generation prompt, so it also scores the assistant header tokens.
- A margin whose spread is zero (e.g. every pair from the same two models) has no z-score; its
  term is 0 instead of NaN, so the other term still ranks.
- Ties in M_AP go to the earlier record, and kept records stay in their input order (the seed
  keeps numpy's argsort order), so a selection is reproducible.
- Records with no explicit or implicit margin (a response with no token inside max_length, a
  pair with a model outside the behaviour table) get no M_AP and are never kept; ⌊keep · n⌋
  counts only the scored ones.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from typing import Any, Iterable

import numpy as np

from zebra.errors import ZebraError

log = logging.getLogger(__name__)

KEEP = 0.4  # seed 004's select_ratio
LAMBDA = 1.0  # seed 004's logp_weight ("rm-logp" is λ = 1)
EXPLICIT = ("auto", "score", "mb_sup")


# ---------------------------------------------------------------- selection (pure numpy)

def zscore(x: np.ndarray) -> np.ndarray:
    """(x − mean) / std over the finite entries (population std, as numpy and the seed); 0 if std = 0."""
    x = np.asarray(x, dtype=float)
    ok = np.isfinite(x)
    if not ok.any():
        return np.full(x.shape, np.nan)
    mean, std = x[ok].mean(), x[ok].std()
    return np.where(ok, (x - mean) / std if std > 0 else 0.0, np.nan)


def alignment_potential(explicit: np.ndarray, implicit: np.ndarray, lam: float = LAMBDA) -> np.ndarray:
    """M_AP = z(explicit) − λ · z(|implicit|), z over the records where both margins exist."""
    explicit, implicit = np.asarray(explicit, float), np.asarray(implicit, float)
    both = np.isfinite(explicit) & np.isfinite(implicit)
    e, i = np.where(both, explicit, np.nan), np.where(both, np.abs(implicit), np.nan)
    return zscore(e) - lam * zscore(i)


def top_fraction(scores: np.ndarray, keep: float = KEEP) -> np.ndarray:
    """Indices (ascending) of the ⌊keep · n⌋ highest finite scores; ties: the earlier index."""
    if not 0 < keep <= 1:
        raise ZebraError(f"--keep must lie in (0, 1] (the seed keeps 0.4), not {keep}")
    scores = np.asarray(scores, dtype=float)
    finite = np.flatnonzero(np.isfinite(scores))
    k = int(keep * finite.size)
    order = finite[np.lexsort((finite, -scores[finite]))]  # by score descending, then index
    return np.sort(order[:k])


# ---------------------------------------------------------------- records → margins

def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _messages(value: list, where: str, field: str) -> list[dict]:
    """Chat messages as {role, content} text pairs; anything else would be str()-ed into the prompt."""
    out = []
    for i, m in enumerate(value, 1):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ZebraError(f"{where}: {field!r} message {i} is {_short(m)}, not a {{role, content}} pair of texts")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def split_record(record: dict[str, Any], where: str) -> tuple[list[dict], str, str]:
    """(prompt messages, chosen text, rejected text) of a binarize record or a trl DPO example."""
    if not isinstance(record, dict):
        raise ZebraError(f"{where} is {_short(record)}, not a JSON object")

    def last(value, field):
        if isinstance(value, str):
            return [], value
        if not isinstance(value, list) or not value or not isinstance(value[-1], dict) \
                or value[-1].get("role") != "assistant":
            raise ZebraError(f"{where}: {field!r} must be a response string or messages ending with the assistant's")
        messages = _messages(value, where, field)
        return messages[:-1], messages[-1]["content"]

    for field in ("chosen", "rejected"):
        if field not in record:
            raise ZebraError(f"{where}: no {field!r} field; is this a binarize_*.py output?")
    c_context, chosen = last(record["chosen"], "chosen")
    _, rejected = last(record["rejected"], "rejected")
    prompt = record.get("prompt")
    if c_context:
        messages = c_context
    elif isinstance(prompt, list):
        messages = _messages(prompt, where, "prompt")
    elif isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    else:
        raise ZebraError(f"{where}: no prompt (neither a 'prompt' field nor messages before the response)")
    return messages, chosen, rejected


def check_records(records: list, source: str, start: int = 1) -> None:
    """Every record usable before the model loads (records numbered from `start`, 1 for a whole
    file, more for a later batch of one): an object whose
    prompt, chosen and rejected split (`split_record`), and whose text is valid Unicode. A lone
    surrogate (`\\ud800`, legal in JSON's escapes, not in UTF-8) reached the tokenizer or the
    output file only after minutes of scoring."""
    for i, record in enumerate(records, start):
        where = f"{source}: record {i}"
        split_record(record, where)
        for key, value in record.items():
            try:
                json.dumps(value, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError as err:
                bad = err.object[err.start:err.end].encode("unicode_escape").decode()
                raise ZebraError(f"{where}: field {key!r} holds a lone surrogate ({bad}), which is not Unicode text; "
                                 "fix or drop that record") from None


def check_lambda(lam: float, n: int) -> None:
    """Refuse a λ whose λ·z(|implicit|) overflows: a z-score over n records reaches at most √(n−1),
    and M_AP = ±inf would leave every pair unranked ("scored 7 of 8" with no reason)."""
    from zebra.settings import SettingError

    limit = sys.float_info.max / (2 * math.sqrt(max(n - 1, 1)))
    if lam >= limit:
        raise SettingError(f"--lambda {lam:g} makes M_AP overflow to infinity for {n} records (|z| reaches "
                           f"{math.sqrt(max(n - 1, 1)):.3g}); use a --lambda below {limit:.3g}")


def _gap(records: list[dict], hi: str, lo: str) -> np.ndarray:
    def num(v):
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan
    return np.array([num(r.get(hi)) - num(r.get(lo)) for r in records], dtype=float)


def has_scores(records: list[dict]) -> bool:
    """Every record carries score_chosen and score_rejected (what `auto` asks of the whole file)."""
    return all(r.get("score_chosen") is not None and r.get("score_rejected") is not None for r in records)


def explicit_gaps(records: list[dict]) -> dict[str, np.ndarray]:
    """Both candidate explicit margins of each record, `score` and `mb_sup` (NaN where absent):
    a file read in batches keeps these two numbers per record and picks one at the end."""
    return {"score": _gap(records, "score_chosen", "score_rejected"),
            "mb_sup": _gap(records, "mb_sup_chosen", "mb_sup_rejected")}


def pick_explicit(gaps: dict[str, np.ndarray], every_record_scored: bool, source: str = "auto") -> tuple[np.ndarray, str]:
    """`explicit_margins` from `explicit_gaps` of all records and whether every record has both
    scores (`has_scores`), so the rule is the same whether the records came at once or in batches."""
    if source not in EXPLICIT:
        raise ZebraError(f"--explicit must be one of {EXPLICIT}, not {source!r}")
    if source == "auto":
        source = "score" if every_record_scored and len(gaps["score"]) else "mb_sup"
    margin = gaps[source]
    if not np.isfinite(margin).any():
        raise ZebraError(f"no record has numeric {source}_chosen and {source}_rejected fields; "
                         f"pick another --explicit or use a binarize_*.py output")
    return margin, source


def explicit_margins(records: list[dict], source: str = "auto") -> tuple[np.ndarray, str]:
    """The explicit margin per record and which one it is.

    `score`: score_chosen − score_rejected (instance scores: the RLAIF baseline's records);
    `mb_sup`: mb_sup_chosen − mb_sup_rejected (every ZEBRA record); `auto`: `score` when every
    record has both scores, else `mb_sup`.
    """
    return pick_explicit(explicit_gaps(records), has_scores(records), source)


# ---------------------------------------------------------------- implicit margin (torch)

def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def tokenize_pair(tokenizer, messages: list[dict], chosen: str, rejected: str,
                  max_length: int | None = None) -> list[tuple[list[int], int]]:
    """[(ids, completion start)] for chosen and rejected, as trl's DPOTrainer tokenises them.

    The prompt ends where the templated prompt (with the generation prompt) and both templated
    conversations stop agreeing; sequences longer than `max_length` lose their end (trl's
    default `keep_start`).
    """
    def ids(msgs, **kw):
        return list(tokenizer.apply_chat_template(msgs, tokenize=True, return_dict=True, **kw)["input_ids"])

    prompt = ids(messages, add_generation_prompt=True)
    full = [ids(messages + [{"role": "assistant", "content": text}]) for text in (chosen, rejected)]
    start = min(_common_prefix(prompt, f) for f in full)
    return [(f[:max_length] if max_length else f, start) for f in full]


def sequence_logprobs(model, sequences: list[tuple[list[int], int]], pad_id: int, batch_size: int = 8,
                      progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Σ log p(token | prefix) over each sequence's completion tokens, and their count.

    Sequences are sorted by length so a batch carries little padding; padding is on the right,
    which a causal model never attends to from real positions, so batching changes nothing.
    """
    import torch
    from tqdm.auto import tqdm

    from zebra.progress import show_progress

    device = next(model.parameters()).device
    n = len(sequences)
    total, count = np.full(n, np.nan), np.zeros(n, dtype=np.int64)
    order = sorted(range(n), key=lambda i: -len(sequences[i][0]))
    model.eval()
    with torch.inference_mode():
        for b in tqdm(range(0, n, batch_size), desc="log-probs", unit="batch", disable=not show_progress(progress)):
            idx = order[b:b + batch_size]
            width = max(len(sequences[i][0]) for i in idx)
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            target = torch.zeros((len(idx), width), dtype=torch.bool)  # positions whose token is scored
            for row, i in enumerate(idx):
                seq, start = sequences[i]
                ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
                mask[row, :len(seq)] = 1
                target[row, max(start, 1):len(seq)] = True
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, :-1].float()
            tokens = ids[:, 1:].to(device)
            token_logp = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
            scored = target[:, 1:].to(device)
            sums = (token_logp * scored).sum(-1).cpu().numpy()
            counts = scored.sum(-1).cpu().numpy()
            for row, i in enumerate(idx):
                count[i] = counts[row]
                total[i] = sums[row] if counts[row] else np.nan
    return total, count


def implicit_margins(model, tokenizer, records: Iterable[dict], batch_size: int = 8, max_length: int | None = 1024,
                     progress: bool = False) -> dict[str, np.ndarray]:
    """Length-normalised log-probs of chosen and rejected under `model`, and their difference.

    NaN where a response has no token left inside `max_length` (the prompt fills it).
    """
    records = list(records)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    sequences = []
    for j, r in enumerate(records):
        messages, chosen, rejected = split_record(r, f"record {j}")
        sequences += tokenize_pair(tokenizer, messages, chosen, rejected, max_length)
    total, count = sequence_logprobs(model, sequences, pad_id, batch_size, progress)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    chosen, rejected = mean[0::2], mean[1::2]
    return {"logp_chosen": chosen, "logp_rejected": rejected, "implicit_margin": chosen - rejected,
            "tokens_chosen": count[0::2], "tokens_rejected": count[1::2]}
