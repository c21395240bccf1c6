"""Preference records on disk: JSON list, JSON lines or Parquet, written atomically.

A run writes to a hidden temporary file beside the target and renames it into place only when
everything succeeded, so an interrupted or failed run never leaves a half-written output.
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import queue
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from zebra.errors import ZebraError
from zebra.jsonio import FileAccessError, ReadError, read_json_records, stream_json_records, surrogate_field

log = logging.getLogger(__name__)

FORMATS = {".json": "json", ".jsonl": "jsonl", ".parquet": "parquet"}

_MESSAGES = pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))
# Fixed Parquet schema so that batches agree even when a column is null in the first one.
SCHEMA = pa.schema([
    ("prompt", pa.string()),
    ("prompt_id", pa.string()),
    ("most_similar_pair", pa.list_(pa.string())),
    ("chosen", _MESSAGES),
    ("rejected", _MESSAGES),
    ("kinship_rank", pa.int64()),
    ("mb_sup_chosen", pa.float64()),
    ("mb_sup_rejected", pa.float64()),
    ("mb_sim", pa.float64()),
    # benchmark-agreement reliability (zebra.reliability); null where a side has no benchmark scores
    ("agreement", pa.float64()),
    ("entropy", pa.float64()),
    ("weight", pa.float64()),
])


def output_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ZebraError(f"{path}: unknown output format {suffix!r}; name it .json, .jsonl or .parquet")
    return FORMATS[suffix]


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def remove_stale_tmp(path: str | Path) -> list[Path]:
    """Delete `path`'s temporary files left by runs that were killed (SIGKILL, power loss).

    A run removes its own temporary file on any error it sees, but nothing runs after a
    SIGKILL; the file is `.<name>.tmp-<pid>`, so one whose process no longer exists is stale.
    Returns the removed files.
    """
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass  # not ours to remove (permissions): leave it
    if removed:
        log.info("removed %d stale temporary file(s) of %s left by killed runs", len(removed), path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def check_output(path: str | Path) -> None:
    """An output name that can be written, checked before any work: format, not a folder,
    its meta file not a folder either; stale temporary files of earlier killed runs removed."""
    path = Path(path)
    output_format(path)
    for p in (path, Path(f"{path}.meta.json")):
        if p.is_dir():
            raise ZebraError(f"{p} is a folder; choose another --output (a file name)")
    make_parent(path)
    remove_stale_tmp(path)
    remove_stale_tmp(f"{path}.meta.json")


def json_text(obj: Any) -> str:
    """Indented JSON of `obj` with every non-finite float written as null.

    NaN and Infinity are not JSON (json.dumps writes them bare by default); null here means
    "not defined", e.g. a mean over no records.
    """
    return json.dumps(_finite(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, np.generic):
        return _finite(obj.item())
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


# JSON text built column by column in Arrow, byte-identical to json.dumps(record,
# ensure_ascii=False): on full-size data json.dumps per record was the slowest step of a run
# (~30 MB/s here), and most of its work is escaping long response texts, which Arrow's string
# kernels do a whole column at a time.
# The bytes JSON writes as a backslash and a letter; the other control characters are written \u00XX.
_SHORT_ESCAPES = {0x5C: "\\", 0x22: '"', 0x0A: "n", 0x0D: "r", 0x09: "t", 0x08: "b", 0x0C: "f"}
_LETTER = np.zeros(256, dtype=np.uint8)  # the letter after the backslash; 0: not a short escape
_LETTER[list(_SHORT_ESCAPES)] = [ord(c) for c in _SHORT_ESCAPES.values()]
_SCAN_BYTES = 1 << 18  # the byte scan's step: its masks stay in cache, no fresh pages per pass (5× faster)


def _lit(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def _escaped(arr: pa.Array) -> pa.Array:
    """`arr` (large_string) with JSON's escapes, what CPython's encode_basestring writes (the text
    at a null is any: the caller writes null there).

    One pass over the UTF-8 bytes, where multi-byte characters never hold a byte < 0x20, `"` or
    `\\`: a backslash is inserted before each byte with a short escape, which becomes its letter
    (newline → `\\n`), and each value's offsets move by the insertions before them. A replace per
    kind of escape copied every text once per kind, and real responses hold newlines and quotes.
    The rare other control characters (written \\u00XX) are json.dumps's, value by value."""
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64, count=len(arr) + 1, offset=8 * arr.offset)
    if arr.buffers()[2] is None or offsets[-1] == offsets[0]:
        return arr
    text = np.frombuffer(arr.buffers()[2], dtype=np.uint8, count=int(offsets[-1] - offsets[0]), offset=int(offsets[0]))
    hits = _escape_positions(text)
    if not hits.size:
        return arr
    letter = _LETTER[text[hits]]
    short = hits[letter != 0]
    out = np.insert(text, short, ord("\\"))
    out[short + np.arange(1, short.size + 1)] = letter[letter != 0]
    starts = offsets - offsets[0]
    escaped = pa.LargeStringArray.from_buffers(len(arr), pa.py_buffer(starts + np.searchsorted(short, starts)),
                                               pa.py_buffer(out))
    if short.size < hits.size:
        rows = np.unique(np.searchsorted(starts, hits[letter == 0], side="right") - 1)
        fixed = [json.dumps(s, ensure_ascii=False)[1:-1] for s in arr.take(pa.array(rows)).to_pylist()]
        mask = np.zeros(len(arr), dtype=bool)
        mask[rows] = True
        escaped = pc.replace_with_mask(escaped, pa.array(mask), pa.array(fixed, pa.large_string()))
    return escaped


