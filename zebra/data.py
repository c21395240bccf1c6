"""UltraFeedback loading and column extraction (SPEC §3).

Loading goes through `datasets`, so the same call takes the hub id (`openbmb/UltraFeedback`,
on a machine that reaches the hub) or a local copy: a `.json`/`.jsonl`/`.parquet`/`.arrow`
file, a folder of such files, or a `save_to_disk` folder.

Extraction works on Arrow record batches and returns numpy arrays of shape (rows, K slots),
K = the most completions any row has. Responses are matched by each completion's own `model`
field, never by position in the row's `models` list (the original code's bug: the two orders
differ in UltraFeedback). Response texts stay in Arrow until a pair is chosen: only the two
selected responses per prompt ever become Python strings.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from zebra.errors import ZebraError

log = logging.getLogger(__name__)

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "ultrafeedback_sample.jsonl"
HUB_ID = "openbmb/UltraFeedback"
ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")
_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".arrow": "arrow"}


class DataError(ZebraError):
    """Data that cannot be used; the message is one line naming the file and field."""


def load_ultrafeedback(source: str | Path | None = None, split: str = "train", limit: int | None = None,
                       pool=None):
    """Load UltraFeedback-schema data as a `datasets.Dataset` (the shipped sample by default).

    A long-format pool (one row per response, zebra.pools) is read by zebra.pools.load_pool,
    with `pool` (a zebra.pools.PoolOptions) saying how, and comes back in this schema.
    """
    import datasets  # imported here so that `--help` and table-only work stay fast

    from zebra.pools import is_long, load_pool

    source = SAMPLE if source is None else source
    path = Path(source)
    if is_long(source, pool):
        ds = load_pool(source, pool, limit).dataset
    elif path.is_file():
        builder = _BUILDERS.get("".join(path.suffixes[-1:]).lower())
        if builder is None:
            raise DataError(f"{path}: unknown data format; use .json, .jsonl, .parquet or .arrow")
        ds = datasets.load_dataset(builder, data_files=str(path), split="train")
    elif path.is_dir():
        if any((path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json")):
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise DataError(f"{path}: no split {split!r}; it has {list(ds)}")
                ds = ds[split]
        else:
            ds = datasets.load_dataset(str(path), split=split)
    elif isinstance(source, str) and source.count("/") == 1 and not source.startswith((".", "/")):
        ds = datasets.load_dataset(source, split=split)  # a hub id, e.g. openbmb/UltraFeedback
    else:
        raise DataError(f"{source}: no such file or folder (pass --data PATH or a hub id like {HUB_ID})")
    check_schema(ds.features, str(source))
    if limit is not None and limit < len(ds):
        ds = ds.select(range(limit))
    return ds


def check_schema(features, source: str) -> None:
    """Fail early, naming the missing field, instead of deep inside the selection."""
    for name in ("instruction", "completions"):
        if name not in features:
            raise DataError(f"{source}: no {name!r} field; expected the UltraFeedback schema (SPEC §3)")
    comp = features["completions"]
    inner = getattr(comp, "feature", comp[0] if isinstance(comp, list) else comp)
    for name in ("model", "response"):
        if not hasattr(inner, "keys") or name not in inner:
            raise DataError(f"{source}: completions have no {name!r} field; expected the UltraFeedback schema")


@dataclass(frozen=True)
class CacheFiles:
    """A dataset that is exactly its `datasets` cache files, without the memory map (batch_source)."""

    paths: tuple[str, ...]
    num_rows: int
    metadata: dict[bytes, bytes] | None  # the schema metadata `datasets` keeps its features in

    def __len__(self) -> int:
        return self.num_rows


def batch_source(ds):
    """What iter_batches should read: `ds` itself, or its cache files when they are exactly `ds`.

    Opening a `datasets` cache walks every record batch of the memory-mapped stream, and those
    pages stay resident while the Dataset lives (~60 MB at 10× UltraFeedback, growing with the
    data). Keeping only the file names lets the mapping go, so peak memory does not grow with
    the dataset. Drop your reference to `ds` after calling this.
    """
    files = _whole_cache_files(ds)
    if files is None:
        return ds
    return CacheFiles(tuple(files), len(ds), ds.data.schema.metadata)


def iter_batches(ds, batch_size: int = 4096) -> Iterator[pa.Table]:
    """Arrow tables of `batch_size` rows: memory stays bounded by the batch, not the dataset.

    `ds`: a `datasets.Dataset` or batch_source's CacheFiles. `datasets` memory-maps its cache,
    and every page a pass touches stays in the process's resident set until the kernel needs it
    back, so iterating the mapping makes RSS grow with the dataset (~3.4 GB at 10×
    UltraFeedback). When `ds` is exactly its cache files (no slice, cast or index mapping),
    they are read front to back with ordinary reads instead.
    """
    ds = ds if isinstance(ds, CacheFiles) else batch_source(ds)
    if not isinstance(ds, CacheFiles):  # a slice, cast or index mapping: only `datasets` can read it
        yield from ds.with_format("arrow").iter(batch_size=batch_size)
        return
    pending: list[pa.RecordBatch] = []
    rows = 0
    for path in ds.paths:
        with pa.OSFile(path) as fh:
            for record_batch in pa.ipc.open_stream(fh):
                pending.append(record_batch)
                rows += record_batch.num_rows
                while rows >= batch_size:
                    table = pa.Table.from_batches(pending)
                    yield table.slice(0, batch_size).replace_schema_metadata(ds.metadata)
                    pending = table.slice(batch_size).to_batches()
                    rows -= batch_size
                    del table  # or the batch just used stays alive while the next one is read
    if rows:
        yield pa.Table.from_batches(pending).replace_schema_metadata(ds.metadata)


def _whole_cache_files(ds) -> list[str] | None:
    """The Arrow files whose rows, read in order, are exactly `ds`; None if that cannot be shown."""
    from datasets.table import ConcatenationTable, MemoryMappedTable

    if getattr(ds, "_indices", None) is not None:
        return None
    data = getattr(ds, "data", None)
    if isinstance(data, MemoryMappedTable):
        blocks = [data]
    elif isinstance(data, ConcatenationTable) and all(len(row) == 1 for row in data.blocks):
        blocks = [row[0] for row in data.blocks]
    else:
        return None
    # A replay is an operation `datasets` applies on top of the file (slice, cast, …): then the
    # file is not `ds`. Only the features metadata it always rewrites leaves the data as it is.
    if not all(isinstance(b, MemoryMappedTable) and all(op == "replace_schema_metadata" for op, *_ in b.replays)
               for b in blocks):
        return None
    if any(not b.schema.equals(data.schema, check_metadata=False) for b in blocks):
        return None
    return [b.path for b in blocks]


def prompt_id(text: str) -> str:
    """sha256 of the prompt, as in HuggingFaceH4/ultrafeedback_binarized, so ids join across files."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Batch:
    """One record batch, laid out per slot. Slot k of row i is row i's k-th completion.

    `pos[i, k]` indexes the flat completion arrays (−1 where row i has fewer than k+1).
    """

    instruction: list[str]
    source: np.ndarray  # (n,) object, None where absent
    model: np.ndarray  # (n, K) object, None where absent
    pos: np.ndarray  # (n, K) int64
    responses: pa.Array  # flat (T,) strings, all completions of the batch
    nonempty: np.ndarray  # (n, K) bool: a response with non-whitespace text
    lengths: np.ndarray  # (n, K) int64 character counts (for cheap duplicate checks)
    flat: pa.StructArray  # flat (T,) completion structs, for score extraction

    @property
    def n(self) -> int:
        return len(self.instruction)

    @cached_property
    def prompt_ids(self) -> list[str]:
        """prompt_id of every row, hashed once: the baseline's draw and the records both need it."""
        return [prompt_id(p) for p in self.instruction]

    def texts(self, rows: np.ndarray, slots: np.ndarray) -> list[str]:
        """The response texts at (rows, slots), as Python strings."""
        return self.responses.take(pa.array(self.pos[rows, slots])).to_pylist()

    def scores(self, field: str = "overall_score") -> np.ndarray:
        """(n, K) float of a per-completion number (NaN where absent)."""
        if field not in self.flat.type.names:
            raise DataError(f"completions have no {field!r} field; the RLAIF baseline needs it")
        col = pc.cast(self.flat.field(field), pa.float64())
        return self._per_slot(col.to_numpy(zero_copy_only=False))

    def ratings(self) -> np.ndarray:
        """(n, K, 4) float of the four GPT-4 aspect ratings ("N/A" and absent → NaN)."""
        if "annotations" not in self.flat.type.names:
            raise DataError("completions have no 'annotations' field; --score mean-rating needs it")
        ann = self.flat.field("annotations")
        if not pa.types.is_struct(ann.type):  # `annotations: {}` in every row loads as Arrow's JSON type
            raise DataError("completions' 'annotations' hold no aspect ratings; --score mean-rating needs them")
        out = []
        for aspect in ASPECTS:
            if aspect not in ann.type.names or "Rating" not in ann.field(aspect).type.names:
                out.append(np.full(len(self.flat), np.nan))
                continue
            text = pc.cast(ann.field(aspect).field("Rating"), pa.string())
            num = pc.cast(pc.if_else(pc.match_substring_regex(text, r"^\s*\d+(\.\d+)?\s*$"), text, None), pa.float64())
            out.append(num.to_numpy(zero_copy_only=False))
        return np.stack([self._per_slot(o) for o in out], axis=-1)

    def _per_slot(self, flat_values: np.ndarray) -> np.ndarray:
        safe = np.where(self.pos >= 0, self.pos, 0)
        return np.where(self.pos >= 0, np.asarray(flat_values, dtype=float)[safe], np.nan)


