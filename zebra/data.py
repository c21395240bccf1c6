"""The data a run reads, from source to per-slot batches (SPEC §3): load → batch → usable slots.

One way in: `locate` decides once what a source is (a long-format pool, zebra.pools, or
UltraFeedback rows) and lists every file the run will read; `open_data` reads it. UltraFeedback
rows are read by `datasets`, so the same call takes the hub id (`openbmb/UltraFeedback`, on a
machine that reaches the hub) or a local copy: a `.json`/`.jsonl`/`.parquet`/`.arrow` file, a
folder of such files, or a `save_to_disk` folder. The default source is the shipped real pool.

Extraction works on Arrow record batches and returns numpy arrays of shape (rows, K slots),
K = the most completions any row has. Responses are matched by each completion's own `model`
field, never by position in the row's `models` list (the original code's bug: the two orders
differ in UltraFeedback). Response texts stay in Arrow until a pair is chosen: only the two
selected responses per prompt ever become Python strings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from zebra import hub
from zebra.errors import ZebraError
from zebra.jsonio import (MAX_DEPTH, ReadError, binary_kind, check_json_constants, check_json_data,
                          iter_json_records)

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "data" / "alpaca_eval"  # the shipped real pool (zebra.pools): what every script reads by default
SAMPLE = ROOT / "data" / "ultrafeedback_sample.jsonl"  # the made-up sample in the exact UltraFeedback schema
HUB_ID = "openbmb/UltraFeedback"
ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")
_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".arrow": "arrow"}
_SAVED = ("dataset_info.json", "state.json", "dataset_dict.json")  # what marks a `save_to_disk` folder


class DataError(ZebraError):
    """Data that cannot be used; the message is one line naming the file and field."""


@dataclass(frozen=True)
class DataSource:
    """A source as `locate` decided it: what it is, and every local file reading it will open.

    `kind` is "pool" (one row per response, read by zebra.pools into UltraFeedback rows) or
    "ultrafeedback" (rows in UltraFeedback's schema). `pool` holds the pool's options with its
    folder's pool.json filled in (None for UltraFeedback rows). `files` is empty for a hub id.
    """

    source: str
    kind: str
    files: tuple[Path, ...]
    pool: Any = None  # zebra.pools.PoolOptions, resolved


@dataclass
class OpenedData:
    """What `open_data` read: the rows in UltraFeedback's schema and, for a pool, its report."""

    dataset: Any  # datasets.Dataset
    source: DataSource
    pool_report: dict[str, Any] | None = None


def locate(source: str | Path | None = None, pool=None) -> DataSource:
    """Decide once what `source` is (default: the shipped pool) and list the files it consists of.

    `pool` (a zebra.pools.PoolOptions) says how to read a long-format pool and, with its
    `format`, may decide the kind; it is ignored for UltraFeedback rows. Cheap: it reads at
    most a pool.json and a file's first record, so a run can check its output against every
    input before any work.
    """
    from zebra.pools import PoolOptions, data_files, is_long, resolve

    source = DEFAULT_DATA if source is None else source
    options = pool or PoolOptions()
    path = Path(source)
    try:
        long = is_long(source, options)
    except (OSError, UnicodeError) as err:  # a first record that cannot be read: one line, not a traceback
        raise DataError(f"{source}: cannot read ({type(err).__name__}: {str(err).splitlines()[0][:300]})") from None
    if long:
        files, resolved = resolve(source, options)
        extra = [path / "pool.json"] if (path / "pool.json").is_file() else []
        extra += [Path(f) for f in (resolved.model_names, resolved.prompts) if f is not None]
        if resolved.judgments is not None:  # a file, or a folder of them (Arena-Hard: one per model)
            extra += data_files(Path(resolved.judgments), "--judgments")
        return DataSource(str(source), "pool", tuple(extra + files), resolved)
    if path.is_file():
        files: list[Path] = [path]
    elif path.is_dir():
        if any((path / f).exists() for f in _SAVED):
            files = sorted(p for p in path.rglob("*") if p.is_file())
        else:
            files = folder_files(path)
    elif isinstance(source, str) and source.count("/") == 1 and not source.startswith((".", "/")):
        files = []  # a hub id, e.g. openbmb/UltraFeedback
    else:
        raise DataError(f"{source}: no such file or folder (pass --data PATH or a hub id like {HUB_ID})")
    return DataSource(str(source), "ultrafeedback", tuple(files))


def open_data(where: DataSource, limit: int | None = None, split: str = "train") -> OpenedData:
    """Read a located source as UltraFeedback rows: a pool through zebra.pools, the rest through
    `datasets` (load_ultrafeedback). `limit`: the first N prompts."""
    if where.kind == "pool":
        from zebra.pools import load_pool

        pool = load_pool(where.source, where.pool, limit)
        return OpenedData(pool.dataset, where, pool.report)
    return OpenedData(load_ultrafeedback(where.source, split, limit), where)


def load_ultrafeedback(source: str | Path | None = None, split: str = "train", limit: int | None = None):
    """Load UltraFeedback-schema rows as a `datasets.Dataset` (the shipped sample by default).

    Rows only: whether a source is a long-format pool instead is `locate`'s decision.
    Every failure is a DataError whose one line names the file (and the line, for malformed
    JSON). Local data is cached by `datasets` under a key of its content (`_content_cache`),
    so a file replaced by another is never read as the old one.
    """
    import datasets  # imported here so that `--help` and table-only work stay fast

    source = SAMPLE if source is None else source
    path = Path(source)
    quiet = _DropErrors()  # a reader's ERROR log would repeat the one-line DataError raised below
    for name in _READER_LOGGERS:
        logging.getLogger(name).addFilter(quiet)
    try:
        if path.is_file():
            builder = _builder(path)
            cache = _content_cache([path])
            first = check_data_file(path, cache)
            ds = datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache)
            if first:
                check_numbers(ds, [path], cache)
        elif path.is_dir():
            if any((path / f).exists() for f in _SAVED):
                ds = datasets.load_from_disk(str(path))
                if isinstance(ds, datasets.DatasetDict):
                    if split not in ds:
                        raise DataError(f"{path}: no split {split!r}; it has {list(ds)}")
                    ds = ds[split]
            else:
                files = folder_files(path)
                cache = _content_cache(files)
                first = [f for f in files if check_data_file(f, cache)]
                ds = datasets.load_dataset(str(path), split=split, cache_dir=cache)
                if first:
                    check_numbers(ds, files, cache)
        elif isinstance(source, str) and source.count("/") == 1 and not source.startswith((".", "/")):
            hub.require_reachable(f"--data {source}")
            ds = datasets.load_dataset(source, split=split)  # a hub id, e.g. openbmb/UltraFeedback
        else:
            raise DataError(f"{source}: no such file or folder (pass --data PATH or a hub id like {HUB_ID})")
    except ZebraError:
        raise
    except Exception as err:  # datasets/pyarrow/network errors: one line naming the source instead of a traceback
        raise DataError(_load_failure(path, source, err)) from None
    finally:
        for name in _READER_LOGGERS:
            logging.getLogger(name).removeFilter(quiet)
    if len(ds) == 0:
        raise DataError(f"{source}: no rows")
    check_schema(ds.features, str(source))
    if limit is not None and limit < len(ds):
        ds = ds.select(range(limit))
    return ds


