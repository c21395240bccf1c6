"""Pools in long format: one row per response, turned into UltraFeedback-schema rows.

A researcher's own pool is usually one row per (prompt, model, response), as AlpacaEval's
`model_outputs.json` files are. `load_pool` reads such a file or folder and returns a
`datasets.Dataset` in the UltraFeedback schema (SPEC §3), one row per prompt:

    instruction  str
    source       str or null     (the pool's `source_field`, AlpacaEval's `dataset`)
    models       list[str]       (the completions' models, in order)
    completions  list[{model, response, overall_score?}]

so `zebra.data`, `zebra.pipeline` and `zebra.strategies` run on it unchanged. `overall_score`
exists only when the pool has instance labels (a judgments file or a score column); it is the
judge's own value, larger = better, so the RLAIF baseline (`--score overall`) and the GPT-4
agreement analysis read it as they read UltraFeedback's.

API (what the scripts and other helpers call):
    PoolOptions(...)                   every setting, all optional; a folder's `pool.json` fills
                                       the ones not given (flags > pool.json > defaults)
    is_long(source, options) -> bool   does `source` hold a long-format pool? (see "Detection")
    load_pool(source, options, limit)  -> Pool(dataset, report): report is a JSON-able dict of
                                       counts (rows, duplicates, unmapped names, judge errors, …)
    convert(files, options, output, spill, chunk_rows, part_prompts)
                                       the conversion itself, into an Arrow file (load_pool caches it)
    read_model_names(path) -> dict     pool name -> behaviour-table name

Fields (defaults read AlpacaEval's files; `--instruction-field`, `--model-field`,
`--response-field`, `--source-field` name others). Model names go through `--model-names CSV`
(two columns: pool name, behaviour-table name, with a header row); a pool name mapped twice is
an error; names the CSV does not list keep their pool spelling, so the binarize run counts and
names them as models not in the behaviour table, as it does for UltraFeedback.

Prompts keyed by an id (Arena-Hard, MT-bench, FastChat's llm_judge): `--prompts FILE` holds one row
per prompt (`--prompt-id-field`, default `question_id`; `--prompt-field`, default `prompt`); the
response files, and a judgments file, carry the id instead of the text (`--judgment-instruction-field`
then names the judgments' id field; default: `--prompt-id-field`). Ids are text; an integer id is
its decimal text (MT-bench's 81 matches a CSV's "81"). Ids on one side only are counted, not errors:
responses whose id the prompts lack are dropped (`responses_without_prompt`), prompts no response
answers are counted (`prompts_without_responses`). The prompts file's source field, when it has one,
is the prompts' source. One id with two texts, or two ids with one text (pairs are keyed by the
text), is an error naming the rows.

Field paths: a field name with dots that is not a field of the file is a path into nested values,
keys and 0-based list indices: `turns.0.content` (a question's first turn; later turns are not read),
`choices.0.turns.0.content` (an MT-bench/Arena-Hard answer), `games.0.score` (Arena-Hard's first
judgment game). A path that finds a value in no row is an error (a misspelt step).

Instance labels, optional, by one of:
- `--judgments FILE`, `--judgment-kind pairwise` (default): one row per judged response, each
  against a fixed reference (AlpacaEval: `instruction`, `generator_1` = the reference,
  `generator_2` = the judged model, `preference`). The value is kept as is: 1 = the reference
  won, 2 = the response won, in between = a probability-weighted preference (the weighted
  judge), 1.5 = a draw. 0 is AlpacaEval's older code for a draw and becomes 1.5, as AlpacaEval's
  own `pairwise_to_winrate` does; a verdict string `A>>B` … `B>>A` (A = the reference, as in
  Arena-Hard's first game) is read by `verdict_value`; null is a judge failure: no label, counted
  (`judge_failures`). Any other value outside [1, 2] is an error. More than one reference in a
  file is an error (labels against two references do not compare).
- `--judgments FILE --judgment-kind score`: plain per-response scores (any finite number,
  larger = better; null = no label, counted).
- `--score-field NAME`: a per-response score column in the pool file itself.
A judgments file (or a folder of them, Arena-Hard's one per model) names its fields with
`--judgment-instruction-field` (default: the pool's instruction field), `--judgment-model-field` and
`--judgment-value-field`. Judgment rows are matched to responses by exact prompt text (or id) and
(mapped) model name. Identical copies of a judgment row (AlpacaEval ships falcon-40b-instruct's
twice) are dropped and counted; two different values for one response is an error naming the file
and rows; so is a judgment for a response the pool does not hold, unless
`skip_unmatched_judgments` (a trimmed pool) skips and counts them (`unmatched_judgments_skipped`).

Bad or ambiguous rows: a model answering one prompt twice with different text is an error
(which one would be the model's?); so is a collision of names, two pool names that are one model
after --model-names (an unmapped `gpt-4` beside `gpt-4-0314 → gpt-4`), said as such; an exact copy of a row is dropped and counted. A missing or
non-string prompt/model is an error naming the row; a null response becomes an empty one, which
the binarize run counts as `empty`.

`models_per_prompt` = K draws K of each prompt's responses the way UltraFeedback drew 4 of 17
models: each response gets a key from sha256(seed, prompt, model name) and the K smallest keys
stay. The draw depends on nothing else, so it is the same whatever `--limit`, batching or row
order; prompts with at most K responses keep them all. `judged_only` first keeps only the
responses that have a label (the agreement study's sub-pool: pairs GPT-4 can decide).

Memory and cache: a pool is converted once per content and options, then read from a cache
folder beside `datasets`' own (zebra.data's content key of every input file, their paths and the
options), memory-mapped as UltraFeedback rows are. Converting holds at most CHUNK_ROWS records of a
file (JSON lines and Parquet are read a chunk at a time; a JSON list or a CSV is read whole, as
`datasets` does) and then PART_PROMPTS prompts at a time: rows are spilled to disk by prompt and
every rule above is per prompt, so the rows are those of one pass over the whole pool. With
several faults in one pool, which one is named first may differ from a whole-file read. JSON
lines are parsed by pyarrow while its records are exactly the strict reader's, and by the strict
reader (zebra.jsonio) from the first record where they might not be (_ArrowLines): the records
and every message are the strict reader's, at a quarter of its parse time. Texts pyarrow read stay
in Arrow: prompt and model names are checked on their distinct values, each distinct prompt is
hashed once (its partition), and the per-prompt rules compare integer codes (_Part), so no
response and no prompt becomes a Python string on the way to the converted rows.

Detection: `--format long` / `ultrafeedback` decides; `auto` (default) calls a source long when
it is a folder with a `pool.json`, or --prompts is given, or a .json/.jsonl/.parquet/.csv file (or
a folder of them) whose first record has the response and model fields (a path's first step) and no
`completions`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import logging
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from zebra.errors import ZebraError
from zebra.jsonio import first_json_record, iter_json_record_chunks, not_a_file, read_json, read_text

log = logging.getLogger(__name__)

MANIFEST = "pool.json"
FORMATS = ("auto", "ultrafeedback", "long")
JUDGMENT_KINDS = ("pairwise", "score")
_EXTS = (".jsonl", ".json", ".parquet", ".csv")
# AlpacaEval's field names: the defaults when neither a flag nor pool.json names a field.
# The pool the scripts read by default (data/alpaca_eval: real responses, GPT-4 judged).
SHIPPED_POOL = Path(__file__).resolve().parent.parent / "data" / "alpaca_eval"
DEFAULTS = {
    "instruction_field": "instruction",
    "prompt_id_field": "question_id",  # Arena-Hard's, MT-bench's and FastChat llm_judge's
    "prompt_field": "prompt",
    "model_field": "generator",
    "response_field": "output",
    "source_field": "dataset",
    "judgment_kind": "pairwise",
    "judgment_model_field": "generator_2",
    "judgment_value_field": "preference",
    "judgment_reference_field": "generator_1",
}


class PoolError(ZebraError):
    """A long-format pool that cannot be used; one line naming the file, row and field."""


@dataclass(frozen=True)
class PoolOptions:
    """How to read a long-format pool. None = take it from pool.json, else from DEFAULTS."""

    format: str = "auto"  # auto | ultrafeedback | long
    instruction_field: str | None = None
    model_field: str | None = None
    response_field: str | None = None
    source_field: str | None = None  # optional in the data; becomes UltraFeedback's `source`
    prompts: str | None = None  # a file of prompts keyed by id; the responses (and judgments) carry the id
    prompt_id_field: str | None = None  # the id's field in the prompts, responses and judgments files
    prompt_field: str | None = None  # the prompts file's text field (a field path: turns.0.content)
    score_field: str | None = None  # a per-response score column in the pool file itself
    model_names: str | None = None  # CSV: pool name, behaviour-table name
    judgments: str | None = None
    judgment_kind: str | None = None  # pairwise | score
    judgment_instruction_field: str | None = None  # None: the same name as instruction_field
    judgment_model_field: str | None = None
    judgment_value_field: str | None = None
    judgment_reference_field: str | None = None  # pairwise only; absent from the file = not checked
    skip_unmatched_judgments: bool = False  # a judgment of a response the pool lacks: skipped and counted
    judged_only: bool = False
    models_per_prompt: int | None = None  # None: keep every response
    seed: int = 42  # of the models_per_prompt draw; the binarize scripts pass their --seed

    def get(self, name: str) -> Any:
        value = getattr(self, name)
        return DEFAULTS.get(name) if value is None else value


@dataclass
class Pool:
    dataset: Any  # datasets.Dataset in the UltraFeedback schema
    report: dict[str, Any]


# --------------------------------------------------------------------------- detection


def _manifest(path: Path) -> dict[str, Any] | None:
    file = path / MANIFEST
    if not (path.is_dir() and file.is_file()):
        return None
    found = read_json(file, MANIFEST)
    known = {f.name for f in fields(PoolOptions)} | {"responses"}
    unknown = sorted(set(found) - known) if isinstance(found, dict) else ["(not an object)"]
    if unknown:
        raise PoolError(f"{file}: unknown setting(s) {unknown}; known: {sorted(known)}")
    return found


def resolve(source: str | Path, options: PoolOptions) -> tuple[list[Path], PoolOptions]:
    """The response files of a long-format source and the options with pool.json filled in.

    Paths in pool.json are relative to its folder; flags given explicitly win over it.
    """
    path = Path(source)
    manifest = _manifest(path)
    if manifest is not None:
        given = {f.name: getattr(options, f.name) for f in fields(PoolOptions)}
        merged = {}
        for key, value in manifest.items():
            if key == "responses":
                continue
            if key in ("model_names", "judgments", "prompts") and value is not None:
                value = str(path / value)
            if given.get(key) in (None, False, "auto"):
                merged[key] = value
        options = replace(options, **merged)
        files = [path / manifest.get("responses", "model_outputs.jsonl")]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _EXTS and p.is_file())
        if not files:
            raise PoolError(f"{path}: no {MANIFEST} and no .json/.jsonl/.parquet/.csv files")
    else:
        files = [path]
    for f in files:
        if problem := not_a_file(f):
            raise PoolError(problem + (f" (named by {path / MANIFEST})" if manifest is not None else ""))
    return files, options


def _first_record(path: Path) -> dict | None:
    """The first record of a data file, reading as little of it as possible; None if unknown."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        from zebra.data import parquet_schema

        return {name: None for name in parquet_schema(path).names}
    if suffix == ".csv":
        return {name: None for name in next(csv.reader(io.StringIO(read_text(path, "CSV file"))), [])}
    if suffix not in (".json", ".jsonl"):
        return None
    return first_json_record(path)


