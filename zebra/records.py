"""Preference records on disk: JSON list, JSON lines or Parquet, written atomically.

A run writes to a hidden temporary file beside the target and renames it into place only when
everything succeeded, so an interrupted or failed run never leaves a half-written output.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from zebra.errors import ZebraError

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


class RecordWriter:
    """Stream record batches to `path`; the file appears only on a clean `close()`.

    Use as a context manager: an exception inside the block removes the temporary file.
    """

    def __init__(self, path: str | Path, extra_fields: Iterable[tuple[str, pa.DataType]] = ()):
        self.path = Path(path)
        self.format = output_format(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = _tmp_path(self.path)
        self.schema = SCHEMA
        for name, dtype in extra_fields:
            self.schema = self.schema.append(pa.field(name, dtype))
        self.count = 0
        self._parquet = None
        self._fh = None if self.format == "parquet" else open(self.tmp, "w", encoding="utf-8")
        if self.format == "json":
            self._fh.write("[")

    def write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        if self.format == "parquet":
            table = pa.Table.from_pylist(records, schema=self.schema)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.tmp, self.schema)
            self._parquet.write_table(table)
        else:
            sep = "\n" if self.format == "jsonl" else ",\n"
            lead = "" if self.count == 0 else sep
            if self.format == "json" and self.count == 0:
                lead = "\n"
            self._fh.write(lead + sep.join(json.dumps(r, ensure_ascii=False) for r in records))
        self.count += len(records)

    def close(self) -> None:
        if self.format == "parquet":
            if self._parquet is None:  # no records: still a valid, empty file
                pq.write_table(self.schema.empty_table(), self.tmp)
            else:
                self._parquet.close()
        else:
            self._fh.write("\n]\n" if self.format == "json" else ("\n" if self.count else ""))
            self._fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self._fh is not None and not self._fh.closed:
            self._fh.close()
        if self._parquet is not None:
            self._parquet.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write a small JSON document (settings, counts) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Read records written by RecordWriter (or any JSON list / JSON lines / Parquet of dicts)."""
    path = Path(path)
    fmt = output_format(path)
    if not path.is_file():
        raise ZebraError(f"{path}: no such records file")
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    with open(path, encoding="utf-8") as fh:
        if fmt == "jsonl":
            return [json.loads(line) for line in fh if line.strip()]
        data = json.load(fh)
    if not isinstance(data, list):
        raise ZebraError(f"{path}: expected a JSON list of records")
    return data