# loggers that report a failed read before raising (filters apply where a record is made, not to parents)
_READER_LOGGERS = ("datasets.packaged_modules.json.json", "datasets.packaged_modules.parquet.parquet",
                   "datasets.packaged_modules.arrow.arrow", "datasets.builder")


class _DropErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


def _builder(path: Path) -> str:
    builder = _BUILDERS.get("".join(path.suffixes[-1:]).lower())
    if builder is None:
        raise DataError(f"{path}: unknown data format; use .json, .jsonl, .parquet or .arrow")
    return builder


def folder_files(folder: Path) -> list[Path]:
    """The data files `datasets` would read from a plain folder, refusing a mix of formats.

    `datasets` picks the most common format of a folder and silently ignores the others
    (a .parquet beside a .json: one of them is never read).
    """
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(
        part.startswith((".", "_")) for part in p.relative_to(folder).parts))
    kinds: dict[str, list[Path]] = {}
    for p in files:
        builder = _BUILDERS.get(p.suffix.lower())
        if builder is not None:
            kinds.setdefault(builder, []).append(p)
    if not kinds:
        raise DataError(f"{folder}: no .json, .jsonl, .parquet or .arrow file in this folder")
    if len(kinds) > 1:
        named = ", ".join(f"{k} ({v[0].name}{' …' if len(v) > 1 else ''})" for k, v in sorted(kinds.items()))
        raise DataError(f"{folder}: holds data files of more than one format: {named}; "
                        "only one format would be read, so keep one format per folder")
    return next(iter(kinds.values()))


def check_data_file(path: Path, cache: str | None = None) -> bool:
    """Checks before `datasets` reads a file, for what it would crash on (deep nesting: a
    segfault in pyarrow), copy in unchecked (bytes that are not UTF-8) or report in a traceback
    (gzip bytes, a 0-byte, truncated or text .parquet). Everything else that makes `datasets`
    fail is named afterwards by `_load_failure`.

    The JSON scan (zebra.jsonio.check_json_data, one pass over the file) runs on the first load
    of a content only: `check_numbers` leaves a marker in `cache`, the content-keyed cache folder,
    once the loaded rows passed too, and `datasets` serves later loads of the same bytes from that
    cache without parsing them. Returns True when the scan ran (`check_numbers` is then owed).
    """
    builder = _builder(path)
    if builder == "parquet":
        check_parquet(path)
        return False
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if builder == "arrow":
        if not head.startswith((b"ARROW1", b"\xff\xff\xff\xff")):
            raise DataError(f"{path}: not an Arrow file ({binary_kind(head) or 'no Arrow magic bytes at its start'})")
        return False
    kind = binary_kind(head)
    if kind:
        raise DataError(f"{path}: {kind}")
    first = _first_char(path)
    if first is None:
        raise DataError(f"{path}: no rows (the file holds only blank lines)")
    if first not in "{[":
        raise DataError(f"{path}: expected JSON objects (one per line) or a JSON list of them, "
                        f"but the file starts with {first!r}")
    if cache is not None and _marker(cache, path).exists():
        return False
    try:
        check_json_data(path)
    except ReadError as err:
        raise DataError(str(err)) from None
    return True


# Bump when check_data_file's scan or check_numbers changes: every content is then checked again.
_CHECKS_VERSION = 3