def to_batch(table: pa.Table) -> Batch:
    """Lay out one Arrow batch of UltraFeedback rows per slot, without a Python loop over rows."""
    n = table.num_rows
    comp = table.column("completions").combine_chunks()
    counts = pc.fill_null(pc.list_value_length(comp), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(comp)
    if isinstance(flat, pa.ChunkedArray):
        flat = flat.combine_chunks()
    k = max(int(counts.max(initial=0)), 2)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    row_of = np.repeat(np.arange(n), counts)
    slot_of = np.arange(int(counts.sum())) - np.repeat(starts, counts)
    pos = np.full((n, k), -1, dtype=np.int64)
    pos[row_of, slot_of] = np.arange(len(row_of))

    responses = flat.field("response")
    # "has non-whitespace text" = not (empty or all whitespace); utf8_is_space stops at the first
    # other character, where trimming copied every response (same Unicode whitespace).
    blank = pc.or_(pc.utf8_is_space(responses), pc.equal(pc.binary_length(responses), 0))
    has_text = pc.fill_null(pc.invert(blank), False).to_numpy(zero_copy_only=False)
    length = pc.fill_null(pc.utf8_length(responses), -1).to_numpy(zero_copy_only=False)
    # One Python string per distinct model name, shared by every slot, not one per response.
    enc = flat.field("model").dictionary_encode()
    names = np.asarray(enc.dictionary.to_pylist() + [None], dtype=object)
    model_flat = names[pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False)]  # −1: the None

    model = np.full((n, k), None, dtype=object)
    model[row_of, slot_of] = model_flat
    nonempty = np.zeros((n, k), dtype=bool)
    nonempty[row_of, slot_of] = has_text
    lengths = np.full((n, k), -1, dtype=np.int64)
    lengths[row_of, slot_of] = length
    source = (
        np.asarray(table.column("source").to_pylist(), dtype=object)
        if "source" in table.column_names else np.full(n, None, dtype=object)
    )
    return Batch(table.column("instruction").to_pylist(), source, model, pos, responses, nonempty, lengths, flat)


