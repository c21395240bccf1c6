"""Decontamination: which training prompts (or responses) contain an evaluation benchmark's test item.

The rule follows open-instruct's n-gram matching (`decontamination/search.py`, used for Tulu 3's
decontamination), turned around so that a whole training pool is checked against every item at
once:

- **Normalisation.** Unicode NFKC, lower case, and tokens = maximal runs of letters and digits
  (`\\p{L}` / `\\p{N}`); punctuation, markup and whitespace only separate tokens. So a copy whose
  case, punctuation or spacing changed still matches.
- **Overlap.** For a training text T and a field F of a benchmark item (|F| tokens), the covered
  tokens of F are those inside some n-gram of F (n consecutive tokens) that also occurs in T. The
  item's score is the mean over its fields of covered / |F| (open-instruct averages over an
  item's query fields the same way), and the item is *in* T when its score ≥ `threshold`.
  Defaults n = 8 (open-instruct's and Tulu 3's; 13 is GPT-3's) and threshold 0.5. Rewording one
  word in the middle of a 30-token question leaves 29 of its tokens covered; only edits every few
  words escape, which is the point of n-grams.
- **Fields.** A multiple-choice item has two: its question (`Item.question`: the MMLU/MMLU-Pro/ARC
  question, HellaSwag's cleaned context) and its answer options joined; an IFEval item has its
  prompt only. So a text holding a whole question (score ≥ 0.5) or most of a question and of its
  options matches, while a stock phrase ("which of the following is not an example of", 9 of a
  12-token question) scores 0.375 and does not: with the question alone it flagged AlpacaEval
  responses that write quiz questions. A field shorter than n tokens has no n-gram and is never
  covered (as in open-instruct); the report counts them.

The work is vectorised and bounded: the items are tokenised once into one token vocabulary, their
n-grams hashed once (64-bit polynomial hashes, sorted); training texts go through in batches,
tokenised by Arrow's string kernels, mapped to that vocabulary (a token no item has ends every
n-gram through it), hashed and looked up with `searchsorted`. Every hash hit is then checked
token by token, so a hash collision never counts as a match.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from zebra.benchmarks import Item
from zebra.errors import ZebraError

log = logging.getLogger(__name__)

NGRAM = 8  # open-instruct / Tulu 3; GPT-3 and lm-eval's janitor use 13
THRESHOLD = 0.5  # share of an item's tokens that must be covered
BATCH = 2048  # training texts per lookup batch: memory stays bounded on UltraFeedback scale
_SPLIT = r"[^\p{L}\p{N}]+"  # RE2 syntax (Arrow's regex engine)
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: the polynomial hash is a bijection per step


def check_settings(n: int, threshold: float) -> None:
    from zebra.settings import check_number

    check_number("--ngram", n, low=1, high=64, integer=True)
    check_number("--threshold", threshold, low=0, high=1, low_open=True)


# ----------------------------------------------------------------------------- tokens


def tokenize(texts: Sequence[str | None]) -> tuple[pa.Array, np.ndarray]:
    """Normalised tokens of every text, flat, and the offsets (len(texts) + 1) of each text's run."""
    arr = pa.array(list(texts), pa.large_string())
    arr = pc.utf8_lower(pc.utf8_normalize(pc.fill_null(arr, ""), form="NFKC"))
    parts = pc.split_pattern_regex(arr, _SPLIT)
    flat = parts.flatten()
    keep = pc.not_equal(pc.utf8_length(flat), 0)  # a leading or trailing separator leaves ""
    owner = np.repeat(np.arange(len(arr)), pc.list_value_length(parts).to_numpy(zero_copy_only=False))
    kept = keep.to_numpy(zero_copy_only=False)
    counts = np.bincount(owner[kept], minlength=len(arr))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return flat.filter(keep), offsets


def normalised_tokens(text: str) -> list[str]:
    """One text's tokens as the matcher sees them (for reports and tests)."""
    tokens, _ = tokenize([text])
    return tokens.to_pylist()