def is_long(source: str | Path | None, options: PoolOptions | None = None) -> bool:
    """True when `source` is a long-format pool (module docstring, "Detection")."""
    options = options or PoolOptions()
    if options.format not in FORMATS:
        raise PoolError(f"--format must be one of {', '.join(FORMATS)}, not {options.format!r}")
    if source is None or options.format == "ultrafeedback":
        return False
    if options.format == "long" or options.prompts is not None:  # prompts in a file of their own: a pool's layout
        return True
    path = Path(source)
    if _manifest(path) is not None:
        return True
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _EXTS and p.is_file())
        if not files or any((path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json")):
            return False
        path = files[0]
    if not path.is_file():
        return False
    first = _first_record(path)
    return (first is not None and "completions" not in first
            and _in_record(first, options.get("response_field")) and _in_record(first, options.get("model_field")))


def _in_record(record: dict, name: str) -> bool:
    """Does `record` have field `name`, or the first step of it when it is a field path?"""
    return name in record or name.split(".")[0] in record


# --------------------------------------------------------------------------- reading


def _read_rows(path: Path) -> pd.DataFrame:
    """Every record of one file as a DataFrame of Python objects (no dtype guessing)."""
    frames = [df for df, _ in _read_chunks(path, None)]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else (frames[0] if frames else pd.DataFrame())


def _read_chunks(path: Path, rows: int | None, fast: bool = True, arrow: frozenset[str] = frozenset()
                 ) -> Iterator[tuple[pd.DataFrame, int]]:
    """(records, 1-based number of the first) of one file, at most `rows` records at a time (None:
    all at once), as DataFrames of Python objects (no dtype guessing; a missing key is None). JSON
    lines and Parquet are read a chunk at a time; a JSON list or a CSV is read whole, then cut.

    JSON lines are read by pyarrow while that gives the records the strict reader would
    (_ArrowLines), and strictly from the first record where it might not (all of them: not `fast`).
    Text columns named in `arrow` are then left in Arrow (pd.ArrowDtype: nulls are pd.NA), for the
    caller that only passes them on (a pool's responses: _response_texts)."""
    suffix = path.suffix.lower()
    size = rows or (1 << 62)
    if suffix == ".parquet":
        from zebra.data import iter_parquet_batches

        start = 1
        for batch in iter_parquet_batches(path, size):
            df = batch.to_pandas().astype(object)
            yield df.where(df.notna(), None), start
            start += len(df)
        return
    if suffix == ".csv":
        try:
            df = pd.read_csv(io.StringIO(read_text(path, "CSV file")), dtype=str, keep_default_na=False).astype(object)
        except pd.errors.EmptyDataError:
            return
        except pd.errors.ParserError as err:
            raise PoolError(f"{path}: not a readable CSV ({str(err).strip().splitlines()[0]})") from None
        for start in range(0, len(df), size):
            yield df.iloc[start:start + size].reset_index(drop=True), start + 1
        return
    start = 1
    if fast:
        reader = _ArrowLines(path, size, arrow)
        for df in reader:
            yield df, start
            start += len(df)
        if reader.complete:
            return
    records = (record for chunk in iter_json_record_chunks(path, "pool file", size, allow_empty=True)
               for _, record in chunk)
    records = itertools.islice(records, start - 1, None)  # the records pyarrow gave, if any, are given
    while batch := list(itertools.islice(records, size)):
        df = pd.DataFrame(batch, dtype=object)
        yield df.where(df.notna(), None), start  # a key missing from some records: None, not NaN
        start += len(df)


class _ArrowLines:
    """The records of a JSON-lines file read by pyarrow's JSON reader, in DataFrames of `rows`, for
    as long as they are exactly what the strict reader (zebra.jsonio) would give: the strict parse
    is three quarters of a cold long-pool conversion, pyarrow's a fifth of it (issue 23).

    pyarrow itself refuses duplicate keys, lone surrogates, bad JSON and a field that changes type;
    zebra.jsonio.check_json_data first refuses what it would crash on or copy in unchecked (deep
    nesting, bytes that are not UTF-8). What pyarrow might read other than the strict reader is
    looked for batch by batch: a float column holding NaN or Infinity (not JSON: the strict reader
    refuses it) or a whole number (pyarrow reads a huge integer, or `5` beside `5.5`, as a float),
    a nested column (pyarrow fills the keys a nested object lacks), rows of `{}`. At the first doubt
    the iteration ends with `complete` False, and _read_chunks reads on strictly from there, so
    every error message is the strict reader's. Text, integers, booleans and null are the same."""

    BLOCK = 16 << 20  # bytes pyarrow parses at once

    def __init__(self, path: Path, rows: int, arrow: frozenset[str] = frozenset()):
        self.path, self.rows, self.arrow = path, rows, arrow
        self.complete = False

    def __iter__(self) -> Iterator[pd.DataFrame]:
        import pyarrow.json as pj

        from zebra.jsonio import ReadError, check_json_data

        try:
            with open(self.path, "rb") as fh:
                head = fh.read(1 << 16)
            if not head.lstrip(b" \t\r\n").startswith(b"{"):  # a list, a BOM, blank: the strict reader's case
                return
            check_json_data(self.path)
            reader = pj.open_json(self.path, read_options=pj.ReadOptions(block_size=self.BLOCK, use_threads=False))
        except (ReadError, OSError, pa.ArrowException):
            return
        held: list[pa.RecordBatch] = []
        count = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowException:
                return
            if not self._exact(batch):
                return
            held.append(batch)
            count += len(batch)
            while count >= self.rows:
                table = pa.Table.from_batches(held)
                yield self._frame(table.slice(0, self.rows))
                rest = table.slice(self.rows)
                held, count = rest.to_batches(), len(rest)
        if count:
            yield self._frame(pa.Table.from_batches(held))
        self.complete = True

    def _exact(self, batch: pa.RecordBatch) -> bool:
        if not batch.num_columns:  # rows of `{}`: a table without columns cannot be cut into chunks
            return False
        for field, column in zip(batch.schema, batch.columns):
            kind = field.type
            if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
                continue
            if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
                continue
            if pa.types.is_floating(kind) and pc.all(pc.is_finite(column)).as_py() is not False \
                    and not pc.any(pc.equal(pc.floor(column), column)).as_py():
                continue  # no NaN or Infinity, and no whole number (`5` and a huge integer are ints in JSON)
            return False
        return True

    def _frame(self, table: pa.Table) -> pd.DataFrame:
        columns, kept = {}, {}
        for name, column in zip(table.column_names, table.columns):
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                if name in self.arrow:  # set below, once the object columns are framed; None holds its place
                    kept[name] = pd.arrays.ArrowExtensionArray(column)
                columns[name] = None if name in self.arrow else column.to_numpy()  # Python str, None for null
            else:
                columns[name] = np.array(column.to_pylist() + [None], dtype=object)[:-1]  # ints stay ints
        frame = pd.DataFrame(columns, dtype=object, index=pd.RangeIndex(len(table)))
        for name, values in kept.items():
            frame[name] = values
        return frame


class _Fields:
    """The fields of one file read in chunks, checked as `_field` checks a whole file. A chunk
    without a field has None there. A field no chunk has is `_field`'s error, said once the file
    is read (`finish`), or at once for a field no row may lack (the prompt, the model); so is a
    field path that finds a value in no row of the file."""

    def __init__(self, where: str):
        self.where, self.columns = where, None
        self.flags: dict[str, str] = {}  # field -> its flag, for the messages
        self.seen: set[str] = set()  # fields some chunk has (a path: its first step)
        self.found: set[str] = set()  # fields with a value in some row
        self.first: dict[str, str] = {}  # a path's first step in the first row, for its message

    def get(self, df: pd.DataFrame, flag: str, name: str, nullable: bool = True) -> pd.Series:
        if self.columns is None:
            self.columns = list(df.columns)
        self.flags.setdefault(name, flag)
        head, *steps = name.split(".")
        if name in df.columns:
            self.seen.add(name)
            self.found.add(name)
            return df[name]
        if steps and head in df.columns:
            self.seen.add(name)
            self.first.setdefault(name, str(_values(df[head].iloc[:1])[0])[:120] if len(df) else "")
            values = pd.Series([_follow(v, steps) for v in _values(df[head])], index=df.index, dtype=object)
            if name not in self.found and values.notna().any():
                self.found.add(name)
            return values
        if not nullable and name not in self.seen:
            raise PoolError(f"{self.where}: no field {name!r} (set {flag}); its fields are {self.columns}")
        return pd.Series([None] * len(df), index=df.index, dtype=object)

    def finish(self) -> None:
        for name, flag in self.flags.items():
            if name not in self.seen:
                raise PoolError(f"{self.where}: no field {name!r} (set {flag}); its fields are {self.columns or []}")
            if name not in self.found:
                raise PoolError(f"{self.where}: the field path {name!r} ({flag}) finds a value in no row; "
                                f"the first row's {name.split('.')[0]!r} is {self.first.get(name)}")


def _values(values: pd.Series) -> list:
    """A column's values as Python's, None for null (a column left in Arrow has pd.NA there)."""
    text = _arrow_text(values)
    return values.tolist() if text is None else text.to_pylist()


def _follow(value: Any, steps: list[str]) -> Any:
    """One value's field path: a key of an object, or a 0-based index of a list; None where it ends."""
    for step in steps:
        if isinstance(value, dict):
            value = value.get(step)
        elif isinstance(value, (list, tuple, np.ndarray)) and step.isdigit():
            value = value[int(step)] if int(step) < len(value) else None
        else:
            return None
        if value is None:
            return None
    return value


def _field(df: pd.DataFrame, where: str, flag: str, name: str, required: bool = True) -> pd.Series | None:
    """The values of field `name`: a column, or a field path into nested values when the file has no
    column of that name (`choices.0.turns.0.content`: key `choices`, its first item, ... as MT-bench and
    Arena-Hard keep an answer). A row where the path ends early has None. A missing field, or a path
    that finds a value in no row (a misspelt step), is an error naming the flag; None if not `required`."""
    if name in df.columns:
        return df[name]
    head, *steps = name.split(".")
    if steps and head in df.columns:
        values = pd.Series([_follow(v, steps) for v in _values(df[head])], index=df.index, dtype=object)
        if len(values) and values.isna().all():
            first = str(_values(df[head].iloc[:1])[0])[:120]
            raise PoolError(f"{where}: the field path {name!r} ({flag}) finds a value in no row; "
                            f"the first row's {head!r} is {first}")
        return values
    if not required:
        return None
    raise PoolError(f"{where}: no field {name!r} (set {flag}); its fields are {list(df.columns)}")


def _ids(values: pd.Series, where: str, what: str, rows: np.ndarray) -> np.ndarray:
    """Prompt ids as text: a string, or an integer (MT-bench's 81..160; 81.0 from a Parquet column with
    nulls is 81); anything else (null, 1.5, an object) is an error naming its row."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values.to_numpy(dtype=object)):
        if isinstance(v, (float, np.floating)) and np.isfinite(v) and float(v).is_integer():
            v = int(v)
        if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            out[i] = str(int(v))
        elif isinstance(v, str) and v.strip():
            out[i] = v
        else:
            raise PoolError(f"{where}: row {rows[i]}: {what} must be a string or an integer id, got {str(v)[:60]!r}")
    return out


def _arrow_text(values: pd.Series) -> pa.ChunkedArray | None:
    """The Arrow text behind `values` when pyarrow read it (_read_chunks's `arrow`), else None."""
    kind = getattr(values.dtype, "pyarrow_dtype", None)
    if kind is None or not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return None
    return values.array.__arrow_array__()


def _strings(values: pd.Series, where: str, what: str, rows: np.ndarray, allow_null: bool = False
             ) -> np.ndarray | pd.arrays.ArrowExtensionArray:
    """`values` as an object array of str, or as Arrow text when pyarrow read them (checked on the
    distinct values: a prompt's text is on each of its responses); a bad row is an error naming it
    (1-based)."""
    if not allow_null and (text := _arrow_text(values)) is not None:
        bad = pc.is_null(text)
        if blank := [v for v in pc.unique(text).drop_null().to_pylist() if not v.strip()]:
            bad = pc.or_(bad, pc.is_in(text, value_set=pa.array(blank, text.type)))
        if not pc.any(bad).as_py():
            return pd.arrays.ArrowExtensionArray(text.cast(pa.string()))
        # else the row-by-row check below names the first bad row, as for any other column
    arr = np.array(_values(values) + [None], dtype=object)[:-1]
    bad = np.array([(v is not None or not allow_null) and not (isinstance(v, str) and (allow_null or v.strip()))
                    for v in arr], dtype=bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise PoolError(f"{where}: row {rows[i]}: {what} must be a non-empty string, got {arr[i]!r}")
    return arr


def _response_texts(values: pd.Series, where: str, what: str, rows: np.ndarray) -> pd.arrays.ArrowExtensionArray:
    """The response field as Arrow text, "" for null (a model may answer nothing). Text that
    pyarrow read (_read_chunks's `arrow`) is text already: it is not checked value by value."""
    if isinstance(values.dtype, pd.ArrowDtype) and (pa.types.is_string(values.dtype.pyarrow_dtype)
                                                    or pa.types.is_large_string(values.dtype.pyarrow_dtype)):
        texts = pc.fill_null(values.array.__arrow_array__(), "").cast(pa.string())
    else:
        texts = pa.array(["" if v is None else v for v in _strings(values, where, what, rows, allow_null=True)],
                         pa.string())
    return pd.arrays.ArrowExtensionArray(texts)


def _sources(values: pd.Series, where: str, what: str, rows: np.ndarray) -> list | pd.arrays.ArrowExtensionArray:
    """The source field: text or null; anything else (5, an object) is an error naming its row,
    since the source decides which prompts --drop-sources drops."""
    if (text := _arrow_text(values)) is not None:
        return pd.arrays.ArrowExtensionArray(text.cast(pa.string()))
    out = values.tolist()
    for i, v in enumerate(out):
        if v is not None and not isinstance(v, str) and not (isinstance(v, float) and np.isnan(v)):
            raise PoolError(f"{where}: row {rows[i]}: {what} must be a string or null, got {str(v)[:60]}")
    return [v if isinstance(v, str) else None for v in out]


def _numbers(values: pd.Series, where: str, what: str, rows: np.ndarray) -> np.ndarray:
    """Floats, NaN for null/empty; a non-number (or inf) is an error naming its row."""
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values.to_numpy(dtype=object)):
        if v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, float) and np.isnan(v)):
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            raise PoolError(f"{where}: row {rows[i]}: {what} {str(v)[:60]!r} is not a number") from None
        except OverflowError:  # an integer beyond any float
            raise PoolError(f"{where}: row {rows[i]}: {what} {str(v)[:60]} is not a finite number") from None
        if isinstance(v, bool) or not np.isfinite(out[i]):
            raise PoolError(f"{where}: row {rows[i]}: {what} {v!r} is not a finite number")
    return out


def read_model_names(path: str | Path) -> dict[str, str]:
    """pool name -> behaviour-table name from a two-column CSV with a header row."""
    path = Path(path)
    reader = csv.reader(io.StringIO(read_text(path, "--model-names file"), newline=""))
    next(reader, None)  # the header
    mapping: dict[str, str] = {}
    line_of: dict[str, int] = {}
    for row in reader:
        line = reader.line_num  # the file line where the row ends (a quoted name may span lines)
        if not any(c.strip() for c in row):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise PoolError(f"{path}:{line}: expected two non-empty names (pool name, behaviour-table name), got {row}")
        pool, table = row[0].strip(), row[1].strip()
        if pool in mapping:
            raise PoolError(f"{path}:{line}: {pool!r} is mapped twice ({mapping[pool]!r} on line {line_of[pool]} "
                            f"and {table!r})")
        mapping[pool] = table
        line_of[pool] = line
    return mapping


_VERDICT = re.compile(r"^\s*\[*\s*([AB])\s*(>>|>|=|<<|<)\s*([AB])\s*\]*\s*$")


def verdict_value(text: str) -> float | None:
    """A pairwise verdict string (Arena-Hard's and MT-bench's `A>>B`, `A>B`, `A=B`, `B>A`, `B>>A`,
    brackets or `<` allowed) as a pairwise value, A being the reference: 1 = the reference much
    better, 1.25 better, 1.5 a tie, 1.75 the response better, 2 much better; None if not a verdict.
    Arena-Hard's first game (`games.0.score`) has its baseline as A. The steps are ours: only their
    order counts in the agreement study (and the --min-gap cut, in these units)."""
    found = _VERDICT.match(text)
    if not found or found[1] == found[3]:
        return None
    left, op, right = found.groups()
    if op == "=":
        return 1.5
    winner = left if op.startswith(">") else right
    step = 0.5 if len(op) == 2 else 0.25
    return 1.5 + step if winner == "B" else 1.5 - step


def _pairwise_values(values: pd.Series) -> pd.Series:
    """Verdict strings as their values (verdict_value); every other value as it is."""
    out = values.to_numpy(dtype=object).copy()
    for i, v in enumerate(out):
        if isinstance(v, str) and (found := verdict_value(v)) is not None:
            out[i] = found
    return pd.Series(out, index=values.index, dtype=object)


def data_files(path: Path, what: str) -> list[Path]:
    """A file, or a folder's .json/.jsonl/.parquet/.csv files (Arena-Hard keeps one per model)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _EXTS and p.is_file())
        if not files:
            raise PoolError(f"{path}: {what} folder with no .json/.jsonl/.parquet/.csv files")
        return files
    if not path.is_file():
        raise PoolError(f"{path}: no such file ({what})")
    return [path]


@dataclass
class Prompts:
    """A prompts file keyed by id (--prompts): id -> text and id -> source (None where it has none)."""

    text: dict[str, str]
    source: dict[str, str | None]
    has_source: bool


def read_prompts(path: str | Path, options: PoolOptions, report: dict) -> Prompts:
    """The prompts of --prompts, one row per id. An exact copy of a row is dropped and counted; one id
    with two texts, or two ids with one text (the pairs are keyed by the text), is an error naming rows."""
    path = Path(path)
    df = _read_rows(path)
    where = str(path)
    if df.empty:
        raise PoolError(f"{where}: no rows")
    pid, text, src = options.get("prompt_id_field"), options.get("prompt_field"), options.get("source_field")
    if text not in df.columns and text.split(".")[0] not in df.columns and "turns" in df.columns:
        raise PoolError(f"{where}: no field {text!r} (set --prompt-field); its fields are {list(df.columns)}: "
                        "MT-bench and Arena-Hard keep the prompt as --prompt-field turns.0.content")
    rows = np.arange(len(df)) + 1
    ids = _ids(_field(df, where, "--prompt-id-field", pid), where, pid, rows)
    texts = _strings(_field(df, where, "--prompt-field", text), where, text, rows)
    found = _field(df, where, "--source-field", src, required=False)
    sources = _sources(found, where, src, rows) if found is not None else [None] * len(df)
    out = Prompts({}, {}, found is not None)
    row_of: dict[str, int] = {}
    id_of: dict[str, str] = {}
    copies = 0
    for i, (key, body, source) in enumerate(zip(ids.tolist(), texts.tolist(), sources)):
        if key in out.text:
            if (out.text[key], out.source[key]) != (body, source):
                raise PoolError(f"{where}: rows {[row_of[key], int(rows[i])]}: {pid} {key!r} has two different "
                                f"prompts (or sources); keep one")
            copies += 1
            continue
        if body in id_of:
            raise PoolError(f"{where}: rows {[row_of[id_of[body]], int(rows[i])]}: {pid}s {id_of[body]!r} and {key!r} "
                            f"have one prompt text ({body[:60]!r}); pairs are keyed by the text: keep one")
        out.text[key], out.source[key], row_of[key], id_of[body] = body, source, int(rows[i]), key
    report["prompt_rows"] = int(len(df))
    report["prompt_duplicate_copies"] = copies
    return out


def _rows_where(two: pd.DataFrame) -> str:
    """`FILE: rows [a, b]`, or `FILE1 row a and FILE2 row b` for two rows of two files."""
    files, rows = two["file"].tolist(), [int(r) for r in two["row"]]
    return f"{files[0]}: rows {rows}" if files[0] == files[1] else f"{files[0]} row {rows[0]} and {files[1]} row {rows[1]}"


def _first_clash(df: pd.DataFrame, clash: pd.Series, prompt: str = "instruction") -> pd.DataFrame:
    """The first two rows that clash on (prompt, model) with each other, not merely the
    first two rows that clash with some row (those can be on different prompts)."""
    first = df[clash].iloc[0]
    same = clash & (df[prompt] == first[prompt]) & (df["model"] == first["model"])
    return df[same].iloc[:2]


# --------------------------------------------------------------------------- the draw


def draw_keys(seed: int, prompts: np.ndarray, models: np.ndarray) -> np.ndarray:
    """A uniform key in [0, 1) per (seed, prompt, model), from sha256: nothing else moves it.

    key = first 7 bytes of sha256(f"{seed}\\0{prompt}\\0{model}"), big-endian, / 2**56."""
    names: dict[Any, bytes] = {}  # each model name encoded once
    digests: list[bytes] = []
    last, prefix = None, None
    for p, m in zip(prompts.tolist(), models.tolist()):
        if p is not last:  # one prompt's responses usually sit together: hash its text once
            prefix, last = hashlib.sha256(f"{seed}\x00{p}\x00".encode("utf-8")), p
        digest = prefix.copy()
        name = names.get(m)
        if name is None:
            name = names[m] = f"{m}".encode("utf-8")
        digest.update(name)
        digests.append(digest.digest())
    # the 7-byte prefixes read as numbers all at once: the top 56 bits of each digest's first 8 bytes
    first8 = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(-1, 32)[:, :8].copy().view(">u8").ravel()
    return (first8 >> np.uint64(8)).astype(np.float64) / float(1 << 56)


def _check_options(options: PoolOptions) -> None:
    if options.format not in FORMATS:
        raise PoolError(f"--format must be one of {', '.join(FORMATS)}, not {options.format!r}")
    k = options.models_per_prompt
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 2):
        raise PoolError(f"--models-per-prompt must be an integer of at least 2 (a pair needs two), not {k!r}")
    if options.score_field is not None and options.judgments is not None:
        raise PoolError("give either --score-field or --judgments, not both: which label would win?")


# --------------------------------------------------------------------------- the pool

CHUNK_ROWS = 16384  # rows read and checked at once (a file's chunk): the bound on rows held while reading
PART_PROMPTS = 4096  # prompts per on-disk partition: the bound on prompts held while converting
_CACHE_VERSION = 2  # bump when the conversion changes: every pool is converted again
_POOL_SCHEMA = pa.schema([("instruction", pa.string()), ("pool_model", pa.string()), ("model", pa.string()),
                          ("response", pa.string()), ("source", pa.string()), ("label", pa.float64()),
                          ("file", pa.int32()), ("row", pa.int64()), ("ordinal", pa.int64())])
_JUDGED_SCHEMA = pa.schema([("instruction", pa.string()), ("key", pa.string()), ("model", pa.string()),
                            ("label", pa.float64()), ("file", pa.int32()), ("row", pa.int64()), ("ordinal", pa.int64())])
# the report's keys in the order a meta shows them
_REPORT_ORDER = ("files", "options", "prompt_rows", "prompt_duplicate_copies", "rows", "responses_without_prompt",
                 "prompts_without_responses", "unmapped_model_names", "duplicate_row_copies", "judgment_reference",
                 "judgment_draws_coded_0", "judgment_draws", "judgment_rows", "judgment_duplicate_copies",
                 "judge_failures", "unmatched_judgments_skipped", "dropped_unjudged", "dropped_by_draw")


def load_pool(source: str | Path, options: PoolOptions | None = None, limit: int | None = None,
              chunk_rows: int = CHUNK_ROWS, part_prompts: int = PART_PROMPTS) -> Pool:
    """Read a long-format pool; return it in the UltraFeedback schema and a report of counts.

    `limit` keeps the first N prompts (in order of first appearance) after the draw, which is
    per prompt, so the kept prompts' responses are the same with or without it.

    The converted pool is cached, as `datasets` caches UltraFeedback rows, in a folder keyed on
    the input files' bytes (zebra.data's content key) and paths and on the options; a later run
    reads the Arrow file (memory-mapped) and the report instead of converting again. Converting
    holds at most `chunk_rows` rows of a file, then `part_prompts` prompts, at a time (`convert`).
    """
    import datasets

    options = options or PoolOptions()
    files, options = resolve(source, options)
    _check_options(options)
    cache = _cache_folder(files, options)
    if not (cache / "pool.arrow").is_file():
        _convert_into(cache, files, options, chunk_rows, part_prompts)
    report = read_json(cache / "report.json", "pool cache report")
    ds = datasets.Dataset.from_file(str(cache / "pool.arrow"))
    if limit is not None and limit < len(ds):
        ds = ds.select(range(limit))
    labelled = bool(options.judgments or options.score_field)
    report.update(_summary(ds.with_format("arrow")[:], labelled))
    _log(source, report, labelled)
    return Pool(ds, report)


def _inputs(files: list[Path], options: PoolOptions) -> list[Path]:
    """Every file the conversion reads."""
    extra = []
    for flag, name in (("--model-names", options.model_names), ("--prompts", options.prompts)):
        if name:
            if problem := not_a_file(name, f"{flag} file"):
                raise PoolError(problem)
            extra.append(Path(name))
    return [*files, *extra, *(data_files(Path(options.judgments), "--judgments") if options.judgments else [])]


def _cache_folder(files: list[Path], options: PoolOptions) -> Path:
    from zebra.data import _content_cache

    inputs = _inputs(files, options)
    key = json.dumps([_CACHE_VERSION, [str(f) for f in inputs], asdict(options)], sort_keys=True, default=str)
    return Path(_content_cache(inputs)) / f"zebra-pool-v{_CACHE_VERSION}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"


def _convert_into(cache: Path, files: list[Path], options: PoolOptions, chunk_rows: int, part_prompts: int) -> None:
    """Convert the pool into `cache` (pool.arrow, report.json), whole or not at all: it is built in a
    temporary folder beside it and renamed."""
    from zebra.records import _alive  # the one liveness test of the package's temporary files

    cache.parent.mkdir(parents=True, exist_ok=True)
    for stale in cache.parent.glob(".zebra-pool-*"):  # left by a run that was killed (SIGKILL cannot clean up)
        pid = stale.name.split("-")[-2]
        if stale.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f".{cache.name}-{os.getpid()}-", dir=cache.parent))
    try:
        report = convert(files, options, work / "pool.arrow", work / "spill", chunk_rows, part_prompts)
        (work / "report.json").write_text(json.dumps(report), encoding="utf-8")
        try:
            work.rename(cache)
        except OSError:  # another run converted the same pool meanwhile: keep its folder
            if not (cache / "pool.arrow").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _log(source, report: dict, labelled: bool) -> None:
    """What a conversion found, said on every load (a cached one too)."""
    unmapped = report.get("unmapped_model_names") or {}
    if unmapped:
        log.info("pool: %d model name(s) not in --model-names, kept as spelled: %s", len(unmapped),
                 ", ".join(f"{m} ({c})" for m, c in unmapped.items()))
    if report.get("responses_without_prompt"):
        log.warning("pool: %d response(s) whose prompt id --prompts does not hold dropped (e.g. %s)",
                    report["responses_without_prompt"], ", ".join(map(repr, report.get("ids_without_prompt", []))))
    if report.get("unmatched_judgments_skipped"):
        log.warning("pool: %d judgment(s) of responses the pool does not hold skipped (--skip-unmatched-judgments)",
                    report["unmatched_judgments_skipped"])
    log.info("pool %s: %d prompts, %d responses%s", source, report["prompts"], report["responses"],
             f", {report['labelled_responses']} labelled" if labelled else "")


def _summary(table: pa.Table, labelled: bool) -> dict:
    """prompts, responses, labelled responses and responses per model (most first; ties in order of
    first appearance, as Counter.most_common) of UltraFeedback-schema rows. Reads the completions'
    model and score children only: the responses stay on disk."""
    chunks = [c.flatten() for c in table.column("completions").chunks]
    models = pa.chunked_array([c.field("model") for c in chunks], pa.string())
    responses = len(models)
    labelled_count = sum(len(c) - c.field("overall_score").null_count for c in chunks) if labelled and responses else 0
    counts: dict[str, int] = {}
    if responses:
        codes = pc.dictionary_encode(models)
        indices = np.concatenate([chunk.indices.to_numpy(zero_copy_only=False) for chunk in codes.chunks])
        names = codes.chunks[0].dictionary.to_pylist()  # one dictionary for every chunk, in order of first appearance
        found = np.bincount(indices, minlength=len(names))
        for i in sorted(range(len(found)), key=lambda i: -found[i]):  # stable: first appearance breaks ties
            if found[i]:
                counts[names[i]] = int(found[i])
    return {"prompts": table.num_rows, "responses": responses, "labelled_responses": int(labelled_count),
            "models": counts}


class _Spill:
    """Rows written to disk by prompt: a prompt's ordinal is its order of first appearance, and
    partition p holds the prompts with ordinals [p·part_prompts, (p+1)·part_prompts), so reading
    the partitions in order gives the prompts in order, each whole (its responses, its judgments)."""

    def __init__(self, folder: Path, part_prompts: int):
        folder.mkdir()
        self.folder, self.part_prompts = folder, part_prompts
        self.ordinal: dict[bytes, int] = {}
        self.writers: dict[tuple[str, int], pa.ipc.RecordBatchStreamWriter] = {}

    def ordinals(self, texts: pd.Series | np.ndarray, add: bool = True) -> np.ndarray:
        """Each text's prompt ordinal (new ones numbered in order, when `add`; else -1). Only the
        distinct texts are hashed (a prompt has several responses), Arrow text from its UTF-8
        bytes without a Python string between."""
        if isinstance(texts, pd.Series) and (text := _arrow_text(texts)) is not None:
            coded = pc.dictionary_encode(text.combine_chunks())
            codes = pc.fill_null(coded.indices, -1).to_numpy()
            kind = pa.binary() if pa.types.is_string(coded.dictionary.type) else pa.large_binary()
            raw = coded.dictionary.cast(kind).to_pylist()
        else:
            codes, uniques = pd.factorize(texts)
            raw = [t.encode("utf-8") for t in uniques.tolist()]
        blake2b, ordinal = hashlib.blake2b, self.ordinal
        found = np.empty(len(raw), dtype=np.int64)
        for i, key in enumerate([blake2b(b, digest_size=16).digest() for b in raw]):
            number = ordinal.get(key)
            if number is None:
                number = -1 if not add else ordinal.setdefault(key, len(ordinal))
            found[i] = number
        codes = np.asarray(codes)
        # a missing text (factorize's -1) has no ordinal: found[-1] would be the last prompt's
        return np.where(codes >= 0, found[codes], -1) if len(codes) else np.zeros(0, dtype=np.int64)

    def write(self, kind: str, frame: pd.DataFrame, schema: pa.Schema) -> None:
        part = frame["ordinal"].to_numpy() // self.part_prompts
        if not len(part):
            return
        table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)  # once; cut in Arrow
        if not (np.diff(part) >= 0).all():  # in partition order, so each is one slice, not a copy
            order = np.argsort(part, kind="stable")
            part, table = part[order], table.take(pa.array(order))
        cuts = np.flatnonzero(np.diff(part)) + 1
        for start, stop in zip([0, *cuts.tolist()], [*cuts.tolist(), len(part)]):
            p = int(part[start])
            writer = self.writers.get((kind, p))
            if writer is None:
                writer = self.writers[(kind, p)] = pa.ipc.new_stream(str(self.folder / f"{kind}-{p}.arrow"), schema)
            writer.write_table(table.slice(start, stop - start))

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()

    def parts(self) -> int:
        return -(-len(self.ordinal) // self.part_prompts)

    def read(self, kind: str, p: int, files: list[str]) -> pd.DataFrame | None:
        table = self._table(kind, p)
        return None if table is None else _texts(table, files)

    def read_pool(self, p: int, files: list[str]) -> _Part:
        return _Part(self._table("pool", p), files)  # every partition holds responses: the prompts were numbered from them

    def _table(self, kind: str, p: int) -> pa.Table | None:
        path = self.folder / f"{kind}-{p}.arrow"
        if not path.is_file():
            return None
        with pa.OSFile(str(path)) as fh:  # plain reads, not a memory map (whose pages would stay resident)
            return pa.ipc.open_stream(fh).read_all().combine_chunks()


def _texts(table: pa.Table, files: list[str]) -> pd.DataFrame:
    """Spilled rows as Python objects (None for null), with their files' names: for judgments,
    which carry no responses, and for the rows a message names."""
    frame = table.to_pandas().astype(object)
    frame = frame.where(frame.notna(), None)
    frame["label"] = frame["label"].astype(float)
    frame["ordinal"] = frame["ordinal"].astype(np.int64)
    frame["file"] = [files[i] for i in frame["file"].tolist()]
    return frame


def _codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Dictionary codes of a column (equal values, equal codes; -1 for null) and the values."""
    found = pc.dictionary_encode(column)
    if isinstance(found, pa.ChunkedArray):
        found = found.combine_chunks()
    return pc.fill_null(found.indices, -1).to_numpy().astype(np.int64), found.dictionary