def _marker(cache: str, path: Path) -> Path:
    return Path(cache) / f"zebra-checked-v{_CHECKS_VERSION}-depth{MAX_DEPTH}-{path.name}"


def check_numbers(ds, files: list[Path], cache: str | None = None) -> None:
    """pyarrow reads NaN and Infinity, which are not JSON, as numbers: refuse JSON files whose
    loaded float columns hold one. One Arrow kernel per float column (the text is never
    scanned for them); the reader's re-read then names the file and line. When all is well,
    marks the files checked in `cache` (check_data_file)."""
    json_files = [f for f in files if _builder(f) == "json"]
    table = ds.data.table if hasattr(ds.data, "table") else ds.data
    if json_files and any(_has_json_text(f.type) for f in table.schema):
        # datasets re-encoded a mixed-type field with ujson, which writes NaN and Infinity as null
        for f in json_files:
            try:
                check_json_constants(f)
            except ReadError as err:
                raise DataError(str(err)) from None
    for name in table.column_names if json_files else ():
        column = table.column(name)
        if not _has_float(column.type):
            continue
        done = 0
        for chunk in column.chunks:
            row = _first_non_finite(chunk)
            if row is not None:
                for f in json_files:
                    if where := _bad_json_line(f):
                        raise DataError(where)
                raise DataError(f"{', '.join(map(str, json_files))}: row {done + row + 1}: {name} holds NaN, "
                                "Infinity or a number beyond a float's range (e.g. 1e400), which no score can be; "
                                "write null or a finite number")
            done += len(chunk)
    for f in json_files if cache is not None else ():
        try:
            _marker(cache, f).parent.mkdir(parents=True, exist_ok=True)
            _marker(cache, f).touch()
        except OSError:
            pass  # a read-only cache: the checks run again next time


def _has_json_text(kind: pa.DataType) -> bool:
    """Does `kind` hold a field `datasets` typed as JSON text (its rows disagree in shape)?"""
    if isinstance(kind, pa.BaseExtensionType):
        return True
    if pa.types.is_struct(kind):
        return any(_has_json_text(f.type) for f in kind)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _has_json_text(kind.value_type)
    return False


def _has_float(kind: pa.DataType) -> bool:
    if pa.types.is_floating(kind):
        return True
    if pa.types.is_struct(kind):
        return any(_has_float(f.type) for f in kind)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _has_float(kind.value_type)
    return False


def _first_non_finite(arr: pa.Array) -> int | None:
    """Index of the first row of `arr` whose value, or any float nested in it, is NaN or ±inf."""
    kind = arr.type
    if pa.types.is_floating(kind):
        bad = pc.fill_null(pc.invert(pc.is_finite(arr)), False)
        return int(pc.index(bad, True).as_py()) if pc.any(bad).as_py() else None
    if pa.types.is_struct(kind):
        found = [_first_non_finite(pc.struct_field(arr, [i])) for i, f in enumerate(kind) if _has_float(f.type)]
        found = [r for r in found if r is not None]
        return min(found) if found else None
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        inner = _first_non_finite(pc.list_flatten(arr))
        return None if inner is None else int(pc.list_parent_indices(arr)[inner].as_py())
    return None


def check_parquet(path: Path) -> None:
    """A file pyarrow can open as Parquet, or one line saying what it is instead: 0 bytes, text
    or another format (no PAR1 at its start), truncated (no PAR1 footer at its end)."""
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    with open(path, "rb") as fh:
        head = fh.read(1 << 12)
        fh.seek(max(0, size - 4))
        tail = fh.read(4)
    if not head.startswith(b"PAR1"):
        raise DataError(f"{path}: not a Parquet file ({binary_kind(head) or 'no PAR1 magic bytes at its start'})")
    if tail != b"PAR1" or size < 12:
        raise DataError(f"{path}: truncated Parquet file (no PAR1 footer at its end); write or copy it again")


def parquet_schema(path: Path) -> pa.Schema:
    import pyarrow.parquet as pq

    check_parquet(path)
    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowException) as err:
        raise DataError(f"{path}: cannot be read as Parquet ({_first_line(err)})") from None


def read_parquet(path: Path) -> pa.Table:
    """The whole Parquet file as an Arrow table; one-line errors for what pyarrow refuses."""
    import pyarrow.parquet as pq

    check_parquet(path)
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise DataError(f"{path}: cannot be read as Parquet ({_first_line(err)})") from None


def iter_parquet_batches(path: Path, rows: int) -> Iterator[pa.RecordBatch]:
    """A Parquet file `rows` rows at a time (memory: one batch); read_parquet's one-line errors."""
    import pyarrow.parquet as pq

    check_parquet(path)
    try:
        yield from pq.ParquetFile(path).iter_batches(batch_size=rows)
    except (OSError, pa.ArrowException) as err:
        raise DataError(f"{path}: cannot be read as Parquet ({_first_line(err)})") from None


def _first_char(path: Path) -> str | None:
    """The first character that is not whitespace (or a BOM), reading no more than needed."""
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 16):
            stripped = chunk.lstrip(b" \t\r\n\xef\xbb\xbf")
            if stripped:
                return chr(stripped[0])
    return None