def _windows(ids: np.ndarray, offsets: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(start position, 64-bit hash) of every `length`-token window inside one text whose tokens
    are all known (id ≥ 0)."""
    n = ids.size
    if n < length:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64)
    starts = np.arange(n - length + 1)
    owner = np.searchsorted(offsets, starts, side="right") - 1
    unknown = np.concatenate([[0], np.cumsum(ids < 0)])
    ok = (starts + length <= offsets[owner + 1]) & (unknown[starts + length] == unknown[starts])
    starts = starts[ok]
    h = np.zeros(starts.size, np.uint64)
    values = (ids + 1).astype(np.uint64)
    with np.errstate(over="ignore"):  # the hash is arithmetic modulo 2^64 on purpose
        for k in range(length):
            h = h * _MULTIPLIER + values[starts + k]
    return starts, h


# ----------------------------------------------------------------------------- the benchmark side


@dataclass
class BenchmarkIndex:
    """The n-grams of every field of every benchmark item, hashed once."""

    n: int
    benchmark: np.ndarray  # (items,) benchmark name of each item
    item_id: np.ndarray  # (items,) the item's own id (question_id, key, …)
    n_fields: np.ndarray  # (items,) 1 (question) or 2 (question, options)
    field_item: np.ndarray  # (fields,) the item each field belongs to
    lengths: np.ndarray  # (fields,) tokens per field
    vocab: pa.Array  # every token of every field, distinct
    ids: np.ndarray  # the fields' tokens as vocab ids, flat
    offsets: np.ndarray  # (fields + 1,) into ids
    grams: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # sorted hashes, field, start in the field

    @property
    def short_fields(self) -> int:
        """Fields with fewer than n tokens: no n-gram, so never covered (as in open-instruct)."""
        return int((self.lengths < self.n).sum())

    def counts(self) -> dict[str, int]:
        names, counts = np.unique(self.benchmark.astype(str), return_counts=True)
        return dict(zip(names.tolist(), counts.tolist()))


def item_fields(item: Item) -> list[str]:
    """What an item is: its question, and its answer options (joined) when it has any."""
    return [item.question, " ".join(item.options)] if item.options else [item.question]


def build_index(items: dict[str, list[Item]], n: int = NGRAM) -> BenchmarkIndex:
    """Tokenise every field of every item of every benchmark and hash its n-grams, once."""
    flat = [it for bench_items in items.values() for it in bench_items]
    fields = [item_fields(it) for it in flat]
    texts = [text for f in fields for text in f]
    n_fields = np.array([len(f) for f in fields], dtype=np.int64)
    field_item = np.repeat(np.arange(len(flat)), n_fields)
    tokens, offsets = tokenize(texts)
    vocab = pc.unique(tokens)
    token_ids = pc.index_in(tokens, value_set=vocab).to_numpy(zero_copy_only=False).astype(np.int64)
    bench = np.array([name for name, bench_items in items.items() for _ in bench_items], dtype=object)
    index = BenchmarkIndex(n, bench, np.array([it.id for it in flat], dtype=object), n_fields, field_item,
                           np.diff(offsets), vocab, token_ids, offsets)
    starts, hashes = _windows(token_ids, offsets, n)
    field = np.searchsorted(offsets, starts, side="right") - 1
    order = np.argsort(hashes, kind="stable")
    index.grams = (hashes[order], field[order], (starts - offsets[field])[order])
    if index.short_fields:
        log.info("%d item fields (questions or option lists) have fewer than %d tokens: they cannot be "
                 "covered (counted in the report)", index.short_fields, n)
    return index


# ----------------------------------------------------------------------------- the training side


@dataclass(frozen=True)
class Matches:
    """Which text contains which item: parallel arrays, one entry per (text, item) at or above
    the threshold."""

    text: np.ndarray  # index into the texts given
    item: np.ndarray  # index into the BenchmarkIndex's items
    coverage: np.ndarray  # share of the item's tokens covered, in [threshold, 1]

    def __len__(self) -> int:
        return int(self.text.size)


def _match_batch(index: BenchmarkIndex, texts: Sequence[str | None], threshold: float) -> Matches:
    empty = Matches(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    n = index.n
    tokens, offsets = tokenize(texts)
    ids = pc.fill_null(pc.index_in(tokens, value_set=index.vocab), -1).to_numpy(zero_copy_only=False).astype(np.int64)
    hashes, gram_field, gram_pos = index.grams
    starts, h = _windows(ids, offsets, n)
    lo = np.searchsorted(hashes, h, side="left")
    hits = np.searchsorted(hashes, h, side="right") - lo
    if not hits.any():
        return empty
    # every (window, benchmark n-gram) pair with the same hash
    window = np.repeat(np.arange(h.size), hits)
    entry = np.repeat(lo, hits) + (np.arange(hits.sum()) - np.repeat(np.cumsum(hits) - hits, hits))
    t_start, field, pos = starts[window], gram_field[entry], gram_pos[entry]
    # token by token: a hash collision is not a match
    f_start = index.offsets[field] + pos
    same = np.all(ids[t_start[:, None] + np.arange(n)] == index.ids[f_start[:, None] + np.arange(n)], axis=1)
    text = np.searchsorted(offsets, t_start[same], side="right") - 1
    field, pos = field[same], pos[same]
    if not text.size:
        return empty
    # one row per (text, field, position), ordered, so the union of covered tokens is a running sum
    order = np.lexsort((pos, field, text))
    text, field, pos = text[order], field[order], pos[order]
    fresh = np.ones(text.size, bool)
    fresh[1:] = (text[1:] != text[:-1]) | (field[1:] != field[:-1]) | (pos[1:] != pos[:-1])
    text, field, pos = text[fresh], field[fresh], pos[fresh]
    same_pair = np.zeros(text.size, bool)
    same_pair[:-1] = (text[:-1] == text[1:]) & (field[:-1] == field[1:])
    covered_by_gram = np.minimum(np.where(same_pair, np.append(pos[1:], 0) - pos, n), n)
    first = np.ones(text.size, bool)
    first[1:] = ~same_pair[:-1]
    covered = np.bincount(np.cumsum(first) - 1, weights=covered_by_gram)
    pair_text, pair_field = text[first], field[first]
    field_share = covered / index.lengths[pair_field]
    # an item's score: the mean of its fields' shares (a field nothing covers adds 0)
    item = index.field_item[pair_field]
    order = np.lexsort((item, pair_text))
    pair_text, item, field_share = pair_text[order], item[order], field_share[order]
    start = np.ones(item.size, bool)
    start[1:] = (pair_text[1:] != pair_text[:-1]) | (item[1:] != item[:-1])
    score = np.bincount(np.cumsum(start) - 1, weights=field_share) / index.n_fields[item[start]]
    keep = score >= threshold - 1e-12  # 0.5 reached as 1/2 must count despite float sums
    return Matches(pair_text[start][keep], item[start][keep], score[keep])


def find_matches(index: BenchmarkIndex, texts: Sequence[str | None], threshold: float = THRESHOLD,
                 batch_size: int = BATCH, progress=None) -> Matches:
    """Every (text, item) whose overlap reaches `threshold`, texts taken `batch_size` at a time."""
    parts = []
    starts = range(0, len(texts), batch_size)
    for start in (progress(starts) if progress else starts):
        m = _match_batch(index, texts[start:start + batch_size], threshold)
        parts.append(Matches(m.text + start, m.item, m.coverage))
    return concat_matches(parts)


def concat_matches(parts: Sequence[Matches]) -> Matches:
    """Matches of consecutive runs of texts (their text indices already offset) as one."""
    if not parts:
        return Matches(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    return Matches(*(np.concatenate([getattr(m, f) for m in parts]) for f in ("text", "item", "coverage")))


# ----------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class TrainingText:
    """One text to check: which prompt it belongs to, its source and which field it is."""

    prompt_id: str
    source: str
    field: str  # "prompt", or "response" (pool) / "chosen" / "rejected" (binarize records)
    text: str | None


def match_rows(index: BenchmarkIndex, texts: Sequence[TrainingText], matches: Matches) -> list[dict]:
    """One row per match, for matches.csv: prompt, source, field, benchmark, item id, coverage."""
    return [{"prompt_id": texts[t].prompt_id, "source": texts[t].source, "field": texts[t].field,
             "benchmark": str(index.benchmark[i]), "item_id": str(index.item_id[i]), "coverage": round(float(c), 4)}
            for t, i, c in zip(matches.text.tolist(), matches.item.tolist(), matches.coverage.tolist())]


def report(index: BenchmarkIndex, texts: Sequence[TrainingText], matches: Matches) -> dict:
    """Per benchmark and per source: contaminated prompts and the matching item ids."""
    prompts_by_source: dict[str, set] = {}
    for t in texts:
        prompts_by_source.setdefault(t.source, set()).add(t.prompt_id)
    per: dict[str, dict] = {}
    for name, n_items in index.counts().items():
        per[name] = {"items": n_items, "items_matched": [], "prompts_contaminated": 0, "by_source": {}}
    seen_items: dict[str, set] = {name: set() for name in per}
    seen_prompts: dict[tuple, set] = {}
    for t, i in zip(matches.text.tolist(), matches.item.tolist()):
        name, item_id, src = str(index.benchmark[i]), str(index.item_id[i]), texts[t].source
        seen_items[name].add(item_id)
        seen_prompts.setdefault((name, src), set()).add(texts[t].prompt_id)
        entry = per[name]["by_source"].setdefault(src, {"prompts": len(prompts_by_source[src]), "prompts_contaminated": 0,
                                                        "item_ids": set()})
        entry["item_ids"].add(item_id)
    for name, entry in per.items():
        entry["items_matched"] = sorted(seen_items[name], key=_natural)
        prompts = set().union(*[p for (b, _), p in seen_prompts.items() if b == name]) if seen_prompts else set()
        entry["prompts_contaminated"] = len(prompts)
        for src, by in entry["by_source"].items():
            by["prompts_contaminated"] = len(seen_prompts[(name, src)])
            by["item_ids"] = sorted(by["item_ids"], key=_natural)
    contaminated = {texts[t].prompt_id for t in matches.text.tolist()}
    return {
        "prompts": len({t.prompt_id for t in texts}),
        "texts_checked": len(texts),
        "prompts_contaminated": len(contaminated),
        "prompts_by_source": {src: len(p) for src, p in sorted(prompts_by_source.items())},
        "item_fields_shorter_than_n": index.short_fields,
        "benchmarks": per,
    }


def _natural(value: str):
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def contaminated_prompts(texts: Sequence[TrainingText], matches: Matches) -> set[str]:
    return {texts[t].prompt_id for t in matches.text.tolist()}


def drop_contaminated(records: Iterable[dict], bad_prompt_ids: set[str], key=None) -> tuple[list[dict], list[dict]]:
    """(kept, removed): a record goes when its prompt id is among `bad_prompt_ids`. `key` gives a
    record's prompt id (default: its `prompt_id`, which every binarize record has)."""
    key = key or (lambda r: r.get("prompt_id"))
    kept, removed = [], []
    for r in records:
        (removed if key(r) in bad_prompt_ids else kept).append(r)
    return kept, removed


def extra_fields(records: Sequence[dict]) -> list[tuple[str, pa.DataType]]:
    """Record fields beyond zebra.records.SCHEMA (the baseline's `score_*`), typed from their values,
    so a Parquet copy keeps them."""
    from zebra.records import SCHEMA

    names = [k for r in records[:1] for k in r if k not in SCHEMA.names]
    return [(k, pa.array([r.get(k) for r in records]).type) for k in names]


def filtered_meta(meta: dict, kept: Sequence[dict], removed: Sequence[dict], output: str, decontamination: dict) -> dict:
    """The binarize meta of a copy without `removed`: `rows_skipped.contaminated` counts them (so
    rows_read = rows_written + Σ rows_skipped still holds), the per-model and kinship counts and
    the reliability means are recomputed from the records kept, and `decontamination` says how."""
    import copy
    from collections import Counter

    meta = copy.deepcopy(meta)
    counts = meta.setdefault("counts", {})
    counts["rows_written"] = len(kept)
    skipped = counts.setdefault("rows_skipped", {})
    skipped["contaminated"] = skipped.get("contaminated", 0) + len(removed)
    pairs = [r.get("most_similar_pair") or [None, None] for r in kept]
    counts["chosen_by_model"] = dict(Counter(p[0] for p in pairs if p[0] is not None).most_common())
    counts["rejected_by_model"] = dict(Counter(p[1] for p in pairs if p[1] is not None).most_common())
    ranks = Counter(int(r["kinship_rank"]) for r in kept if isinstance(r.get("kinship_rank"), int))
    counts["kinship_rank_histogram"] = {str(k): v for k, v in sorted(ranks.items())}
    n_ranks = sum(ranks.values())
    counts["kinship_rank_mean"] = sum(k * v for k, v in ranks.items()) / n_ranks if n_ranks else None
    if isinstance(meta.get("reliability"), dict):
        rated = [r for r in kept if isinstance(r.get("agreement"), (int, float))]
        rel = meta["reliability"]
        rel["rated_pairs_kept"] = len(rated)
        rel["mean_agreement"] = sum(r["agreement"] for r in rated) / len(rated) if rated else None
        rel["mean_weight_of_kept_rated_pairs"] = sum(r["weight"] for r in rated) / len(rated) if rated else None
        rel["entropy_histogram"] = {f"{k:.4f}": v for k, v in sorted(Counter(r["entropy"] for r in rated).items())}
        rel["pairs_without_votes"] = len(kept) - len(rated)
        if "rated_pairs" in rel:
            rel["rated_pairs"] -= sum(isinstance(r.get("agreement"), (int, float)) for r in removed)
    if isinstance(meta.get("settings"), dict):
        meta["settings"]["output"] = output
    meta["decontamination"] = {**decontamination, "removed": len(removed),
                               "removed_prompt_ids": sorted(str(r.get("prompt_id")) for r in removed)}
    return meta


def require_items(items: dict[str, list[Item]], where: str) -> None:
    empty = [name for name, found in items.items() if not found]
    if empty:
        raise ZebraError(f"{where}: no items for {', '.join(empty)}")