class _Part:
    """One partition's responses for the per-prompt rules: `rows` holds integer codes in place of
    the texts (ordinal = the prompt; model and source: equal values, equal codes, -1 for a null
    source; response: equal codes for equal texts of one model on one prompt, the only rows whose
    texts a rule compares; `at` = the row in `table`), so every rule compares integers and no
    response or prompt becomes a Python string; `table` holds the texts, for the output and the
    messages (`texts`)."""

    def __init__(self, table: pa.Table, files: list[str]):
        self.table, self.files = table, files
        model, self.models = _codes(table.column("model"))
        source, self.sources = _codes(table.column("source"))
        ordinal, at = table.column("ordinal").to_numpy(), np.arange(len(table))
        self.rows = pd.DataFrame({"ordinal": ordinal, "model": model, "response": -1 - at, "source": source,
                                  "label": table.column("label").to_numpy(zero_copy_only=False),
                                  "row": table.column("row").to_numpy(), "at": at})
        # Only a model's second row on a prompt can be a copy: the other responses keep a code of their
        # own (-1 - at), and the texts are compared (hashed) for those rows alone, usually none.
        twice = self.rows.duplicated(["ordinal", "model"], keep=False).to_numpy()
        if twice.any():
            self.rows.loc[twice, "response"], _ = _codes(table.column("response").take(pa.array(np.flatnonzero(twice))))

    def texts(self, rows: pd.DataFrame) -> pd.DataFrame:
        """`rows` (some of self.rows) with their texts, for a message: a few rows, never the bulk."""
        out = _texts(self.table.take(pa.array(rows["at"].to_numpy(), pa.int64())), self.files)
        out["label"] = rows["label"].to_numpy()
        out.index = rows.index
        return out

    def model_names(self, codes: np.ndarray) -> np.ndarray:
        """The model names of `codes` (self.rows' model codes), as Python strings: for the joins
        with judgments and the draw, which key on names."""
        return np.array(self.models.to_pylist() + [None], dtype=object)[codes]