def _content_cache(files: list[Path]) -> str:
    """A `datasets` cache folder keyed on the files' bytes.

    `datasets` keys its cache of a local file on path and modification time, so a file replaced
    by another with the same mtime was read as the old data. Every byte is hashed, so that
    replacement is always caught (a sampled hash would miss an edit between its samples), with
    xxh3-128 (`xxhash`, installed by `datasets`): 0.08 CPU s per 300 MB where sha256 took 0.32 here,
    so a warm run no longer spends seconds hashing before it reads its cache (a cache key, not a
    signature: no adversary to resist).
    """
    import datasets
    import xxhash

    digest = xxhash.xxh3_128()
    buf = bytearray(1 << 22)  # one buffer, refilled: no new bytes object per read (a memory map would
    view = memoryview(buf)    # be faster, but its pages would count in the run's peak RSS)
    for f in files:
        one = xxhash.xxh3_128()
        with open(f, "rb", buffering=0) as fh:
            while n := fh.readinto(buf):
                one.update(view[:n])
        digest.update(one.digest())
    return str(Path(datasets.config.HF_DATASETS_CACHE) / "by-content" / f"xxh3-{digest.hexdigest()}")


def _load_failure(path: Path, source, err: Exception) -> str:
    """One line for a failed load: the JSON line at fault when that is the cause."""
    if "corresponds to no data" in str(err):  # `[]`, `{}`: valid JSON without a single row
        return f"{source}: no rows"
    if path.is_file() and _builder(path) == "json":
        where = _bad_json_line(path)
        if where:
            return where
    if path.is_dir():
        for f in folder_files(path):
            if _builder(f) == "json" and (where := _bad_json_line(f)):
                return where
    if not path.exists() and isinstance(source, str):
        if hub.offline():
            return f"{source}: cannot load this hub id (HF_HUB_OFFLINE is set): {_first_line(err)}"
        return (f"{source}: cannot load this hub id: {_first_line(err)}; without network, pass a local copy "
                "with --data (HF_HUB_OFFLINE=1 makes this fail at once instead of waiting)")
    return f"{source}: cannot read ({type(err).__name__}: {_first_line(err)})"


def _first_line(err: Exception) -> str:
    cause = err
    while cause.__cause__ is not None:  # DatasetGenerationError wraps the reader's own message
        cause = cause.__cause__
    text = str(cause).strip() or type(cause).__name__
    return text.splitlines()[0][:300]


def _bad_json_line(path: Path) -> str | None:
    """The reader's one line (`FILE:LINE: reason`) for the first fault of a JSON(-lines) file
    that `datasets` refused, or None when the reader finds none."""
    try:
        for _ in iter_json_records(path, allow_empty=True):
            pass
    except ReadError as err:
        return str(err)
    return None


def check_schema(features, source: str) -> None:
    """Fail early, naming the missing field, instead of deep inside the selection."""
    for name in ("instruction", "completions"):
        if name not in features:
            raise DataError(f"{source}: no {name!r} field, so neither layout the scripts read: UltraFeedback rows need "
                            "'instruction' and 'completions'; a pool of one row per response is read with --format long "
                            "and --instruction-field, --model-field, --response-field naming its fields (with the "
                            "prompts in a file of their own: --prompts FILE --prompt-id-field --prompt-field); "
                            f"its fields are {list(features)[:12]}")
    comp = features["completions"]
    inner = getattr(comp, "feature", comp[0] if isinstance(comp, list) else comp)
    if _is_json_feature(comp) or _is_json_feature(inner):
        return  # completions of differing shapes: to_batch reads them one by one (missing fields → null)
    for name in ("model", "response"):
        if not hasattr(inner, "keys") or name not in inner:
            raise DataError(f"{source}: completions have no {name!r} field; expected the UltraFeedback schema")


def _is_json_feature(feature) -> bool:
    """`datasets` types a field whose rows disagree in shape (a key missing in some completions,
    a number in one row and "N/A" in another) as JSON text instead of a struct or a number."""
    return type(feature).__name__ == "Json"


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


def shard_of(prompt_ids: list[str], num_shards: int) -> np.ndarray:
    """Each prompt's shard of `num_shards`: its prompt_id (hex sha256 of the text) read as a number,
    first 64 bits, mod `num_shards`. The text alone decides it, so no order of rows, batch size or
    machine moves a prompt, and every copy of one prompt lands in the same shard; anyone can
    compute it (`int(prompt_id[:16], 16) % S`) to split data the same way."""
    return np.fromiter((int(p[:16], 16) % num_shards for p in prompt_ids), dtype=np.int64, count=len(prompt_ids))