def _escape_positions(text: np.ndarray) -> np.ndarray:
    """Positions of the bytes JSON escapes (< 0x20, `"`, `\\`), found in cache-sized steps."""
    found = []
    for start in range(0, len(text), _SCAN_BYTES):
        part = text[start:start + _SCAN_BYTES]
        mask = part < 0x20
        mask |= part == 0x22
        mask |= part == 0x5C
        if mask.any():
            found.append(np.flatnonzero(mask) + start)
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


Piece = pa.Array | str  # a column of texts, one per value, or a literal shared by every value


def json_values(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each value of `arr` as the text json.dumps(value, ensure_ascii=False) gives (null → null)."""
    arr = _one_array(arr)
    return _join(_pieces(arr), len(arr))


def json_lines(table: pa.Table, end: str = "") -> pa.Array:
    """Each row of `table` as the JSON object json.dumps gives for its dict, followed by `end`."""
    parts: list[Piece] = ["{"]
    for i, name in enumerate(table.column_names):
        parts += [("" if i == 0 else ", ") + json.dumps(name, ensure_ascii=False) + ": ",
                  *_pieces(_one_array(table.column(name)))]
    return _join(parts + ["}" + end], table.num_rows)


def _one_array(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`arr` as one Array; a column of one chunk is that chunk (combine_chunks would copy it)."""
    if isinstance(arr, pa.ChunkedArray):
        return arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    return arr


def _join(pieces: list[Piece], n: int) -> pa.Array:
    """The pieces joined value by value, in one pass: each text is copied once, however deep the
    value nests (joining level by level copied a response four times)."""
    merged: list[Piece] = []
    for p in pieces:  # neighbouring literals become one
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p)
    if all(isinstance(p, str) for p in merged):
        return pa.array(["".join(merged)] * n, pa.large_string())
    if len(merged) == 1 and merged[0].type == pa.large_string():
        return merged[0]
    return pc.binary_join_element_wise(*[_lit(p) if isinstance(p, str) else p for p in merged], _lit(""))


def _pieces(arr: pa.Array) -> list[Piece]:
    """`arr`'s JSON texts as pieces to join (`_join`): a string is `"`, its escaped text, `"`; a
    struct its keys' literals and its fields' pieces; a list of one length its items' texts laid
    end to end (`_fixed_lists`)."""
    if arr.null_count:  # the values' texts joined, then null where the value is
        return [pc.if_else(arr.is_null(), _lit("null"), _join(_pieces_of_values(arr), len(arr)))]
    return _pieces_of_values(arr)