def convert(files: list[Path], options: PoolOptions, output: Path, spill: Path, chunk_rows: int = CHUNK_ROWS,
            part_prompts: int = PART_PROMPTS, stats: dict | None = None) -> dict:
    """Write the pool's UltraFeedback-schema rows to `output` (an Arrow stream) and return the report.

    Two passes, memory bounded by the rows held at once, not by the pool: (1) each file is read
    `chunk_rows` records at a time, checked, and spilled to disk by prompt (_Spill), then the
    judgments likewise; (2) each partition of `part_prompts` prompts is read back and gets every
    per-prompt rule of the module docstring (copies, clashes, labels, --judged-only, the draw), in
    order of first appearance. The rules are per prompt, so the rows are those of one pass over the
    whole pool. `stats`, when given, receives the largest chunk and partition held (for tests)."""
    inst, model, resp = options.get("instruction_field"), options.get("model_field"), options.get("response_field")
    src, score, pid = options.get("source_field"), options.score_field, options.get("prompt_id_field")
    names = read_model_names(options.model_names) if options.model_names else {}
    report: dict[str, Any] = {"files": [str(f) for f in files], "options": asdict(options)}
    stats = stats if stats is not None else {}
    stats.update(chunk_rows=0, part_prompts=0, part_rows=0)
    prompts = read_prompts(options.prompts, options, report) if options.prompts else None
    where_of = [str(f) for f in files]
    spilled = _Spill(spill, part_prompts)
    unmapped: Counter = Counter()
    seen_ids: set[str] = set()
    missing_ids: Counter = Counter()
    report["rows"] = 0
    # the responses are only passed on (to the spill, then the output): their text need not become Python's
    # nor need the prompts' (unless they are ids into --prompts), the models' and the sources', checked in Arrow
    in_arrow = frozenset({resp, model, src, *([inst] if prompts is None else [])} - {score, *([pid] if prompts else [])})
    try:
        for index, f in enumerate(files):
            where = str(f)
            fields = _Fields(where)
            count = 0
            for df, start in _read_chunks(f, chunk_rows, arrow=in_arrow):
                stats["chunk_rows"] = max(stats["chunk_rows"], len(df))
                rows = np.arange(len(df)) + start
                if prompts is None:
                    keys = _strings(fields.get(df, "--instruction-field", inst, nullable=False), where, inst, rows)
                else:  # the prompt is a key into --prompts: the text after the join below
                    keys = _ids(fields.get(df, "--prompt-id-field", pid, nullable=False), where, pid, rows)
                pool_model = _strings(fields.get(df, "--model-field", model, nullable=False), where, model, rows)
                response = _response_texts(fields.get(df, "--response-field", resp), where, resp, rows)
                labels = _numbers(fields.get(df, "--score-field", score), where, score, rows) if score else np.nan
                found = _field(df, where, "--source-field", src, required=False)
                part = pd.DataFrame({
                    "instruction": keys, "pool_model": pool_model, "response": response,
                    "source": _sources(found, where, src, rows) if found is not None else None,
                    "label": labels, "file": index, "row": rows})
                count += len(part)
                if prompts is not None:
                    part = _join_chunk(part, prompts, seen_ids, missing_ids)
                codes, spelled = pd.factorize(part["pool_model"])  # a few models, many rows: map each name once
                spelled = list(spelled)
                part["model"] = pd.arrays.ArrowExtensionArray(
                    pa.array([names.get(m, m) for m in spelled], pa.string()).take(pa.array(codes)))
                if names:
                    unmapped.update({m: int(n) for m, n in zip(spelled, np.bincount(codes, minlength=len(spelled)))
                                     if m not in names})
                part["ordinal"] = spilled.ordinals(part["instruction"])
                spilled.write("pool", part, _POOL_SCHEMA)
            if not count:
                raise PoolError(f"{where}: no rows")
            fields.finish()
            report["rows"] += count
        if prompts is not None:
            report["responses_without_prompt"] = sum(missing_ids.values())
            report["ids_without_prompt"] = list(missing_ids)[:3]
            if not spilled.ordinal:
                raise PoolError(f"{where_of[0]}: no response's prompt id is in --prompts (e.g. "
                                f"{next(iter(missing_ids), None)!r}; --prompts has e.g. {next(iter(prompts.text))!r}); "
                                "is --prompt-id-field right?")
            report["prompts_without_responses"] = len(set(prompts.text) - seen_ids)
        report["unmapped_model_names"] = dict(unmapped.most_common())
        if options.judgments:
            _spill_judgments(Path(options.judgments), options, names, prompts, spilled, report, chunk_rows)
        spilled.close()
        _convert_parts(spilled, options, names, where_of, report, output, stats)
    finally:
        spilled.close()
        shutil.rmtree(spill, ignore_errors=True)
    return {k: report[k] for k in (*_REPORT_ORDER, *report) if k in report}