def shard_rows(table: pa.Table, num_shards: int, index: int) -> tuple[np.ndarray, list[str]]:
    """The rows of one input batch that belong to shard `index` (shard_of), and their prompt_ids
    (to_batch takes both: the rows are laid out without copying their texts)."""
    ids = [prompt_id(p or "") for p in _strings(table.column("instruction")).to_pylist()]
    rows = np.flatnonzero(shard_of(ids, num_shards) == index)
    return rows, [ids[i] for i in rows.tolist()]


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
    byte_lengths: np.ndarray  # (n, K) int64 UTF-8 byte counts (for cheap duplicate checks), −1 where absent
    flat: FlatCompletions  # flat (T,) completion structs, for score extraction
    not_text: np.ndarray  # (n, K) bool: a model or response that is present but not a string (42, a list)
    row_ids: np.ndarray | None = None  # (n,) each row's position in the input, when a shard's rows are a subset
    prompts: pa.Array | None = None  # (n,) `instruction` as Arrow strings, for the records (no second conversion)

    @cached_property
    def lengths(self) -> np.ndarray:
        """(n, K) int64 character counts (−1 where absent), for the studies that report them
        (zebra.agreement); counted on first use only: a binarize run never needs them."""
        chars = pc.fill_null(pc.utf8_length(self.responses), -1).to_numpy(zero_copy_only=False)
        return np.append(chars, -1)[np.where(self.pos >= 0, self.pos, -1)].astype(np.int64)

    @property
    def n(self) -> int:
        return len(self.instruction)

    @cached_property
    def model_codes(self) -> tuple[np.ndarray, list]:
        """((n, K) an integer per distinct model name, −1 where absent; the distinct names).
        to_batch sets it from Arrow's dictionary codes of the names; hashed here otherwise."""
        return _factorize(self.model)

    @cached_property
    def prompt_ids(self) -> list[str]:
        """prompt_id of every row, hashed once: the baseline's draw and the records both need it."""
        return [prompt_id(p or "") for p in self.instruction]  # no prompt (None): the row is skipped anyway

    def draw_keys(self, seed: int) -> np.ndarray:
        """(n, K) uniforms in [0, 1) from sha256(seed, prompt, model) alone, as zebra.pools draws
        --models-per-prompt: a seeded draw that no order of rows or completions can move
        (−1 where a slot has no completion or no model)."""
        from zebra.pools import draw_keys

        keys = np.full(self.pos.shape, -1.0)
        rows, slots = np.nonzero((self.pos >= 0) & ~np.equal(self.model, None))
        if rows.size:
            prompts = np.array([self.instruction[i] or "" for i in rows.tolist()], dtype=object)
            keys[rows, slots] = draw_keys(seed, prompts, self.model[rows, slots])
        return keys

    def texts(self, rows: np.ndarray, slots: np.ndarray) -> list[str]:
        """The response texts at (rows, slots), as Python strings."""
        return self.responses.take(pa.array(self.pos[rows, slots])).to_pylist()

    def scores(self, field: str = "overall_score") -> np.ndarray:
        """(n, K) float of a per-completion number (NaN where absent)."""
        if field not in self.flat.type.names:
            raise DataError(f"completions have no {field!r} field; the RLAIF baseline needs it")
        return self._per_slot(numbers(self.flat.field(field)))

    def ratings(self) -> np.ndarray:
        """(n, K, 4) float of the four GPT-4 aspect ratings ("N/A" and absent → NaN).

        A batch without any rating gives NaN, not an error: whether the data holds ratings at
        all is a question about the whole run (zebra.pipeline asks it with `has_ratings`), and a
        batch-by-batch answer would depend on how the rows fall into batches.
        """
        ann = self._annotations
        out = []
        for aspect in ASPECTS:
            if aspect not in ann.type.names or "Rating" not in ann.field(aspect).type.names:
                out.append(np.full(len(self.flat), np.nan))
                continue
            rating = ann.field(aspect).field("Rating")
            text = (pa.array([_rating_text(v) for v in _decoded(rating)], pa.string()) if _is_json(rating.type)
                    else pc.cast(rating, pa.string()))
            num = pc.cast(pc.if_else(pc.match_substring_regex(text, r"^\s*\d+(\.\d+)?\s*$"), text, None), pa.float64())
            out.append(num.to_numpy(zero_copy_only=False))
        return np.stack([self._per_slot(o) for o in out], axis=-1)

    def has_ratings(self) -> bool:
        """Does any completion of the batch carry an aspect rating ("N/A" included)? Rows made from a
        long-format pool (`annotations: {}`, or no `annotations` at all) do not."""
        if "annotations" not in self.flat.type.names:
            return False
        ann = self._annotations
        return any(pc.any(pc.is_valid(ann.field(a).field("Rating"))).as_py() for a in ASPECTS
                   if a in ann.type.names and "Rating" in ann.field(a).type.names)

    @cached_property
    def _annotations(self) -> pa.StructArray:
        """The completions' annotations as structs (converted once when their shapes differ)."""
        if "annotations" not in self.flat.type.names:
            raise DataError("completions have no 'annotations' field; --score mean-rating needs it")
        ann = self.flat.field("annotations")
        if not (pa.types.is_struct(ann.type) and all(
                pa.types.is_struct(ann.type.field(a).type) for a in ASPECTS if a in ann.type.names)):
            # annotations of differing shapes (JSON text, or an aspect that is not an object)
            ann = pa.array([_completion({"annotations": v}).get("annotations") for v in _decoded(ann)], _RATINGS)
        return ann

    def _per_slot(self, flat_values: np.ndarray) -> np.ndarray:
        flat_values = np.append(np.asarray(flat_values, dtype=float), np.nan)  # a batch may hold no completion
        return flat_values[np.where(self.pos >= 0, self.pos, -1)]