def duplicate_slots(batch: Batch, usable: np.ndarray) -> np.ndarray:
    """(n, K) bool: a usable response whose text repeats an earlier usable one in its row.

    The first occurrence is kept. Only slots of equal length are compared as strings, and
    equal lengths are rare, so this costs almost nothing on real data.
    """
    usable = usable.copy()
    dup = np.zeros_like(usable)
    k = usable.shape[1]
    for later in range(1, k):
        for earlier in range(later):
            maybe = usable[:, earlier] & usable[:, later] & (batch.lengths[:, earlier] == batch.lengths[:, later])
            rows = np.flatnonzero(maybe)
            if rows.size:
                a = batch.texts(rows, np.full(rows.size, earlier))
                b = batch.texts(rows, np.full(rows.size, later))
                same = rows[np.fromiter((x == y for x, y in zip(a, b)), dtype=bool, count=rows.size)]
                dup[same, later] = True
                usable[same, later] = False
    return dup


def duplicate_models(model_index: np.ndarray) -> np.ndarray:
    """(n, K) bool: a slot whose model already answered earlier in the row (first one kept)."""
    dup = np.zeros(model_index.shape, dtype=bool)
    for later in range(1, model_index.shape[1]):
        same = (model_index[:, :later] == model_index[:, [later]]) & (model_index[:, [later]] >= 0)
        dup[:, later] = same.any(axis=1)
    return dup