def _pieces_of_values(arr: pa.Array) -> list[Piece]:
    """`_pieces` as if no value were null (the text at a null is any: the caller replaces it)."""
    kind = arr.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return ['"', _escaped(arr.cast(pa.large_string())), '"']  # 64-bit offsets: no 2 GB limit per batch
    if pa.types.is_integer(kind):
        return [arr.cast(pa.large_string())]
    if pa.types.is_floating(kind):
        # repr of the distinct values only: provenance columns hold one value per model pair;
        # NaN and ±inf are not JSON: null, as json_text writes them
        enc = arr.cast(pa.float64()).dictionary_encode()
        return [pa.array([json.dumps(v) if math.isfinite(v) else "null" for v in enc.dictionary.to_pylist()],
                         pa.large_string()).take(enc.indices)]
    if pa.types.is_boolean(kind):
        return [pc.if_else(arr, _lit("true"), _lit("false"))]
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        if len(arr) and not arr.null_count and lengths.min() == lengths.max():
            return _fixed_lists(arr.flatten(), len(arr), int(lengths[0]))
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]), pa.int64())
        items = pa.LargeListArray.from_arrays(offsets, json_values(arr.flatten()))
        return ["[", pc.binary_join(items, _lit(", ")), "]"]
    if pa.types.is_struct(kind) and kind.num_fields:
        pieces: list[Piece] = []
        for i, fld in enumerate(kind):
            pieces += [("{" if i == 0 else ", ") + json.dumps(fld.name, ensure_ascii=False) + ": ",
                       *_pieces(arr.field(i))]
        return pieces + ["}"]
    # anything else: correct, one Python call per value
    return [pa.array([json.dumps(v, ensure_ascii=False) for v in arr.to_pylist()], pa.large_string())]


def _fixed_lists(items: pa.Array, n: int, k: int) -> list[Piece]:
    """`n` lists of `k` items each (the records' two-message chosen and rejected): the items'
    texts joined with ", " after all but each list's last, so that list i's text is the bytes of
    items i·k … i·k+k−1 back to back, read in place by new offsets, not joined a second time."""
    if k == 0:
        return ["[]"]
    seps = pa.LargeStringArray.from_buffers(
        n * k, pa.py_buffer(np.concatenate([[0], np.cumsum(np.tile([2] * (k - 1) + [0], n))]).astype(np.int64)),
        pa.py_buffer(b", " * (n * (k - 1))))
    joined = _join(_pieces(items) + [seps], n * k)
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int64, count=n * k + 1, offset=8 * joined.offset)
    lists = pa.LargeStringArray.from_buffers(n, pa.py_buffer(np.ascontiguousarray(offsets[::k])), joined.buffers()[2])
    return ["[", lists, "]"]


def _joined_bytes(lines: pa.Array, drop_end: int = 0) -> memoryview:
    """The UTF-8 bytes of all `lines` (string or large_string) back to back, read in place (Arrow
    keeps them so; a slice's only), less the last `drop_end`."""
    width = 8 if pa.types.is_large_string(lines.type) else 4
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64 if width == 8 else np.int32, count=len(lines) + 1,
                            offset=width * lines.offset)
    return memoryview(lines.buffers()[2] or b"")[int(offsets[0]):int(offsets[-1]) - drop_end]


def _unencodable(path: Path, records: list[dict[str, Any]], before: int) -> str:
    """The one line for a record that UTF-8 cannot encode (a lone surrogate in one of its texts)."""
    for i, record in enumerate(records):
        field = surrogate_field(record)
        if field is not None:
            return f"{path}: record {before + i + 1}: {field} holds a lone surrogate, which UTF-8 cannot encode"
    return f"{path}: a record holds text that UTF-8 cannot encode"


def make_parent(path: str | Path) -> None:
    """Create the output's folder, or stop with one line naming it (a file in the way, no permission)."""
    parent = Path(path).parent
    if parent.exists() and not parent.is_dir():
        raise ZebraError(f"{path}: {parent} is a file, not a folder; choose another --output")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ZebraError(f"{path}: cannot create its folder {parent} ({err.strerror}); choose another --output") from None
    if not os.access(parent, os.W_OK):
        raise ZebraError(f"{path}: folder {parent} is not writable; choose another --output")