def _join_chunk(part: pd.DataFrame, prompts: Prompts, seen: set, missing: Counter) -> pd.DataFrame:
    """Prompt ids → prompt texts (and the prompts file's sources, when it has the source field).
    Ids on one side only are counted, not an error: a pool of some models' answers to part of a
    benchmark is usual (responses whose id --prompts lacks are dropped)."""
    ids = part["instruction"]
    known = ids.isin(prompts.text.keys()).to_numpy()
    missing.update(ids[~known].tolist())
    part = part[known].reset_index(drop=True)
    seen.update(part["instruction"].tolist())
    if prompts.has_source:
        part["source"] = [prompts.source[k] for k in part["instruction"]]
    part["instruction"] = part["instruction"].map(prompts.text)
    return part


def _spill_judgments(path: Path, options: PoolOptions, names: dict[str, str], prompts: Prompts | None,
                     spilled: _Spill, report: dict, chunk_rows: int) -> None:
    """Read the judgments a chunk at a time, check them and spill each to its prompt's partition.
    A judgment of a prompt the pool does not hold is an error, or with skip_unmatched_judgments
    counted (they are held in memory, checked for copies and clashes like the others)."""
    kind = options.get("judgment_kind")
    if kind not in JUDGMENT_KINDS:
        raise PoolError(f"--judgment-kind must be one of {', '.join(JUDGMENT_KINDS)}, not {kind!r}")
    inst = options.judgment_instruction_field or options.get("prompt_id_field" if prompts else "instruction_field")
    model, value = options.get("judgment_model_field"), options.get("judgment_value_field")
    ref_field = options.get("judgment_reference_field")
    judgment_files = data_files(path, "--judgments")
    refs, has_ref, total, orphans = set(), False, 0, []
    draws0 = draws = 0
    for index, f in enumerate(judgment_files):
        where = str(f)
        fields = _Fields(where)
        for df, start in _read_chunks(f, chunk_rows):
            rows = np.arange(len(df)) + start
            key_values = fields.get(df, "--judgment-instruction-field", inst, nullable=False)
            models = fields.get(df, "--judgment-model-field", model, nullable=False)
            values = fields.get(df, "--judgment-value-field", value)
            keys = _ids(key_values, where, inst, rows) if prompts else _strings(key_values, where, inst, rows)
            out = pd.DataFrame({
                "instruction": [prompts.text.get(k) for k in keys] if prompts else keys, "key": keys,
                "model": [names.get(m, m) for m in _strings(models, where, model, rows)],
                "label": _numbers(_pairwise_values(values) if kind == "pairwise" else values, where, value, rows),
                "file": index, "row": rows})
            if kind == "pairwise":
                if ref_field in df.columns:
                    has_ref = True
                    refs |= {str(r) for r in df[ref_field].tolist()}
                lab = out["label"].to_numpy()
                draw0 = lab == 0  # AlpacaEval's older code for a draw (alpaca_eval.metrics.pairwise_to_winrate)
                lab = np.where(draw0, 1.5, lab)
                bad = ~np.isnan(lab) & ((lab < 1) | (lab > 2))
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise PoolError(f"{where}: row {out['row'].iloc[i]}: {value} {lab[i]} is outside [1, 2] (1 = "
                                    "reference better, 2 = response better); use --judgment-kind score for plain scores")
                out["label"] = lab
                draws0 += int(draw0.sum())
                draws += int((lab == 1.5).sum())
            total += len(out)
            texts = out["instruction"].to_numpy(dtype=object)
            known = np.array([isinstance(t, str) for t in texts], dtype=bool)  # an id --prompts lacks: None or NaN
            ordinals = np.full(len(out), -1, dtype=np.int64)
            if known.any():
                ordinals[known] = spilled.ordinals(texts[known], add=False)
            out["ordinal"] = ordinals
            if (ordinals < 0).any():
                stray = out[ordinals < 0]
                if not options.skip_unmatched_judgments:
                    _orphan_error(stray.iloc[0], where, prompts)
                orphans.append(stray.assign(file=where))
            spilled.write("judged", out[ordinals >= 0], _JUDGED_SCHEMA)
        fields.finish()
    if not total:
        raise PoolError(f"{path}: no judgment rows")
    if kind == "pairwise":
        if len(refs) > 1:
            raise PoolError(f"{path}: judgments against {len(refs)} references {sorted(refs)[:4]}; "
                            "labels against different references do not compare: split the file")
        if has_ref:
            report["judgment_reference"] = sorted(refs)[0] if refs else None
        report["judgment_draws_coded_0"], report["judgment_draws"] = draws0, draws
    report["judgment_rows"] = total
    report["judgment_duplicate_copies"] = report["judge_failures"] = 0
    report["judgment_files"] = [str(f) for f in judgment_files]
    stray = pd.concat(orphans, ignore_index=True) if orphans else None
    if stray is not None:
        stray = _judgment_labels(stray, report)
    if options.skip_unmatched_judgments:
        report["unmatched_judgments_skipped"] = 0 if stray is None else len(stray)