def numbers(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """float64 values of a score column; anything that is not a finite number ("N/A", text, a list,
    a bool, null, inf, NaN) becomes NaN, as the "N/A" aspect ratings do, so it is counted as a
    missing score: an infinite score would always be chosen and cannot be written as JSON."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if _is_json(arr.type):  # JSON text: 4.5, "4.5" and "N/A" side by side
        arr = pa.array([_number(v) for v in _decoded(arr)], pa.float64())
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        arr = pc.if_else(pc.match_substring_regex(arr, _NUMBER), arr, None)
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_string(arr.type)
            or pa.types.is_large_string(arr.type) or pa.types.is_null(arr.type)):
        return np.full(len(arr), np.nan)
    values = np.asarray(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
    return np.where(np.isfinite(values), values, np.nan)


_NUMBER = r"^\s*-?\d+(\.\d+)?\s*$"  # a number written as text ("4", "4.5"); not "inf", "nan", "1e400"


def _number(value) -> float | None:
    """A decoded JSON value as a finite float, or None (text only when it reads as a plain number)."""
    if isinstance(value, str):
        return float(value) if re.match(_NUMBER, value) and math.isfinite(float(value)) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return value if math.isfinite(value) else None


def _is_json(kind: pa.DataType) -> bool:
    """`datasets` types a field whose values disagree in type (a number in one row, text in another)
    as JSON text: an extension type over strings, which must be decoded value by value."""
    return isinstance(kind, pa.BaseExtensionType)


def _decoded(arr: pa.Array) -> list:
    """The Python values of `arr`, with every JSON-text field decoded, at any depth: without this a
    string field holding one number is read as '"text"', quotes included, in every row."""
    return [_decode(v, arr.type) for v in (arr.storage if _is_json(arr.type) else arr).to_pylist()]


class _NotJSON:
    """A JSON-text value that does not parse: neither a string nor a number, whatever it says."""


def _decode(value, kind: pa.DataType):
    if value is None:
        return None
    if _is_json(kind):
        try:
            return json.loads(value) if isinstance(value, str) else value
        except ValueError:
            return _NotJSON()
    if pa.types.is_struct(kind) and isinstance(value, dict):
        return {f.name: _decode(value.get(f.name), f.type) for f in kind}
    if (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and isinstance(value, list):
        return [_decode(v, kind.value_type) for v in value]
    return value


def _strings(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A string column from whatever `datasets` inferred: JSON text is decoded, and a value that is
    not a string (a number, a list) becomes null, i.e. a missing prompt, model or response."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_string(arr.type):
        return arr
    if pa.types.is_large_string(arr.type):
        return arr.cast(pa.string())
    return pa.array([v if isinstance(v, str) else None for v in _decoded(arr)], pa.string())


def _rating_text(value) -> str | None:
    """An aspect rating as text: "4", "N/A", or a number written as a number (4 → "4")."""
    if isinstance(value, str):
        return value
    number = _number(value)
    return None if number is None else (str(int(number)) if number.is_integer() else str(number))


_RATINGS = pa.struct([(a, pa.struct([("Rating", pa.string())])) for a in ASPECTS])
_COMPLETION = pa.struct([("model", pa.string()), ("response", pa.string()), ("overall_score", pa.float64()),
                         ("annotations", _RATINGS), ("not_text", pa.bool_())])


def _completion(value) -> dict:
    """One completion of irregular data (decoded), reduced to the fields ZEBRA reads. A model or
    response that is present but not a string (42, a list, an object) becomes null and is marked
    `not_text`, so that the run counts it; a score that is not a finite number becomes null."""
    if not isinstance(value, dict):
        return {}
    out = {k: value.get(k) if isinstance(value.get(k), str) else None for k in ("model", "response")}
    out["not_text"] = any(value.get(k) is not None and not isinstance(value.get(k), str) for k in ("model", "response"))
    out["overall_score"] = _number(value.get("overall_score"))
    ann = value.get("annotations")
    if isinstance(ann, dict):
        out["annotations"] = {a: {"Rating": _rating_text(r.get("Rating")) if isinstance(r := ann.get(a), dict) else None}
                              for a in ASPECTS}
    return out


def _regular_completions(comp: pa.ChunkedArray) -> pa.ChunkedArray:
    """`comp` as list<struct> with string `model` and `response`, converting row by row only
    when `datasets` could not type it so (completions of differing shapes or types, JSON text
    anywhere: the slow, rare path)."""
    list_type = pa.types.is_list(comp.type) or pa.types.is_large_list(comp.type)
    if list_type and pa.types.is_struct(comp.type.value_type):
        inner = comp.type.value_type
        if all(name in inner.names and pa.types.is_string(inner.field(name).type) for name in ("model", "response")):
            return comp
    rows = [[_completion(c) for c in value] if isinstance(value, list) else None for value in _decoded(comp.combine_chunks())]
    return pa.chunked_array([pa.array(rows, pa.list_(_COMPLETION))])


class FlatCompletions:
    """A batch's completions laid end to end (each chunk's, flattened in place), a field combined
    into one array only when it is asked for.

    A batch's columns come in several chunks (the cache's record batches); combining the whole
    completions struct copied every critique and rationale, which binarize never reads (real
    UltraFeedback has four aspect rationales, a critique and a system prompt beside each response).
    Reads like a StructArray: `type`, `len`, `field(name)`.
    """

    def __init__(self, chunks: pa.ChunkedArray):
        self._chunks = chunks
        self._fields: dict[str, pa.Array] = {}
        self.type = chunks.type

    def __len__(self) -> int:
        return len(self._chunks)

    def field(self, name: str) -> pa.Array:
        if name not in self._fields:
            # StructArray.field per chunk: the child as stored, as field() of the combined struct gave it
            parts = [chunk.field(name) for chunk in self._chunks.chunks]
            self._fields[name] = (parts[0] if len(parts) == 1 else
                                  pa.concat_arrays(parts) if parts else pa.array([], self.type.field(name).type))
        return self._fields[name]


def to_batch(table: pa.Table, rows: np.ndarray | None = None, prompt_ids: list[str] | None = None) -> Batch:
    """Lay out one Arrow batch of UltraFeedback rows per slot, without a Python loop over rows.

    `rows`: only these rows of `table` (a shard's, shard_rows), whose `prompt_ids` are known. The
    Batch's slots point into the whole batch's flat completions: the responses are copied once at
    most (their chunks joined), and no other text of a completion at all.
    """
    comp = _regular_completions(table.column("completions"))
    counts = pc.fill_null(pc.list_value_length(comp), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = FlatCompletions(pc.list_flatten(comp))
    first = np.cumsum(counts) - counts  # each row's first completion
    if rows is not None:
        counts, first = counts[rows], first[rows]
    n = len(counts)
    k = max(int(counts.max(initial=0)), 2)
    row_of = np.repeat(np.arange(n), counts)
    starts = np.cumsum(counts) - counts  # each (kept) row's first slot, laid end to end
    slot_of = np.arange(int(counts.sum())) - np.repeat(starts, counts)
    at = np.repeat(first, counts) + slot_of  # each slot's completion in `flat`
    pos = np.full((n, k), -1, dtype=np.int64)
    pos[row_of, slot_of] = at

    responses = flat.field("response")
    # "has non-whitespace text" = not (empty or all whitespace); utf8_is_space stops at the first
    # other character, where trimming copied every response (same Unicode whitespace).
    blank = pc.or_(pc.utf8_is_space(responses), pc.equal(pc.binary_length(responses), 0))
    has_text = pc.fill_null(pc.invert(blank), False).to_numpy(zero_copy_only=False)
    # bytes, not characters: read from the offsets, where utf8_length scanned every text (13 % of a
    # run); equal texts have equal byte lengths, which is all duplicate_texts asks
    length = pc.fill_null(pc.binary_length(responses), -1).to_numpy(zero_copy_only=False)
    # One Python string per distinct model name, shared by every slot, not one per response.
    enc = flat.field("model").dictionary_encode()
    names = np.asarray(enc.dictionary.to_pylist() + [None], dtype=object)
    code_flat = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False)
    model_flat = names[code_flat]  # −1: the None

    model = np.full((n, k), None, dtype=object)
    model[row_of, slot_of] = model_flat[at]
    codes = np.full((n, k), -1, dtype=np.int64)
    codes[row_of, slot_of] = code_flat[at]
    nonempty = np.zeros((n, k), dtype=bool)
    nonempty[row_of, slot_of] = has_text[at]
    lengths = np.full((n, k), -1, dtype=np.int64)
    lengths[row_of, slot_of] = length[at]
    not_text = np.zeros((n, k), dtype=bool)
    if "not_text" in flat.type.names:  # only the slow path of _regular_completions marks them
        not_text[row_of, slot_of] = pc.fill_null(flat.field("not_text"), False).to_numpy(zero_copy_only=False)[at]
    source = (  # decoded like the prompt: one `source: 5` must not turn "truthful_qa" into '"truthful_qa"'
        np.asarray(_strings(table.column("source")).to_pylist(), dtype=object)
        if "source" in table.column_names else np.full(table.num_rows, None, dtype=object)
    )
    prompts = _strings(table.column("instruction"))
    if rows is not None:
        source, prompts = source[rows], prompts.take(pa.array(rows))
    batch = Batch(prompts.to_pylist(), source, model, pos, responses, nonempty, lengths, flat, not_text, prompts=prompts)
    batch.model_codes = codes, list(names[:-1])  # the dictionary's codes: the names are not hashed again
    if prompt_ids is not None:
        batch.prompt_ids = prompt_ids  # known already (shard_rows hashed them): not hashed twice
    return batch


@dataclass
class ResponseCounts:
    """Responses seen by `usable_slots`, by reason, and the models skipped for want of scores."""

    responses: Counter = field(default_factory=Counter)
    model_not_in_table: Counter = field(default_factory=Counter)
    model_missing_score: Counter = field(default_factory=Counter)


def model_index(batch: Batch, table) -> np.ndarray:
    """(n, K) behaviour-table index of each slot's model; −1 where absent or not rated.

    Names are looked up once per distinct name, not once per response.
    """
    codes, names = batch.model_codes
    lookup = np.array([table.index.get(name, -1) for name in names] + [-1], dtype=np.int64)
    return lookup[codes]  # code −1 (absent) picks the trailing −1


def _factorize(models: np.ndarray) -> tuple[np.ndarray, list]:
    """(codes shaped like `models`, −1 for None; distinct names). pandas hashes; np.unique on
    the names as fixed-width strings sorted them, most of the selection step's time."""
    import pandas as pd

    codes, names = pd.factorize(models.ravel(), use_na_sentinel=True)
    return codes.reshape(models.shape).astype(np.int64), list(names)


def table_preference(midx: np.ndarray, table) -> list[np.ndarray]:
    """Which of two copies of one text is kept, for ZEBRA's strategies: the best-ranked model's,
    i.e. the higher MB-SUP, then the model listed first in the behaviour table (the strategies'
    own tie rule); models outside the table rank below every rated one (then by name, in
    `usable_slots`)."""
    rated = midx >= 0
    sup = np.where(rated, table.mb_sup[np.where(rated, midx, 0)], -np.inf)
    return [sup, np.where(rated, -midx, -np.inf).astype(float)]


def usable_slots(batch: Batch, table, counts: ResponseCounts, require_rated: bool,
                 prefer: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Which responses may enter a pair, counting every reason one may not into `counts`.

    Returns the (n, K) usable mask and `model_index`. `table`: the zebra.behaviour.BehaviourTable.
    A prompt's responses are a set of (model, text), so every rule below is order-free (SPEC §3):
    - a response needs a model name and a text (strings: anything else is counted as `not_text`),
      a text that is not blank, and (`require_rated`) a model with every score in the table;
    - a model that answers the prompt more than once with different texts gives no response at all
      (which one would be its answer?), counted as `duplicate_model`; identical copies are one;
    - a text given by several models is one response, credited to the preferred copy: the largest
      `prefer` keys, compared in turn ((n, K) arrays, larger = better; default `table_preference`:
      the best-ranked model), then the smaller model name. The others count as `duplicate_response`.
    """
    midx = model_index(batch, table)
    rated = midx >= 0
    counts.responses["total"] += int((batch.pos >= 0).sum())
    # a model or response that is not text (42, a list): counted once, as that, and never used
    counts.responses["not_text"] += int(batch.not_text.sum())
    present = (batch.pos >= 0) & ~batch.not_text
    no_model = present & np.equal(batch.model, None)  # a completion without a model name (null or absent)
    counts.responses["no_model"] += int(no_model.sum())
    if require_rated:
        excluded = set(table.excluded)
        for name in batch.model[present & ~rated & ~no_model]:
            bucket = counts.model_missing_score if name in excluded else counts.model_not_in_table
            bucket[str(name)] += 1
    usable = present & ~no_model & batch.nonempty & (rated if require_rated else True)
    counts.responses["empty"] += int((present & ~batch.nonempty).sum())
    prefer = table_preference(midx, table) if prefer is None else prefer
    prefer = [np.where(np.isnan(key), -np.inf, key) for key in prefer]  # NaN (no score) ranks last
    dup_model, dup_copy = duplicate_models(batch, usable, prefer)
    usable &= ~(dup_model | dup_copy)
    counts.responses["duplicate_model"] += int(dup_model.sum())
    dup_text = duplicate_texts(batch, usable, prefer)
    usable &= ~dup_text
    counts.responses["duplicate_response"] += int((dup_copy | dup_text).sum())
    counts.responses["usable"] += int(usable.sum())
    return usable, midx


def _preferred(batch: Batch, prefer: list[np.ndarray], row: int, a: int, b: int) -> bool:
    """Is slot `a` of `row` the preferred copy over slot `b` (larger keys, then the smaller name)?"""
    for key in prefer:
        x, y = key[row, a], key[row, b]
        if x != y:
            return bool(x > y)
    return str(batch.model[row, a]) <= str(batch.model[row, b])


def duplicate_models(batch: Batch, usable: np.ndarray, prefer: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """((n, K) responses of a model that answered its prompt more than once with different texts,
    (n, K) identical copies of a model's one answer beyond the preferred copy)."""
    codes = np.where(usable, batch.model_codes[0], -1)
    dup_model = np.zeros(codes.shape, dtype=bool)
    dup_copy = np.zeros(codes.shape, dtype=bool)
    ordered = np.sort(codes, axis=1)
    repeated = ((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any(axis=1)
    for row in np.flatnonzero(repeated):  # rare: a Python loop over these rows only
        for code in set(codes[row].tolist()) - {-1}:
            slots = np.flatnonzero(codes[row] == code)
            if slots.size < 2:
                continue
            texts = batch.texts(np.full(slots.size, row), slots)
            if len(set(texts)) > 1:
                dup_model[row, slots] = True
            else:
                best = slots[0]
                for slot in slots[1:]:
                    best = slot if _preferred(batch, prefer, row, slot, best) else best
                dup_copy[row, slots[slots != best]] = True
    return dup_model, dup_copy


def duplicate_texts(batch: Batch, usable: np.ndarray, prefer: list[np.ndarray]) -> np.ndarray:
    """(n, K) bool: a usable response whose text another usable response of its prompt repeats and
    whose copy is not the preferred one. Only slots of equal byte length are compared as strings,
    and equal lengths are rare, so this costs almost nothing on real data."""
    dup = np.zeros_like(usable)
    k = usable.shape[1]
    for later in range(1, k):
        for earlier in range(later):
            maybe = usable[:, earlier] & usable[:, later] & (batch.byte_lengths[:, earlier] == batch.byte_lengths[:, later])
            rows = np.flatnonzero(maybe)
            if rows.size:
                a = batch.texts(rows, np.full(rows.size, earlier))
                b = batch.texts(rows, np.full(rows.size, later))
                for row in rows[np.fromiter((x == y for x, y in zip(a, b)), dtype=bool, count=rows.size)]:
                    # of every pair of copies the less preferred one goes, so only the most preferred stays
                    dup[row, later if _preferred(batch, prefer, row, earlier, later) else earlier] = True
    return dup