class RecordWriter:
    """Stream record batches to `path`; the file appears only on a clean `close()`.

    Use as a context manager: an exception inside the block removes the temporary file.
    `background=True`: encode and write each batch in a thread while the caller builds the
    next one (Arrow's kernels and file writes release the GIL, so on two cores the selection
    hides behind the writing); at most one batch waits, and a failure in the thread is raised
    by the next `write` or by `close`.
    """

    def __init__(self, path: str | Path, extra_fields: Iterable[tuple[str, pa.DataType]] = (),
                 background: bool = False, deferred: bool = False):
        self._thread = None
        self.path = Path(path)
        self.format = output_format(self.path)
        check_output(self.path)
        self.tmp = _tmp_path(self.path)
        self.deferred = deferred
        self.schema = SCHEMA
        for name, dtype in extra_fields:
            self.schema = self.schema.append(pa.field(name, dtype))
        self.count = 0
        self._parquet = None
        self._fh = None if self.format == "parquet" else open(self.tmp, "w", encoding="utf-8")
        if self.format == "json":
            self._fh.write("[")
        self._error: BaseException | None = None
        if background:
            self._queue: queue.Queue = queue.Queue(maxsize=1)
            self._thread = threading.Thread(target=self._drain, name="RecordWriter", daemon=True)
            self._thread.start()

    def _drain(self) -> None:
        while (records := self._queue.get()) is not None:
            if self._error is None:  # after a failure: only empty the queue, so nobody blocks
                try:
                    self._write(records)
                except BaseException as err:  # noqa: BLE001 (handed to the caller's thread)
                    self._error = err

    def _join(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error

    def write(self, records: list[dict[str, Any]] | pa.Table) -> None:
        """Append records: a list of dicts, or a table of them (columns in the dicts' key order)."""
        if self._error is not None:
            raise self._error
        if self._thread is not None:
            if len(records):
                self._queue.put(records)
        else:
            self._write(records)

    def _write(self, records: list[dict[str, Any]] | pa.Table) -> None:
        if len(records) == 0:
            return
        columnar = isinstance(records, pa.Table)
        if self.format == "parquet":
            if columnar:  # the fixed schema's columns, in its order; absent ones null, as from_pylist
                table = pa.Table.from_arrays(
                    [records.column(f.name).cast(f.type) if f.name in records.column_names
                     else pa.nulls(len(records), f.type) for f in self.schema], schema=self.schema)
            else:
                table = pa.Table.from_pylist(records, schema=self.schema)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.tmp, self.schema)
            self._parquet.write_table(table)
        else:
            sep = "\n" if self.format == "jsonl" else ",\n"
            lead = "" if self.count == 0 else sep
            if self.format == "json" and self.count == 0:
                lead = "\n"
            if columnar:
                self._fh.write(lead)
                self._fh.flush()  # the bytes below bypass the text layer, so it must be empty
                self._fh.buffer.write(_joined_bytes(json_lines(records, sep), len(sep.encode())))
            else:
                text = sep.join(json.dumps(_finite(r), ensure_ascii=False, allow_nan=False) for r in records)
                try:
                    self._fh.write(lead + text)
                except UnicodeEncodeError:
                    raise ZebraError(_unencodable(self.path, records, self.count)) from None
        self.count += len(records)

    def write_json_text(self, records: Iterable[tuple[bytes | memoryview, ...]]) -> None:
        """Append records already encoded as one-line JSON objects (UTF-8), each given as the pieces
        it is made of, back to back; separated and framed as `write` does, so that joining runs'
        outputs (zebra.shards) writes their bytes unchanged."""
        if self.format == "parquet":
            raise ZebraError(f"{self.path}: JSON text cannot be written to a Parquet file")
        self._join()
        sep = b"\n" if self.format == "jsonl" else b",\n"
        self._fh.flush()  # the bytes below bypass the text layer, so it must be empty
        out = self._fh.buffer
        parts: list[bytes] = []
        size = 0
        for record in records:  # one write per ~8 MB: a write per record cost more than the copying
            parts.append(sep if self.count else (b"\n" if self.format == "json" else b""))
            parts += record
            size += sum(len(piece) for piece in record)
            self.count += 1
            if size >= 1 << 23:
                out.write(b"".join(parts))
                parts, size = [], 0
        out.write(b"".join(parts))

    def close(self) -> None:
        self._join()
        if self.format == "parquet":
            if self._parquet is None:  # no records: still a valid, empty file
                pq.write_table(self.schema.empty_table(), self.tmp)
            else:
                self._parquet.close()
        else:
            self._fh.write("\n]\n" if self.format == "json" else ("\n" if self.count else ""))
            self._fh.close()
        if not self.deferred:
            self.commit()

    def commit(self, meta: Any = None) -> None:
        """Rename the finished file into place, with `meta` as `<path>.meta.json` if given.

        `deferred=True` writers finish their file when the block ends and wait for this call,
        so that the meta can count everything the block wrote. Output and meta succeed or fail
        together: the meta is written in full to its own temporary file first, an earlier output
        is removed, and the meta is renamed before the output, whose existence is what
        reproduce.py reads as "done": a failure or crash at any point leaves no output beside a
        meta it does not match. Two runs committing one output take turns (`_folder_lock`), so the
        pair left is always one run's. On failure the temporary output is removed.
        """
        meta_path = Path(f"{self.path}.meta.json")
        meta_tmp = _tmp_path(meta_path)
        # another run committing the same output in between would leave its records beside this
        # run's meta (or the other way round): the renames below are one step, under a lock
        with _folder_lock(self.path.parent):
            self._commit(meta, meta_path, meta_tmp)

    def _commit(self, meta: Any, meta_path: Path, meta_tmp: Path) -> None:
        try:
            if meta is not None:
                try:
                    meta_tmp.write_text(json_text(meta), encoding="utf-8")
                    # an earlier run's output goes first: a crash before the rename below must
                    # not leave it beside this run's meta, looking done
                    self.path.unlink(missing_ok=True)
                    os.replace(meta_tmp, meta_path)
                except OSError as err:
                    raise ZebraError(f"{meta_path}: cannot write the meta file ({err.strerror or err}); "
                                     f"nothing was written to {self.path}") from None
            try:
                os.replace(self.tmp, self.path)
            except OSError as err:
                if meta is not None:
                    meta_path.unlink(missing_ok=True)
                raise ZebraError(f"{self.path}: cannot write the output ({err.strerror or err})") from None
        finally:
            meta_tmp.unlink(missing_ok=True)
            self.tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        try:
            self._join()
        except BaseException:  # noqa: BLE001 (the caller's exception is the one to report)
            pass
        if self._fh is not None and not self._fh.closed:
            self._fh.close()
        if self._parquet is not None:
            self._parquet.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.close()
            except BaseException:  # e.g. the background thread failed: no half file either
                self.abort()
                raise
        else:
            self.abort()