def _orphan_error(j: pd.Series, where: str, prompts: Prompts | None) -> None:
    what = (f"prompt id {j['key']!r}, which --prompts does not hold" if not isinstance(j["instruction"], str)
            else f"a prompt the pool has no response of it for ({j['instruction'][:60]!r})")
    raise PoolError(f"{where}: row {j['row']} judges model {j['model']!r} on {what}; is it the judgments "
                    "of this pool? (--skip-unmatched-judgments skips and counts such judgments)")


def _judgment_labels(out: pd.DataFrame, report: dict) -> pd.DataFrame:
    """One label per (prompt, model): identical copies dropped and counted, two values an error."""
    copies = out.duplicated(["key", "model", "label"])
    report["judgment_duplicate_copies"] += int(copies.sum())
    out = out[~copies]
    clash = out.duplicated(["key", "model"], keep=False)
    if clash.any():
        first = _first_clash(out, clash, "key")
        raise PoolError(f"{_rows_where(first)} judge {first['model'].iloc[0]!r} on one prompt "
                        f"with different values {first['label'].tolist()}")
    report["judge_failures"] += int(out["label"].isna().sum())
    return out


def _convert_parts(spilled: _Spill, options: PoolOptions, names: dict[str, str], where_of: list[str], report: dict,
                   output: Path, stats: dict) -> None:
    """Pass 2: each partition's prompts, in order, through every per-prompt rule, into `output`."""
    score = options.score_field
    labelled = bool(options.judgments or score)
    judgment_files = report.get("judgment_files", [])
    for key in ("duplicate_row_copies", *(("dropped_unjudged",) if options.judged_only else ()),
                *(("dropped_by_draw",) if options.models_per_prompt is not None else ())):
        report[key] = 0
    if options.judged_only and not labelled:
        raise PoolError("--judged-only needs labels: give --judgments or --score-field")
    schema = _output_schema(labelled)
    with pa.OSFile(str(output), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for p in range(spilled.parts()):
            part = spilled.read_pool(p, where_of)
            stats["part_rows"] = max(stats["part_rows"], len(part.rows))
            stats["part_prompts"] = max(stats["part_prompts"], part.rows["ordinal"].nunique())
            rows = _one_part(part, spilled.read("judged", p, judgment_files), options, names, report)
            writer.write_table(_to_arrow(part, rows, labelled).cast(schema))
    report.pop("judgment_files", None)


def _one_part(part: _Part, judged: pd.DataFrame | None, options: PoolOptions, names: dict[str, str],
              report: dict) -> pd.DataFrame:
    """Every per-prompt rule on whole prompts: copies, clashes, labels, --judged-only, the draw.
    Returns the rows kept (part.rows' codes), in output order."""
    pool = _drop_copies(part, report, options.score_field)
    clash = pool.duplicated(["ordinal", "model"], keep=False)
    if clash.any():
        a = part.texts(_first_clash(pool, clash, "ordinal"))
        pool_names = a["pool_model"].tolist()
        if pool_names[0] != pool_names[1]:
            how = [f"{n!r} → {names[n]!r} by --model-names" if n in names else f"{n!r} (not in --model-names, kept as spelled)"
                   for n in pool_names]
            raise PoolError(f"{_rows_where(a)}: a collision of model names: pool names {how[0]} and {how[1]} are both "
                            f"model {a['model'].iloc[0]!r}, with different answers to one prompt "
                            f"({a['instruction'].iloc[0][:60]!r}); give them different names in --model-names")
        raise PoolError(f"{_rows_where(a)}: model {a['model'].iloc[0]!r} answers "
                        f"one prompt twice with different text ({a['instruction'].iloc[0][:60]!r}); keep one")
    if judged is not None:
        judged = _judgment_labels(judged, report)
        # the prompt's ordinal stands for its text (one to one), as the spill numbered both from it
        responses = pd.DataFrame({"ordinal": pool["ordinal"], "model": part.model_names(pool["model"].to_numpy())})
        merged = judged.merge(responses.reset_index(), on=["ordinal", "model"], how="left")
        orphan = merged["index"].isna()
        if orphan.any():
            if not options.skip_unmatched_judgments:
                j = merged[orphan].iloc[0]
                _orphan_error(j, j["file"], None)
            report["unmatched_judgments_skipped"] += int(orphan.sum())
            merged = merged[~orphan]
        pool.loc[merged["index"].astype(int).to_numpy(), "label"] = merged["label"].to_numpy()
        pool["label"] = pool["label"].astype(float)
    if options.judged_only:
        report["dropped_unjudged"] += int(pool["label"].isna().sum())
        pool = pool[pool["label"].notna()].reset_index(drop=True)
    # prompts in order of first appearance; responses in file order inside a prompt
    pool = pool.sort_values(["ordinal"], kind="stable").reset_index(drop=True)
    k = options.models_per_prompt
    if k is not None:
        prompt, texts = _codes(part.table.column("instruction").take(pa.array(pool["at"].to_numpy(), pa.int64())))
        prompt_texts = np.array(texts.to_pylist(), dtype=object)  # each prompt once: draw_keys hashes it once
        pool["key"] = draw_keys(options.seed, prompt_texts[prompt], part.model_names(pool["model"].to_numpy()))
        rank = pool.groupby("ordinal")["key"].rank(method="first")
        report["dropped_by_draw"] += int((rank > k).sum())
        pool = pool[(rank <= k).to_numpy()].reset_index(drop=True)
    return pool


def _two_rows(group: pd.DataFrame, column: str) -> tuple[list[int], list]:
    """(rows, values) of two rows of `group` that differ in `column` (nulls ignored), values sorted."""
    group = group[group[column].notna()]
    first = group.iloc[0]
    other = group[group[column] != first[column]].iloc[0]
    pair = sorted([(first["row"], first[column]), (other["row"], other[column])])
    return [int(r) for r, _ in pair], sorted(v for _, v in pair)


def _drop_copies(part: _Part, report: dict, score: str | None) -> pd.DataFrame:
    """One row per (prompt, model, response), whatever the rows' order: exact copies are dropped and
    counted; copies that disagree on the score, or rows of one prompt that disagree on the source,
    are an error naming two rows (which would be right?). A null score or source is no disagreement."""
    pool = part.rows.copy()
    key = ["ordinal", "model", "response"]
    if score:
        values = pool.groupby(key, sort=False)["label"]
        clash = values.transform("nunique") > 1
        if clash.any():
            first = pool[clash].iloc[0]
            rows, found = _two_rows(pool[clash & (pool["ordinal"] == first["ordinal"]) & (pool["model"] == first["model"])
                                         & (pool["response"] == first["response"])], "label")
            first = part.texts(pool[clash].iloc[:1]).iloc[0]
            raise PoolError(f"{first['file']}: rows {rows}: model {first['model']!r} gives one response on prompt "
                            f"{first['instruction'][:60]!r} two scores ({found[0]}, {found[1]}); keep one")
        pool["label"] = values.transform("max")  # a copy without a score takes its twin's
    if (pool["source"] >= 0).any():
        sources = pool["source"].where(pool["source"] >= 0).groupby(pool["ordinal"], sort=False)  # null: NaN
        clash = sources.transform("nunique") > 1
        if clash.any():
            first = pool[clash].iloc[0]
            rows, found = _two_rows(part.texts(pool[pool["ordinal"] == first["ordinal"]]), "source")
            first = part.texts(pool[clash].iloc[:1]).iloc[0]
            raise PoolError(f"{first['file']}: rows {rows}: prompt {first['instruction'][:60]!r} has two sources "
                            f"({found[0]!r}, {found[1]!r}); a prompt's rows must agree on --source-field")
        pool["source"] = sources.transform("first").fillna(-1).astype(np.int64)  # the one non-null source, on every row
    copies = pool.duplicated(key)
    report["duplicate_row_copies"] = int(copies.sum())
    return pool[~copies].reset_index(drop=True)


def _output_schema(labelled: bool) -> pa.Schema:
    """UltraFeedback's schema (SPEC §3), with overall_score when the pool has labels."""
    completion = [("model", pa.string()), ("response", pa.string()), *([("overall_score", pa.float64())] if labelled else [])]
    return pa.schema([("source", pa.string()), ("instruction", pa.string()), ("models", pa.list_(pa.string())),
                      ("completions", pa.list_(pa.struct(completion)))])


def _to_arrow(part: _Part, pool: pd.DataFrame, labelled: bool) -> pa.Table:
    """UltraFeedback-schema rows from the kept rows, sorted by prompt: one list of completions per
    prompt. The texts are taken from the partition's Arrow columns by row."""
    ordinal = pool["ordinal"].to_numpy()
    starts = np.flatnonzero(np.r_[True, ordinal[1:] != ordinal[:-1]]) if len(pool) else np.zeros(0, dtype=np.int64)
    offsets = pa.array(np.r_[starts, len(pool)].astype(np.int32))
    at = pool["at"].to_numpy(dtype=np.int64)
    model = part.models.take(pa.array(pool["model"].to_numpy(dtype=np.int64)))
    parts = [model, part.table.column("response").take(pa.array(at)).combine_chunks()]
    names = ["model", "response"]
    if labelled:
        label = pool["label"].to_numpy(dtype=float)
        parts.append(pa.array(label, pa.float64(), mask=np.isnan(label)))
        names.append("overall_score")
    completions = pa.ListArray.from_arrays(offsets, pa.StructArray.from_arrays(parts, names=names))
    models = pa.ListArray.from_arrays(offsets, model)
    source = pool["source"].to_numpy(dtype=np.int64)[starts]  # every row of a prompt has its one source (_drop_copies)
    return pa.table({"source": part.sources.take(pa.array(source, mask=source < 0)),
                     "instruction": part.table.column("instruction").take(pa.array(at[starts])).combine_chunks(),
                     "models": models, "completions": completions})