@contextmanager
def _folder_lock(folder: Path):
    """An exclusive lock on `folder` (flock on its descriptor) for a few renames: no lock file is
    left behind, and the kernel drops the lock of a killed process. Where flock is missing
    (not POSIX), nothing is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a folder we may write but not open (no read permission): renames without the lock
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write a small JSON document (settings, counts) atomically."""
    write_text_atomic(path, json_text(obj))


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a small text file (a table, a CSV, a JSON document) to `.<name>.tmp-<pid>` beside
    `path` and rename it: the file is the old one or the new one, never half (a killed run's
    leftover is removed by the next, remove_stale_tmp)."""
    path = Path(path)
    make_parent(path)
    remove_stale_tmp(path)
    tmp = _tmp_path(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        raise ZebraError(f"{path}: cannot write ({err.strerror or err})") from None
    finally:
        tmp.unlink(missing_ok=True)


def iter_records(path: str | Path, batch_size: int = 4096) -> Iterator[list[dict[str, Any]]]:
    """`read_records(path)` in lists of at most `batch_size` records, the same records and errors.

    What a reader of a whole 10× output would hold at once is one batch of records (Parquet: one
    batch of rows; JSON: one line at a time where records are one per line, as RecordWriter
    writes them, else the file's text; zebra.jsonio.stream_json_records), so a
    caller that keeps only a few numbers per record stays small (issue 23: the analyses held
    every text of five outputs)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size}")
    path = Path(path)
    if output_format(path) == "parquet":
        from zebra.data import DataError, _first_line, check_parquet

        check_parquet(path)
        try:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
                yield batch.to_pylist()
        except (OSError, pa.ArrowException) as err:
            raise DataError(f"{path}: cannot be read as Parquet ({_first_line(err)})") from None
        return
    batch: list[dict[str, Any]] = []
    try:
        for _, record in stream_json_records(path, "records file", allow_empty=True):
            batch.append(record)
            if len(batch) == batch_size:
                yield batch
                batch = []
    except FileAccessError:
        raise
    except ReadError as err:
        raise err.with_hint("remake it with a binarize_*.py script") from None
    if batch:
        yield batch


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Read records written by RecordWriter (or any JSON list / JSON lines / Parquet of dicts).

    Every fault is the reader's one line (zebra.jsonio: `FILE:LINE: reason`); for what a crash
    or a full disk leaves (an empty or truncated file, a bad line) it says how to remake it.
    """
    path = Path(path)
    fmt = output_format(path)
    if fmt == "parquet":
        from zebra.data import read_parquet

        return read_parquet(path).to_pylist()
    try:
        # a run that wrote no pairs leaves `[]`: a valid, empty output (a 0-byte file is not)
        return read_json_records(path, "records file", allow_empty=True)
    except FileAccessError:
        raise
    except ReadError as err:
        raise err.with_hint("remake it with a binarize_*.py script") from None
